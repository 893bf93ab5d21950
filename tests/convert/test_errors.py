"""Unsupported layers raise UnsupportedLayerError naming the layer's path and type; bad
arguments raise ValueError."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from spikeforge.convert import QCFS, UnsupportedLayerError, to_if, to_pascal, to_qcfs

pytestmark = pytest.mark.usefixtures("one_thread")


class ParameterInForward(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.offset = nn.Parameter(torch.zeros(4))

    def forward(self, x: Tensor) -> Tensor:
        return torch.relu(self.fc(x)) + self.offset


class ConstantBias(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x: Tensor) -> Tensor:
        return torch.relu(self.fc(x) + 1.0)


class DataDependent(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x: Tensor) -> Tensor:
        return torch.relu(self.fc(x)) if x.sum() > 0 else x


class TwoInputs(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        return torch.relu(self.fc(x) + y)


class Product(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(4, 4)
        self.b = nn.Linear(4, 4)

    def forward(self, x: Tensor) -> Tensor:
        return torch.relu(self.a(x)) * torch.relu(self.b(x))


class BatchFlatten(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x: Tensor) -> Tensor:
        return torch.flatten(torch.relu(self.fc(x)))


UNSUPPORTED = [
    (nn.Sequential(nn.Linear(4, 4), nn.Sigmoid(), nn.Linear(4, 2)), "Sigmoid at 1"),
    (
        nn.Sequential(nn.Sequential(nn.Linear(4, 4), nn.Tanh()), nn.Linear(4, 2)),
        "Tanh at 0.1",
    ),
    (nn.Sequential(nn.Linear(4, 4), nn.LeakyReLU(), nn.Linear(4, 2)), "LeakyReLU at 1"),
    (nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.LayerNorm(4)), "LayerNorm at 2"),
    (
        nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4, track_running_stats=False), nn.ReLU()),
        "BatchNorm1d at 1 cannot be converted: it has no running statistics",
    ),
    (
        nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.AdaptiveMaxPool2d(1)),
        "AdaptiveMaxPool2d at 2 cannot be converted: max pooling is not linear",
    ),
    (ParameterInForward(), "parameter or buffer access 'offset'"),
    (ConstantBias(), "function add at add cannot be converted: adding a constant"),
    (DataDependent(), "cannot trace DataDependent with torch.fx"),
    (TwoInputs(), "exactly one input tensor"),
    (Product(), "function mul at mul cannot be converted: only scaling"),
    (BatchFlatten(), "function flatten at flatten cannot be converted: start_dim=0"),
]


@pytest.mark.parametrize(("model", "message"), UNSUPPORTED)
def test_to_qcfs_names_the_unsupported_layer(model: nn.Module, message: str) -> None:
    with pytest.raises(UnsupportedLayerError, match=message):
        to_qcfs(model)


def test_conversions_reject_unconverted_and_unsupported_layers() -> None:
    relu_net = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))
    for convert in (to_pascal, to_if):
        with pytest.raises(UnsupportedLayerError, match=r"ReLU at 1 .*to_qcfs first"):
            convert(relu_net)
    max_net = nn.Sequential(nn.Conv2d(1, 2, 3), QCFS(4), nn.MaxPool2d(2))
    with pytest.raises(UnsupportedLayerError, match=r"MaxPool2d at 2 .*replaces MaxPool"):
        to_pascal(max_net)
    assert issubclass(UnsupportedLayerError, TypeError)


def test_max_pool_with_dilation_cannot_become_average_pooling() -> None:
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.MaxPool2d(2, dilation=2))
    with pytest.raises(UnsupportedLayerError, match=r"MaxPool2d at 2 .*dilation"):
        to_qcfs(model)


def test_non_positive_lambda_is_rejected() -> None:
    qnet = to_qcfs(nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2)))
    with torch.no_grad():
        qnet.get_submodule("1").lam.fill_(-0.5)
    with pytest.raises(ValueError, match=r"QCFS at 1 has lambda = -0\.5"):
        to_pascal(qnet)


def test_bad_inputs() -> None:
    qnet = to_qcfs(nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2)))
    snn = to_pascal(qnet)
    with pytest.raises(ValueError, match="floating-point"):
        snn(torch.ones(2, 4, dtype=torch.int64))
    ifnet = to_if(qnet)
    with pytest.raises(ValueError, match="steps must be >= 1"):
        ifnet.run(torch.ones(2, 4), 0)
    with pytest.raises(ValueError, match="time-first"):
        ifnet(torch.ones(4))
