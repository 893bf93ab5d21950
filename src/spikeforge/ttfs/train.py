"""Training TTFS networks like ReLU networks (P2, spec ``ttfs.md`` §8).

A :class:`~spikeforge.ttfs.network.TTFSNetwork` is an ordinary ``nn.Module``: any optimiser
and loop trains it through the closed-form spike times. For B1 networks the parameters are the
(folded) ReLU parameters, so the training trajectory is the ReLU network's as long as the
windows are kept large enough; :func:`grow_windows` implements P2's rule for that.

:func:`train_b1` is the ready trainer with the paper's defaults (Adam with exponential decay,
window growth after every step) and exactly resumable checkpoints; it trains networks mapped by
:func:`~spikeforge.ttfs.mapping.from_relu` (fine-tuning) or built by
:func:`~spikeforge.ttfs.mapping.b1_from_scratch` (P2's ``X_n = 1000`` windows). Fine-tuning under
noise, quantisation and latency budgets is :func:`spikeforge.ttfs.finetune.finetune_hardware`;
the experiments are ``spikeforge reproduce ttfs-train | ttfs-gradients | ttfs-hardware``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch
from torch import Tensor

from spikeforge.training import TrainConfig, TrainLog, train_classifier
from spikeforge.ttfs.network import TTFSNetwork, TTFSOutput

P2_DEFAULTS = TrainConfig(epochs=10, batch_size=8, lr=5e-4, schedule="exponential")


def grow_windows(net: TTFSNetwork, hidden_times: Sequence[Tensor], factor: float = 10.0) -> bool:
    """P2 window growth after an optimiser step: ``B_n <- max(B_n, factor * x_max)`` where
    ``x_max = t_max(n) - min_batch t_i`` is the largest activation of hidden layer n in the
    batch whose spike times ``hidden_times`` (``[B, *shape]`` per layer) were computed with the
    current windows. Windows only grow, and all boundaries are re-chained at once.

    Only for B1 networks, whose thresholds follow the windows (``theta = B_n - D``); alpha1
    thresholds are fixed at mapping time. Returns whether any window grew.
    """
    if net.neuron != "b1":
        raise ValueError("window growth keeps the trajectory only for B1 networks")
    t_max = net.windows.hidden_t_max()
    if len(hidden_times) != len(t_max):
        raise ValueError(f"{len(hidden_times)} layers of times for {len(t_max)} hidden layers")
    with torch.no_grad():
        largest = torch.stack(
            [
                (tm - t.detach().min()).to(net.windows.widths)
                for t, tm in zip(hidden_times, t_max, strict=True)
            ]
        )
        new = torch.maximum(net.windows.widths, factor * largest)
        grew = bool((new > net.windows.widths).any())
        if grew:
            net.windows.set_widths(new)
    return grew


def train_b1(
    net: TTFSNetwork,
    x: Tensor,
    y: Tensor,
    cfg: TrainConfig = P2_DEFAULTS,
    checkpoint: str | os.PathLike[str] | None = None,
    growth_factor: float | None = 10.0,
    activity_l1: float = 0.0,
) -> TrainLog:
    """Train a B1 network on inputs ``x`` ``[N, *in_shape]`` (in its input range) and labels
    ``y`` ``[N]`` with cross-entropy on the output potentials, growing the windows after every
    step (:func:`grow_windows`; ``growth_factor=None`` keeps the windows fixed, as for a latency
    budget with the saturating clamp). Windows are buffers of ``net``, so a checkpoint holds
    them and an interrupted run resumed from ``checkpoint`` ends with the same parameters and
    windows.

    ``activity_l1`` adds ``activity_l1 * mean_batch(sum_i x_i)`` over every hidden activation
    ``x_i = t_max - t_i`` (P1's optional L1 activity regularisation; the same term on the ReLU
    outputs, :func:`spikeforge.training.relu_activity_l1`, keeps the two trajectories equal).
    It makes the network sparser: fewer spikes per neuron.
    """
    if net.neuron != "b1":
        raise ValueError("train_b1 trains B1 networks; alpha1 has no trajectory guarantee")

    def forward(model: TTFSNetwork, xb: Tensor) -> tuple[Tensor, TTFSOutput, Tensor | None]:
        out = model.run(xb)
        penalty = None
        if activity_l1:
            t_max = model.windows.hidden_t_max()
            penalty = activity_l1 * sum(
                (tm - t).flatten(1).sum(1).mean()
                for t, tm in zip(out.hidden_times, t_max, strict=True)
            )
        return out.logits, out, penalty

    def after_step(out: TTFSOutput) -> None:
        if growth_factor is not None:
            grow_windows(net, out.hidden_times, growth_factor)

    return train_classifier(
        net,
        x,
        y,
        cfg,
        checkpoint,
        forward=forward,
        after_step=after_step,
        desc="training B1 TTFS network",
    )


__all__ = [
    "P2_DEFAULTS",
    "grow_windows",
    "train_b1",
]
