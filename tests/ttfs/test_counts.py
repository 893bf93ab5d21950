"""Operation counts: hand-made network, agreement with the event engine's own count, alpha1
counts every connection, energy arithmetic."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from spikeforge.ttfs import EnergyModel, counts, engine, from_relu

pytestmark = pytest.mark.usefixtures("one_thread")


def test_hand_made_dense_network() -> None:
    """2 inputs -> 3 hidden -> 2 outputs. Input (1, 0): one input spike reaching 3 hidden
    neurons; hidden activations relu(W x + b) = (1, 0, 2): two hidden spikes reaching 2 outputs
    each. ReLU MACs: 2*3 + 3*2 = 12."""
    model = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 2)).double().eval()
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[1.0, 0.0], [-1.0, 0.0], [2.0, 0.0]]))
        model[0].bias.zero_()
        model[2].weight.fill_(0.5)
        model[2].bias.zero_()
    net = from_relu(model, torch.tensor([[1.0, 1.0]], dtype=torch.float64))
    c = counts(net, torch.tensor([[1.0, 0.0]], dtype=torch.float64))
    assert [layer.spikes for layer in c.layers] == [1.0, 2.0, 0.0]
    assert [layer.synaptic_ops for layer in c.layers] == [0.0, 3.0, 4.0]
    assert [layer.relu_macs for layer in c.layers] == [0, 6, 6]
    assert c.synaptic_ops == 7.0 and c.relu_macs == 12 and c.neurons == 5
    e = EnergyModel()
    assert c.snn_energy_pj == pytest.approx(7 * e.accumulate_pj + 5 * e.mac_pj)
    assert c.relu_energy_pj == pytest.approx(12 * e.mac_pj)
    # alpha1: every neuron spikes once (forced at t_max if silent): every connection is used
    a1 = counts(from_relu(model, torch.tensor([[1.0, 1.0]], dtype=torch.float64), "alpha1"),
                torch.tensor([[1.0, 0.0]], dtype=torch.float64))  # fmt: skip
    assert [layer.synaptic_ops for layer in a1.layers] == [0.0, 6.0, 6.0]
    assert [layer.forced_spikes for layer in a1.layers] == [1.0, 1.0, 0.0]
    assert "ReLU" in a1.table() and a1.as_dict()["relu_macs"] == 12


def cnn() -> nn.Module:
    torch.manual_seed(3)
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.ReLU(),
        nn.BatchNorm2d(4),
        nn.MaxPool2d(2),
        nn.Conv2d(4, 5, 3, padding=1),
        nn.ReLU(),
        nn.AvgPool2d(2),
        nn.Flatten(),
        nn.Linear(5 * 2 * 2, 6),
        nn.ReLU(),
        nn.Linear(6, 3),
    ).double()
    model[2].weight.data.copy_(torch.tensor([1.0, -0.5, 0.8, -1.2], dtype=torch.float64))
    return model.eval()


def test_b1_synaptic_operations_equal_the_engine_events() -> None:
    """The count from spike times and pool / conv geometry (this module) equals the events the
    compiled engine actually processed, sample by sample (max pooling with negative signs,
    padding, average pooling)."""
    if not engine.is_available():
        pytest.skip(f"compiled engine unavailable: {engine.unavailable_reason()}")
    model = cnn()
    gen = torch.Generator().manual_seed(4)
    x = torch.rand(20, 1, 8, 8, generator=gen, dtype=torch.float64)
    x[x < 0.4] = 0.0  # sparse inputs
    net = from_relu(model, x)
    c = counts(net, x, batch_size=7)
    events = engine.simulate(net, x).synaptic_events
    for layer, ev in zip(c.layers[1:], events, strict=True):
        assert torch.equal(layer.synaptic_ops_per_sample, ev.to(torch.float64))
    assert 0 < c.synaptic_ops < c.relu_macs
    # alpha1 uses every connection
    a1 = counts(from_relu(model, x, "alpha1"), x)
    assert [layer.synaptic_ops for layer in a1.layers] == [float(m.relu_macs) for m in c.layers]


def test_empty_input_is_rejected() -> None:
    net = from_relu(cnn(), torch.rand(4, 1, 8, 8, dtype=torch.float64))
    with pytest.raises(ValueError, match="at least one input"):
        counts(net, torch.zeros(0, 1, 8, 8, dtype=torch.float64))
