"""Exactness of the ReLU -> TTFS mapping on random networks covering every supported layer.

For each network and both neuron models, calibrated on one set of inputs and evaluated on a
held-out set: no window violations on the held-out set, the closed form equals the original
ReLU network (float64, 1e-9), the compiled event engine equals the closed form (1e-12), the
Python event simulator equals the closed form (1e-9), and each hidden layer's encoded values
equal the canonical ReLU network's activations.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from spikeforge.metrics import max_abs_difference
from spikeforge.ttfs import engine, from_relu
from spikeforge.ttfs.events import simulate

TOL = 1e-9
ENGINE_TOL = 1e-12
NEURONS = ["b1", "alpha1"]


def randomize_bn(bn: nn.BatchNorm1d | nn.BatchNorm2d, gen: torch.Generator) -> None:
    """Random running statistics and affine parameters, about half the scales negative."""
    c = bn.num_features
    bn.running_mean.copy_(torch.randn(c, generator=gen, dtype=torch.float64) * 0.5)
    bn.running_var.copy_(torch.rand(c, generator=gen, dtype=torch.float64) * 1.5 + 0.3)
    if bn.affine:
        sign = torch.where(torch.rand(c, generator=gen) < 0.5, -1.0, 1.0).double()
        bn.weight.data.copy_(sign * (torch.rand(c, generator=gen, dtype=torch.float64) + 0.5))
        bn.bias.data.copy_(torch.randn(c, generator=gen, dtype=torch.float64) * 0.3)


def prepare(model: nn.Module, seed: int = 0) -> nn.Module:
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = model.double()
    for m in model.modules():
        if isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d):
            randomize_bn(m, gen)
    return model.eval()


def inputs(shape: tuple[int, ...], lo: float = 0.0, hi: float = 1.0, n: int = 12, seed: int = 1):
    gen = torch.Generator().manual_seed(seed)
    return lo + (hi - lo) * torch.rand((n, *shape), generator=gen, dtype=torch.float64)


def held_out(x: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
    """A second input set like ``x`` (same shape and range, other draws)."""
    gen = torch.Generator().manual_seed(12345)
    return lo + (hi - lo) * torch.rand(x.shape, generator=gen, dtype=torch.float64)


def check_exact(model: nn.Module, x: torch.Tensor, neuron: str, input_range=(0.0, 1.0)) -> None:
    """Calibrate on ``x``, evaluate on held-out inputs of the same range."""
    calibration = x
    x = held_out(x, *input_range)
    with torch.no_grad():
        reference = model(x)
        net = from_relu(model, calibration, neuron=neuron, input_range=input_range)
        out = net.run(x)
        sim = simulate(net, x)
        fast = engine.simulate(net, x)
        scanned = engine.simulate(net, x, always_scan=True)  # every alpha1 neuron time-ordered
    violations = net.window_violations(out.hidden_times)
    assert violations == [0] * net.windows.num_hidden, f"held-out window violations {violations}"
    assert sim.early_spikes == [0] * net.windows.num_hidden
    assert fast.early_spikes == [0] * net.windows.num_hidden
    assert max_abs_difference(out.logits, reference) < TOL
    assert max_abs_difference(fast.logits, out.logits) < ENGINE_TOL
    assert max_abs_difference(fast.hidden_times, out.hidden_times) < ENGINE_TOL
    assert max_abs_difference(scanned.logits, out.logits) < ENGINE_TOL
    assert max_abs_difference(scanned.hidden_times, out.hidden_times) < ENGINE_TOL
    # the same in window-relative times t_max - t, as engine and closed form compute them
    assert max_abs_difference(fast.hidden_values, out.hidden_values) < ENGINE_TOL
    assert max_abs_difference(scanned.hidden_values, out.hidden_values) < ENGINE_TOL
    assert max_abs_difference(sim.logits, out.logits) < TOL
    assert max_abs_difference(sim.hidden_times, out.hidden_times) < TOL
    # each hidden layer encodes the canonical ReLU network's activations: x = t_max - t
    record: list[torch.Tensor] = []
    net.mapping.chain.forward((x - input_range[0]) / (input_range[1] - input_range[0]), record)
    values = [w.t_max - t for t, w in zip(out.hidden_times, net.windows.layers(), strict=False)]
    assert max_abs_difference(values, record) < TOL
    # and the network actually uses its neurons: some spike, some stay silent
    assert 0 < sum(int((v > 0).sum()) for v in values) < sum(v.numel() for v in values)


@pytest.mark.parametrize("neuron", NEURONS)
@pytest.mark.parametrize("padding", [0, 1, 2])
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("kernel", [1, 3, 5])
def test_conv_kernel_stride_padding(kernel: int, stride: int, padding: int, neuron: str) -> None:
    """BN after ReLU (negative scales) folded across the variable conv's zero padding (border
    biases), BN before ReLU, BN after ReLU before a max pool (min pooling for negative scales),
    Flatten, BatchNorm1d, input range with p != 0."""
    model = nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1),
        nn.ReLU(),
        nn.BatchNorm2d(4),
        nn.Conv2d(4, 6, kernel, stride=stride, padding=padding),
        nn.BatchNorm2d(6),
        nn.ReLU(),
        nn.BatchNorm2d(6),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.LazyLinear(16),
        nn.BatchNorm1d(16),
        nn.ReLU(),
        nn.Dropout(0.3),
        nn.Linear(16, 10),
    )
    x = inputs((2, 12, 12), lo=-1.0, hi=2.0)
    model(x.float())  # materialise the lazy layer
    model = prepare(model, seed=kernel * 100 + stride * 10 + padding)
    check_exact(model, x, neuron, input_range=(-1.0, 2.0))


POOLING_MODELS = {
    "maxpool-stride-padding": lambda: nn.Sequential(
        nn.Conv2d(1, 4, 3),
        nn.ReLU(),
        nn.BatchNorm2d(4),
        nn.MaxPool2d(3, stride=2, padding=1),
        nn.Conv2d(4, 5, 3, padding=1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(5 * 4 * 4, 7),
    ),
    "avgpool-then-linear": lambda: nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.ReLU(),
        nn.BatchNorm2d(4),
        nn.AvgPool2d(2),
        nn.Flatten(),
        nn.Linear(4 * 5 * 5, 6),
    ),
    "avgpool-padded-then-conv": lambda: nn.Sequential(
        nn.Conv2d(1, 3, 3),
        nn.ReLU(),
        nn.AvgPool2d(3, stride=1, padding=1),
        nn.BatchNorm2d(3),
        nn.Conv2d(3, 4, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(4 * 4 * 4, 5),
    ),
    "maxpool-then-avgpool": lambda: nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.AvgPool2d(2),
        nn.AvgPool2d(1),
        nn.Flatten(),
        nn.Linear(4 * 2 * 2, 5),
    ),
    "pool-before-relu": lambda: nn.Sequential(  # ReLU commutes with max pooling: hoisted
        nn.Conv2d(1, 4, 3, padding=1),
        nn.MaxPool2d(2),
        nn.ReLU(),
        nn.Conv2d(4, 4, 3),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(4 * 3 * 3, 5),
    ),
    "bn-after-pool-before-relu": lambda: nn.Sequential(  # BN folded back across the pool
        nn.Conv2d(1, 4, 3, padding=1),
        nn.MaxPool2d(2),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(4 * 5 * 5, 5),
    ),
    "grouped-dilated-same": lambda: nn.Sequential(
        nn.Conv2d(2, 4, 4, padding="same", bias=False),
        nn.ReLU(),
        nn.BatchNorm2d(4, affine=False),
        nn.Conv2d(4, 6, 3, padding=2, dilation=2, groups=2),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(6 * 10 * 10, 4, bias=False),
    ),
    "conv-output-layer": lambda: nn.Sequential(
        nn.Conv2d(1, 4, 3, stride=2),
        nn.ReLU(),
        nn.BatchNorm2d(4),
        nn.Conv2d(4, 3, 4),
        nn.Flatten(),
    ),
    "nested-containers": lambda: nn.Sequential(
        nn.Sequential(nn.Flatten(), nn.Sequential(nn.Linear(100, 20), nn.ReLU())),
        nn.Sequential(nn.Linear(20, 20), nn.BatchNorm1d(20), nn.ReLU(), nn.Identity()),
        nn.Linear(20, 3),
    ),
}


class FunctionalNet(nn.Module):
    """ReLU, flatten and dropout as functions and methods inside ``forward``."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.pool = nn.MaxPool2d(2)
        self.fc1 = nn.Linear(4 * 5 * 5, 12)
        self.fc2 = nn.Linear(12, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(F.relu(self.bn(self.conv(x))))
        x = F.dropout(torch.flatten(x, 1), 0.1, self.training)
        x = self.fc1(x).relu()
        return self.fc2(torch.relu(x))


POOLING_MODELS["functional"] = FunctionalNet


@pytest.mark.parametrize("neuron", NEURONS)
@pytest.mark.parametrize("name", sorted(POOLING_MODELS))
def test_layer_arrangements(name: str, neuron: str) -> None:
    model = prepare(POOLING_MODELS[name](), seed=len(name))
    channels = 2 if name == "grouped-dilated-same" else 1
    x = inputs((channels, 10, 10))
    check_exact(model, x, neuron)
