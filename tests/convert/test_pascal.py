"""PASCAL networks equal their QCFS networks (spec §9.2, §9.5): fast path and step-by-step
reference, float64 to 1e-9 and float32 predictions; the drain length and the bias rescaling are
both necessary; spike and operation counts agree between the two computations."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import Tensor, nn

from spikeforge.convert import chain_latency, to_pascal

pytestmark = pytest.mark.usefixtures("one_thread")

Factory = Callable[..., tuple[nn.Module, Tensor]]
KINDS = ["mlp", "cnn", "resnet"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("seed", [0, 1])
def test_fast_path_and_reference_equal_the_qcfs_network(
    network: Factory, kind: str, seed: int
) -> None:
    qnet, x = network(kind, seed=seed)
    snn = to_pascal(qnet)
    with torch.no_grad():
        expected = qnet(x)
        fast = snn(x)
        reference = snn.simulate(x)
    assert fast.shape == reference.shape == expected.shape
    assert (fast - expected).abs().max() <= 1e-9
    assert (reference - expected).abs().max() <= 1e-9
    # the networks are not trivial: several classes win and every layer uses several levels
    assert expected.argmax(-1).unique().numel() >= 2
    out = snn.run(x)
    for layer in snn.layers:
        used = out.spikes[layer.path].unique()
        assert used.numel() >= min(3, layer.levels + 1), layer


@pytest.mark.parametrize("kind", KINDS)
def test_float32_gives_the_same_predictions(network: Factory, kind: str) -> None:
    qnet, x = network(kind, dtype=torch.float32, seed=2)
    snn = to_pascal(qnet)
    with torch.no_grad():
        predicted = qnet(x).argmax(-1)
        assert torch.equal(snn(x).argmax(-1), predicted)
        assert torch.equal(snn.simulate(x).argmax(-1), predicted)


@pytest.mark.parametrize("kind", KINDS)
def test_one_drain_step_fewer_breaks_exactness(network: Factory, kind: str) -> None:
    qnet, x = network(kind)
    with torch.no_grad():
        expected = qnet(x)
        exact = to_pascal(qnet).simulate(x)
        short = to_pascal(qnet, _drain_shortfall=1).simulate(x)
    assert (exact - expected).abs().max() <= 1e-9
    assert (short - expected).abs().max() > 1e-3


@pytest.mark.parametrize("kind", KINDS)
def test_omitting_the_bias_rescaling_breaks_exactness(network: Factory, kind: str) -> None:
    qnet, x = network(kind)
    snn = to_pascal(qnet, _rescale_bias=False)
    with torch.no_grad():
        expected = qnet(x)
        assert (snn(x) - expected).abs().max() > 1e-3
        assert (snn.simulate(x) - expected).abs().max() > 1e-3


def test_residual_joins_of_different_step_counts(network: Factory) -> None:
    """Block inputs and residual branches have different step counts; the join takes the
    residual branch's (the deeper input) and adds the shortcut's sum at its first step."""
    qnet, _ = network("resnet")
    snn = to_pascal(qnet)
    steps = {layer.path: (layer.steps_in, layer.levels) for layer in snn.layers}
    assert steps == {
        "qcfs_relu": (1, 8),
        "block1.relu": (8, 2),
        "block1.relu_1": (2, 4),  # its input joins 2 (residual) and 8 (identity shortcut) steps
        "block2.relu": (4, 1),
        "block2.relu_1": (1, 4),  # joins 1 (residual) and 4 (conv shortcut) steps
    }
    assert snn.step_counts == {path: levels for path, (_, levels) in steps.items()}


def test_per_layer_levels_follow_the_qcfs_modules(network: Factory) -> None:
    qnet, x = network("mlp", levels=[1, 16, 3])
    snn = to_pascal(qnet)
    assert [layer.levels for layer in snn.layers] == [1, 16, 3]
    assert [layer.steps_in for layer in snn.layers] == [1, 1, 16]
    assert [layer.drain for layer in snn.layers] == [0, 15, 15]
    with torch.no_grad():
        assert (snn.simulate(x) - qnet(x)).abs().max() <= 1e-9


@pytest.mark.parametrize("kind", KINDS)
def test_counts_agree_between_fast_path_and_reference(network: Factory, kind: str) -> None:
    qnet, x = network(kind)
    snn = to_pascal(qnet)
    with torch.no_grad():
        fast = snn.run(x[:32])
        reference = snn.simulate(x[:32], return_stats=True)
    assert isinstance(reference.logits, Tensor)
    assert fast.spikes.keys() == reference.spikes.keys() == set(snn.step_counts)
    for path, count in fast.spikes.items():
        assert count.dtype == torch.int64
        assert torch.equal(count, reference.spikes[path])
        assert int(count.min()) >= 0 and int(count.max()) <= snn.step_counts[path]
    assert fast.synops.keys() == reference.synops.keys()
    for path, ops in fast.synops.items():
        assert torch.equal(ops, reference.synops[path])
    assert fast.macs.keys() == reference.macs.keys()
    assert fast.spikes_per_neuron() == reference.spikes_per_neuron() > 0
    assert torch.equal(fast.total_synops(), reference.total_synops())


def test_counts_on_a_hand_made_network() -> None:
    """One input feature, one QCFS neuron (L = 4) feeding a Linear with 3 outputs: the neuron's
    spike count is its QCFS level, each spike costs 3 synaptic operations, and the analog first
    layer costs its 1 x 2 weights once."""
    from spikeforge.convert import QCFS

    layer = nn.Linear(1, 2).double()
    qnet = nn.Sequential(layer, QCFS(4, init_lambda=1.0), nn.Linear(2, 3)).double()
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[1.0], [0.5]]))
        layer.bias.zero_()
    x = torch.tensor([[0.30], [0.80], [-1.0]], dtype=torch.float64)
    out = to_pascal(qnet).run(x)
    # levels: floor(4z + 1/2) clipped: z = (0.3, 0.15) -> (1, 1); (0.8, 0.4) -> (3, 2); 0 -> 0
    assert out.spikes["1"].tolist() == [[1, 1], [3, 2], [0, 0]]
    assert out.synops["2"].tolist() == [6, 15, 0]
    assert out.macs["0"].tolist() == [2, 2, 2]


def test_latency_of_a_chain_matches_the_chain_formula(network: Factory) -> None:
    qnet, _ = network("mlp", levels=[8, 2, 4])
    assert to_pascal(qnet).latency == chain_latency([8, 2, 4])


def test_latency_of_the_residual_network(network: Factory) -> None:
    """Hand count (pipelined, same-step propagation; a neuron layer with T_in input steps and L
    levels finishes ``max(T_in, L) - 1 + L`` steps after its input stream): stem 1-8;
    block1.relu 16-17 (drain 7); join 16-17 (the shortcut finished at 8); block1.relu_1 21-24;
    block2.relu 28-28; join 28-28; block2.relu_1 32-35. Sequential: 8, +8+7+2, +2+3+4, +4+3+1,
    +1+3+4, +4 (output integration) = 54."""
    qnet, _ = network("resnet")
    latency = to_pascal(qnet).latency
    assert (latency.pipelined, latency.sequential) == (35, 54)


def test_t_eff_uses_levels_and_fan_in(network: Factory) -> None:
    qnet, _ = network("mlp", levels=[8, 2, 4])
    teff = to_pascal(qnet).t_eff
    fan_ins = [10, 24, 20]
    expected = [
        t * (1 + (5 * t - 2) * (4 / (3 * f))) / (1 + t * 4 / (3 * f))
        for t, f in zip([8, 2, 4], fan_ins, strict=True)
    ]
    assert list(teff.per_layer.values()) == pytest.approx(expected)
    assert teff.mean == pytest.approx(sum(expected) / 3)


def test_conversion_copies_parameters(network: Factory) -> None:
    qnet, x = network("cnn")
    snn = to_pascal(qnet)
    with torch.no_grad():
        before = snn(x)
        for p in qnet.parameters():
            p.add_(1.0)
        assert torch.equal(snn(x), before)
    assert not any(p.requires_grad for p in snn.parameters())


def test_double_and_float_conversions_of_the_module(network: Factory) -> None:
    qnet, x = network("mlp")
    snn = to_pascal(qnet).float()
    with torch.no_grad():
        assert snn(x.float()).dtype == torch.float32
        assert torch.equal(snn(x.float()).argmax(-1), qnet(x).argmax(-1))


def test_a_module_called_twice_is_counted_per_call() -> None:
    """A QCFS module and a Linear used twice: two neuron layers and two synaptic layers, named
    ``path`` and ``path#2``; still exact."""
    from spikeforge.convert import QCFS

    class Twice(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(4, 4)
            self.act = QCFS(3, init_lambda=1.0)
            self.out = nn.Linear(4, 2)

        def forward(self, x: Tensor) -> Tensor:
            return self.out(self.act(self.fc(self.act(self.fc(x)))))

    qnet = Twice().double()
    x = torch.randn(50, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    snn = to_pascal(qnet)
    assert snn.step_counts == {"act": 3, "act#2": 3}
    with torch.no_grad():
        out = snn.simulate(x, return_stats=True)
        assert (out.logits - qnet(x)).abs().max() <= 1e-9
    assert set(out.synops) == {"fc#2", "out"} and set(out.macs) == {"fc"}
