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


def relu_activations(model: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """The outputs of every ``nn.ReLU`` of ``model`` on ``x`` (forward hooks)."""
    record: list[torch.Tensor] = []
    hooks = [
        m.register_forward_hook(lambda _m, _i, out: record.append(out.detach().clone()))
        for m in model.modules()
        if isinstance(m, nn.ReLU)
    ]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in hooks:
            h.remove()
    return record


def test_engine_window_relative_times_do_not_round_with_absolute_time() -> None:
    """Ten B1 layers with 1500 tau_c windows (t_max up to 15001, an ulp there 1.8e-12): the
    compiled engine's window-relative times ``t_max - t`` equal the ReLU network's activations
    (an independent reference: the torch model itself, through hooks) and the closed form's
    to far below an ulp of the absolute times; its absolute times are ``t_max`` minus them."""
    from spikeforge.ttfs import engine
    from spikeforge.ttfs.evaluate import evaluate_mapping

    if not engine.is_available():
        pytest.skip(f"compiled TTFS engine unavailable: {engine.unavailable_reason()}")
    model = deep_mlp(10)
    x = torch.rand(64, 1, 4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    net = b1_from_scratch(model, (1, 4, 4))
    sim = engine.simulate(net, x)
    with torch.no_grad():
        closed = net.run(x)
    activations = relu_activations(model, x)
    wins = net.windows.layers()
    assert wins[-2].t_max > 15000
    assert len(sim.hidden_values) == len(activations) == 10
    assert sum(int((a > 0).sum()) for a in activations) > 0  # neurons spike in every run
    assert max_abs_difference(sim.hidden_values, activations) < 1e-13
    assert max_abs_difference(sim.hidden_values, closed.hidden_values) < 1e-13
    assert max_abs_difference(sim.logits, model(x).detach()) < 1e-13
    for t, v, win in zip(sim.hidden_times, sim.hidden_values, wins, strict=False):
        assert torch.equal(t, win.t_max - v)
    # evaluate_mapping states the window-relative figure, and the absolute one beside it
    y = torch.zeros(64, dtype=torch.long)
    ev = evaluate_mapping(net, x, y, model(x).detach(), operation_counts=False, engine="compiled")
    assert ev.event_vs_closed_window_relative == ev.event_vs_closed < 1e-13
    assert ev.event_vs_closed_absolute is not None and ev.event_vs_closed_absolute < 1e-11
    assert ev.max_error < 1e-13 and ev.event_max_error < 1e-13  # window-relative, as computed
