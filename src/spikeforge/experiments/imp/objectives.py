"""Objectives (SDT, LTS, TET, TET-S), a minibatch BPTT loop and per-time-step accuracy.

Models map a static batch ``x [B, ...]`` to per-step logits ``O [T, B, C]`` (time-first; e.g.
:class:`~spikeforge.experiments.imp.nets.StaticSNN`). An :class:`Objective` pairs a loss on
``[T, B, C]`` with the readout used at inference (spec §5): mean over time for SDT, TET and
TET-S, the last step for LTS.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

from spikeforge.core.neurons import param_groups
from spikeforge.losses import lts_loss, readout, sdt_loss, tet_loss, tet_s_loss
from spikeforge.training import TrainConfig, train_classifier

__all__ = [
    "OBJECTIVE_NAMES",
    "Objective",
    "StepAccuracy",
    "make_objective",
    "per_step_accuracy",
    "train_objective",
]

OBJECTIVE_NAMES = ("sdt", "lts", "tet", "tet-s")
LABELS = {"sdt": "SDT", "lts": "LTS", "tet": "TET", "tet-s": "TET-S"}


@dataclass(frozen=True)
class Objective:
    """A training loss on logits ``[T, B, C]`` and the readout (``"mean"`` / ``"last"``) that
    turns ``[T, B, C]`` into the prediction ``[B, C]``."""

    name: str
    loss: Callable[[Tensor, Tensor], Tensor]
    readout: Literal["mean", "last"]

    @property
    def label(self) -> str:
        return LABELS.get(self.name, self.name)


def make_objective(
    name: str, *, tet_lamb: float = 1e-3, tet_phi: float = 1.0, tet_s_epsilon: float = 0.01
) -> Objective:
    """``"sdt"``: ``CE(mean_t O[t], y)``; ``"lts"``: ``CE(O[T], y)``; ``"tet"``:
    ``(1 − λ)·mean_t CE(O[t], y) + λ·MSE(O, φ)`` (``tet_lamb``, ``tet_phi``); ``"tet-s"``: per-step
    CE with label smoothing ``tet_s_epsilon``. See :mod:`spikeforge.losses`."""
    if name == "sdt":
        return Objective(name, sdt_loss, "mean")
    if name == "lts":
        return Objective(name, lts_loss, "last")
    if name == "tet":
        if not 0 <= tet_lamb <= 1:
            raise ValueError(f"tet_lamb must be in [0, 1], got {tet_lamb}")
        return Objective(name, lambda o, y: tet_loss(o, y, lamb=tet_lamb, phi=tet_phi), "mean")
    if name == "tet-s":
        if not 0 <= tet_s_epsilon <= 1:
            raise ValueError(f"tet_s_epsilon must be in [0, 1], got {tet_s_epsilon}")
        return Objective(name, lambda o, y: tet_s_loss(o, y, epsilon=tet_s_epsilon), "mean")
    raise ValueError(f"unknown objective {name!r}; choose one of {list(OBJECTIVE_NAMES)}")


@dataclass
class StepAccuracy:
    """Accuracy of ``argmax O[t]`` per step (``per_step[t-1]``), of the mean readout and of the
    last step (equal to ``per_step[-1]``), as fractions in [0, 1]."""

    per_step: list[float]
    mean: float

    @property
    def last(self) -> float:
        return self.per_step[-1]

    def of(self, mode: Literal["mean", "last"]) -> float:
        """The accuracy of readout ``mode``."""
        return self.mean if mode == "mean" else self.last


@torch.no_grad()
def per_step_accuracy(
    model: nn.Module, x: Tensor, y: Tensor, batch_size: int = 1000
) -> StepAccuracy:
    """Accuracy of ``model`` (``x [N, ...] -> O [T, N, C]``) at every time step and of the mean
    readout on ``x`` / ``y [N]``, evaluated in eval mode in batches of ``batch_size`` (the
    model's training mode is restored)."""
    if x.shape[0] != y.shape[0] or x.shape[0] == 0:
        raise ValueError(f"{x.shape[0]} inputs and {y.shape[0]} labels")
    was_training = model.training
    model.eval()
    try:
        per_step: Tensor | None = None
        mean = torch.zeros((), dtype=torch.int64)
        for i in range(0, x.shape[0], batch_size):
            out = model(x[i : i + batch_size])  # [T, b, C]
            yb = y[i : i + batch_size]
            hits = (out.argmax(-1) == yb).sum(1)  # [T]
            per_step = hits if per_step is None else per_step + hits
            mean += (readout(out, "mean").argmax(-1) == yb).sum()
    finally:
        model.train(was_training)
    assert per_step is not None
    n = x.shape[0]
    return StepAccuracy([int(h) / n for h in per_step.tolist()], int(mean) / n)


def train_objective(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    objective: Objective,
    *,
    epochs: int,
    batch_size: int | None,
    lr: float,
    seed: int,
    weight_decay: float = 0.0,
    after_epoch: Callable[[int, float], None] | None = None,
) -> list[float]:
    """Train ``model`` (``x [N, ...] -> O [T, N, C]``) with Adam and ``objective`` by BPTT, on
    the project's one training loop (:func:`spikeforge.training.train_classifier`).

    ``batch_size=None``: full batch. ``seed`` fixes the shuffling, so runs with the same seed
    see the same batches. The optimiser gets :func:`~spikeforge.core.neurons.param_groups` (no
    weight decay on learnable initial potentials; they must exist already).
    ``after_epoch(epoch, mean_loss)`` runs after every epoch (1-based). Returns the mean
    training loss of every epoch; leaves the model in eval mode.
    """
    if batch_size is not None and batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if epochs < 0:
        raise ValueError(f"epochs must be >= 0, got {epochs}")
    cfg = TrainConfig(
        epochs=epochs,
        batch_size=x.shape[0] if batch_size is None else batch_size,
        lr=lr,
        weight_decay=weight_decay,
        seed=seed,
        progress=False,
    )
    log = train_classifier(
        model,
        x,
        y,
        cfg,
        loss=objective.loss,
        params=param_groups(model, weight_decay),
        after_epoch=after_epoch,
    )
    return log.losses
