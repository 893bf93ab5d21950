"""A plain supervised training loop for the ReLU networks that get mapped to SNNs."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn
from tqdm import tqdm


@dataclass
class TrainConfig:
    epochs: int = 10
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.0
    seed: int = 0
    progress: bool = True


@dataclass
class TrainLog:
    losses: list[float] = field(default_factory=list)


def train_classifier(model: nn.Module, x: Tensor, y: Tensor, cfg: TrainConfig) -> TrainLog:
    """Train ``model`` with Adam and cross-entropy on ``x`` ``[N, ...]`` / ``y`` ``[N]``.

    Deterministic for a given ``cfg.seed`` (shuffling and dropout draw from one generator
    seeded here). Leaves the model in eval mode. A progress bar goes to stderr.
    """
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"{x.shape[0]} inputs but {y.shape[0]} labels")
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    loss_fn = nn.CrossEntropyLoss()
    log = TrainLog()
    steps_per_epoch = (x.shape[0] + cfg.batch_size - 1) // cfg.batch_size
    bar = tqdm(
        total=cfg.epochs * steps_per_epoch,
        disable=not cfg.progress,
        file=sys.stderr,
        desc="training ReLU network",
        unit="step",
        leave=False,
    )
    model.train()
    for _ in range(cfg.epochs):
        order = torch.randperm(x.shape[0], generator=gen)
        running = 0.0
        for i in range(0, x.shape[0], cfg.batch_size):
            idx = order[i : i + cfg.batch_size]
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(x[idx]), y[idx])
            loss.backward()
            opt.step()
            running += float(loss) * idx.numel()
            bar.update(1)
        log.losses.append(running / x.shape[0])
        bar.set_postfix(loss=f"{log.losses[-1]:.4f}")
    bar.close()
    model.eval()
    return log
