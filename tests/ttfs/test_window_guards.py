"""Alpha1 thresholds depend on the windows: changing the windows with ``set_widths``
re-derives them (the network stays exact), changing them in place makes the network refuse to
run (closed form, Python simulator and compiled engine alike)."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from spikeforge.metrics import max_abs_difference
from spikeforge.ttfs import engine, from_relu
from spikeforge.ttfs.events import simulate
from spikeforge.ttfs.layers import StaleWindowError

pytestmark = pytest.mark.usefixtures("one_thread")


def mapped(neuron: str) -> tuple[nn.Module, torch.nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 3, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(27, 10),
        nn.ReLU(),
        nn.Linear(10, 4),
    )
    model = model.double().eval()
    x = torch.rand(16, 1, 6, 6, dtype=torch.float64)
    return model, from_relu(model, x, neuron=neuron), x


@pytest.mark.parametrize("neuron", ["b1", "alpha1"])
def test_set_widths_keeps_the_network_exact(neuron: str) -> None:
    model, net, x = mapped(neuron)
    before = net(x)
    net.windows.set_widths(net.windows.widths * torch.tensor([1.7, 2.5], dtype=torch.float64))
    after = net.run(x)
    assert net.window_violations(after.hidden_times) == [0, 0]
    assert max_abs_difference(after.logits, model(x)) < 1e-9
    assert max_abs_difference(after.logits, before) < 1e-9
    assert max_abs_difference(simulate(net, x).logits, after.logits) < 1e-9
    if engine.is_available():
        assert max_abs_difference(engine.simulate(net, x).logits, after.logits) < 1e-12
    # and back again
    net.windows.set_widths(net.windows.widths / torch.tensor([1.7, 2.5], dtype=torch.float64))
    assert max_abs_difference(net(x), before) < 1e-12


def test_a_copy_re_derives_its_own_thresholds() -> None:
    model, net, x = mapped("alpha1")
    twin = copy.deepcopy(net)
    theta = net.layers[0].theta.detach().clone()
    twin.windows.set_widths(twin.windows.widths * 2)
    assert torch.equal(net.layers[0].theta, theta)  # the original is untouched
    assert max_abs_difference(twin(x), model(x)) < 1e-9
    assert max_abs_difference(net(x), model(x)) < 1e-9


def test_in_place_window_change_refuses_to_run() -> None:
    model, net, x = mapped("alpha1")
    with torch.no_grad():
        net.windows.widths.mul_(2)
    with pytest.raises(StaleWindowError, match="set_widths"):
        net(x)
    with pytest.raises(StaleWindowError, match="set_widths"):
        simulate(net, x)
    if engine.is_available():
        with pytest.raises(ValueError, match="set_widths"):
            engine.simulate(net, x)
    # a B1 network derives its thresholds from the windows at every call: no guard needed
    model, b1, x = mapped("b1")
    with torch.no_grad():
        b1.windows.widths.mul_(2)
    assert max_abs_difference(b1(x), model(x)) < 1e-9
