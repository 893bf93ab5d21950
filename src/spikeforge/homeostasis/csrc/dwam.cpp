// DWAM: one update of the per-neuron state and the working weights (spec dwam.md §4.1), fused.
//
// The same arithmetic as the torch path of spikeforge/homeostasis/dwam.py (DWAM._update_torch),
// operation by operation, each a single IEEE rounding (compiled with -ffp-contract=off, so no
// fused multiply-add): the two paths give bit-identical states in float32 (tests/homeostasis);
// in float64 torch's vectorised square root is not correctly rounded, so the gate may differ
// in the last bit.
//
// Layouts (contiguous, row-major): post-synaptic state [S, P] (S streams, P = all plastic
// layers' neurons side by side), CV window [W, S, P] in double, per layer l: weights
// [S, O_l, I_l] (transposed[l]: stored as [S, I_l, O_l], the layout dwam_linear reads),
// pre-synaptic rates and pending sums [S, I_l]; layer l owns columns col0[l] .. col0[l] + O_l
// of the post-synaptic state.
//
// Besides the update (dwam_update), the per-call work of a DWAM call on CPU:
//   * dwam_sum: a layer's input or output summed over the steps (and batch), in a fixed order;
//   * dwam_linear: the layer with per-stream working weights, y = b + Σ_i x_i·W[:, i] in
//     ascending i, a term with x_i = 0 skipped (the same as adding −0.0, which leaves every
//     value as it is), x_i = 1 taken as W[:, i] itself (1·w = w); optionally summing its
//     input per stream like dwam_sum;
//   * dwam_finite: whether n contiguous values are all finite.
// The selects of the update's loops (the gate's clip, θ's subnormal case) compare values whose
// floating-point exceptions nobody reads: without trapping math the compiler may turn them into
// blends and vectorise the loops. The results are the same IEEE operations.
#pragma GCC optimize("no-trapping-math")
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

namespace {

// Whether row[0..n) holds a (signed) zero or a NaN.
template <typename T>
bool has_zero_or_nan(const T* row, int64_t n) {
  int64_t count = 0;
  for (int64_t j = 0; j < n; ++j) count += (row[j] == T(0)) | (row[j] != row[j]);
  return count != 0;
}

// Whether every entry of x[0..n) is finite (no inf, no NaN).
template <typename T>
bool all_finite(const T* x, int64_t n) {
  int64_t bad = 0;
  for (int64_t j = 0; j < n; ++j) bad += !(std::fabs(x[j]) <= std::numeric_limits<T>::max());
  return bad == 0;
}

// Subnormals. A neuron that stays silent (c = 0) has its θ_M decay geometrically towards 0;
// in float32 it ends in the subnormal range and stays there (θ·(1/τ_θ) rounds to a few units of
// the smallest subnormal), where x86 arithmetic takes a slow microcode path on every update.
// The two operations that meet such a θ are computed here without subnormal arithmetic and
// with the same bits:
//   * θ ← θ + (0 − θ)·w for c = 0 (target c²/c_ref = +0): with θ = k·2^-149 (k its bits) the
//     product rounds to the nearest multiple of 2^-149 (ties to even), m = rint(k·w) with k·w
//     exact in double (23 + 24 bits), and the sum is exact: θ ← (k − m)·2^-149;
//   * φ = ((c − θ)·c)·g for c = ±0: a signed zero whose sign depends on θ only through its
//     sign, so θ is replaced by ±1.
inline bool positive_subnormal(float x) {
  uint32_t bits;
  std::memcpy(&bits, &x, sizeof bits);
  return bits != 0 && bits < 0x00800000u;
}
inline bool positive_subnormal(double) { return false; }  // float64: plain arithmetic

// θ + (0 − θ)·w for a positive subnormal float θ and 0 < w <= 1, without subnormal arithmetic.
inline float decay_subnormal(float theta, float w) {
  uint32_t k;
  std::memcpy(&k, &theta, sizeof k);
  const uint32_t m = static_cast<uint32_t>(std::nearbyint(static_cast<double>(k) * w));
  const uint32_t bits = k - m;
  float out;
  std::memcpy(&out, &bits, sizeof out);
  return out;
}
inline double decay_subnormal(double theta, double) { return theta; }  // never called

// Steps 1-3 for the P post-synaptic neurons of one stream (First: the EMA starts at s):
//   1. rate c = s or c + (s − c)·w_ema, s = sum·inv_post;
//   2. CV window: running sums of the window and of its squares (double);
//   3. sliding threshold θ ← θ + (c²/c_ref − θ)·w_θ, for c = 0 and a positive subnormal θ by
//      decay_subnormal (the same bits), chosen lane by lane so that the loop vectorises (the
//      plain formula is then computed from θ = 1, never from the subnormal).
template <typename T, bool First>
void post_rates(int64_t P, T inv_post, T w_ema, T w_theta, bool theta_decays,
                const T* __restrict inv_ref, const T* __restrict sum_post, T* __restrict c_post,
                T* __restrict theta, double* __restrict win, double* __restrict win_sum,
                double* __restrict win_sq) {
  for (int64_t j = 0; j < P; ++j) {
    const T s = sum_post[j] * inv_post;
    const T c = First ? s : c_post[j] + (s - c_post[j]) * w_ema;
    c_post[j] = c;
    const double old = win[j], now = static_cast<double>(c);
    win_sum[j] = (win_sum[j] + now) - old;
    win_sq[j] = (win_sq[j] + now * now) - old * old;
    win[j] = now;
    const T th = theta[j];
    const bool tiny = theta_decays & (c == T(0)) & positive_subnormal(th);
    const T plain_from = tiny ? T(1) : th;
    const T target = (c * c) * inv_ref[j];
    const T plain = plain_from + (target - plain_from) * w_theta;
    theta[j] = tiny ? decay_subnormal(th, w_theta) : plain;
  }
}

template <typename T>
void update(int64_t S, int64_t P, int64_t slot, int64_t first, int64_t full, int64_t adapt,
            double ema, double theta_rate, double inv_count_post, double zeta2, double zeta2_w,
            double alpha, T* sum_post, T* c_post, T* theta, const T* inv_ref, double* window,
            double* win_sum, double* win_sq, T* gate, int64_t L, const int64_t* col0,
            const int64_t* n_out, const int64_t* n_in, void* const* weights,
            void* const* c_pre, void* const* sum_pre, const double* inv_count_pre,
            const int64_t* plain_zeros, const int64_t* transposed) {
  const T w_ema = static_cast<T>(ema), w_theta = static_cast<T>(theta_rate);
  // 1. rates
  for (int64_t l = 0; l < L; ++l) {
    T* cp = static_cast<T*>(c_pre[l]);
    const T* sp = static_cast<const T*>(sum_pre[l]);
    const T inv = static_cast<T>(inv_count_pre[l]);
    const int64_t n = S * n_in[l];
    for (int64_t k = 0; k < n; ++k) {
      const T s = sp[k] * inv;
      cp[k] = first ? s : cp[k] + (s - cp[k]) * w_ema;
    }
  }
  const T inv_post = static_cast<T>(inv_count_post);
  const bool theta_decays = w_theta <= T(1);
  for (int64_t s = 0; s < S; ++s) {
    if (first) {
      post_rates<T, true>(P, inv_post, w_ema, w_theta, theta_decays, inv_ref, sum_post + s * P,
                          c_post + s * P, theta + s * P, window + slot * S * P + s * P,
                          win_sum + s * P, win_sq + s * P);
    } else {
      post_rates<T, false>(P, inv_post, w_ema, w_theta, theta_decays, inv_ref, sum_post + s * P,
                           c_post + s * P, theta + s * P, window + slot * S * P + s * P,
                           win_sum + s * P, win_sq + s * P);
    }
  }
  if (!full) return;
  // 4. gate g = sqrt(clip(ζ²·(W·Σc²/(Σc)² − 1), 0, 1)), 0 where 0/0 (branch-free, so that it
  // vectorises; a silent window, Σc = Σc² = 0, is computed as 0/1: the same gate, 0, without
  // NaN arithmetic)
  const int64_t n = S * P;
  for (int64_t k = 0; k < n; ++k) {
    const double total = win_sum[k], squares = win_sq[k];
    const bool silent = (total == 0.0) & (squares == 0.0);
    double r = (silent ? 0.0 : squares) / (silent ? 1.0 : total * total);
    r = r * zeta2_w;
    r = r - zeta2;
    r = r < 0.0 ? 0.0 : r;
    r = r > 1.0 ? 1.0 : r;  // (NaN stays NaN, as in the torch path's clamp)
    r = std::sqrt(r);
    gate[k] = static_cast<T>(r != r ? 0.0 : r);
  }
  if (!adapt) return;
  // 5. W += (η·sign·φ) ⊗ c_pre with φ = (c − θ_M)·c·g
  //
  // A row with φ·η = ±0 (a silent neuron, a closed gate) is left as it is when that is exactly
  // what the update gives: with finite c_pre every term is ±0, and x + (±0) == x bit for bit
  // for every x but −0 (−0 + +0 = +0) and NaN. plain_zeros[l]: the caller knows that layer l's
  // weights hold neither −0 nor NaN (the update creates neither); otherwise rows holding a
  // zero or a NaN are updated.
  const T a = static_cast<T>(alpha);
  std::vector<T> pa;
  for (int64_t l = 0; l < L; ++l) {
    T* w = static_cast<T*>(weights[l]);
    const T* cp = static_cast<const T*>(c_pre[l]);
    const int64_t O = n_out[l], I = n_in[l];
    pa.resize(static_cast<size_t>(O));
    for (int64_t s = 0; s < S; ++s) {
      const T* pre = cp + s * I;
      const bool c_finite = all_finite(pre, I);
      bool any_change = false;
      for (int64_t i = 0; i < O; ++i) {
        const int64_t k = s * P + col0[l] + i;
        const T c = c_post[k];
        // for c = ±0 only the sign of θ matters (see above); avoids subnormal arithmetic
        const T th = (c == T(0) && positive_subnormal(theta[k])) ? T(1) : theta[k];
        const T phi = ((c - th) * c) * gate[k];
        pa[i] = phi * a;
        any_change |= pa[i] != T(0);
      }
      if (!transposed[l]) {
        for (int64_t i = 0; i < O; ++i) {
          T* row = w + (s * O + i) * I;
          const T p = pa[i];
          if (p == T(0) && c_finite && (plain_zeros[l] || !has_zero_or_nan(row, I))) continue;
          for (int64_t j = 0; j < I; ++j) row[j] = row[j] + p * pre[j];
        }
        continue;
      }
      // transposed [S, I, O]: row j of stream s gets pa ⊗ c_pre[j], the same products
      // (pa[i]·pre[j] = pre[j]·pa[i]) and sums as the row layout, so the same bits; a row with
      // pre[j] = ±0 (or every pa = ±0) gets ±0 terms only and is skipped on the same terms
      const T* pav = pa.data();
      const bool pa_finite = all_finite(pav, O);
      if (!any_change && c_finite && plain_zeros[l]) continue;
      for (int64_t j = 0; j < I; ++j) {
        T* __restrict row = w + (s * I + j) * O;
        const T x = pre[j];
        if ((x == T(0) || !any_change) && pa_finite && c_finite &&
            (plain_zeros[l] || !has_zero_or_nan(row, O)))
          continue;
        for (int64_t i = 0; i < O; ++i) row[i] = row[i] + pav[i] * x;
      }
    }
  }
}

// The pending input sums, in one fixed order (the torch path's _ordered_sum does the same):
// per stream b, acc_b = ((x[0, b] + x[1, b]) + x[2, b]) + ... over the steps; per_stream: out[b]
// (+)= acc_b, else out (+)= ((acc_0 + acc_1) + acc_2) + ... over the batch. x [steps, batch, n]
// with element strides (st, sb, 1); out rows are out_stride apart.
template <typename T>
void ordered_sum(const T* __restrict x, int64_t steps, int64_t batch, int64_t n, int64_t st,
                 int64_t sb, int64_t per_stream, T* __restrict out, int64_t out_stride,
                 int64_t accumulate) {
  std::vector<T> acc(static_cast<size_t>(n)), total(per_stream ? 0 : static_cast<size_t>(n));
  T* __restrict a = acc.data();
  for (int64_t b = 0; b < batch; ++b) {
    for (int64_t j = 0; j < n; ++j) a[j] = x[b * sb + j];
    for (int64_t t = 1; t < steps; ++t) {
      const T* __restrict row = x + t * st + b * sb;
      for (int64_t j = 0; j < n; ++j) a[j] = a[j] + row[j];
    }
    // per stream: into its row of out; shared: into the batch total (the first one copied)
    T* __restrict dst = per_stream ? out + b * out_stride : total.data();
    const bool add = per_stream ? accumulate != 0 : b > 0;
    for (int64_t j = 0; j < n; ++j) dst[j] = add ? dst[j] + a[j] : a[j];
  }
  if (!per_stream) {
    for (int64_t j = 0; j < n; ++j) out[j] = accumulate ? out[j] + total[j] : total[j];
  }
}

// 32-byte SIMD vectors of T, read and written at any T-aligned address (GCC/Clang vector
// extension, lowered to narrower registers where the CPU has none this wide). The arithmetic is
// lane by lane, IEEE, one rounding per operation: the same as the scalar code.
template <typename T>
struct Simd {
  typedef T vec __attribute__((vector_size(32), aligned(alignof(T)), may_alias));
  static constexpr int lanes = 32 / sizeof(T);
};

// yr[o0 .. o0 + NV·lanes) = b + Σ_k val[k]·w[idx[k], o0 ..] over the m listed inputs in their
// order (val = 1: the row itself), accumulated in registers; b from bias, or +0.
template <typename T, int NV>
inline void accumulate_block(const T* __restrict w, int64_t O, const int64_t* __restrict idx,
                             const T* __restrict val, int64_t m, const T* __restrict bias,
                             T* __restrict yr, int64_t o0) {
  typedef typename Simd<T>::vec vec;
  constexpr int L = Simd<T>::lanes;
  vec acc[NV];
  for (int c = 0; c < NV; ++c)
    acc[c] = bias ? *reinterpret_cast<const vec*>(bias + o0 + c * L) : vec{};
  for (int64_t k = 0; k < m; ++k) {
    const vec* wr = reinterpret_cast<const vec*>(w + idx[k] * O + o0);
    const T v = val[k];
    if (v == T(1)) {
      for (int c = 0; c < NV; ++c) acc[c] = acc[c] + wr[c];
    } else {
      for (int c = 0; c < NV; ++c) acc[c] = acc[c] + v * wr[c];
    }
  }
  for (int c = 0; c < NV; ++c) *reinterpret_cast<vec*>(yr + o0 + c * L) = acc[c];
}

// y[t, s, :] = b + Σ_{i ascending, x != 0} x[t, s, i]·wt[s, i, :] (module comment), with
// x [T, S, I] with element strides (st, ss, 1), wt [S, I, O] and y [T, S, O] contiguous; b may be
// null (then +0). Per row of x: its nonzero inputs are listed first (a vectorised comparison,
// then the set bytes of each 8-byte word in ascending order; NaN counts as nonzero), then each
// block of outputs sums their weight rows in registers. Stream by stream, so that a stream's
// weights stay in cache over the steps.
template <typename T>
void stream_linear(const T* __restrict x, int64_t steps, int64_t S, int64_t I, int64_t O,
                   int64_t st, int64_t ss, const T* __restrict wt, const T* __restrict bias,
                   T* __restrict y) {
  constexpr int L = Simd<T>::lanes;
  const int64_t padded = (I + 7) / 8 * 8;
  std::vector<uint8_t> nonzero(static_cast<size_t>(padded), 0);
  std::vector<int64_t> index(static_cast<size_t>(I));
  std::vector<T> value(static_cast<size_t>(I));
  uint8_t* __restrict nz = nonzero.data();
  int64_t* __restrict idx = index.data();
  T* __restrict val = value.data();
  for (int64_t s = 0; s < S; ++s) {
    for (int64_t t = 0; t < steps; ++t) {
      const T* __restrict xr = x + t * st + s * ss;
      T* __restrict yr = y + (t * S + s) * O;
      const T* __restrict w = wt + s * I * O;
      for (int64_t i = 0; i < I; ++i) nz[i] = xr[i] != T(0);
      int64_t m = 0;
#if defined(__GNUC__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
      for (int64_t i0 = 0; i0 < padded; i0 += 8) {
        uint64_t word;
        std::memcpy(&word, nz + i0, 8);
        while (word) {  // bytes are 0 or 1: byte b holds bit 8·b
          const int64_t i = i0 + (__builtin_ctzll(word) >> 3);
          word &= word - 1;
          idx[m] = i;
          val[m] = xr[i];
          ++m;
        }
      }
#else
      for (int64_t i = 0; i < I; ++i) {
        if (!nz[i]) continue;
        idx[m] = i;
        val[m] = xr[i];
        ++m;
      }
#endif
      int64_t o0 = 0;
      for (; o0 + 4 * L <= O; o0 += 4 * L) accumulate_block<T, 4>(w, O, idx, val, m, bias, yr, o0);
      for (; o0 + L <= O; o0 += L) accumulate_block<T, 1>(w, O, idx, val, m, bias, yr, o0);
      for (; o0 < O; ++o0) {
        T acc = bias ? bias[o0] : T(0);
        for (int64_t k = 0; k < m; ++k) {
          const T wv = w[idx[k] * O + o0];
          acc = val[k] == T(1) ? acc + wv : acc + val[k] * wv;
        }
        yr[o0] = acc;
      }
    }
  }
}

}  // namespace

// dwam_sum's arguments (mirrored by _SumArgs in dwam.py).
struct SumArgs {
  int64_t is_double;
  const void* x;
  int64_t steps, batch, n, st, sb, per_stream;
  void* out;
  int64_t out_stride, accumulate;
};

// dwam_linear's arguments (mirrored by _LinearArgs in dwam.py); sum may be null.
struct LinearArgs {
  int64_t is_double;
  const void* x;
  int64_t steps, S, I, O, st, ss;
  const void* wt;
  const void* bias;
  void* y;
  void* sum;
  int64_t sum_stride, accumulate;
};

namespace {

// The two calls for one dtype T (the arguments' pointers are T arrays).
template <typename T>
void sum_call(const SumArgs& a) {
  ordered_sum(static_cast<const T*>(a.x), a.steps, a.batch, a.n, a.st, a.sb, a.per_stream,
              static_cast<T*>(a.out), a.out_stride, a.accumulate);
}

template <typename T>
void linear_call(const LinearArgs& a) {
  const T* x = static_cast<const T*>(a.x);
  stream_linear(x, a.steps, a.S, a.I, a.O, a.st, a.ss, static_cast<const T*>(a.wt),
                static_cast<const T*>(a.bias), static_cast<T*>(a.y));
  if (a.sum)
    ordered_sum(x, a.steps, a.S, a.I, a.st, a.ss, 1, static_cast<T*>(a.sum), a.sum_stride,
                a.accumulate);
}

}  // namespace

extern "C" {

// Every argument in one struct (one ctypes argument per call; mirrored by _KernelArgs in
// dwam.py).
struct DwamArgs {
  int64_t is_double, S, P, slot, first, full, adapt;
  double ema, theta_rate, inv_count_post, zeta2, zeta2_w, alpha;
  void* sum_post;
  void* c_post;
  void* theta;
  const void* inv_ref;
  double* window;
  double* win_sum;
  double* win_sq;
  void* gate;
  int64_t L;
  const int64_t* col0;
  const int64_t* n_out;
  const int64_t* n_in;
  void* const* weights;
  void* const* c_pre;
  void* const* sum_pre;
  const double* inv_count_pre;
  const int64_t* plain_zeros;
  const int64_t* transposed;
};

// dwam_finite's arguments (mirrored by _FiniteArgs in dwam.py).
struct FiniteArgs {
  int64_t is_double;
  const void* x;
  int64_t n;
};

int dwam_abi() { return 5; }

int dwam_finite(const FiniteArgs* a) {
  return a->is_double ? all_finite(static_cast<const double*>(a->x), a->n)
                      : all_finite(static_cast<const float*>(a->x), a->n);
}

void dwam_sum(const SumArgs* a) {
  if (a->is_double) {
    sum_call<double>(*a);
  } else {
    sum_call<float>(*a);
  }
}

void dwam_linear(const LinearArgs* a) {
  if (a->is_double) {
    linear_call<double>(*a);
  } else {
    linear_call<float>(*a);
  }
}

void dwam_update(const DwamArgs* a) {
  const int64_t is_double = a->is_double, S = a->S, P = a->P, slot = a->slot;
  const int64_t first = a->first, full = a->full, adapt = a->adapt, L = a->L;
  const double ema = a->ema, theta_rate = a->theta_rate, inv_count_post = a->inv_count_post;
  const double zeta2 = a->zeta2, zeta2_w = a->zeta2_w, alpha = a->alpha;
  void* sum_post = a->sum_post;
  void* c_post = a->c_post;
  void* theta = a->theta;
  const void* inv_ref = a->inv_ref;
  double* window = a->window;
  double* win_sum = a->win_sum;
  double* win_sq = a->win_sq;
  void* gate = a->gate;
  const int64_t* col0 = a->col0;
  const int64_t* n_out = a->n_out;
  const int64_t* n_in = a->n_in;
  void* const* weights = a->weights;
  void* const* c_pre = a->c_pre;
  void* const* sum_pre = a->sum_pre;
  const double* inv_count_pre = a->inv_count_pre;
  const int64_t* plain_zeros = a->plain_zeros;
  const int64_t* transposed = a->transposed;
  if (is_double) {
    update<double>(S, P, slot, first, full, adapt, ema, theta_rate, inv_count_post, zeta2,
                   zeta2_w, alpha, static_cast<double*>(sum_post), static_cast<double*>(c_post),
                   static_cast<double*>(theta), static_cast<const double*>(inv_ref), window,
                   win_sum, win_sq, static_cast<double*>(gate), L, col0, n_out, n_in, weights,
                   c_pre, sum_pre, inv_count_pre, plain_zeros, transposed);
  } else {
    update<float>(S, P, slot, first, full, adapt, ema, theta_rate, inv_count_post, zeta2,
                  zeta2_w, alpha, static_cast<float*>(sum_post), static_cast<float*>(c_post),
                  static_cast<float*>(theta), static_cast<const float*>(inv_ref), window, win_sum,
                  win_sq, static_cast<float*>(gate), L, col0, n_out, n_in, weights, c_pre,
                  sum_pre, inv_count_pre, plain_zeros, transposed);
  }
}

}  // extern "C"
