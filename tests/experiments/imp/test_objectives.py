"""Objectives, the BPTT loop and per-step accuracy on [T, B, C] logits."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from spikeforge.experiments.imp.nets import if_mlp
from spikeforge.experiments.imp.objectives import make_objective, per_step_accuracy, train_objective
from spikeforge.losses import lts_loss, sdt_loss, tet_loss


class Fixed(nn.Module):
    """Per-step logits [T, B, C] looked up by sample index (the input [B, 1] holds it)."""

    def __init__(self, logits: torch.Tensor) -> None:
        super().__init__()
        self.logits = logits

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits[:, x[:, 0].long()]


def test_per_step_accuracy_counts_each_step_and_the_mean() -> None:
    # 2 samples, 3 steps, 2 classes; labels [0, 1]
    logits = torch.tensor(
        [
            [[1.0, 0.0], [1.0, 0.0]],  # step 1: sample 0 right, sample 1 wrong
            [[0.0, 1.0], [0.0, 1.0]],  # step 2: 0 wrong, 1 right
            [[3.0, 0.0], [0.0, 3.0]],  # step 3: both right
        ]
    )
    acc = per_step_accuracy(
        Fixed(logits), torch.arange(2.0)[:, None], torch.tensor([0, 1]), batch_size=1
    )
    assert acc.per_step == [0.5, 0.5, 1.0]
    assert acc.mean == 1.0 and acc.last == 1.0 and acc.of("last") == 1.0


def test_objectives_are_the_library_losses() -> None:
    out = torch.randn(4, 3, 5)
    y = torch.tensor([0, 4, 2])
    assert make_objective("sdt").readout == "mean"
    assert make_objective("lts").readout == "last"
    torch.testing.assert_close(make_objective("sdt").loss(out, y), sdt_loss(out, y))
    torch.testing.assert_close(make_objective("lts").loss(out, y), lts_loss(out, y))
    torch.testing.assert_close(
        make_objective("tet", tet_lamb=0.0).loss(out, y), tet_loss(out, y, lamb=0.0)
    )
    assert make_objective("tet-s").label == "TET-S"
    with pytest.raises(ValueError, match="unknown objective"):
        make_objective("mse")
    with pytest.raises(ValueError, match="tet_lamb"):
        make_objective("tet", tet_lamb=2.0)


def test_training_lowers_the_loss() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(64, 8, generator=g)
    y = (x[:, 0] > 0.5).long()
    torch.manual_seed(0)
    model = if_mlp([8, 32, 2], imp=True)
    seen: list[int] = []
    losses = train_objective(
        model,
        x,
        y,
        make_objective("tet-s"),
        epochs=15,
        batch_size=16,
        lr=1e-2,
        seed=0,
        after_epoch=lambda e, _l: seen.append(e),
    )
    assert seen == list(range(1, 16)) and len(losses) == 15
    assert losses[-1] < 0.5 * losses[0]
    with pytest.raises(ValueError, match="batch_size"):
        train_objective(model, x, y, make_objective("sdt"), epochs=1, batch_size=0, lr=1.0, seed=0)
    with pytest.raises(ValueError, match="labels"):
        train_objective(
            model, x, y[:3], make_objective("sdt"), epochs=1, batch_size=4, lr=1.0, seed=0
        )
