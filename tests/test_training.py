"""Training loop: determinism and exact resume from a checkpoint after an interruption."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from spikeforge.training import TrainConfig, train_classifier


class Interrupt(Exception):
    pass


class StopAfter(nn.Module):
    """Wraps a model and raises after ``calls`` forward passes (a simulated crash)."""

    def __init__(self, inner: nn.Module, calls: int) -> None:
        super().__init__()
        self.inner = inner
        self.calls = calls

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls -= 1
        if self.calls < 0:
            raise Interrupt
        return self.inner(x)


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 3))


def _data() -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    return torch.randn(100, 8, generator=gen), torch.randint(0, 3, (100,), generator=gen)


def test_resume_after_interruption_gives_the_same_parameters(tmp_path) -> None:
    x, y = _data()
    cfg = TrainConfig(epochs=3, batch_size=16, lr=1e-2, seed=3, progress=False, schedule="cosine")
    reference = _model()
    train_classifier(reference, x, y, cfg)

    ckpt = tmp_path / "ckpt.pt"
    crashing = StopAfter(_model(), calls=7 + 3)  # 7 steps per epoch: crash in epoch 2
    with pytest.raises(Interrupt):
        train_classifier(crashing, x, y, cfg, checkpoint=ckpt)
    assert ckpt.exists()
    resumed = StopAfter(_model(), calls=10**6)
    log = train_classifier(resumed, x, y, cfg, checkpoint=ckpt)
    assert len(log.losses) == 3
    for a, b in zip(reference.parameters(), resumed.inner.parameters(), strict=True):
        assert torch.equal(a, b)


def test_checkpoint_with_other_settings_is_refused(tmp_path) -> None:
    x, y = _data()
    ckpt = tmp_path / "ckpt.pt"
    train_classifier(_model(), x, y, TrainConfig(epochs=1, progress=False), checkpoint=ckpt)
    with pytest.raises(ValueError, match="different configuration"):
        train_classifier(_model(), x, y, TrainConfig(epochs=1, lr=0.5, progress=False), ckpt)


def test_corrupt_checkpoint_is_named(tmp_path) -> None:
    x, y = _data()
    ckpt = tmp_path / "ckpt.pt"
    ckpt.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match=r"ckpt\.pt"):
        train_classifier(_model(), x, y, TrainConfig(epochs=1, progress=False), ckpt)
