"""Hardware constraints for TTFS networks: noise, time and weight quantisation, latency budgets
(spec ``ttfs.md`` §10, risks 14, 15 and 19), and fine-tuning under them.

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
   latency budget (:func:`quantile_windows`).
4. hidden layers only: **Gaussian noise** (``noise_std``, in units of tau_c) added to every
   spike time after the clip at ``t_max`` (and after the clamp), silent neurons included, in
   training and evaluation alike, as P2 does. Noisy times past ``t_min(n + 1)`` give negative
   inputs ``x_j``, which the closed form extrapolates linearly (a "noisy closed form", not an
   event-driven noise simulation). **Input spike times are not perturbed** (P2 perturbs them
   on the test set only; spikeforge applies one noise model to training and evaluation).

The noise draws from torch's global RNG unless a ``generator`` is passed to ``run``, so a
training checkpoint that stores torch's RNG state resumes exactly; :func:`evaluate_hardware`
uses a seeded generator.

Quantisation uses :func:`fake_quantize`: the explicit range ``[lo, hi]`` with ``2**bits``
levels and no TensorFlow-style nudging of the range (spec §10.2, §10.3, risk 15).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from spikeforge.metrics import accuracy, spike_counts
from spikeforge.training import TrainConfig, TrainLog
from spikeforge.ttfs.windows import LayerWindow

if TYPE_CHECKING:
    from spikeforge.ttfs.network import TTFSNetwork

# Fine-tuning defaults: P2's optimiser (Adam with exponential decay) at a low learning rate.
FINETUNE_DEFAULTS = TrainConfig(epochs=1, batch_size=16, lr=1e-4, schedule="exponential")


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


@contextmanager
def hardware_as(net: TTFSNetwork, hardware: Hardware | None) -> Iterator[TTFSNetwork]:
    """Temporarily run ``net`` under another hardware model (restored on exit)."""
    previous = net.hardware
    net.hardware = hardware
    try:
        yield net
    finally:
        net.hardware = previous


def _device(net: TTFSNetwork) -> torch.device:
    return net.layers[0].synapses.weight.device


# ---------------------------------------------------------------------------------------------
# latency budgets
# ---------------------------------------------------------------------------------------------


def _quantile(values: Tensor, rho: float, max_values: int) -> float:
    """``rho``-quantile (linear interpolation, as ``torch.quantile``) of a 1-D tensor; more
    than ``max_values`` entries are first subsampled at evenly spaced positions."""
    n = values.numel()
    if n > max_values:
        idx = torch.linspace(0, n - 1, max_values, dtype=torch.float64, device=values.device)
        idx = idx.round().long()
        values = values[idx]
        n = max_values
    v, _ = torch.sort(values)
    pos = rho * (n - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, n - 1)
    frac = pos - lo
    return float(v[lo] + frac * (v[hi] - v[lo]))


def quantile_windows(
    net: TTFSNetwork,
    x: Tensor,
    rho: float,
    zeta: float = 0.5,
    *,
    batch_size: int = 1000,
    clip: bool = False,
    max_values: int = 1 << 24,
) -> float:
    """Latency reduction (spec §10.4): shrink every hidden window of a B1 network to
    ``B_n = (1 + zeta) * Q_rho(positive activations of layer n on x)``, re-chain the windows and
    turn on the saturating clamp in ``net.hardware`` (its other fields are kept; a network
    without hardware gets ``Hardware(saturate=True)``).

    Layer by layer: layer n's activations are computed with layers < n already using their new
    windows and the clamp, noise-free, under the network's time and weight quantisation. The
    activations are the un-saturated ``u = max(D + sum_j W_ij x_j, 0)``; the quantile is taken
    over the **positive** ones (zeros, i.e. silent neurons, are left out, so ``rho = 1`` with
    ``zeta`` gives the :func:`~spikeforge.ttfs.mapping.from_relu` windows). With more than
    ``max_values`` positive activations (``torch.quantile`` accepts at most 2**24) an evenly
    spaced deterministic subsample is used. A layer with no positive activation keeps its width.

    Args:
        net: a B1 network (alpha1 thresholds are fixed at mapping time, so its windows cannot
            change).
        x: inputs ``[N, *in_shape]`` (normally training data), processed in ``batch_size``
            chunks.
        rho: quantile level in (0, 1].
        zeta: window margin, > -1.

    Returns:
        The latency-reduction factor ``old latency / new latency`` (``t_min`` of the output
        layer before and after).
    """
    if net.neuron != "b1":
        raise ValueError("quantile windows need a B1 network (alpha1 thresholds are fixed)")
    if not 0 < rho <= 1:
        raise ValueError(f"rho must be in (0, 1], got {rho}")
    if not zeta > -1:
        raise ValueError(f"zeta must be > -1, got {zeta}")
    if x.shape[0] == 0:
        raise ValueError("quantile windows need at least one input")
    if batch_size < 1 or max_values < 2:
        raise ValueError("batch_size must be >= 1 and max_values >= 2")
    base = net.hardware if net.hardware is not None else Hardware()
    calibration = replace(base, noise_std=0.0, saturate=True)
    old_latency = net.latency
    original = net.windows.widths.clone()
    widths = original.clone()
    try:
        with hardware_as(net, calibration), torch.no_grad():
            _shrink_windows(net, x, rho, zeta, widths, calibration, batch_size, clip, max_values)
    except BaseException:
        net.windows.set_widths(original)
        raise
    net.hardware = replace(base, saturate=True)
    return old_latency / net.latency


def _shrink_windows(
    net: TTFSNetwork,
    x: Tensor,
    rho: float,
    zeta: float,
    widths: Tensor,
    calibration: Hardware,
    batch_size: int,
    clip: bool,
    max_values: int,
) -> None:
    for n in range(net.windows.num_hidden):
        positives = []
        for lo in range(0, x.shape[0], batch_size):
            t = net.encode(x[lo : lo + batch_size], clip)
            wins = net.windows.layers()
            for k in range(n + 1):
                t = net.layers[k](constrain_input_times(t, wins[k], calibration), wins[k])
                if k < n:
                    t = constrain_hidden_times(t, wins[k], calibration)
            u = (wins[n].t_max - t).flatten()
            positives.append(u[u > 0])
        values = torch.cat(positives)
        if values.numel():
            widths[n] = (1.0 + zeta) * _quantile(values, rho, max_values)
            net.windows.set_widths(widths)


# ---------------------------------------------------------------------------------------------
# evaluation and fine-tuning
# ---------------------------------------------------------------------------------------------


@dataclass
class HardwareEvaluation:
    """Test metrics of a network under its hardware model.

    ``accuracy`` is the mean over ``accuracies`` (one per noise draw; a single entry without
    noise) and ``accuracy_std`` their sample standard deviation (0 for one draw).
    ``spikes_per_neuron``: hidden neurons with ``t < t_max``, counted on noise-free times
    under the other constraints (risk 19). ``latency``: the output layer's ``t_min``.
    """

    accuracy: float
    accuracy_std: float
    accuracies: list[float]
    spikes_per_neuron: float
    latency: float

    def as_dict(self) -> dict:
        return asdict(self)


def _logits_and_spikes(
    net: TTFSNetwork, x: Tensor, batch_size: int, generator: torch.Generator | None
) -> tuple[Tensor, int, int]:
    logits, spikes, neurons = [], 0, 0
    t_max = net.windows.hidden_t_max()
    for lo in range(0, x.shape[0], batch_size):
        out = net.run(x[lo : lo + batch_size], generator=generator)
        logits.append(out.logits)
        for s, m in spike_counts(out.hidden_times, t_max):
            spikes, neurons = spikes + s, neurons + m
    return torch.cat(logits), spikes, neurons


def evaluate_hardware(
    net: TTFSNetwork,
    x: Tensor,
    y: Tensor,
    repeats: int = 10,
    seed: int = 0,
    *,
    batch_size: int = 1000,
) -> HardwareEvaluation:
    """Accuracy of ``net`` under ``net.hardware`` on inputs ``x`` ``[N, *in_shape]`` with
    labels ``y`` ``[N]``: ``repeats`` noise draws from a generator seeded with ``seed`` (one
    draw when there is no noise), ``batch_size`` samples at a time without gradients. The draws
    are reproducible for the same ``seed``, ``batch_size`` and data (a different batch size
    draws the same distribution in another order)."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    hw = net.hardware
    noisy = hw is not None and hw.noise_std > 0
    generator = torch.Generator(device=_device(net)).manual_seed(seed)
    accuracies = []
    with torch.no_grad():
        for _ in range(repeats if noisy else 1):
            logits, spikes, neurons = _logits_and_spikes(net, x, batch_size, generator)
            accuracies.append(accuracy(logits, y))
        if noisy:
            with hardware_as(net, replace(hw, noise_std=0.0)):
                _, spikes, neurons = _logits_and_spikes(net, x, batch_size, None)
    mean = sum(accuracies) / len(accuracies)
    std = (
        math.sqrt(sum((a - mean) ** 2 for a in accuracies) / (len(accuracies) - 1))
        if len(accuracies) > 1
        else 0.0
    )
    return HardwareEvaluation(
        accuracy=mean,
        accuracy_std=std,
        accuracies=accuracies,
        spikes_per_neuron=spikes / max(1, neurons),
        latency=net.latency,
    )


def finetune_hardware(
    net: TTFSNetwork,
    x: Tensor,
    y: Tensor,
    cfg: TrainConfig = FINETUNE_DEFAULTS,
    checkpoint: str | os.PathLike[str] | None = None,
    *,
    growth_factor: float | None = 10.0,
    activity_l1: float = 0.0,
) -> TrainLog:
    """Fine-tune a B1 network under its hardware model ``net.hardware`` with
    :func:`spikeforge.ttfs.train.train_b1` (cross-entropy on inputs ``x`` ``[N, *in_shape]``,
    labels ``y`` ``[N]``; resumable from ``checkpoint``). Noise draws from torch's global RNG,
    whose state the checkpoint stores.

    Windows grow after every step by ``growth_factor`` (P2) except when the window is itself
    part of the constraint, where they stay fixed: with ``saturate`` (the window is the latency
    budget) and with ``time_bits`` (the window is the quantiser's range; growing it would make
    the quantisation coarser).
    """
    from spikeforge.ttfs.train import train_b1

    if net.neuron != "b1":
        raise ValueError("hardware fine-tuning trains B1 networks")
    hw = net.hardware
    fixed = hw is not None and (hw.saturate or hw.time_bits is not None)
    return train_b1(
        net,
        x,
        y,
        cfg,
        checkpoint,
        growth_factor=None if fixed else growth_factor,
        activity_l1=activity_l1,
    )


__all__ = [
    "FINETUNE_DEFAULTS",
    "Hardware",
    "HardwareEvaluation",
    "constrain_hidden_times",
    "constrain_input_times",
    "evaluate_hardware",
    "fake_quantize",
    "finetune_hardware",
    "hardware_as",
    "quantile_windows",
]
