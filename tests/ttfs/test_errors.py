"""Unsupported layers and bad inputs raise the documented errors, naming what is wrong."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from spikeforge.ttfs import InputRangeError, UnsupportedLayerError, from_relu


def _x(*shape: int) -> torch.Tensor:
    return torch.rand(4, *shape, dtype=torch.float64, generator=torch.Generator().manual_seed(0))


class Residual(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(6, 6)
        self.out = nn.Linear(6, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.relu(self.fc(x)) + x)


class Branchy(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(6, 6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.sum() > 0:  # data-dependent control flow: fx cannot trace it
            return self.fc(x)
        return x


UNSUPPORTED = [
    (
        nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Upsample(scale_factor=2), nn.Flatten()),
        (1, 6, 6),
        "Upsample at 2",
    ),
    (nn.Sequential(nn.Linear(6, 4), nn.Sigmoid(), nn.Linear(4, 2)), (6,), "Sigmoid at 1"),
    (
        nn.Sequential(nn.Sequential(nn.Linear(6, 4), nn.Tanh()), nn.Linear(4, 2)),
        (6,),
        "Tanh at 0.1",
    ),
    (
        nn.Sequential(nn.Conv2d(1, 2, 3, padding=1, padding_mode="reflect"), nn.Flatten()),
        (1, 4, 4),
        "padding_mode='reflect'",
    ),
    (
        nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.AvgPool2d(2, ceil_mode=True)),
        (1, 6, 6),
        "ceil_mode",
    ),
    (nn.Sequential(nn.Linear(6, 4), nn.ReLU()), (6,), "ends with a ReLU"),
    (nn.Sequential(nn.ReLU(), nn.Linear(6, 2)), (6,), "ReLU at 0"),
    (
        nn.Sequential(
            nn.Conv2d(1, 2, 3), nn.AvgPool2d(2), nn.ReLU(), nn.Flatten(), nn.Linear(2, 2)
        ),
        (1, 4, 4),
        "ReLU at 2 follows AvgPool2d at 1",
    ),
    (
        nn.Sequential(
            nn.Conv2d(1, 2, 3),
            nn.ReLU(),
            nn.AvgPool2d(2),
            nn.MaxPool2d(1),
            nn.Flatten(),
            nn.Linear(8, 2),
        ),
        (1, 6, 6),
        "MaxPool2d at 3 follows an average pool",
    ),
    (nn.Sequential(nn.Linear(6, 4), nn.ReLU(), nn.BatchNorm1d(4)), (6,), "BatchNorm at 2"),
    (nn.Sequential(nn.Linear(6, 4), nn.Linear(4, 2)), (6,), "without a ReLU"),
    (nn.Sequential(nn.Flatten(), nn.Dropout()), (6,), "no Linear or Conv2d"),
    (Residual(), (6,), "single chain"),
    (Branchy(), (6,), "cannot trace Branchy"),
    (nn.LSTM(6, 4), (6,), "LSTM"),
]


@pytest.mark.parametrize(("model", "shape", "message"), UNSUPPORTED)
def test_unsupported_layers_name_the_layer(model: nn.Module, shape: tuple, message: str) -> None:
    with pytest.raises(UnsupportedLayerError, match=message.replace("(", r"\(")):
        from_relu(model.double().eval(), _x(*shape))


@pytest.fixture
def net():
    model = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3)).double()
    return from_relu(model, _x(6), input_range=(0.0, 1.0))


def test_input_outside_range_raises_unless_clipped(net) -> None:
    x = _x(6) * 2.0
    with pytest.raises(InputRangeError, match=r"outside input_range \[0.0, 1.0\]"):
        net(x)
    clipped = net(x, clip=True)
    assert torch.equal(clipped, net(x.clamp(0, 1)))


def test_nan_wrong_shape_and_bad_arguments(net) -> None:
    x = _x(6)
    x[0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        net(x)
    with pytest.raises(ValueError, match=r"expected input of shape \[B, 6\], got \[4, 7\]"):
        net(_x(7))
    model = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3)).double()
    with pytest.raises(ValueError, match="neuron must be"):
        from_relu(model, _x(6), neuron="lif")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="zeta must be > -1"):
        from_relu(model, _x(6), zeta=-1.0)
    with pytest.raises(ValueError, match="q > p"):
        from_relu(model, _x(6), input_range=(1.0, 0.0))
    with pytest.raises(InputRangeError, match="calibration values"):
        from_relu(model, _x(6) - 0.5)
    with pytest.raises(ValueError, match="calibration data contains NaN"):
        from_relu(model, x)
    with pytest.raises(ValueError, match="cannot take input of shape"):
        from_relu(model, _x(7))
    with pytest.raises(ValueError, match="empty"):
        from_relu(model, torch.zeros(0, 6, dtype=torch.float64))


def test_mapping_leaves_the_model_untouched() -> None:
    model = nn.Sequential(nn.Linear(6, 5), nn.BatchNorm1d(5), nn.ReLU(), nn.Linear(5, 3))
    model = model.double().eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    from_relu(model, _x(6), neuron="alpha1")
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
