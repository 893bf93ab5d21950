// spikeforge event-driven linear layer. s [N, I] binary, wt [I, O] (W transposed), y [N, O].
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>
#include <omp.h>

namespace {

template <typename T> struct Vec;
template <> struct Vec<float> {
    typedef float type __attribute__((vector_size(64), aligned(4)));
};
template <> struct Vec<double> {
    typedef double type __attribute__((vector_size(64), aligned(8)));
};

// Count the nonzeros of every row; returns 1 if any value is neither 0 nor 1.
template <typename T>
int scan(const T* s, int64_t n, int64_t in, int64_t* cnt, int nt) {
    int bad = 0;
    #pragma omp parallel for num_threads(nt) schedule(static) reduction(|: bad)
    for (int64_t r = 0; r < n; ++r) {
        const T* row = s + r * in;
        int64_t c = 0;
        int b = 0;
        for (int64_t i = 0; i < in; ++i) {
            const T v = row[i];
            c += (v != T(0));
            b |= (v != T(0)) & (v != T(1));
        }
        cnt[r] = c;
        bad |= b;
    }
    return bad;
}

// Branch-free: every index is written to a per-thread buffer, the cursor advances on spikes.
template <typename T>
void fill(const T* s, int64_t n, int64_t in, const int64_t* ptr, int32_t* idx, int nt) {
    #pragma omp parallel num_threads(nt)
    {
        std::vector<int32_t> buf(in + 1);
        #pragma omp for schedule(static)
        for (int64_t r = 0; r < n; ++r) {
            const T* row = s + r * in;
            int64_t c = 0;
            for (int64_t i = 0; i < in; ++i) {
                buf[c] = static_cast<int32_t>(i);
                c += (row[i] != T(0));
            }
            std::memcpy(idx + ptr[r], buf.data(), sizeof(int32_t) * c);
        }
    }
}

constexpr int64_t ROWS = 32;  // rows per block: a block walks one column chunk of wt at a time

// y[r, :] = b + sum over the active inputs i of row r of wt[i, :]. Blocks of rows; within a
// block, one chunk of 8 vectors of columns at a time (that chunk of wt stays in L2), the running
// sums in registers.
template <typename T>
void forward(const int64_t* ptr, const int32_t* idx, const T* wt, const T* b, T* y, int64_t n,
             int64_t out, int nt) {
    typedef typename Vec<T>::type V;
    constexpr int64_t CH = 8 * int64_t(64 / sizeof(T));
    const int64_t full = out - out % CH;
    #pragma omp parallel for num_threads(nt) schedule(static)
    for (int64_t r0 = 0; r0 < n; r0 += ROWS) {
        const int64_t r1 = std::min(n, r0 + ROWS);
        for (int64_t o0 = 0; o0 < full; o0 += CH) {
            for (int64_t r = r0; r < r1; ++r) {
                const int32_t* ir = idx + ptr[r];
                const int64_t k = ptr[r + 1] - ptr[r];
                V a0 = {}, a1 = {}, a2 = {}, a3 = {}, a4 = {}, a5 = {}, a6 = {}, a7 = {};
                for (int64_t j = 0; j < k; ++j) {
                    const V* w = reinterpret_cast<const V*>(wt + int64_t(ir[j]) * out + o0);
                    a0 += w[0]; a1 += w[1]; a2 += w[2]; a3 += w[3];
                    a4 += w[4]; a5 += w[5]; a6 += w[6]; a7 += w[7];
                }
                V* yy = reinterpret_cast<V*>(y + r * out + o0);
                yy[0] = a0; yy[1] = a1; yy[2] = a2; yy[3] = a3;
                yy[4] = a4; yy[5] = a5; yy[6] = a6; yy[7] = a7;
            }
        }
        for (int64_t r = r0; r < r1; ++r) {
            T* yr = y + r * out;
            const int32_t* ir = idx + ptr[r];
            const int64_t k = ptr[r + 1] - ptr[r];
            for (int64_t o = full; o < out; ++o) yr[o] = T(0);
            for (int64_t j = 0; j < k && full < out; ++j) {
                const T* w = wt + int64_t(ir[j]) * out;
                for (int64_t o = full; o < out; ++o) yr[o] += w[o];
            }
            if (b)
                for (int64_t o = 0; o < out; ++o) yr[o] += b[o];
        }
    }
}

// gwt[i, :] = sum over the rows r in which input i spiked of g[r, :]. Each thread owns a block
// of inputs i (no atomics) and walks all rows, one chunk of columns at a time with g[r, chunk]
// in registers.
template <typename T>
void wgrad(const int64_t* ptr, const int32_t* idx, const T* g, T* gwt, int64_t n, int64_t in,
           int64_t out, int nt) {
    typedef typename Vec<T>::type V;
    constexpr int64_t CH = 8 * int64_t(64 / sizeof(T));
    const int64_t full = out - out % CH;
    std::memset(gwt, 0, sizeof(T) * in * out);
    #pragma omp parallel num_threads(nt)
    {
        const int t = omp_get_thread_num(), count = omp_get_num_threads();
        const int64_t lo = in * t / count, hi = in * (t + 1) / count;
        for (int64_t o0 = 0; o0 < full; o0 += CH) {
            for (int64_t r = 0; r < n; ++r) {
                const int32_t* ir = idx + ptr[r];
                const int64_t k = ptr[r + 1] - ptr[r];
                const V* gv = reinterpret_cast<const V*>(g + r * out + o0);
                const V g0 = gv[0], g1 = gv[1], g2 = gv[2], g3 = gv[3];
                const V g4 = gv[4], g5 = gv[5], g6 = gv[6], g7 = gv[7];
                for (int64_t j = 0; j < k; ++j) {
                    const int64_t i = ir[j];
                    if (i < lo || i >= hi) continue;
                    V* w = reinterpret_cast<V*>(gwt + i * out + o0);
                    w[0] += g0; w[1] += g1; w[2] += g2; w[3] += g3;
                    w[4] += g4; w[5] += g5; w[6] += g6; w[7] += g7;
                }
            }
        }
        if (full < out) {
            for (int64_t r = 0; r < n; ++r) {
                const T* gr = g + r * out;
                const int32_t* ir = idx + ptr[r];
                const int64_t k = ptr[r + 1] - ptr[r];
                for (int64_t j = 0; j < k; ++j) {
                    const int64_t i = ir[j];
                    if (i < lo || i >= hi) continue;
                    T* w = gwt + i * out;
                    for (int64_t o = full; o < out; ++o) w[o] += gr[o];
                }
            }
        }
    }
}

}  // namespace

extern "C" {
#define SL_EXPORT(SUF, T)                                                                      \
    int sl_scan_##SUF(const T* s, int64_t n, int64_t in, int64_t* cnt, int nt) {               \
        return scan<T>(s, n, in, cnt, nt);                                                     \
    }                                                                                          \
    void sl_fill_##SUF(const T* s, int64_t n, int64_t in, const int64_t* ptr, int32_t* idx,    \
                       int nt) {                                                               \
        fill<T>(s, n, in, ptr, idx, nt);                                                       \
    }                                                                                          \
    void sl_forward_##SUF(const int64_t* ptr, const int32_t* idx, const T* wt, const T* b,     \
                          T* y, int64_t n, int64_t out, int nt) {                              \
        forward<T>(ptr, idx, wt, b, y, n, out, nt);                                            \
    }                                                                                          \
    void sl_wgrad_##SUF(const int64_t* ptr, const int32_t* idx, const T* g, T* gwt, int64_t n, \
                        int64_t in, int64_t out, int nt) {                                     \
        wgrad<T>(ptr, idx, g, gwt, n, in, out, nt);                                            \
    }
SL_EXPORT(f32, float)
SL_EXPORT(f64, double)
int sl_abi_version() { return 1; }
}
