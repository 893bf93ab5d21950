"""Hardware constraints for TTFS networks: noise, time and weight quantisation, latency budgets
(spec ``ttfs.md`` §10, risks 14, 15 and 19). Latency budgets, evaluation and fine-tuning under
a hardware model are in :mod:`spikeforge.ttfs.finetune`.

A :class:`Hardware` object attached to a network (``net.hardware = Hardware(...)``) changes
what :meth:`~spikeforge.ttfs.network.TTFSNetwork.run` computes. Per layer n (hidden layers
1 .. N-1, output layer N), in this order:

1. **time quantisation** (``time_bits``): the layer's *input* spike times ``t_j``, as they
   leave layer n - 1 (before the pooling / flatten pre-operations of layer n), are quantised
   within the previous window: the values ``x_j = t_min(n) - t_j`` are fake-quantised in
   ``[0, t_min(n) - t_min_prev(n)]`` = ``[0, B_{n-1}]`` (``[0, 1]`` for the input layer) with
   ``2**time_bits`` levels. Values outside the range (activations larger than the window,
   noise past ``t_min(n)``) are clamped to it, with zero gradient.
2. the layer's closed form with **fake-quantised weights** (``weight_bits``): every layer's
   synapse weights, the output layer's included, are quantised in ``weight_range`` on every
   forward pass; the parameters themselves stay full precision, so an optimiser updates them
   (straight-through estimator, no gradient for weights outside the range). For alpha1 the
   slope ``alpha + sum_j J_ij`` uses the quantised weights too.
3. hidden layers only: the **saturating clamp** (``saturate``): ``t = max(t, t_min(n))``,
   i.e. the activation ``min(max(u, 0), B_n)``; neurons already above threshold when the
   window opens fire at ``t_min(n)`` (gradient 0 on saturated neurons). This is the model of a
   latency budget (:func:`~spikeforge.ttfs.finetune.quantile_windows`).
4. hidden layers only: **Gaussian noise** (``noise_std``, in units of tau_c) added to every
   spike time after the clip at ``t_max`` (and after the clamp), silent neurons included, in
   training and evaluation alike, as P2 does. Noisy times past ``t_min(n + 1)`` give negative
   inputs ``x_j``, which the closed form extrapolates linearly (a "noisy closed form", not an
   event-driven noise simulation). **Input spike times are not perturbed** (P2 perturbs them
   on the test set only; spikeforge applies one noise model to training and evaluation).

The noise draws from torch's global RNG unless a ``generator`` is passed to ``run``, so a
training checkpoint that stores torch's RNG state resumes exactly;
:func:`~spikeforge.ttfs.finetune.evaluate_hardware` uses a seeded generator.

Quantisation uses :func:`fake_quantize`: the explicit range ``[lo, hi]`` with ``2**bits``
levels and no TensorFlow-style nudging of the range (spec §10.2, §10.3, risk 15).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import Tensor

from spikeforge.ttfs.windows import LayerWindow

# ---------------------------------------------------------------------------------------------
# fake quantisation
# ---------------------------------------------------------------------------------------------


class _FakeQuantize(torch.autograd.Function):
    """``lo + step * round((clamp(v, lo, hi) - lo) / step)``, straight-through gradient."""

    @staticmethod
    def forward(ctx, v: Tensor, lo: float, hi: float, bits: int) -> Tensor:  # type: ignore[override]
        step = (hi - lo) / (2**bits - 1)
        ctx.save_for_backward((v >= lo) & (v <= hi))
        q = torch.round((v.clamp(lo, hi) - lo) / step)
        return q.mul_(step).add_(lo).clamp_(lo, hi)  # the clamp only removes rounding excess

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None, None, None]:  # type: ignore[override]
        (inside,) = ctx.saved_tensors
        return grad * inside, None, None, None


def fake_quantize(v: Tensor, lo: float, hi: float, bits: int) -> Tensor:
    """Quantise ``v`` (any shape) to ``2**bits`` evenly spaced levels in ``[lo, hi]``.

    ``q(v) = lo + step * round((clamp(v, lo, hi) - lo) / step)`` with
    ``step = (hi - lo) / (2**bits - 1)``, so ``lo`` and ``hi`` are both levels. The range is
    used as given (no TensorFlow-style nudging of ``[lo, hi]`` to make 0 representable).
    ``torch.round`` rounds halves to even, so a value exactly half-way between two levels goes
    to the level with an even index ``k``. Gradient (straight-through estimator): 1 where
    ``lo <= v <= hi``, 0 outside. Returns a tensor of ``v``'s shape and dtype.

    Raises:
        ValueError: ``bits`` is not an integer >= 1, or ``hi <= lo`` / non-finite bounds.
    """
    _check_bits(bits, "bits")
    lo, hi = float(lo), float(hi)
    if not (math.isfinite(lo) and math.isfinite(hi) and hi > lo):
        raise ValueError(f"fake_quantize needs finite lo < hi, got lo={lo}, hi={hi}")
    return _FakeQuantize.apply(v, lo, hi, int(bits))


def _check_bits(bits: object, name: str) -> None:
    if isinstance(bits, bool) or not isinstance(bits, int) or bits < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {bits!r}")


# ---------------------------------------------------------------------------------------------
# the hardware model
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Hardware:
    """Constraints of a TTFS hardware implementation (see the module docstring for the exact
    order in which :meth:`TTFSNetwork.run` applies them).

    Attributes:
        noise_std: standard deviation (units of tau_c) of the Gaussian noise added to every
            hidden-layer spike time after the clip at ``t_max``, silent neurons included; input
            spike times are not perturbed. 0 disables it.
        time_bits: bits of each layer's input-time quantiser (``2**time_bits`` levels in the
            previous window, ``[0, B_{n-1}]`` in values); ``None`` disables it.
        weight_bits: bits of the weight quantiser (every layer, output included); ``None``
            disables it.
        weight_range: ``(w_min, w_max)``, the explicit range of the weight quantiser (weights
            outside it are clamped and get no gradient).
        saturate: the saturating clamp ``t = max(t, t_min)`` on hidden layers (activation
            ``min(max(u, 0), B_n)``), for latency budgets.
    """

    noise_std: float = 0.0
    time_bits: int | None = None
    weight_bits: int | None = None
    weight_range: tuple[float, float] = (-1.0, 1.0)
    saturate: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.noise_std, bool) or not isinstance(self.noise_std, int | float):
            raise ValueError(f"noise_std must be a number, got {self.noise_std!r}")
        if not (math.isfinite(self.noise_std) and self.noise_std >= 0):
            raise ValueError(f"noise_std must be finite and >= 0, got {self.noise_std}")
        object.__setattr__(self, "noise_std", float(self.noise_std))
        if self.time_bits is not None:
            _check_bits(self.time_bits, "time_bits")
        if self.weight_bits is not None:
            _check_bits(self.weight_bits, "weight_bits")
        try:
            lo, hi = (float(v) for v in self.weight_range)
        except (TypeError, ValueError) as exc:
            raise ValueError(
                f"weight_range must be a pair (w_min, w_max), got {self.weight_range!r}"
            ) from exc
        if not (math.isfinite(lo) and math.isfinite(hi) and hi > lo):
            raise ValueError(f"weight_range must be finite with w_min < w_max, got {(lo, hi)}")
        object.__setattr__(self, "weight_range", (lo, hi))
        if not isinstance(self.saturate, bool):
            raise ValueError(f"saturate must be a bool, got {self.saturate!r}")

    @property
    def weight_quantization(self) -> tuple[float, float, int] | None:
        """``(w_min, w_max, bits)`` for :class:`~spikeforge.ttfs.layers.Synapses`, or
        ``None``."""
        if self.weight_bits is None:
            return None
        return (*self.weight_range, self.weight_bits)

    def as_dict(self) -> dict:
        d = asdict(self)
        d["weight_range"] = list(self.weight_range)
        return d


def constrain_input_times(t: Tensor, win: LayerWindow, hardware: Hardware) -> Tensor:
    """Time quantisation of a layer's input spike times ``t`` ``[B, *in_shape]`` (as they leave
    the previous layer) in the previous window: values ``t_min - t`` in
    ``[0, t_min - t_min_prev]``. Returns ``t`` unchanged when ``time_bits`` is ``None``."""
    if hardware.time_bits is None:
        return t
    width = win.t_min - win.t_min_prev
    if not width > 0:
        raise ValueError(f"time quantisation needs a window of positive width, got {width}")
    return win.t_min - fake_quantize(win.t_min - t, 0.0, width, hardware.time_bits)


def constrain_hidden_times(
    t: Tensor, win: LayerWindow, hardware: Hardware, generator: torch.Generator | None = None
) -> Tensor:
    """Saturating clamp (if ``saturate``) then noise (if ``noise_std > 0``) on a hidden layer's
    spike times ``t`` ``[B, *shape]`` (already clipped at ``t_max``). The noise draws from
    ``generator``, or torch's global RNG when it is ``None``."""
    if hardware.saturate:
        t = t.clamp(min=win.t_min)
    if hardware.noise_std > 0:
        noise = torch.randn(t.shape, generator=generator, dtype=t.dtype, device=t.device)
        t = t + hardware.noise_std * noise
    return t


__all__ = ["Hardware", "constrain_hidden_times", "constrain_input_times", "fake_quantize"]
