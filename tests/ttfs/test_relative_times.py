"""Window-relative closed form (spec risk 2): rounding does not grow with depth or absolute
time, and ``run()`` still reports absolute spike times."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from spikeforge.metrics import max_abs_difference
from spikeforge.ttfs import Hardware, b1_from_scratch, from_relu

pytestmark = pytest.mark.usefixtures("one_thread")


def deep_mlp(depth: int) -> nn.Module:
    torch.manual_seed(0)
    layers: list[nn.Module] = [nn.Flatten()]
    for _ in range(depth):
        layers += [nn.LazyLinear(24), nn.ReLU()]
    layers.append(nn.LazyLinear(5))
    model = nn.Sequential(*layers)
    model(torch.zeros(1, 1, 4, 4))
    return model.double().eval()


def test_b1_from_scratch_is_the_relu_network_bit_for_bit() -> None:
    """Ten hidden layers with P2's from-scratch windows (1500 tau_c each, absolute times up to
    15001): the window-relative closed form gives the ReLU logits bit for bit; the absolute-time
    path (taken under a hardware model with every constraint off) loses digits with depth."""
    model = deep_mlp(10)
    x = torch.rand(64, 1, 4, 4, dtype=torch.float64)
    net = b1_from_scratch(model, (1, 4, 4))
    assert net.latency > 15000
    with torch.no_grad():
        reference = model(x)
        relative = net(x)
        net.hardware = Hardware()
        absolute = net(x)
    assert torch.equal(relative, reference)
    assert max_abs_difference(absolute, reference) > 1e-14  # rounding of times ~ 15000 * eps


@pytest.mark.parametrize("neuron", ["b1", "alpha1"])
def test_run_reports_absolute_times(neuron: str) -> None:
    model = deep_mlp(3)
    x = torch.rand(32, 1, 4, 4, dtype=torch.float64)
    net = from_relu(model, x, neuron=neuron)
    with torch.no_grad():
        out = net.run(x)
        net.hardware = Hardware()  # the absolute-time path
        absolute = net.run(x)
    assert torch.equal(out.input_times, 1.0 - x)
    for t, a, win in zip(
        out.hidden_times, absolute.hidden_times, net.windows.layers(), strict=False
    ):
        assert bool((t <= win.t_max).all()) and bool((t >= win.t_min).all())
        assert max_abs_difference(t, a) < 1e-12
        assert bool((t == win.t_max).any())  # silent neurons at exactly t_max
    assert max_abs_difference(out.logits, absolute.logits) < 1e-12
