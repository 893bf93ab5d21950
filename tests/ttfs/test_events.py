"""The event-driven simulator on hand-made neurons, window violations and chunking."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from spikeforge.metrics import max_abs_difference
from spikeforge.ttfs import from_relu
from spikeforge.ttfs.events import _first_crossing, _potential_at, simulate


def test_first_crossing_by_hand() -> None:
    # bias onset at 0 (w=1), spikes at 0.2 (w=1) and 0.5 (w=2), threshold 1:
    # V(0.2) = 0.2, V(0.5) = 0.2 + 2 * 0.3 = 0.8, then slope 4: crossing at 0.5 + 0.2 / 4 = 0.55
    times = torch.tensor([[0.5, 0.2, 0.0]], dtype=torch.float64)
    weights = torch.tensor([[2.0, 1.0, 1.0]], dtype=torch.float64)
    crossing = _first_crossing(times, weights, torch.tensor([[1.0]], dtype=torch.float64))
    assert crossing.item() == pytest.approx(0.55, abs=1e-15)
    # the same neuron with a lower threshold crosses on an earlier segment: 0.1
    low = _first_crossing(times, weights, torch.tensor([[0.1]], dtype=torch.float64))
    assert low.item() == pytest.approx(0.1, abs=1e-15)
    # a net negative slope never reaches threshold
    never = _first_crossing(times, -weights, torch.tensor([[1.0]], dtype=torch.float64))
    assert never.item() == float("inf")


def test_potential_integrates_only_events_before_the_end() -> None:
    times = torch.tensor([[0.25, 3.0, 1.0]], dtype=torch.float64)
    weights = torch.tensor([[2.0, 5.0, -1.0], [1.0, 1.0, 1.0]], dtype=torch.float64)
    v = _potential_at(times, weights, t_end=2.0)
    expected = [2.0 * 1.75 - 1.0 * 1.0, 1.75 + 1.0]
    assert v[0].tolist() == pytest.approx(expected, abs=1e-15)


def test_b1_blocks_firing_before_the_window_opens() -> None:
    """Spec §5.3: W = (10, -20), x = (1, 0.5), b = 0. Without blocking, V crosses
    theta = 3 at t = 0.3 < t_min = 1 and the neuron fires although ReLU gives 0."""
    model = nn.Sequential(nn.Linear(2, 1), nn.ReLU(), nn.Linear(1, 1)).double().eval()
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[10.0, -20.0]]))
        model[0].bias.zero_()
        model[2].weight.fill_(1.0)
        model[2].bias.zero_()
    calibration = torch.tensor([[0.2, 0.0], [1.0, 0.5]], dtype=torch.float64)  # X_1 = 2
    net = from_relu(model, calibration, neuron="b1", zeta=0.5)
    win = net.windows.layer(1)
    assert (win.t_min, win.width) == (1.0, 3.0)
    x = torch.tensor([[1.0, 0.5]], dtype=torch.float64)
    sim = simulate(net, x)
    assert sim.hidden_times[0].item() == win.t_max  # silent: value 0, as ReLU
    assert sim.logits.item() == 0.0
    # the unblocked dynamics would have fired early
    t_in = net.encode(x)
    free = _first_crossing(t_in, net.layers[0].synapses.weight, net.layers[0].threshold(win)[None])
    assert free.item() == pytest.approx(0.3, abs=1e-12)


@pytest.mark.parametrize("neuron", ["b1", "alpha1"])
def test_negative_zeta_reports_window_violations(neuron: str) -> None:
    torch.manual_seed(0)
    model = (
        nn.Sequential(
            nn.Conv2d(1, 4, 3, padding=1),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(64, 8),
            nn.ReLU(),
            nn.Linear(8, 3),
        )
        .double()
        .eval()
    )
    x = torch.rand(32, 1, 4, 4, dtype=torch.float64)
    net = from_relu(model, x, neuron=neuron, zeta=-0.4)
    out = net.run(x)
    sim = simulate(net, x)
    closed = net.window_violations(out.hidden_times)
    assert closed[0] > 0 and sim.early_spikes[0] > 0
    # the physical (event) network is no longer exact, and this is visible in its output
    assert max_abs_difference(sim.logits, model(x)) > 1e-6
    # with the default margin the same inputs are exact and violation-free
    safe = from_relu(model, x, neuron=neuron)
    assert sum(simulate(safe, x).early_spikes) == 0


def test_chunking_does_not_change_results() -> None:
    torch.manual_seed(1)
    model = (
        nn.Sequential(
            nn.Conv2d(1, 3, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(27, 4)
        )
        .double()
        .eval()
    )
    x = torch.rand(10, 1, 8, 8, dtype=torch.float64)
    for neuron in ("b1", "alpha1"):
        net = from_relu(model, x, neuron=neuron)
        whole = simulate(net, x)
        pieces = simulate(net, x, max_elements=1)
        assert torch.equal(whole.logits, pieces.logits)
        assert all(
            torch.equal(a, b) for a, b in zip(whole.hidden_times, pieces.hidden_times, strict=True)
        )


def test_float32_network_gives_the_same_predictions() -> None:
    torch.manual_seed(2)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    model = model.double().eval()
    x = torch.rand(200, 1, 8, 8, dtype=torch.float64)
    net = from_relu(model, x).to(torch.float32)
    logits = net(x.float())
    assert logits.dtype == torch.float32
    assert torch.equal(logits.argmax(1), model(x).argmax(1))
    assert max_abs_difference(logits.double(), model(x)) < 1e-4
