"""Fused multi-step IF / LIF: one compiled loop over time for the forward and the backward.

The plain-torch reference (:mod:`spikeforge.core.functional`) launches a handful of tensor ops
per time step and keeps every intermediate for autograd. This module runs the whole sequence in
one custom :class:`torch.autograd.Function` whose forward and backward time loops are C++ code
(OpenMP over neurons, a sequential loop over time per block of neurons):

* **forward** reads ``X [T, B, ...]`` once and writes the spikes ``S [T, B, ...]`` (input dtype),
  the final potential ``V[T] [B, ...]`` and, when a gradient is needed, the pre-spike potential
  ``H [T, B, ...]``: the only tensor saved for backward (``S`` is recomputed as ``H >= ϑ``, the
  reset and leak factors are constants);
* **backward** walks time backwards with ``dL/dV`` held in registers, recomputes the surrogate
  derivative from ``H`` and writes ``dL/dX [T, B, ...]`` (over ``H`` itself unless the graph is
  kept for another backward) and ``dL/dV[0] [B, ...]`` (autograd sums the latter to the shape of
  a broadcast initial potential).

The arithmetic is written as the reference writes it (same operation order, no FMA contraction,
true division by ``τ``, or multiplication by ``1/τ`` when ``τ`` is a power of two, which rounds
identically), so the forward (spikes, ``V[T]``) is bit-identical to the reference in float32 and
float64; gradients agree to rounding (the reference's autograd may add the same terms in another
order). A block holds up to 64 Ki neurons (at least one block per thread): each time step then
streams long contiguous runs of ``X``, ``S`` and ``H``.

**Build.** The C++ source below is compiled once and cached by
:class:`spikeforge.core.kernels.KernelLibrary` (``-O3 -fopenmp -ffp-contract=off``, loaded with
:mod:`ctypes`).

**Availability.** :func:`is_available` builds on first call and remembers the outcome. It is
``False`` when ``SPIKEFORGE_NO_FUSED=1``, on non-Linux platforms, without a compiler, or when
the build fails (the reason is in :func:`unavailable_reason`). :func:`supports` says whether a
call can take the fused path: CPU, float32 / float64, a Python-number threshold, no
``torch.compile`` tracing (the reference path compiles with ``fullgraph=True``; this one is an
opaque call). The dispatch lives in :mod:`spikeforge.core.functional` (``backend=``).

**Higher-order gradients.** The backward kernel is not differentiable. A backward with
``create_graph=True`` (gradient penalties, meta-learning, Hessian-vector products) still returns
correct first-order gradients, but they carry a graph node that raises a ``RuntimeError`` naming
the fix (``backend="reference"``) as soon as a second backward reaches it: never a silently
wrong second-order gradient. Forward-mode AD and ``torch.func`` transforms are not supported
either (torch raises its own error).

**Saved-tensor hooks.** ``H`` is saved with ``save_for_backward``, so a user's
:class:`torch.autograd.graph.saved_tensors_hooks` see it (as they see what the reference path
saves). The backward overwrites ``H`` with ``dL/dX`` only when the graph is not kept and no such
hooks were active in the forward (an unpack hook may hand back a tensor its owner still holds).
"""

from __future__ import annotations

import ctypes
import math
from typing import Any

import torch
from torch import Tensor

from spikeforge.core.kernels import KernelLibrary
from spikeforge.core.surrogate import heaviside, resolve_alpha

__all__ = [
    "KINDS",
    "build_seconds",
    "foreign_saved_tensors_hooks",
    "fused_multistep",
    "is_available",
    "spike_source",
    "supports",
    "unavailable_reason",
]

#: neuron kind -> code in the kernel
KINDS: dict[str, int] = {"if": 0, "lif": 1, "lif_nodecay_input": 2, "decay_lif": 3}
_RESETS = {"subtract": 0, "zero": 1, "none": 2}
_SURROGATES = {"atan": 0, "sigmoid": 1, "fast_sigmoid": 2, "triangle": 3, "rectangle": 4}
_DTYPES = {torch.float32: "f32", torch.float64: "f64"}

_SOURCE = r"""
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

// exp for the sigmoid surrogate, in a form the compiler vectorizes (libm's exp is one call per
// element): x = n ln2 + r with |r| <= ln2 / 2, exp(r) from its Taylor series (remainder below
// 0.05 ulp), times 2^n written into the exponent bits. x is clamped to [-708, 708] (float:
// [-87, 87]), where exp is finite and normal; the surrogate is 0 to the last bit beyond that.
// Within a few ulp of std::exp: the gradients match the reference to rounding (1e-12 in float64).
inline double exp_vec(double x) {
    x = std::min(std::max(x, -708.0), 708.0);
    constexpr double magic = 6755399441055744.0;  // 1.5 * 2^52: adding it rounds to an integer
    const double t = x * 1.4426950408889634 + magic;
    const double n = t - magic;
    const double r = (x - n * 6.93147180369123816490e-01) - n * 1.90821492927058770002e-10;
    double p = 1.0 / 6227020800.0;                   // 1/13!
    p = p * r + 1.0 / 479001600.0;
    p = p * r + 1.0 / 39916800.0;
    p = p * r + 1.0 / 3628800.0;
    p = p * r + 1.0 / 362880.0;
    p = p * r + 1.0 / 40320.0;
    p = p * r + 1.0 / 5040.0;
    p = p * r + 1.0 / 720.0;
    p = p * r + 1.0 / 120.0;
    p = p * r + 1.0 / 24.0;
    p = p * r + 1.0 / 6.0;
    p = p * r + 0.5;
    p = p * r + 1.0;
    p = p * r + 1.0;
    uint64_t bits;
    __builtin_memcpy(&bits, &t, sizeof bits);   // low bits of t: n + 2^51
    bits = (bits + 1023) << 52;                  // 2^n (n + 1023 in [1, 2045])
    double scale;
    __builtin_memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

inline float exp_vec(float x) {
    x = std::min(std::max(x, -87.0f), 87.0f);
    constexpr float magic = 12582912.0f;          // 1.5 * 2^23
    const float t = x * 1.44269504f + magic;
    const float n = t - magic;
    const float r = (x - n * 0.693359375f) - n * -2.12194440e-4f;
    float p = 1.0f / 40320.0f;                     // 1/8!
    p = p * r + 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    uint32_t bits;
    __builtin_memcpy(&bits, &t, sizeof bits);    // low bits of t: n + 2^22
    bits = (bits + 127) << 23;                    // 2^n (n + 127 in [1, 253])
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
    if (SG == 1) {  // sigmoid: a * sig(a d) * (1 - sig(a d))
        const T sg = T(1) / (T(1) + exp_vec(-(a * d)));
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
"""


def _declare(lib: ctypes.CDLL) -> None:
    p, i64, i32, f64 = ctypes.c_void_p, ctypes.c_int64, ctypes.c_int, ctypes.c_double
    for suffix in ("f32", "f64"):
        fwd = getattr(lib, f"sf_forward_{suffix}")
        fwd.argtypes = [p, p, p, p, p, i64, i64, i32, f64, f64, f64, i32, i32, i32]
        fwd.restype = None
        bwd = getattr(lib, f"sf_backward_{suffix}")
        bwd.argtypes = [p, p, p, p, p, i64, i64, i32, f64, f64, f64, i32, i32, i32, i32, f64, i32]
        bwd.restype = None
        spikes = getattr(lib, f"sf_spikes_{suffix}")
        spikes.argtypes = [p, p, i64, f64, i32, i32]
        spikes.restype = None
    if lib.sf_abi_version() != 2:
        raise RuntimeError("stale kernel library (ABI mismatch)")


LIBRARY = KernelLibrary("neurons", _SOURCE, _declare)


def _library() -> ctypes.CDLL | None:
    return LIBRARY.get()


def is_available() -> bool:
    """Whether the compiled kernels are usable (builds them on the first call)."""
    return _library() is not None


def unavailable_reason() -> str:
    """Why :func:`is_available` is ``False`` (empty when it is ``True``)."""
    LIBRARY.get()
    return LIBRARY.reason


def build_seconds() -> float | None:
    """Seconds the compile took in this process (``None``: loaded from the cache / not built)."""
    return LIBRARY.seconds


def supports(x_seq: Tensor, v0: Tensor | float | None, threshold: Tensor | float) -> bool:
    """Whether a call with these arguments can take the fused path (see the module docstring)."""
    if x_seq.device.type != "cpu" or x_seq.dtype not in _DTYPES or x_seq.dim() < 2:
        return False
    if isinstance(threshold, Tensor):
        return False
    if isinstance(v0, Tensor) and (v0.device.type != "cpu" or not v0.is_floating_point()):
        return False
    return not torch.compiler.is_compiling()


def _graph_kept() -> bool:
    """Whether the running backward keeps the graph (``retain_graph`` / ``create_graph``)."""
    try:
        return bool(torch._C._autograd._get_current_graph_task_keep_graph())
    except (AttributeError, RuntimeError):  # private API: assume the graph is kept
        return True


#: the error of a second backward through the fused neuron's backward
_NEURON_ERROR = (
    "spikeforge: the fused neuron (IF / LIF / DecayLIF with backend='auto' or 'fused') runs a "
    "compiled kernel in its backward, which is not differentiable, so higher-order gradients (a "
    "backward through a graph built with create_graph=True: gradient penalties, meta-learning, "
    "Hessian-vector products) cannot go through it. Build the neurons with backend='reference' "
    "for higher-order gradients."
)

#: marks the saved-tensor hooks spikeforge pushes itself (:func:`foreign_saved_tensors_hooks`)
OWN_HOOK = "_spikeforge_hook"


def foreign_saved_tensors_hooks() -> bool:
    """Whether saved-tensor hooks other than spikeforge's own are active (a user's
    :class:`torch.autograd.graph.saved_tensors_hooks`, ``torch.utils.checkpoint``, CPU
    offloading, ...) or saved-tensor hooks are disabled. Then the spike-saving and event-driven
    paths, which push hooks of their own, step aside: inner hooks would hide the outer ones."""
    try:
        if not torch._C._autograd._saved_tensors_hooks_is_enabled():
            return True
        top = torch._C._autograd._top_saved_tensors_default_hooks(False)
    except (AttributeError, RuntimeError, TypeError):  # private API changed: assume hooks
        return True
    return top is not None and not getattr(top[0], OWN_HOOK, False)


class _DoubleBackwardError(torch.autograd.Function):
    """``(message, n, *tensors) -> tensors[:n]``: gradients a kernel computed in a backward under
    ``create_graph=True``, behind a node whose own backward (a second backward reaching them)
    raises ``message``. The other ``tensors`` only connect the node to the graph
    (:func:`_not_twice_differentiable`)."""

    @staticmethod
    def forward(ctx: Any, message: str, n: int, *tensors: Tensor) -> tuple[Tensor, ...]:  # type: ignore[override]
        ctx.message = message
        return tensors[:n]

    @staticmethod
    def backward(ctx: Any, *_: Any) -> Any:  # type: ignore[override]
        raise RuntimeError(ctx.message)


def _not_twice_differentiable(
    message: str, grads: tuple[Tensor | None, ...], connected: tuple[Tensor | None, ...]
) -> tuple[Tensor | None, ...]:
    """``grads`` (computed by a kernel inside a backward with ``create_graph=True``), each behind
    a node that raises ``message`` when a second backward reaches it. ``connected``: tensors of
    the graph the true second-order terms would flow to (the forward's inputs, or anchors of
    them, and the incoming gradients); without them a second backward asked for the gradients of
    some tensors only (``torch.autograd.grad(p, inputs)``) would prune the node and silently
    miss those terms, as ``once_differentiable`` does."""
    live = tuple(g for g in grads if g is not None)
    links = tuple(t for t in connected if t is not None and t.requires_grad)
    if not live or not links:
        return grads
    wrapped = iter(_DoubleBackwardError.apply(message, len(live), *live, *links))
    return tuple(None if g is None else next(wrapped) for g in grads)


def _anchor(t: Tensor | None) -> Tensor | None:
    """An empty tensor computed from ``t`` (``t[:0].clone()``): saved for backward, it connects
    the backward to ``t``'s producer without keeping ``t``'s memory (its nodes save shapes
    only)."""
    return t[:0].clone() if t is not None and t.requires_grad else None


class _FusedNeuron(torch.autograd.Function):
    """``(x [T, B, ...], v0 [B, ...] | None, cfg, x_anchor, v0_anchor) -> (spikes [T, B, ...],
    v_final [B, ...])``; the anchors (:func:`_anchor` of ``x`` and ``v0``) only link a
    ``create_graph`` backward's error node to the graph."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        x: Tensor,
        v0: Tensor | None,
        cfg: tuple[Any, ...],
        x_anchor: Tensor | None,
        v0_anchor: Tensor | None,
    ) -> tuple[Tensor, Tensor]:
        lib = _library()
        assert lib is not None
        kind, p, thr, vr, reset, strict, _detach, _sg, _alpha = cfg
        x = x.contiguous()
        steps, m = x.shape[0], x[0].numel()
        v0c = None if v0 is None else v0.to(x.dtype).contiguous()
        spikes = torch.empty_like(x)
        v_final = torch.empty(x.shape[1:], dtype=x.dtype)
        need_grad = any(ctx.needs_input_grad[:2])
        h = torch.empty_like(x) if need_grad else None
        getattr(lib, f"sf_forward_{_DTYPES[x.dtype]}")(
            x.data_ptr(),
            None if v0c is None else v0c.data_ptr(),
            spikes.data_ptr(),
            None if h is None else h.data_ptr(),
            v_final.data_ptr(),
            steps,
            m,
            kind,
            p,
            thr,
            vr,
            reset,
            int(strict),
            torch.get_num_threads(),
        )
        if h is not None:
            # the anchors connect a create_graph backward's error node to x's and v0's producers
            ctx.save_for_backward(h, x_anchor, v0_anchor)
            # a hook's unpacked H may be a tensor its owner keeps: do not overwrite it in backward
            ctx.h_private = not foreign_saved_tensors_hooks()
        ctx.cfg = cfg
        ctx.set_materialize_grads(False)
        return spikes, v_final

    @staticmethod
    def backward(  # type: ignore[override]
        ctx: Any, g_spikes: Tensor | None, g_vfinal: Tensor | None
    ) -> tuple[Tensor | None, Tensor | None, None, None, None]:
        if g_spikes is None and g_vfinal is None:
            return None, None, None, None, None
        lib = _library()
        assert lib is not None
        h, x_anchor, v0_anchor = ctx.saved_tensors
        kind, p, thr, vr, reset, strict, detach, sg, alpha = ctx.cfg
        # the kernel reads a spike gradient and writes dL/dX at every step (no branch in its loop,
        # which then vectorises for every surrogate): zeros stand in for an unused spike output
        gs = torch.zeros_like(h) if g_spikes is None else g_spikes.to(h.dtype).contiguous()
        gvt = None if g_vfinal is None else g_vfinal.to(h.dtype).contiguous()
        # H is dead after this backward unless the graph is kept: dL/dX overwrites it (no new
        # activation-sized buffer; the writes hit the lines just read)
        gx_buffer = h if ctx.h_private and not _graph_kept() else torch.empty_like(h)
        g_x = gx_buffer if ctx.needs_input_grad[0] else None
        g_v0 = torch.empty(h.shape[1:], dtype=h.dtype) if ctx.needs_input_grad[1] else None
        getattr(lib, f"sf_backward_{_DTYPES[h.dtype]}")(
            h.data_ptr(),
            gs.data_ptr(),
            None if gvt is None else gvt.data_ptr(),
            gx_buffer.data_ptr(),
            None if g_v0 is None else g_v0.data_ptr(),
            h.shape[0],
            h[0].numel(),
            kind,
            p,
            thr,
            vr,
            reset,
            int(strict),
            int(detach),
            sg,
            alpha,
            torch.get_num_threads(),
        )
        if torch.is_grad_enabled():  # create_graph=True: these gradients are not differentiable
            g_x, g_v0 = _not_twice_differentiable(
                _NEURON_ERROR, (g_x, g_v0), (x_anchor, v0_anchor, g_spikes, g_vfinal)
            )
        return g_x, g_v0, None, None, None


def spikes_from_h(h: Tensor, threshold: float, strict: bool) -> Tensor:
    """``(h > ϑ)`` if strict else ``(h >= ϑ)``, in ``h``'s dtype, in one pass (``h`` contiguous,
    CPU, float32 / float64): the spikes of a fused neuron recomputed from its saved ``H``."""
    lib = _library()
    if lib is None or h.dtype not in _DTYPES or not h.is_contiguous() or h.device.type != "cpu":
        return heaviside(h - threshold, strict)  # what the kernel computes, in torch ops
    out = torch.empty_like(h)
    getattr(lib, f"sf_spikes_{_DTYPES[h.dtype]}")(
        h.data_ptr(), out.data_ptr(), h.numel(), threshold, int(strict), torch.get_num_threads()
    )
    return out


def spike_source(x_seq: Tensor) -> Any | None:
    """The autograd node of the fused neuron whose spike output ``x_seq`` is, if that neuron
    saved its pre-spike potential ``H`` for backward; else ``None``. ``node.saved_tensors[0]``
    is ``H`` (until the neuron's backward frees it) and ``node.cfg[2], node.cfg[5]`` are the
    threshold and the strict flag: the spikes are ``H > ϑ`` if strict else ``H >= ϑ``."""
    node = x_seq.grad_fn
    if (
        isinstance(node, _FusedNeuron._backward_cls)  # type: ignore[attr-defined]
        and x_seq.output_nr == 0
        and x_seq._base is None
        and x_seq.is_contiguous()
    ):
        return node
    return None


def fused_multistep(
    x_seq: Tensor,
    v0: Tensor | None,
    *,
    kind: str,
    param: float,
    threshold: float,
    reset: str,
    v_reset: float,
    detach_reset: bool,
    surrogate: str,
    alpha: float | None,
    strict: bool,
) -> tuple[Tensor, Tensor]:
    """Fused ``(spikes [T, B, ...], v_final [B, ...])`` for ``x_seq [T, B, ...]``.

    ``kind`` is a key of :data:`KINDS`; ``param`` is ``τ`` for the LIF kinds, the decay factor for
    ``"decay_lif"`` (ignored for ``"if"``). ``v0``: ``None`` (zeros) or a tensor of shape
    ``[B, ...]`` (a broadcast view is fine). The caller (:mod:`spikeforge.core.functional`)
    validates the arguments, broadcasts ``v0`` and checks :func:`supports`.
    """
    a = resolve_alpha(surrogate, alpha)
    code, param = KINDS[kind], float(param)
    if code in (1, 2) and math.frexp(param)[0] == 0.5:
        # tau a power of two: multiplying by 1/tau (exact) rounds exactly as dividing by tau,
        # and is much cheaper in vector code
        code, param = code + 3, 1.0 / param
    cfg = (
        code,
        param,
        float(threshold),
        float(v_reset),
        _RESETS[reset],
        bool(strict),
        bool(detach_reset),
        _SURROGATES[surrogate],
        a,
    )
    anchors = (_anchor(x_seq), _anchor(v0)) if torch.is_grad_enabled() else (None, None)
    spikes, v_final = _FusedNeuron.apply(x_seq, v0, cfg, *anchors)
    return spikes, v_final
