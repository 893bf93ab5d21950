"""Fused multi-step IF / LIF on GPUs: the whole sequence in one Triton launch per direction.

The CUDA counterpart of :mod:`spikeforge.core.fused` (same contract, same autograd structure):

* **forward**: one launch; each program owns a block of neurons and walks the ``T`` steps of
  ``X [T, B, ...]`` with the potential in registers, writing the spikes ``S [T, B, ...]`` (input
  dtype), the final potential ``V[T] [B, ...]`` (input dtype) and, when a gradient is needed,
  the pre-spike potential ``H [T, B, ...]``: the only tensor saved for backward;
* **backward**: one launch walking time backwards with ``dL/dV`` in registers; it writes
  ``dL/dX [T, B, ...]`` (over ``H`` when the graph is not kept and ``H`` has the input's dtype)
  and ``dL/dV[0] [B, ...]``.

**Dtypes.** float32 and float64 inputs keep their dtype throughout. float16 / bfloat16 inputs
run with **float32 state**: ``X`` is converted on load, ``H`` is saved in float32 (so the
surrogate sees the exact potential), spikes, ``V[T]`` and the gradients are stored in the
input's dtype. Their spikes are those of the float32 computation on the converted input (the
reference path computes in half precision, rounding the potential every step, so it can differ
at ties); the layers after such a neuron keep the spikes as usual (no spike-saving path).

**Arithmetic.** The kernels (:mod:`spikeforge.core.triton_kernels`) mirror the reference path
operation by operation with FMA contraction off, as torch computes it *on the tensor's device*:
on CUDA, torch divides by a Python scalar by multiplying with its reciprocal (``1/τ`` rounded
to the dtype), so the CUDA kernels do too; on the CPU (the interpreter) they divide. Spikes and
``V[T]`` are therefore bit-identical to the reference path in float32 and float64; gradients
agree to rounding (the surrogates use Triton's ``exp`` and IEEE division).

**When it runs.** :func:`spikeforge.core.functional` takes this path for CUDA tensors with
``backend="auto"`` or ``"fused"`` when :func:`is_available` (Triton importable and not disabled
by ``SPIKEFORGE_NO_TRITON=1``) and :func:`supports` (float16 / bfloat16 / float32 / float64, a
number threshold, ``v0`` on the same device, no ``torch.compile`` tracing); when Triton is
missing it warns once and runs the reference path. The same guarantees as the CPU path hold:
the backward is not differentiable and a second backward through it raises (never a wrong
second-order gradient); ``H`` is saved with ``save_for_backward`` so saved-tensor hooks see it;
the layers after a float32 / float64 neuron take the spike-saving path of
:mod:`spikeforge.core.spike_saving` under the same conditions (no hooks, no parametrisation,
no saved-tensor hooks of others).

**Tests without a GPU.** With ``TRITON_INTERPRET=1`` set before the first launch, Triton runs
the kernels in its numpy interpreter; :func:`interpret_on_cpu` (tests only) then routes CPU
tensors here, so the kernels are checked against the reference path on any machine.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor

from spikeforge.core import fused
from spikeforge.core.surrogate import resolve_alpha

__all__ = [
    "DTYPES",
    "interpret_on_cpu",
    "is_available",
    "supports",
    "triton_multistep",
    "unavailable_reason",
    "wants",
]

#: input dtypes the kernels take -> the state dtype they compute in
DTYPES: dict[torch.dtype, torch.dtype] = {
    torch.float16: torch.float32,
    torch.bfloat16: torch.float32,
    torch.float32: torch.float32,
    torch.float64: torch.float64,
}
_INTERPRETER_BLOCK = 512
_PARAM_CACHE_SIZE = 64

_state: dict[str, Any] = {"cpu": False, "arithmetic": None, "checked": False, "reason": ""}
_params: dict[tuple[Any, ...], Tensor] = {}


def unavailable_reason() -> str:
    """Why :func:`is_available` is ``False`` (empty when it is ``True``)."""
    if os.environ.get("SPIKEFORGE_NO_TRITON", "") not in ("", "0"):
        return "disabled by SPIKEFORGE_NO_TRITON"
    if not _state["checked"]:
        try:
            import triton
            import triton.language  # noqa: F401
        except Exception as e:  # ImportError, or a broken install raising anything at import
            _state["reason"] = f"triton cannot be imported ({type(e).__name__}: {e})"
        _state["checked"] = True
    return _state["reason"]


def is_available() -> bool:
    """Whether the Triton kernels can run (Triton importable, not disabled)."""
    return not unavailable_reason()


def _interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0").strip().lower() in ("1", "true", "on", "yes")


@contextlib.contextmanager
def interpret_on_cpu(arithmetic: str | None = None) -> Iterator[None]:
    """Tests only: within the block, CPU tensors take the Triton path, run by Triton's
    interpreter. Requires ``TRITON_INTERPRET=1`` in the environment before the kernels are
    first built (:func:`spikeforge.core.triton_kernels.kernels`); raises otherwise.
    ``arithmetic``: ``"cuda"`` makes the kernels compute as torch does on CUDA (multiply by
    ``1/τ``) instead of as it does on the tensor's device."""
    if not _interpreting():
        raise RuntimeError("interpret_on_cpu needs TRITON_INTERPRET=1 in the environment")
    if arithmetic not in (None, "cpu", "cuda"):
        raise ValueError(f"arithmetic must be None, 'cpu' or 'cuda', got {arithmetic!r}")
    saved = _state["cpu"], _state["arithmetic"]
    _state["cpu"], _state["arithmetic"] = True, arithmetic
    try:
        yield
    finally:
        _state["cpu"], _state["arithmetic"] = saved


def wants(x_seq: Tensor) -> bool:
    """Whether ``x_seq``'s device is this path's (CUDA; CPU inside :func:`interpret_on_cpu`)."""
    device = x_seq.device.type
    return device == "cuda" or (device == "cpu" and _state["cpu"] and _interpreting())


def supports(x_seq: Tensor, v0: Tensor | float | None, threshold: Tensor | float) -> bool:
    """Whether a call with these arguments can take this path (module docstring)."""
    if not wants(x_seq) or x_seq.dtype not in DTYPES or x_seq.dim() < 2:
        return False
    if isinstance(threshold, Tensor):
        return False
    if isinstance(v0, Tensor) and (v0.device != x_seq.device or not v0.is_floating_point()):
        return False
    return not torch.compiler.is_compiling()


def _block(m: int, device: torch.device) -> int:
    """Neurons per program: large blocks, but at least ~4 programs per multiprocessor."""
    if device.type != "cuda":
        return _INTERPRETER_BLOCK
    sms = torch.cuda.get_device_properties(device).multi_processor_count
    for block in (1024, 512, 256):
        if -(-m // block) >= 4 * sms:
            return block
    return 128


def _param_tensor(values: tuple[float, ...], dtype: torch.dtype, device: torch.device) -> Tensor:
    """The kernels' parameter vector (``triton_kernels`` docstring), cached per device."""
    key = (values, dtype, device)
    par = _params.get(key)
    if par is None:
        if len(_params) >= _PARAM_CACHE_SIZE:
            _params.pop(next(iter(_params)))
        par = torch.tensor(values, dtype=dtype, device=device)
        _params[key] = par
    return par


def _launch(kernel: Any, grid: tuple[int], device: torch.device, *args: Any, **kw: Any) -> None:
    guard = torch.cuda.device(device) if device.type == "cuda" else contextlib.nullcontext()
    with guard:
        kernel[grid](*args, **kw, num_warps=4, enable_fp_fusion=False)


class _TritonNeuron(torch.autograd.Function):
    """``(x [T, B, ...], v0 [B, ...] | None, cfg, par, x_anchor, v0_anchor) -> (spikes
    [T, B, ...], v_final [B, ...])``; ``cfg`` as :class:`spikeforge.core.fused._FusedNeuron`'s
    (``cfg[2]`` the threshold, ``cfg[5]`` the strict flag), ``par`` the kernels' parameters."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        x: Tensor,
        v0: Tensor | None,
        cfg: tuple[Any, ...],
        par: Tensor,
        x_anchor: Tensor | None,
        v0_anchor: Tensor | None,
    ) -> tuple[Tensor, Tensor]:
        from spikeforge.core.triton_kernels import kernels

        forward, _ = kernels()
        code, _p, _thr, _vr, reset, strict, _detach, _sg, _alpha = cfg
        x = x.contiguous()
        steps, m = x.shape[0], x[0].numel()
        v0c = None if v0 is None else v0.to(x.dtype).contiguous()
        spikes = torch.empty_like(x)
        # V[T] in the state dtype, converted by torch (round to nearest even; Triton's
        # interpreter truncates float32 -> bfloat16): a [B, ...] tensor, a negligible cost
        v_final = torch.empty(x.shape[1:], dtype=par.dtype, device=x.device)
        need_grad = any(ctx.needs_input_grad[:2])
        h = torch.empty(x.shape, dtype=par.dtype, device=x.device) if need_grad else None
        block = _block(m, x.device)
        if m > 0:
            _launch(
                forward,
                (-(-m // block),),
                x.device,
                x,
                x if v0c is None else v0c,
                spikes,
                x if h is None else h,
                v_final,
                par,
                steps,
                m,
                KIND=code,
                RESET=reset,
                STRICT=bool(strict),
                HAS_V0=v0c is not None,
                SAVE_H=h is not None,
                DIV_RN=par.dtype == torch.float32,
                BLOCK=block,
            )
        if h is not None:
            ctx.save_for_backward(h, x_anchor, v0_anchor)
            ctx.h_private = not fused.foreign_saved_tensors_hooks()
            # the spike-saving path recomputes the spikes from H: only where H has their dtype
            ctx.spike_saving = h.dtype == x.dtype
        ctx.cfg, ctx.par, ctx.x_dtype = cfg, par, x.dtype
        ctx.v0_dtype = None if v0 is None else v0.dtype
        ctx.set_materialize_grads(False)
        return spikes, v_final.to(x.dtype)

    @staticmethod
    def backward(  # type: ignore[override]
        ctx: Any, g_spikes: Tensor | None, g_vfinal: Tensor | None
    ) -> tuple[Tensor | None, Tensor | None, None, None, None, None]:
        if g_spikes is None and g_vfinal is None:
            return None, None, None, None, None, None
        from spikeforge.core.triton_kernels import kernels

        _, backward = kernels()
        h, x_anchor, v0_anchor = ctx.saved_tensors
        code, _p, _thr, _vr, reset, strict, detach, sg, _alpha = ctx.cfg
        steps, m = h.shape[0], h[0].numel()
        gs = None if g_spikes is None else g_spikes.contiguous()
        gvt = None if g_vfinal is None else g_vfinal.contiguous()
        in_place = ctx.h_private and h.dtype == ctx.x_dtype and not fused._graph_kept()
        gx = h if in_place else torch.empty(h.shape, dtype=ctx.x_dtype, device=h.device)
        g_v0 = None
        if ctx.needs_input_grad[1]:
            g_v0 = torch.empty(h.shape[1:], dtype=ctx.v0_dtype, device=h.device)
        block = _block(m, h.device)
        if m > 0:
            _launch(
                backward,
                (-(-m // block),),
                h.device,
                h,
                h if gs is None else gs,
                h if gvt is None else gvt,
                gx,
                gx if g_v0 is None else g_v0,
                ctx.par,
                steps,
                m,
                (steps - 1) * m,
                KIND=code,
                RESET=reset,
                STRICT=bool(strict),
                DETACH=bool(detach),
                SG=sg,
                HAS_GS=gs is not None,
                HAS_GVT=gvt is not None,
                WRITE_GV0=g_v0 is not None,
                DIV_RN=ctx.par.dtype == torch.float32,
                BLOCK=block,
            )
        g_x = gx if ctx.needs_input_grad[0] else None
        if torch.is_grad_enabled():  # create_graph=True: these gradients are not differentiable
            g_x, g_v0 = fused._not_twice_differentiable(
                fused._NEURON_ERROR,
                (g_x, g_v0),
                (x_anchor, v0_anchor, g_spikes, g_vfinal),
            )
        return g_x, g_v0, None, None, None, None


fused.register_spike_source(_TritonNeuron)


def _power_of_two(x: float) -> bool:
    return x > 0 and math.frexp(x)[0] == 0.5


def triton_multistep(
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
    """Fused ``(spikes [T, B, ...], v_final [B, ...])`` for ``x_seq [T, B, ...]`` on the Triton
    kernels; arguments as :func:`spikeforge.core.fused.fused_multistep` (the caller,
    :mod:`spikeforge.core.functional`, validates them and checks :func:`supports`)."""
    a = resolve_alpha(surrogate, alpha)
    code, param = fused.KINDS[kind], float(param)
    arithmetic = _state["arithmetic"] or ("cuda" if x_seq.device.type == "cuda" else "cpu")
    if code in (1, 2) and (arithmetic == "cuda" or _power_of_two(param)):
        # torch on CUDA multiplies by the reciprocal of a Python-scalar divisor (rounded to
        # the dtype); on the CPU it divides, which a power-of-two tau rounds identically
        code, param = code + 3, 1.0 / param
    state = DTYPES[x_seq.dtype]
    values = (param, float(threshold), float(v_reset), a, a / 2, math.pi / 2 * a, a * a, 1.0 / a)
    par = _param_tensor(values, state, x_seq.device)
    cfg = (
        code,
        param,
        float(threshold),
        float(v_reset),
        fused._RESETS[reset],
        bool(strict),
        bool(detach_reset),
        fused._SURROGATES[surrogate],
        a,
    )
    anchors = (fused._anchor(x_seq), fused._anchor(v0)) if torch.is_grad_enabled() else (None, None)
    spikes, v_final = _TritonNeuron.apply(x_seq, v0, cfg, par, *anchors)
    return spikes, v_final
