"""Spike functions: Heaviside forward, surrogate-gradient backward.

Every spike function takes ``x = H - threshold`` (any shape, for example ``[B, ...]`` for one time
step) and returns ``S = Θ(x)`` of the same shape and dtype, with values in ``{0, 1}``.

**Threshold compare.** The default is ``S = 1[x >= 0]``, i.e. a neuron fires when its potential
*reaches* the threshold (``H >= threshold``, the SpikingJelly convention; spec §2.4). Pass
``strict=True`` for ``S = 1[x > 0]`` (the convention of the TET code). The same default is used
by every neuron in :mod:`spikeforge.core`.

**Backward.** ``dS/dx := g'(x)`` for a smooth or piecewise-linear surrogate ``g``; ``alpha`` is the
surrogate's scalar shape parameter (a Python float, so kernels and ``torch.compile`` see a
constant):

==============  ===========================================================  =========
name            g'(x)                                                        default α
==============  ===========================================================  =========
``atan``        (α/2) / (1 + (π/2·α·x)²)                                     2.0
``sigmoid``     α·σ(αx)·(1 − σ(αx))                                          4.0
``fast_sigmoid`` 1 / (1 + α|x|)²                                             25.0
``triangle``    (1/α²)·max(α − |x|, 0)          (α = half width γ)           1.0
``rectangle``   (1/α)·1[|x| < α/2]               (α = width)                 1.0
==============  ===========================================================  =========

Each surrogate integrates to 1 over the real line, so it is the derivative of a smoothed step.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

__all__ = [
    "SURROGATES",
    "ATanSpike",
    "FastSigmoidSpike",
    "RectangleSpike",
    "SigmoidSpike",
    "TriangleSpike",
    "default_alpha",
    "heaviside",
    "resolve_alpha",
    "spike",
]


def heaviside(x: Tensor, strict: bool = False) -> Tensor:
    """``1[x >= 0]`` (or ``1[x > 0]`` when ``strict``) in the dtype of ``x``; no gradient."""
    return (x > 0).to(x.dtype) if strict else (x >= 0).to(x.dtype)


class _SpikeFunction(torch.autograd.Function):
    """Base: forward is the Heaviside step, backward multiplies by :meth:`grad`."""

    @staticmethod
    def grad(x: Tensor, alpha: float) -> Tensor:  # pragma: no cover - overridden
        raise NotImplementedError

    @staticmethod
    def forward(x: Tensor, alpha: float, strict: bool = False) -> Tensor:  # type: ignore[override]
        return heaviside(x, strict)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: Tensor) -> None:
        x, alpha = inputs[0], inputs[1]
        ctx.save_for_backward(x)
        ctx.alpha = float(alpha)

    # Each subclass defines its own static ``backward`` (a classmethod backward does not inline
    # under torch.compile / dynamo).


class ATanSpike(_SpikeFunction):
    """Arc-tangent surrogate: ``g'(x) = (α/2) / (1 + (π/2·α·x)²)``; α is a sharpness."""

    @staticmethod
    def grad(x: Tensor, alpha: float) -> Tensor:
        return (alpha / 2) / (1 + (math.pi / 2 * alpha * x) ** 2)

    @staticmethod
    def backward(ctx: Any, grad_output: Tensor) -> tuple[Tensor, None, None]:  # type: ignore[override]
        (x,) = ctx.saved_tensors
        return grad_output * ATanSpike.grad(x, ctx.alpha), None, None


class SigmoidSpike(_SpikeFunction):
    """Logistic surrogate: ``g'(x) = α·σ(αx)·(1 − σ(αx))``; α is a sharpness."""

    @staticmethod
    def grad(x: Tensor, alpha: float) -> Tensor:
        s = torch.sigmoid(alpha * x)
        return alpha * s * (1 - s)

    @staticmethod
    def backward(ctx: Any, grad_output: Tensor) -> tuple[Tensor, None, None]:  # type: ignore[override]
        (x,) = ctx.saved_tensors
        return grad_output * SigmoidSpike.grad(x, ctx.alpha), None, None


class FastSigmoidSpike(_SpikeFunction):
    """SuperSpike / fast-sigmoid surrogate: ``g'(x) = 1 / (1 + α|x|)²``; α is a sharpness."""

    @staticmethod
    def grad(x: Tensor, alpha: float) -> Tensor:
        return 1 / (1 + alpha * x.abs()) ** 2

    @staticmethod
    def backward(ctx: Any, grad_output: Tensor) -> tuple[Tensor, None, None]:  # type: ignore[override]
        (x,) = ctx.saved_tensors
        return grad_output * FastSigmoidSpike.grad(x, ctx.alpha), None, None


class TriangleSpike(_SpikeFunction):
    """Triangular surrogate of the TET code: ``g'(x) = max(α − |x|, 0) / α²``; α = half width."""

    @staticmethod
    def grad(x: Tensor, alpha: float) -> Tensor:
        return (alpha - x.abs()).clamp_min(0) / alpha**2

    @staticmethod
    def backward(ctx: Any, grad_output: Tensor) -> tuple[Tensor, None, None]:  # type: ignore[override]
        (x,) = ctx.saved_tensors
        return grad_output * TriangleSpike.grad(x, ctx.alpha), None, None


class RectangleSpike(_SpikeFunction):
    """Rectangular (straight-through box) surrogate: ``g'(x) = 1[|x| < α/2] / α``; α = width."""

    @staticmethod
    def grad(x: Tensor, alpha: float) -> Tensor:
        return (x.abs() < alpha / 2).to(x.dtype) / alpha

    @staticmethod
    def backward(ctx: Any, grad_output: Tensor) -> tuple[Tensor, None, None]:  # type: ignore[override]
        (x,) = ctx.saved_tensors
        return grad_output * RectangleSpike.grad(x, ctx.alpha), None, None


#: name -> (autograd function, default alpha). Read-only configuration, not a registry to mutate.
SURROGATES: dict[str, tuple[type[_SpikeFunction], float]] = {
    "atan": (ATanSpike, 2.0),
    "sigmoid": (SigmoidSpike, 4.0),
    "fast_sigmoid": (FastSigmoidSpike, 25.0),
    "triangle": (TriangleSpike, 1.0),
    "rectangle": (RectangleSpike, 1.0),
}


def default_alpha(surrogate: str) -> float:
    """The default ``alpha`` of a surrogate name (see the module table)."""
    return _lookup(surrogate)[1]


def resolve_alpha(surrogate: str, alpha: float | None) -> float:
    """The width ``alpha`` to use: the surrogate's default for ``None``; must be positive."""
    a = default_alpha(surrogate) if alpha is None else float(alpha)
    if not a > 0:
        raise ValueError(f"surrogate alpha must be positive, got {alpha}")
    return a


def _lookup(surrogate: str) -> tuple[type[_SpikeFunction], float]:
    try:
        return SURROGATES[surrogate]
    except KeyError:
        raise ValueError(
            f"unknown surrogate {surrogate!r}; choose one of {sorted(SURROGATES)}"
        ) from None


def spike(
    x: Tensor, surrogate: str = "atan", alpha: float | None = None, strict: bool = False
) -> Tensor:
    """Heaviside spike of ``x = H - threshold`` (any shape) with a surrogate gradient.

    ``alpha=None`` takes the surrogate's default. ``strict=False`` fires at ``x >= 0``.
    """
    fn, _ = _lookup(surrogate)
    if _plain_forward():
        # no graph can be recorded: the Function's forward, without autograd.Function's
        # per-call overhead (argument binding through inspect.signature: ~40 % of a small
        # no-grad network's time)
        resolve_alpha(surrogate, alpha)
        return heaviside(x, strict)
    return fn.apply(x, resolve_alpha(surrogate, alpha), strict)


def _plain_forward() -> bool:
    """Grad mode off, and no functorch transform or forward-mode AD level active (those would
    need the Function: ``torch.func.grad`` re-enables grad inside, dual tensors carry
    tangents under ``no_grad``)."""
    return (
        not torch.is_grad_enabled()
        and not torch._C._are_functorch_transforms_active()
        and torch.autograd.forward_ad._current_level < 0
    )
