"""Triton kernels of the fused multi-step neurons (the GPU counterpart of ``csrc/neurons.cpp``).

Layout: ``x``, ``s``, ``h``, ``g_s``, ``g_x`` are ``[T, M]`` contiguous (``M = B·prod(neuron
shape)``); ``v0``, ``v_final``, ``g_vt``, ``g_v0`` are ``[M]``. One program owns ``BLOCK``
neurons and walks all ``T`` steps with the potential (forward) or ``dL/dV`` (backward) in
registers: one launch per direction for the whole sequence.

**Arithmetic.** The state is computed in the dtype of the parameter vector ``par`` (float32 for
float16 / bfloat16 / float32 inputs, float64 for float64 inputs); inputs are converted on load,
spikes and gradients on store. Every expression mirrors the plain-torch reference path operation
by operation, as the C++ kernel does; the launcher passes ``enable_fp_fusion=False`` so that no
multiply-add is contracted into an FMA. Divisions are IEEE round-to-nearest: ``DIV_RN=True``
(float32 state) asks for it explicitly (Triton's plain float32 ``/`` is the approximate
``div.full.f32`` on NVIDIA GPUs), ``DIV_RN=False`` (float64 state) uses ``/``, which is already
``div.rn.f64`` there (the explicit form does not compile for float64). ``KIND`` selects the
charge (as in the C++ kernel):

* 0: IF, ``v + x``;
* 1 / 2: LIF with / without input decay, dividing by ``τ`` (IEEE division): what torch does on
  the CPU;
* 4 / 5: the same multiplying by ``1/τ``: what torch does on CUDA (its division by a Python
  scalar multiplies by the scalar's reciprocal) and, on the CPU, when ``τ`` is a power of two;
* 3: decay-factor LIF, ``vr + (v − vr)·p + x``.

``par`` holds ``[p, ϑ, v_reset, α, α/2, π/2·α, α², 1/α]`` (the surrogate constants formed in
float64 and rounded to the state dtype, as torch rounds Python scalars).

**Building.** Triton reads ``TRITON_INTERPRET`` when a function is decorated with
``triton.jit``, so the kernels are decorated on first use by :func:`kernels`, once per mode:
a process that sets ``TRITON_INTERPRET=1`` before its first launch gets the interpreter (which
runs the kernels on CPU tensors with numpy; the tests use it), otherwise compiled GPU code. The
kernels call only builtins of ``triton.language`` (``tl.full``, not ``tl.zeros``): Triton's own
``@triton.jit`` helpers are decorated once, when Triton is imported, for the mode of that
moment. This module imports :mod:`triton` at import time; :mod:`spikeforge.core.fused_triton`
imports it only when Triton is installed.
"""

from __future__ import annotations

import os
from typing import Any

import triton
import triton.language as tl

__all__ = ["interpreting", "kernels"]

_PAR_P, _PAR_THR, _PAR_VR, _PAR_A, _PAR_A_HALF, _PAR_ATAN, _PAR_A_SQ, _PAR_A_INV = range(8)
PARAMS = 8


def _forward(
    x_ptr,
    v0_ptr,
    s_ptr,
    h_ptr,
    vf_ptr,
    par_ptr,
    steps,
    m,
    KIND: tl.constexpr,
    RESET: tl.constexpr,
    STRICT: tl.constexpr,
    HAS_V0: tl.constexpr,
    SAVE_H: tl.constexpr,
    DIV_RN: tl.constexpr,
    BLOCK: tl.constexpr,
):
    """Forward over ``steps`` time steps for neurons ``[pid·BLOCK, (pid+1)·BLOCK)``."""
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < m
    p = tl.load(par_ptr + 0)
    thr = tl.load(par_ptr + 1)
    vr = tl.load(par_ptr + 2)
    one = p * 0 + 1
    zero = one - one
    if HAS_V0:
        v = tl.load(v0_ptr + offs, mask=mask, other=0).to(p.dtype)
    else:
        v = tl.full([BLOCK], 0, p.dtype)
    xp = x_ptr + offs
    sp = s_ptr + offs
    hp = h_ptr + offs
    for _ in range(steps):
        x = tl.load(xp, mask=mask, other=0).to(p.dtype)
        if KIND == 0:
            h = v + x
        elif KIND == 1:
            h = v + tl.fdiv(x - (v - vr), p, ieee_rounding=DIV_RN)
        elif KIND == 2:
            h = v - tl.fdiv(v - vr, p, ieee_rounding=DIV_RN) + x
        elif KIND == 4:
            h = v + (x - (v - vr)) * p
        elif KIND == 5:
            h = v - (v - vr) * p + x
        else:
            h = vr + (v - vr) * p + x
        d = h - thr
        if STRICT:
            s = tl.where(d > 0, one, zero)
        else:
            s = tl.where(d >= 0, one, zero)
        if RESET == 0:
            v = h - thr * s
        elif RESET == 1:
            v = h * (one - s) + vr * s
        else:
            v = h
        tl.store(sp, s.to(s_ptr.dtype.element_ty), mask=mask)
        if SAVE_H:
            tl.store(hp, h.to(h_ptr.dtype.element_ty), mask=mask)
        xp += m
        sp += m
        hp += m
    tl.store(vf_ptr + offs, v.to(vf_ptr.dtype.element_ty), mask=mask)


def _backward(
    h_ptr,
    gs_ptr,
    gvt_ptr,
    gx_ptr,
    gv0_ptr,
    par_ptr,
    steps,
    m,
    last,
    KIND: tl.constexpr,
    RESET: tl.constexpr,
    STRICT: tl.constexpr,
    DETACH: tl.constexpr,
    SG: tl.constexpr,
    HAS_GS: tl.constexpr,
    HAS_GVT: tl.constexpr,
    WRITE_GV0: tl.constexpr,
    DIV_RN: tl.constexpr,
    BLOCK: tl.constexpr,
):
    """Backward over the steps in reverse (``last = (steps − 1)·m``); ``gx`` may be ``h``."""
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < m
    p = tl.load(par_ptr + 0)
    thr = tl.load(par_ptr + 1)
    vr = tl.load(par_ptr + 2)
    a = tl.load(par_ptr + 3)
    a_half = tl.load(par_ptr + 4)
    a_atan = tl.load(par_ptr + 5)
    a_sq = tl.load(par_ptr + 6)
    a_inv = tl.load(par_ptr + 7)
    one = p * 0 + 1
    zero = one - one
    if HAS_GVT:
        g = tl.load(gvt_ptr + offs, mask=mask, other=0).to(p.dtype)
    else:
        g = tl.full([BLOCK], 0, p.dtype)
    hp = h_ptr + last + offs
    gsp = gs_ptr + last + offs
    gxp = gx_ptr + last + offs
    for _ in range(steps):
        hv = tl.load(hp, mask=mask, other=0).to(p.dtype)
        d = hv - thr
        if STRICT:
            sp = tl.where(d > 0, one, zero)
        else:
            sp = tl.where(d >= 0, one, zero)
        if SG == 0:  # atan: (α/2) / (1 + (π/2·α·d)²)
            u = a_atan * d
            sg = tl.fdiv(a_half, one + u * u, ieee_rounding=DIV_RN)
        elif SG == 1:  # sigmoid: α·σ(αd)·(1 − σ(αd))
            sig = tl.fdiv(one, one + tl.exp(-(a * d)), ieee_rounding=DIV_RN)
            sg = a * sig * (one - sig)
        elif SG == 2:  # fast sigmoid: 1 / (1 + α|d|)²
            q = one + a * tl.abs(d)
            sg = tl.fdiv(one, q * q, ieee_rounding=DIV_RN)
        elif SG == 3:  # triangle: max(α − |d|, 0) / α²
            q = a - tl.abs(d)
            sg = tl.fdiv(tl.where(q > 0, q, zero), a_sq, ieee_rounding=DIV_RN)
        else:  # rectangle: 1[|d| < α/2] / α
            sg = tl.where(tl.abs(d) < a_half, a_inv, zero)
        if HAS_GS:
            gs = tl.load(gsp, mask=mask, other=0).to(p.dtype)
        else:
            gs = zero
        if RESET == 0:
            if DETACH:
                gtot = gs
            else:
                gtot = gs + (-g) * thr
            gh = g + gtot * sg
        elif RESET == 1:
            if DETACH:
                gtot = gs
            else:
                gtot = gs + (-(g * hv) + g * vr)
            gh = g * (one - sp) + gtot * sg
        else:
            gh = g + gs * sg
        if KIND == 0:
            gx = gh
            g = gh
        elif KIND == 1:
            gx = tl.fdiv(gh, p, ieee_rounding=DIV_RN)
            g = gh + (-gx)
        elif KIND == 2:
            gx = gh
            g = gh + (-tl.fdiv(gh, p, ieee_rounding=DIV_RN))
        elif KIND == 4:
            gx = gh * p
            g = gh + (-gx)
        elif KIND == 5:
            gx = gh
            g = gh + (-(gh * p))
        else:
            gx = gh
            g = gh * p
        tl.store(gxp, gx.to(gx_ptr.dtype.element_ty), mask=mask)
        hp -= m
        gsp -= m
        gxp -= m
    if WRITE_GV0:
        tl.store(gv0_ptr + offs, g.to(gv0_ptr.dtype.element_ty), mask=mask)


def interpreting() -> bool:
    """Whether Triton runs kernels in its interpreter (``TRITON_INTERPRET=1``)."""
    return os.environ.get("TRITON_INTERPRET", "0").strip().lower() in ("1", "true", "on", "yes")


_CACHE: dict[bool, tuple[Any, Any]] = {}


def kernels() -> tuple[Any, Any]:
    """``(forward, backward)`` jitted for the current mode (module docstring)."""
    mode = interpreting()
    if mode not in _CACHE:
        _CACHE[mode] = (triton.jit(_forward), triton.jit(_backward))
    return _CACHE[mode]
