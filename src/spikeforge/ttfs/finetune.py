"""Latency budgets, evaluation and fine-tuning of TTFS networks under a hardware model
(:class:`~spikeforge.ttfs.hardware.Hardware`; spec ``ttfs.md`` §10).

* :func:`quantile_windows`: shrink the windows of a B1 network to a quantile of its activations
  and turn on the saturating clamp (a latency budget);
* :func:`evaluate_hardware`: accuracy over seeded noise draws and spike counts;
* :func:`finetune_hardware`: train a B1 network under its hardware model (the trainer of
  :mod:`spikeforge.ttfs.train`), with windows fixed where they are part of the constraint.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace

import torch
from torch import Tensor

from spikeforge.metrics import accuracy, spike_counts
from spikeforge.training import TrainConfig, TrainLog
from spikeforge.ttfs.hardware import Hardware, constrain_hidden_times, constrain_input_times
from spikeforge.ttfs.network import TTFSNetwork
from spikeforge.ttfs.train import train_b1

# Fine-tuning defaults: P2's optimiser (Adam with exponential decay) at a low learning rate.
FINETUNE_DEFAULTS = TrainConfig(epochs=1, batch_size=16, lr=1e-4, schedule="exponential")


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
    "HardwareEvaluation",
    "evaluate_hardware",
    "finetune_hardware",
    "hardware_as",
    "quantile_windows",
]
