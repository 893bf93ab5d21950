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

from spikeforge.core.kernels import KernelLibrary, kernel_source
from spikeforge.core.surrogate import heaviside, resolve_alpha

__all__ = [
    "KINDS",
    "build_seconds",
    "foreign_saved_tensors_hooks",
    "fused_multistep",
    "is_available",
    "register_spike_source",
    "spike_source",
    "supports",
    "unavailable_reason",
]

#: neuron kind -> code in the kernel
KINDS: dict[str, int] = {"if": 0, "lif": 1, "lif_nodecay_input": 2, "decay_lif": 3}
_RESETS = {"subtract": 0, "zero": 1, "none": 2}
_SURROGATES = {"atan": 0, "sigmoid": 1, "fast_sigmoid": 2, "triangle": 3, "rectangle": 4}
_DTYPES = {torch.float32: "f32", torch.float64: "f64"}

_SOURCE = kernel_source("neurons.cpp")


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
    """``(h > ϑ)`` if strict else ``(h >= ϑ)``, in ``h``'s dtype: the spikes of a fused neuron
    recomputed from its saved ``H``; in one pass of the C++ kernel for a contiguous CPU float32 /
    float64 ``h``, else with torch ops (``h − ϑ`` compared with 0, as the kernels compute it)."""
    # (a GPU tensor never builds the CPU kernels: the device is checked first)
    cpu_ready = h.device.type == "cpu" and h.dtype in _DTYPES and h.is_contiguous()
    lib = _library() if cpu_ready else None
    if lib is None:
        return heaviside(h - threshold, strict)  # what the kernel computes, in torch ops
    out = torch.empty_like(h)
    getattr(lib, f"sf_spikes_{_DTYPES[h.dtype]}")(
        h.data_ptr(), out.data_ptr(), h.numel(), threshold, int(strict), torch.get_num_threads()
    )
    return out


#: autograd functions whose first output is spikes recomputable from their saved ``H``
#: (:func:`spike_source`); the Triton path registers its own (:func:`register_spike_source`)
_SPIKE_SOURCES: list[type] = [_FusedNeuron]


def register_spike_source(function: type) -> None:
    """Let :func:`spike_source` recognise the nodes of ``function``, an autograd function with
    the contract of :class:`_FusedNeuron` (``ctx.cfg``, ``H`` first in ``saved_tensors``; an
    optional ``ctx.spike_saving = False`` opts a call out)."""
    if function not in _SPIKE_SOURCES:
        _SPIKE_SOURCES.append(function)


def spike_source(x_seq: Tensor) -> Any | None:
    """The autograd node of the fused neuron whose spike output ``x_seq`` is, if that neuron
    saved its pre-spike potential ``H`` (in the spikes' dtype) for backward; else ``None``.
    ``node.saved_tensors[0]`` is ``H`` (until the neuron's backward frees it) and
    ``node.cfg[2], node.cfg[5]`` are the threshold and the strict flag: the spikes are
    ``H > ϑ`` if strict else ``H >= ϑ``."""
    node = x_seq.grad_fn
    if (
        any(isinstance(node, f._backward_cls) for f in _SPIKE_SOURCES)  # type: ignore[attr-defined]
        and getattr(node, "spike_saving", True)
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
