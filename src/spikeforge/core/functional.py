"""Pure multi-step IF and LIF neurons: the plain-torch reference path.

Layout: inputs ``x_seq`` are time-first ``[T, B, ...]`` (``...`` = the neuron shape, e.g. ``[N]``
or ``[C, H, W]``); the returned spikes have the same shape and dtype, the returned final membrane
potential is ``[B, ...]``. Every function returns ``(spikes, v_final)``.

Notation (spec §1): ``H[t]`` potential after charging, ``S[t] = Θ(H[t] − ϑ)`` the spike,
``V[t]`` potential after reset, ``V[0] = v0`` the initial potential (0, or a learnable initial
membrane potential broadcast over the batch).

Charging:

* IF: ``H[t] = V[t−1] + X[t]``.
* LIF, ``decay_input=True`` (SpikingJelly form): ``H[t] = V[t−1] + (X[t] − (V[t−1] − v_reset))/τ``.
* LIF, ``decay_input=False``: ``H[t] = V[t−1] − (V[t−1] − v_reset)/τ + X[t]``.
* decay-factor LIF (the "legacy" LIF of the TET code, spec §2.3; ``decay`` = τ_d, a factor in
  ``[0, 1]``, not a time constant): ``H[t] = v_reset + decay·(V[t−1] − v_reset) + X[t]``.

With the default ``v_reset = 0`` the leaks decay towards 0, exactly as in the spec.

Firing: ``S[t] = 1[H[t] >= ϑ]`` by default (``strict=True``: ``H[t] > ϑ``), with a surrogate
gradient from :mod:`spikeforge.core.surrogate`.

Reset (``reset=``):

* ``"subtract"`` (soft): ``V[t] = H[t] − ϑ·S[t]``;
* ``"zero"`` (hard): ``V[t] = H[t]·(1 − S[t]) + v_reset·S[t]``;
* ``"none"``: ``V[t] = H[t]``.

``detach_reset=True`` detaches ``S[t]`` in the reset term only (forward unchanged, gradients
change).

Backends (``backend=``): ``"reference"`` is the plain-torch loop below; ``"fused"`` is the
whole-sequence kernel of the tensor's device: on the CPU the compiled C++ kernel of
:mod:`spikeforge.core.fused`, on CUDA the Triton kernels of :mod:`spikeforge.core.fused_triton`
(same spikes and final potential bit for bit, gradients equal to rounding); ``"auto"``
(default) takes the fused path when its kernels are usable and the call is supported (CPU:
float32 / float64; CUDA: float16 / bfloat16 / float32 / float64; a number threshold, not under
``torch.compile`` tracing), else the reference. If the C++ kernels cannot be built, or Triton is
not installed for a CUDA tensor, ``"auto"`` and ``"fused"`` warn once and use the reference;
``"fused"`` also warns once per unsupported call signature. In the reference path, time is
iterated with ``x_seq.unbind(0)`` and the spikes are joined with ``torch.stack``; no tensor that
requires grad is indexed. The functions contain no data-dependent Python control flow, so they
compile with ``torch.compile(fullgraph=True)`` (under tracing ``"auto"`` takes the reference path).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Literal

import torch
from torch import Tensor

from spikeforge.core import fused, fused_triton
from spikeforge.core.surrogate import spike

__all__ = [
    "BACKENDS",
    "RESETS",
    "Backend",
    "Reset",
    "decay_lif_multistep",
    "if_multistep",
    "lif_multistep",
]

Reset = Literal["subtract", "zero", "none"]
RESETS: tuple[str, ...] = ("subtract", "zero", "none")
Backend = Literal["auto", "fused", "reference"]
BACKENDS: tuple[str, ...] = ("auto", "fused", "reference")
_warned: set[str] = set()


def _warn_once(key: str, message: str) -> None:
    if key not in _warned:
        _warned.add(key)
        warnings.warn(message, RuntimeWarning, stacklevel=4)


def _fast_path(
    backend: str, x_seq: Tensor, v0: Tensor | float | None, threshold: Tensor | float
) -> str | None:
    """Resolve ``backend`` for one call (see the module docstring): ``"cpu"`` (the compiled C++
    kernels), ``"triton"`` (the Triton kernels, CUDA tensors) or ``None`` (the reference)."""
    if backend == "reference":
        return None
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {list(BACKENDS)}")
    on_triton = fused_triton.wants(x_seq)
    supported = (fused_triton if on_triton else fused).supports(x_seq, v0, threshold)
    if not supported:
        if backend == "fused":
            _warn_once(
                f"unsupported:{x_seq.device.type}:{x_seq.dtype}:{type(threshold).__name__}",
                f"spikeforge: backend='fused' does not support this call (device "
                f"{x_seq.device.type}, dtype {x_seq.dtype}, threshold "
                f"{type(threshold).__name__}, or torch.compile tracing); using the plain-torch "
                "reference path",
            )
        return None
    if on_triton:
        if not fused_triton.is_available():
            _warn_once(
                "triton-unavailable",
                "spikeforge: the fused GPU neurons need Triton "
                f"({fused_triton.unavailable_reason()}); using the plain-torch reference path "
                "(pip install triton to get them)",
            )
            return None
        return "triton"
    if not fused.is_available():
        _warn_once(
            "unavailable",
            "spikeforge: fused neuron kernels unavailable "
            f"({fused.unavailable_reason()}); using the plain-torch reference path",
        )
        return None
    return "cpu"


def _broadcast_v0(x_seq: Tensor, v0: Tensor | float | None) -> Tensor | None:
    """Checks ``x_seq [T, B, ...]`` and returns ``V[0]`` as a ``[B, ...]`` tensor (a broadcast
    view of a tensor ``v0``, so gradients reach it), or ``None`` for zeros."""
    if x_seq.dim() < 2:
        raise ValueError(
            f"expected a time-first input [T, B, ...] with at least 2 dims, got {list(x_seq.shape)}"
        )
    if x_seq.shape[0] == 0:
        raise ValueError("the input has no time steps (T = 0)")
    shape = x_seq.shape[1:]
    if v0 is None:
        return None
    if not isinstance(v0, Tensor):
        return x_seq.new_full(shape, float(v0))
    try:
        return v0.to(x_seq.dtype).expand(shape)
    except RuntimeError:
        raise ValueError(
            f"initial potential of shape {list(v0.shape)} does not broadcast to the "
            f"per-step shape [B, ...] = {list(shape)} of an input {list(x_seq.shape)}"
        ) from None


def check_tau(tau: float) -> None:
    """LIF time constants are in steps and at least 1 (shared by the functions and modules)."""
    if not tau >= 1:
        raise ValueError(f"tau must be >= 1 (a time constant in steps), got {tau}")


def check_decay(decay: float) -> None:
    """Decay factors of the decay-factor LIF lie in [0, 1]."""
    if not 0 <= decay <= 1:
        raise ValueError(f"decay must be a factor in [0, 1], got {decay}")


def check_reset_and_threshold(reset: str, threshold: Tensor | float) -> None:
    """Validate the reset mode and a (numeric) threshold."""
    if reset not in RESETS:
        raise ValueError(f"unknown reset {reset!r}; choose one of {list(RESETS)}")
    if not isinstance(threshold, Tensor) and not threshold > 0:
        raise ValueError(f"threshold must be positive, got {threshold}")


def _run(
    x_seq: Tensor,
    v0: Tensor | float | None,
    charge: Callable[[Tensor, Tensor], Tensor],
    threshold: Tensor | float,
    reset: str,
    v_reset: float,
    detach_reset: bool,
    surrogate: str,
    alpha: float | None,
    strict: bool,
    backend: str,
    kind: str,
    param: float,
) -> tuple[Tensor, Tensor]:
    check_reset_and_threshold(reset, threshold)
    v_init = _broadcast_v0(x_seq, v0)
    path = _fast_path(backend, x_seq, v_init, threshold)
    if path is not None:
        run = fused.fused_multistep if path == "cpu" else fused_triton.triton_multistep
        return run(
            x_seq,
            v_init,
            kind=kind,
            param=param,
            threshold=float(threshold),
            reset=reset,
            v_reset=v_reset,
            detach_reset=detach_reset,
            surrogate=surrogate,
            alpha=alpha,
            strict=strict,
        )
    v = x_seq.new_zeros(x_seq.shape[1:]) if v_init is None else v_init
    spikes = []
    for x in x_seq.unbind(0):
        h = charge(v, x)
        s = spike(h - threshold, surrogate, alpha, strict)
        s_reset = s.detach() if detach_reset else s
        if reset == "subtract":
            v = h - threshold * s_reset
        elif reset == "zero":
            v = h * (1 - s_reset) + v_reset * s_reset
        else:
            v = h
        spikes.append(s)
    return torch.stack(spikes), v


def if_multistep(
    x_seq: Tensor,
    v0: Tensor | float | None = None,
    *,
    threshold: Tensor | float = 1.0,
    reset: Reset = "subtract",
    v_reset: float = 0.0,
    detach_reset: bool = False,
    surrogate: str = "atan",
    alpha: float | None = None,
    strict: bool = False,
    backend: Backend = "auto",
) -> tuple[Tensor, Tensor]:
    """Integrate-and-fire over ``x_seq [T, B, ...]``: ``H[t] = V[t−1] + X[t]``.

    ``v0``: initial potential, ``None`` (zeros), a scalar, or a tensor broadcastable to
    ``[B, ...]`` (e.g. a learnable ``[1, ...]`` initial potential). ``v_reset`` is the hard-reset
    value (``reset="zero"``). ``backend``: ``"auto"``, ``"fused"`` or ``"reference"`` (module
    docstring). Returns ``(spikes [T, B, ...], v_final [B, ...])``.
    """
    return _run(
        x_seq,
        v0,
        lambda v, x: v + x,
        threshold,
        reset,
        v_reset,
        detach_reset,
        surrogate,
        alpha,
        strict,
        backend,
        "if",
        0.0,
    )


def lif_multistep(
    x_seq: Tensor,
    v0: Tensor | float | None = None,
    *,
    tau: float = 2.0,
    decay_input: bool = True,
    threshold: Tensor | float = 1.0,
    reset: Reset = "subtract",
    v_reset: float = 0.0,
    detach_reset: bool = False,
    surrogate: str = "atan",
    alpha: float | None = None,
    strict: bool = False,
    backend: Backend = "auto",
) -> tuple[Tensor, Tensor]:
    """Leaky integrate-and-fire with time constant ``tau`` over ``x_seq [T, B, ...]``.

    ``decay_input=True``: ``H[t] = V[t−1] + (X[t] − (V[t−1] − v_reset))/τ`` (SpikingJelly
    ``LIFNode``); ``decay_input=False``: ``H[t] = V[t−1] − (V[t−1] − v_reset)/τ + X[t]``.
    ``v_reset`` is both the rest potential of the leak and the hard-reset value. Note that an
    initial potential ``v0`` is decayed by the leak at the first step (spec §8.2). ``backend`` as
    in :func:`if_multistep`. Returns
    ``(spikes [T, B, ...], v_final [B, ...])``.
    """
    check_tau(tau)
    if decay_input:

        def charge(v: Tensor, x: Tensor) -> Tensor:
            return v + (x - (v - v_reset)) / tau
    else:

        def charge(v: Tensor, x: Tensor) -> Tensor:
            return v - (v - v_reset) / tau + x

    kind = "lif" if decay_input else "lif_nodecay_input"
    return _run(
        x_seq,
        v0,
        charge,
        threshold,
        reset,
        v_reset,
        detach_reset,
        surrogate,
        alpha,
        strict,
        backend,
        kind,
        tau,
    )


def decay_lif_multistep(
    x_seq: Tensor,
    v0: Tensor | float | None = None,
    *,
    decay: float = 0.5,
    threshold: Tensor | float = 1.0,
    reset: Reset = "zero",
    v_reset: float = 0.0,
    detach_reset: bool = False,
    surrogate: str = "triangle",
    alpha: float | None = None,
    strict: bool = False,
    backend: Backend = "auto",
) -> tuple[Tensor, Tensor]:
    """Decay-factor LIF over ``x_seq [T, B, ...]``:

    ``H[t] = v_reset + decay·(V[t−1] − v_reset) + X[t]``.

    The "legacy" LIF of the TET code (spec §2.3): ``decay`` is the factor τ_d (0.5 in the TET
    DVS setup, 0.25 in the IMP N-Caltech101 config), not a time constant; the defaults follow
    that code (hard reset, triangle surrogate), except the compare: the TET code fires at
    ``H > ϑ`` (pass ``strict=True``), spikeforge at ``H >= ϑ``. ``backend`` as in
    :func:`if_multistep`. Returns ``(spikes [T, B, ...], v_final [B, ...])``.
    """
    check_decay(decay)

    def charge(v: Tensor, x: Tensor) -> Tensor:
        return v_reset + (v - v_reset) * decay + x

    return _run(
        x_seq,
        v0,
        charge,
        threshold,
        reset,
        v_reset,
        detach_reset,
        surrogate,
        alpha,
        strict,
        backend,
        "decay_lif",
        decay,
    )
