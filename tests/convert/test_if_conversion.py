"""Plain QCFS -> IF conversion (spec §2, §9.1, §9.4): exact for one layer at T = L, zero mean
error at T != L, never exact for a deep network; the output's time axis is a running mean."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import Tensor, nn

from spikeforge.convert import QCFS, IFOutput, qcfs, to_if, to_pascal

pytestmark = pytest.mark.usefixtures("one_thread")

Factory = Callable[..., tuple[nn.Module, Tensor]]


@pytest.mark.parametrize("levels", [1, 2, 4, 8])
def test_one_layer_is_exact_at_t_equal_l(network: Factory, levels: int) -> None:
    """A single hidden QCFS layer between two Linear layers: the IF-SNN's mean output after
    T = L steps equals the QCFS network's output."""
    g = torch.Generator().manual_seed(levels)
    qnet = nn.Sequential(nn.Linear(6, 16), QCFS(levels, init_lambda=1.0), nn.Linear(16, 3))
    qnet = qnet.double().eval()
    x = 2 * torch.randn(300, 6, generator=g, dtype=torch.float64)
    with torch.no_grad():
        outputs = to_if(qnet, backend="reference").run(x, levels)
        expected = qnet(x)
    assert outputs.shape == (levels, 300, 3)
    assert (outputs[levels - 1] - expected).abs().max() <= 1e-9


@pytest.mark.parametrize("levels", [2, 4, 8])
def test_single_neurons_at_t_equal_and_unequal_l(levels: int) -> None:
    """Spec §9.1: constant input z to IF neurons (v0 = theta/2, reset by subtraction, spikes of
    theta): theta * n / T equals QCFS(z) at T = L; at T != L it is not exact, but the mean error
    over z spread across the range is zero (within 5 standard errors)."""
    theta = 0.8
    g = torch.Generator().manual_seed(levels)
    z = theta * (1.5 * torch.rand(100_000, 1, generator=g, dtype=torch.float64) - 0.25)
    neuron = QCFS(levels, init_lambda=theta).double()
    ifnet = to_if(neuron, backend="reference")
    with torch.no_grad():
        expected = qcfs(z, neuron.lam, levels)
        for steps in (levels // 2, levels, levels + 1, 2 * levels, 3 * levels - 1):
            error = ifnet.run(z, steps)[-1] - expected
            if steps == levels:
                assert error.abs().max() <= 1e-12
                continue
            assert float((error.abs() < 1e-12).double().mean()) < 0.99
            standard_error = float(error.std()) / error.numel() ** 0.5
            assert abs(float(error.mean())) < 5 * standard_error


def test_deep_network_is_not_exact_at_any_t(network: Factory) -> None:
    """Spec §2.4 / §9.4: with three QCFS layers (L = 4) the IF-SNN disagrees with the QCFS network
    at T = L and still at T = 256 (unevenness error), while PASCAL is exact on the same network."""
    qnet, x = network("mlp", levels=4)
    with torch.no_grad():
        expected = qnet(x)
        outputs = to_if(qnet, backend="reference").run(x, 256)
        pascal = to_pascal(qnet)(x)
    assert (pascal - expected).abs().max() <= 1e-9
    predicted = expected.argmax(-1)
    agreement = (outputs.argmax(-1) == predicted).double().mean(-1)
    assert (outputs[3] - expected).abs().max() > 1e-2
    assert float(agreement[3]) < 1.0
    assert float(agreement[255]) < 1.0
    assert float(agreement[255]) > float(agreement[0])  # more steps still help


def test_output_is_the_running_mean_of_the_output_layer() -> None:
    """One IF neuron (theta = 1, v0 = 1/2) with constant input 0.3 spikes at steps 2 and 5
    (potentials 0.8, 1.1 -> 0.1, 0.4, 0.7, 1.0 -> 0): running mean 0, 1/2, 1/3, 1/4, 2/5."""
    ifnet = to_if(QCFS(4, init_lambda=1.0).double(), backend="reference")
    x = torch.tensor([[0.3]], dtype=torch.float64)
    out = ifnet.run(x, 5, return_stats=True)
    assert isinstance(out, IFOutput)
    expected = torch.tensor([0.0, 1 / 2, 1 / 3, 1 / 4, 2 / 5], dtype=torch.float64)
    assert torch.allclose(out.outputs[:, 0, 0], expected, atol=1e-15)
    assert out.spikes["0"].tolist() == [[2]]
    assert out.spikes_per_neuron() == 2.0
    # forward takes the time-first stream directly
    assert torch.equal(ifnet(x.expand(5, 1, 1)), out.outputs)


def test_counts_of_the_if_network(network: Factory) -> None:
    qnet, x = network("cnn")
    ifnet = to_if(qnet, backend="reference")
    with torch.no_grad():
        out = ifnet.run(x[:16], 8, return_stats=True)
        again = ifnet.run(x[:16], 8)
    assert torch.equal(out.outputs, again)
    assert set(out.spikes) == {"2", "6", "11"}
    assert all(int(s.max()) <= 8 for s in out.spikes.values())  # at most one spike per step
    assert set(out.macs) == {"0"} and set(out.synops) == {"4", "9", "12"}
    # the first conv (2 -> 6 channels, 3x3, padding 1, 8x8 input) runs densely at every step
    fan = 6 * 9 * 2 * 8 * 8 - 6 * 2 * (4 * 8 * 3 - 4)  # all taps minus those on the padding
    assert out.macs["0"].tolist() == [8 * fan] * 16


def test_auto_backend_equals_reference(network: Factory) -> None:
    qnet, x = network("resnet")
    with torch.no_grad():
        auto = to_if(qnet).run(x[:32], 6)
        reference = to_if(qnet, backend="reference").run(x[:32], 6)
    assert torch.allclose(auto, reference, atol=1e-12)
