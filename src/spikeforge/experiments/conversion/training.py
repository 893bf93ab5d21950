"""Training the source networks of the conversion reproduction: the ReLU network (for
SpikingJelly's converter and the max-norm baseline) and the QCFS networks (uniform ``L`` and AL
levels), all with :func:`spikeforge.training.train_classifier` (Adam, cross-entropy, cosine
schedule, resumable checkpoints).

The QCFS / PASCAL code trains with SGD (lr 0.1, momentum 0.9, weight decay 5e-4, cosine) for
120-300 epochs on CIFAR (spec ``conversion.md`` §1.4); on MNIST / Fashion-MNIST within the
reproduction's 20-minute budget a few epochs of Adam are used instead, the same for the ReLU and
the QCFS networks. The thresholds ``lambda`` train with the other parameters, weight decay
included (spec §8 risk 10).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from torch import Tensor, nn

from spikeforge.metrics import accuracy, predictions_in_batches
from spikeforge.training import TrainConfig, train_classifier

__all__ = ["Recipe", "TrainResult", "evaluate", "train"]


@dataclass(frozen=True)
class Recipe:
    """One training recipe (Adam, cosine schedule): epochs, batch size, learning rate, weight
    decay, seed."""

    epochs: int = 3
    batch_size: int = 128
    lr: float = 2e-3
    weight_decay: float = 1e-4
    seed: int = 0

    def config(self, progress: bool, **changes: object) -> TrainConfig:
        settings = asdict(self) | changes
        return TrainConfig(
            epochs=int(settings["epochs"]),
            batch_size=int(settings["batch_size"]),
            lr=float(settings["lr"]),
            weight_decay=float(settings["weight_decay"]),
            seed=int(settings["seed"]),
            progress=progress,
            schedule="cosine",
        )

    def with_epochs(self, epochs: int) -> Recipe:
        return replace(self, epochs=epochs)


@dataclass
class TrainResult:
    """Losses per epoch, test accuracy and wall time (``None`` when the run was resumed from a
    finished checkpoint and took no time)."""

    losses: list[float]
    test_accuracy: float
    seconds: float

    def as_dict(self) -> dict:
        return {
            "losses": [round(v, 6) for v in self.losses],
            "test_accuracy": self.test_accuracy,
            "seconds": round(self.seconds, 1),
        }


def evaluate(model: nn.Module, x: Tensor, y: Tensor, batch_size: int = 1000) -> float:
    """Test accuracy of ``model`` (eval mode) on ``x`` ``[N, ...]``, ``y`` ``[N]``."""
    model.eval()
    return accuracy(predictions_in_batches(model, x, batch_size), y)


def train(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    x_test: Tensor,
    y_test: Tensor,
    recipe: Recipe,
    checkpoint: str | Path,
    *,
    progress: bool,
    desc: str,
) -> TrainResult:
    """Train ``model`` in place with ``recipe`` (resuming from ``checkpoint``) and evaluate it."""
    start = time.perf_counter()
    log = train_classifier(model, x, y, recipe.config(progress), checkpoint, desc=desc)
    seconds = time.perf_counter() - start
    return TrainResult(log.losses, evaluate(model, x_test, y_test), seconds)
