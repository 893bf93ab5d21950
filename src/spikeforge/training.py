"""A plain supervised training loop for the ReLU networks that get mapped to SNNs."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.optim.lr_scheduler import CosineAnnealingLR, LambdaLR, LRScheduler
from tqdm import tqdm

from spikeforge.io import load_torch, save_torch


@dataclass
class TrainConfig:
    epochs: int = 10
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.0
    seed: int = 0
    progress: bool = True
    # "constant"; "cosine": annealed to 0 over the epochs; "exponential": P2's
    # lr * decay_rate ** (step / decay_steps), updated after every optimiser step
    schedule: str = "constant"
    decay_steps: int = 5000
    decay_rate: float = 0.9


@dataclass
class TrainLog:
    losses: list[float] = field(default_factory=list)


def _settings(config: dict) -> dict:
    """The configuration entries that change the result (not the progress bar)."""
    return {k: v for k, v in config.items() if k != "progress"}


def _state(
    model: nn.Module,
    opt: torch.optim.Optimizer,
    sched: LRScheduler,
    gen: torch.Generator,
    cfg: TrainConfig,
    log: TrainLog,
) -> dict:
    return {
        "model": model.state_dict(),
        "optimizer": opt.state_dict(),
        "scheduler": sched.state_dict(),
        "generator": gen.get_state(),
        "torch_rng": torch.get_rng_state(),
        "losses": list(log.losses),
        "config": asdict(cfg),
    }


def relu_activity_l1(weight: float) -> Callable[[nn.Module, Tensor], tuple[Tensor, None, Tensor]]:
    """A ``forward`` hook for :func:`train_classifier` adding ``weight * mean_batch(sum_i x_i)``
    over the outputs ``x_i`` of every ``nn.ReLU`` module of the model (L1 activity
    regularisation, as on a B1 TTFS network's hidden activations)."""

    def forward(model: nn.Module, xb: Tensor) -> tuple[Tensor, None, Tensor]:
        outputs: list[Tensor] = []
        handles = [
            m.register_forward_hook(lambda _m, _i, out: outputs.append(out))
            for m in model.modules()
            if isinstance(m, nn.ReLU)
        ]
        try:
            logits = model(xb)
        finally:
            for h in handles:
                h.remove()
        if not outputs:
            raise ValueError("activity regularisation needs nn.ReLU modules in the model")
        penalty = weight * sum(o.flatten(1).sum(1).mean() for o in outputs)
        return logits, None, penalty

    return forward


def train_classifier(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    cfg: TrainConfig,
    checkpoint: str | os.PathLike[str] | None = None,
    *,
    forward: Callable[[nn.Module, Tensor], tuple[Tensor, Any, Tensor | None]] | None = None,
    after_step: Callable[[Any], None] | None = None,
    desc: str = "training ReLU network",
    loss: Callable[[Tensor, Tensor], Tensor] | None = None,
    params: Iterable[Any] | None = None,
    after_epoch: Callable[[int, float], None] | None = None,
) -> TrainLog:
    """Train ``model`` with Adam and cross-entropy on ``x`` ``[N, ...]`` / ``y`` ``[N]``.

    Deterministic for a given ``cfg.seed`` (shuffling and dropout draw from generators seeded
    here). With ``checkpoint``, the full training state is written atomically after every epoch
    and a run restarted with the same arguments resumes after the last completed epoch, ending
    with the same parameters as an uninterrupted run. Leaves the model in eval mode; a progress
    bar goes to stderr.

    ``forward(model, x_batch) -> (logits, extra, penalty)`` replaces ``model(x_batch)``; a
    ``penalty`` that is not ``None`` is added to the loss (the logged loss is the cross-entropy
    alone), and ``after_step(extra)`` runs after every optimiser step (e.g. TTFS window
    growth); state they change must live in the model's ``state_dict`` for exact resume.
    ``loss(outputs, y_batch)`` replaces the cross-entropy (e.g. a loss over ``[T, B, C]``
    outputs of a spiking network); ``params`` (parameters or parameter groups, e.g.
    :func:`spikeforge.core.param_groups`) replaces ``model.parameters()`` for the optimiser;
    ``after_epoch(epoch, mean_loss)`` runs after every epoch (1-based). Full batch:
    ``batch_size >= N``.
    """
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"{x.shape[0]} inputs but {y.shape[0]} labels")
    if x.shape[0] == 0:
        raise ValueError("no training data")
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    opt = torch.optim.Adam(
        model.parameters() if params is None else params, lr=cfg.lr, weight_decay=cfg.weight_decay
    )
    if cfg.schedule == "cosine":
        sched: LRScheduler = CosineAnnealingLR(opt, T_max=cfg.epochs)
    elif cfg.schedule == "exponential":
        sched = LambdaLR(opt, lambda step: cfg.decay_rate ** (step / cfg.decay_steps))
    elif cfg.schedule == "constant":
        sched = LambdaLR(opt, lambda epoch: 1.0)
    else:
        raise ValueError(
            f"schedule must be 'constant', 'cosine' or 'exponential', got {cfg.schedule!r}"
        )
    per_step = cfg.schedule == "exponential"
    log = TrainLog()
    if checkpoint is not None and Path(checkpoint).exists():
        state = load_torch(checkpoint)
        if _settings(state.get("config", {})) != _settings(asdict(cfg)):
            raise ValueError(
                f"checkpoint {checkpoint} was written with a different configuration "
                f"({state.get('config')}); remove it or use the same settings"
            )
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        gen.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        log.losses = list(state["losses"])
    loss_fn = nn.CrossEntropyLoss() if loss is None else loss
    steps_per_epoch = (x.shape[0] + cfg.batch_size - 1) // cfg.batch_size
    bar = tqdm(
        total=cfg.epochs * steps_per_epoch,
        initial=len(log.losses) * steps_per_epoch,
        disable=not cfg.progress,
        file=sys.stderr,
        desc=desc,
        unit="step",
        leave=False,
    )
    for _ in range(len(log.losses), cfg.epochs):
        model.train()
        order = torch.randperm(x.shape[0], generator=gen)
        running = 0.0
        for i in range(0, x.shape[0], cfg.batch_size):
            idx = order[i : i + cfg.batch_size]
            opt.zero_grad(set_to_none=True)
            if forward is None:
                logits, extra, penalty = model(x[idx]), None, None
            else:
                logits, extra, penalty = forward(model, x[idx])
            value = loss_fn(logits, y[idx])
            (value if penalty is None else value + penalty).backward()
            opt.step()
            if per_step:
                sched.step()
            if after_step is not None:
                after_step(extra)
            running += value.item() * idx.numel()
            bar.update(1)
        if not per_step:
            sched.step()
        log.losses.append(running / x.shape[0])
        bar.set_postfix(loss=f"{log.losses[-1]:.4f}")
        if checkpoint is not None:
            save_torch(checkpoint, _state(model, opt, sched, gen, cfg, log))
        if after_epoch is not None:
            after_epoch(len(log.losses), log.losses[-1])
    bar.close()
    model.eval()
    return log


__all__ = [
    "TrainConfig",
    "TrainLog",
    "relu_activity_l1",
    "train_classifier",
]
