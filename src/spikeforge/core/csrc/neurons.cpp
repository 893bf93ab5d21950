// spikeforge fused multi-step neurons. Layout: x, s, h are [T, M] (M = B * prod(neuron shape)),
// v0, v_final, g_v0 are [M]. Every arithmetic expression mirrors the plain-torch reference.
// The comparisons of the clamps below (and the spike compare) raise no exceptions anyone reads:
// without trapping math the compiler may turn them into blends and vectorize the loops. Results
// are unchanged (rounding is the same IEEE arithmetic).
#pragma GCC optimize("no-trapping-math")
#include <cmath>
#include <cstdint>
#include <algorithm>
#include <vector>

namespace {

// Neurons per block: one block's running potential (at most 64 Ki values) stays in L2 while
// its time loop streams x, s, h; long contiguous runs per time step keep the memory streams
// fast (512-neuron blocks ran at half the bandwidth). Blocks shrink so every thread gets one.
constexpr int64_t MAX_CHUNK = 65536;

inline int64_t chunk_size(int64_t m, int nthreads) {
    int64_t c = (m + nthreads - 1) / std::max(nthreads, 1);
    c = (c + 63) / 64 * 64;
    return std::max<int64_t>(64, std::min<int64_t>(c, MAX_CHUNK));
}

// The spike for d = H - threshold: 1 if d >= 0 (strict: d > 0), else 0.
template <typename T>
inline T fires(T d, int strict) {
    return (strict ? d > T(0) : d >= T(0)) ? T(1) : T(0);
}

template <typename T, int KIND>
inline T charge(T v, T x, T p, T vr) {
    if (KIND == 0) return v + x;                       // IF
    if (KIND == 1) return v + (x - (v - vr)) / p;      // LIF, decay_input (p = tau)
    if (KIND == 2) return v - (v - vr) / p + x;        // LIF, no input decay (p = tau)
    if (KIND == 4) return v + (x - (v - vr)) * p;      // LIF 1 with p = 1/tau exact
    if (KIND == 5) return v - (v - vr) * p + x;        // LIF 2 with p = 1/tau exact
    return vr + (v - vr) * p + x;                      // decay-factor LIF (p = decay)
}

template <typename T, int KIND, int RESET>
void forward(const T* x, const T* v0, T* s, T* h_out, T* v_final, int64_t steps, int64_t m,
             T p, T thr, T vr, int strict, int nthreads) {
    const int64_t chunk = chunk_size(m, nthreads);
    const int64_t blocks = (m + chunk - 1) / chunk;
#pragma omp parallel num_threads(nthreads)
    {
    std::vector<T> vbuf(chunk);
    T* __restrict v = vbuf.data();
#pragma omp for schedule(static)
    for (int64_t blk = 0; blk < blocks; ++blk) {
        const int64_t i0 = blk * chunk;
        const int64_t n = std::min(chunk, m - i0);
        for (int64_t i = 0; i < n; ++i) v[i] = v0 ? v0[i0 + i] : T(0);
        for (int64_t t = 0; t < steps; ++t) {
            const T* xt = x + t * m + i0;
            T* st = s + t * m + i0;
            T* ht = h_out ? h_out + t * m + i0 : nullptr;
            for (int64_t i = 0; i < n; ++i) {
                const T h = charge<T, KIND>(v[i], xt[i], p, vr);
                const T d = h - thr;
                const T sp = fires(d, strict);
                if (RESET == 0) v[i] = h - thr * sp;
                else if (RESET == 1) v[i] = h * (T(1) - sp) + vr * sp;
                else v[i] = h;
                st[i] = sp;
                if (ht) ht[i] = h;
            }
        }
        for (int64_t i = 0; i < n; ++i) v_final[i0 + i] = v[i];
    }
    }
}

// exp(x) for x <= 0, for the sigmoid surrogate, in a form the compiler vectorizes (libm's exp
// is one call per element): x = n ln2 + r with |r| <= ln2 / 2, exp(r) from its Taylor series
// (remainder below 0.05 ulp: degree 13 in double, 7 in float) in Estrin's form with fused
// multiply-adds, times 2^n written into the exponent bits. Estrin's form keeps the dependency
// chain 4 deep instead of Horner's 13: the backward loop is bound by that chain's latency (the
// out-of-order window holds only a few iterations). x is clamped to -708 (float: -87), where exp
// is still normal; the surrogate is 0 to the last bit beyond that. Within a few ulp of
// std::exp: the gradients match the reference to rounding (1e-12 in float64). Explicit fma
// calls are exempt from -ffp-contract=off, which keeps the rest of the kernel unfused.
inline double exp_nonpositive(double x) {
    x = std::max(x, -708.0);
    constexpr double magic = 6755399441055744.0;  // 1.5 * 2^52: adding it rounds to an integer
    const double t = __builtin_fma(x, 1.4426950408889634, magic);
    const double n = t - magic;
    const double r = __builtin_fma(-n, 1.90821492927058770002e-10,
                                   __builtin_fma(-n, 6.93147180369123816490e-01, x));
    const double r2 = r * r, r4 = r2 * r2, r8 = r4 * r4;
    const double p01 = __builtin_fma(r, 1.0, 1.0), p23 = __builtin_fma(r, 1.0 / 6.0, 0.5);
    const double p45 = __builtin_fma(r, 1.0 / 120.0, 1.0 / 24.0);
    const double p67 = __builtin_fma(r, 1.0 / 5040.0, 1.0 / 720.0);
    const double p89 = __builtin_fma(r, 1.0 / 362880.0, 1.0 / 40320.0);
    const double p1011 = __builtin_fma(r, 1.0 / 39916800.0, 1.0 / 3628800.0);
    const double p1213 = __builtin_fma(r, 1.0 / 6227020800.0, 1.0 / 479001600.0);
    const double q0 = __builtin_fma(p23, r2, p01), q1 = __builtin_fma(p67, r2, p45);
    const double q2 = __builtin_fma(p1011, r2, p89);
    const double p = __builtin_fma(__builtin_fma(p1213, r4, q2), r8, __builtin_fma(q1, r4, q0));
    uint64_t bits;
    __builtin_memcpy(&bits, &t, sizeof bits);   // low bits of t: n + 2^51
    bits = (bits + 1023) << 52;                  // 2^n (n + 1023 in [1, 1023])
    double scale;
    __builtin_memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

inline float exp_nonpositive(float x) {
    x = std::max(x, -87.0f);
    constexpr float magic = 12582912.0f;          // 1.5 * 2^23
    const float t = __builtin_fmaf(x, 1.44269504f, magic);
    const float n = t - magic;
    const float r = __builtin_fmaf(-n, -2.12194440e-4f, __builtin_fmaf(-n, 0.693359375f, x));
    const float r2 = r * r, r4 = r2 * r2;
    const float p01 = __builtin_fmaf(r, 1.0f, 1.0f), p23 = __builtin_fmaf(r, 1.0f / 6.0f, 0.5f);
    const float p45 = __builtin_fmaf(r, 1.0f / 120.0f, 1.0f / 24.0f);
    const float p67 = __builtin_fmaf(r, 1.0f / 5040.0f, 1.0f / 720.0f);
    const float p = __builtin_fmaf(__builtin_fmaf(p67, r2, p45), r4, __builtin_fmaf(p23, r2, p01));
    uint32_t bits;
    __builtin_memcpy(&bits, &t, sizeof bits);    // low bits of t: n + 2^22
    bits = (bits + 127) << 23;                    // 2^n (n + 127 in [1, 127])
    float scale;
    __builtin_memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

template <typename T, int SG>
inline T surrogate(T d, double alpha) {
    // constants are formed in double and rounded to T, as torch does with Python scalars
    const T a = T(alpha);
    if (SG == 0) {  // atan: (a/2) / (1 + (pi/2 * a * d)^2)
        const T u = T(1.5707963267948966 * alpha) * d;
        return T(alpha / 2) / (T(1) + u * u);
    }
    if (SG == 1) {  // sigmoid: a * sig(a d) * (1 - sig(a d)), in the reference's rounding
        // sig(y) = 1 / (1 + e) for y >= 0 and e / (1 + e) below, with e = exp(-|y|) <= 1
        const T y = a * d;
        const T e = exp_nonpositive(-std::fabs(y));
        const T sg = (y >= T(0) ? T(1) : e) / (T(1) + e);
        return a * sg * (T(1) - sg);
    }
    if (SG == 2) {  // fast sigmoid: 1 / (1 + a |d|)^2
        const T q = T(1) + a * std::fabs(d);
        return T(1) / (q * q);
    }
    if (SG == 3) {  // triangle: max(a - |d|, 0) / a^2
        const T q = a - std::fabs(d);
        return (q > T(0) ? q : T(0)) / T(alpha * alpha);
    }
    // rectangle: 1[|d| < a/2] / a (= 1 / a or 0, so the division is done once)
    const T inside = T(1) / a;
    return std::fabs(d) < T(alpha / 2) ? inside : T(0);
}

// kind enters the backward only through dH/dV[t-1] and dH/dX[t]:
// LEAK 0: gx = gh, gv = gh (IF); 1: gx = gh / p, gv = gh - gh / p (LIF, decay_input);
// 2: gx = gh, gv = gh - gh / p (LIF, no input decay); 3: gx = gh, gv = gh * p (decay-factor);
// 4, 5: as 1, 2 with p = 1/tau (a power of two) multiplied instead of tau divided.
// g_s and g_x are required (ABI 2: no branch in the inner loop); g_vt and g_v0 may be null.
template <typename T, int KIND, int RESET, int SG>
void backward(const T* h, const T* g_s, const T* g_vt, T* g_x, T* g_v0, int64_t steps, int64_t m,
              T p, T thr, T vr, int strict, int detach, double alpha, int nthreads) {
    const int64_t chunk = chunk_size(m, nthreads);
    const int64_t blocks = (m + chunk - 1) / chunk;
#pragma omp parallel num_threads(nthreads)
    {
    std::vector<T> gvbuf(chunk);
    T* __restrict gv = gvbuf.data();
#pragma omp for schedule(static)
    for (int64_t blk = 0; blk < blocks; ++blk) {
        const int64_t i0 = blk * chunk;
        const int64_t n = std::min(chunk, m - i0);
        for (int64_t i = 0; i < n; ++i) gv[i] = g_vt ? g_vt[i0 + i] : T(0);
        for (int64_t t = steps - 1; t >= 0; --t) {
            const T* ht = h + t * m + i0;
            const T* gst = g_s + t * m + i0;
            T* gxt = g_x + t * m + i0;
            // g_x may be h itself (written in place, index by index): no dependency between
            // iterations either way
#pragma GCC ivdep
            for (int64_t i = 0; i < n; ++i) {
                const T hv = ht[i];
                const T d = hv - thr;
                const T sp = fires(d, strict);
                const T sg = surrogate<T, SG>(d, alpha);
                const T gs = gst[i];
                const T g = gv[i];
                T gh;
                if (RESET == 0) {
                    const T gtot = detach ? gs : gs + (-g) * thr;
                    gh = g + gtot * sg;
                } else if (RESET == 1) {
                    const T gtot = detach ? gs : gs + (-(g * hv) + g * vr);
                    gh = g * (T(1) - sp) + gtot * sg;
                } else {
                    gh = g + gs * sg;
                }
                T gx, gvn;
                if (KIND == 0) { gx = gh; gvn = gh; }
                else if (KIND == 1) { gx = gh / p; gvn = gh + (-gx); }
                else if (KIND == 2) { gx = gh; gvn = gh + (-(gh / p)); }
                else if (KIND == 4) { gx = gh * p; gvn = gh + (-gx); }
                else if (KIND == 5) { gx = gh; gvn = gh + (-(gh * p)); }
                else { gx = gh; gvn = gh * p; }
                gxt[i] = gx;
                gv[i] = gvn;
            }
        }
        if (g_v0) for (int64_t i = 0; i < n; ++i) g_v0[i0 + i] = gv[i];
    }
    }
}

// The spikes again from the saved pre-spike potential: s = (h >= thr) or (h > thr), one pass.
template <typename T>
void spikes_from_h(const T* h, T* s, int64_t n, T thr, int strict, int nthreads) {
#pragma omp parallel for num_threads(nthreads) schedule(static)
    for (int64_t i = 0; i < n; ++i) {
        const T d = h[i] - thr;
        s[i] = fires(d, strict);
    }
}

template <typename T, int KIND>
void forward_k(const T* x, const T* v0, T* s, T* h, T* vf, int64_t steps, int64_t m, T p, T thr,
               T vr, int reset, int strict, int nt) {
    if (reset == 0) forward<T, KIND, 0>(x, v0, s, h, vf, steps, m, p, thr, vr, strict, nt);
    else if (reset == 1) forward<T, KIND, 1>(x, v0, s, h, vf, steps, m, p, thr, vr, strict, nt);
    else forward<T, KIND, 2>(x, v0, s, h, vf, steps, m, p, thr, vr, strict, nt);
}

template <typename T>
void forward_any(const T* x, const T* v0, T* s, T* h, T* vf, int64_t steps, int64_t m, int kind,
                 T p, T thr, T vr, int reset, int strict, int nt) {
    switch (kind) {
        case 0: forward_k<T, 0>(x, v0, s, h, vf, steps, m, p, thr, vr, reset, strict, nt); break;
        case 1: forward_k<T, 1>(x, v0, s, h, vf, steps, m, p, thr, vr, reset, strict, nt); break;
        case 2: forward_k<T, 2>(x, v0, s, h, vf, steps, m, p, thr, vr, reset, strict, nt); break;
        case 4: forward_k<T, 4>(x, v0, s, h, vf, steps, m, p, thr, vr, reset, strict, nt); break;
        case 5: forward_k<T, 5>(x, v0, s, h, vf, steps, m, p, thr, vr, reset, strict, nt); break;
        default: forward_k<T, 3>(x, v0, s, h, vf, steps, m, p, thr, vr, reset, strict, nt);
    }
}

template <typename T, int KIND, int RESET>
void backward_r(const T* h, const T* gs, const T* gvt, T* gx, T* gv0, int64_t steps, int64_t m,
                T p, T thr, T vr, int strict, int detach, int sg, double alpha, int nt) {
#define SF_B(SGV) backward<T, KIND, RESET, SGV>(h, gs, gvt, gx, gv0, steps, m, p, thr, vr, \
                                                 strict, detach, alpha, nt)
    switch (sg) {
        case 0: SF_B(0); break;
        case 1: SF_B(1); break;
        case 2: SF_B(2); break;
        case 3: SF_B(3); break;
        default: SF_B(4);
    }
#undef SF_B
}

template <typename T, int KIND>
void backward_k(const T* h, const T* gs, const T* gvt, T* gx, T* gv0, int64_t steps, int64_t m,
                T p, T thr, T vr, int reset, int strict, int detach, int sg, double alpha, int nt) {
    if (reset == 0)
        backward_r<T, KIND, 0>(h, gs, gvt, gx, gv0, steps, m, p, thr, vr, strict, detach, sg,
                               alpha, nt);
    else if (reset == 1)
        backward_r<T, KIND, 1>(h, gs, gvt, gx, gv0, steps, m, p, thr, vr, strict, detach, sg,
                               alpha, nt);
    else
        backward_r<T, KIND, 2>(h, gs, gvt, gx, gv0, steps, m, p, thr, vr, strict, detach, sg,
                               alpha, nt);
}

template <typename T>
void backward_any(const T* h, const T* gs, const T* gvt, T* gx, T* gv0, int64_t steps, int64_t m,
                  int kind, T p, T thr, T vr, int reset, int strict, int detach, int sg,
                  double alpha, int nt) {
#define SF_K(K) backward_k<T, K>(h, gs, gvt, gx, gv0, steps, m, p, thr, vr, reset, strict, \
                                 detach, sg, alpha, nt)
    switch (kind) {
        case 0: SF_K(0); break;
        case 1: SF_K(1); break;
        case 2: SF_K(2); break;
        case 4: SF_K(4); break;
        case 5: SF_K(5); break;
        default: SF_K(3);
    }
#undef SF_K
}

}  // namespace

extern "C" {
#define SF_EXPORT(SUF, T)                                                                      \
    void sf_forward_##SUF(const T* x, const T* v0, T* s, T* h, T* vf, int64_t steps,           \
                          int64_t m, int kind, double p, double thr, double vr, int reset,     \
                          int strict, int nt) {                                                \
        forward_any<T>(x, v0, s, h, vf, steps, m, kind, T(p), T(thr), T(vr), reset, strict,    \
                       nt);                                                                    \
    }                                                                                          \
    void sf_backward_##SUF(const T* h, const T* gs, const T* gvt, T* gx, T* gv0,             \
                           int64_t steps, int64_t m, int kind, double p, double thr,           \
                           double vr, int reset, int strict, int detach, int sg, double alpha, \
                           int nt) {                                                           \
        backward_any<T>(h, gs, gvt, gx, gv0, steps, m, kind, T(p), T(thr), T(vr), reset,      \
                        strict, detach, sg, alpha, nt);                                     \
    }                                                                                          \
    void sf_spikes_##SUF(const T* h, T* s, int64_t n, double thr, int strict, int nt) {        \
        spikes_from_h<T>(h, s, n, T(thr), strict, nt);                                         \
    }
SF_EXPORT(f32, float)
SF_EXPORT(f64, double)
int sf_abi_version() { return 2; }
}
