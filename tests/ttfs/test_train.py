"""B1 TTFS networks train exactly like their ReLU networks; alpha1 ones do not (P2 §7)."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from spikeforge.data import load_digits_split
from spikeforge.training import TrainConfig
from spikeforge.ttfs import from_relu
from spikeforge.ttfs.train import grow_windows, train_b1

STEPS = 100


def _setup():
    split = load_digits_split()
    x = torch.from_numpy(split.x_train).flatten(1)
    y = torch.from_numpy(split.y_train)
    torch.manual_seed(0)
    relu = nn.Sequential(
        nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 16), nn.ReLU(), nn.Linear(16, 10)
    ).double()
    gen = torch.Generator().manual_seed(1)
    batches = [torch.randint(0, x.shape[0], (32,), generator=gen) for _ in range(STEPS)]
    return relu, x, y, batches


def _train(model: nn.Module, x, y, batches, after_step=None) -> None:
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for idx in batches:
        opt.zero_grad()
        if after_step is None:
            loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
        else:
            out = model.run(x[idx])
            loss = nn.functional.cross_entropy(out.logits, y[idx])
        loss.backward()
        opt.step()
        if after_step is not None:
            after_step(out)


def _relu_params(relu: nn.Sequential) -> list[torch.Tensor]:
    return [p for m in relu if isinstance(m, nn.Linear) for p in (m.weight, m.bias)]


def test_b1_training_trajectory_equals_relu() -> None:
    relu, x, y, batches = _setup()
    snn = from_relu(relu, x, neuron="b1")
    widths_before = snn.windows.widths.clone()
    _train(relu, x, y, batches)
    _train(snn, x, y, batches, after_step=lambda out: grow_windows(snn, out.hidden_times))
    snn_params = [p for layer in snn.layers for p in (layer.synapses.weight, layer.bias)]
    diff = max(
        float((a - b).abs().max()) for a, b in zip(snn_params, _relu_params(relu), strict=True)
    )
    assert diff < 1e-9
    moved = max(
        float((a - b).abs().max())
        for a, b in zip(_relu_params(relu), _relu_params(_setup()[0]), strict=True)
    )
    assert moved > 1e-2  # the networks did train
    assert bool((snn.windows.widths >= widths_before).all())  # windows only grow


def test_alpha1_training_trajectory_diverges_from_relu() -> None:
    relu, x, y, batches = _setup()
    snn = from_relu(copy.deepcopy(relu), x, neuron="alpha1")  # "smart" init: mapped ANN
    assert float((snn(x) - relu(x)).abs().max()) < 1e-9  # equal at initialisation
    _train(relu, x, y, batches)
    _train(snn, x, y, batches, after_step=lambda out: None)
    # compare functions (the parametrisations differ): alpha1 no longer equals the ReLU run
    assert float((snn(x) - relu(x)).abs().max()) > 1e-2


def test_grow_windows_only_grows_and_rechains() -> None:
    relu, x, _, _ = _setup()
    snn = from_relu(relu, x, neuron="b1")
    out = snn.run(x)
    before = snn.windows.widths.clone()
    assert grow_windows(snn, out.hidden_times)  # 10x the largest activation > 1.5x
    assert torch.allclose(snn.windows.widths, 10 * before / 1.5)
    assert not grow_windows(snn, snn.run(x).hidden_times, factor=1.0)


class Interrupt(Exception):
    pass


def test_train_b1_resumes_exactly_after_an_interruption(tmp_path) -> None:
    relu, x, y, _ = _setup()
    x, y = x[:200], y[:200]
    cfg = TrainConfig(
        epochs=3, batch_size=32, lr=1e-3, schedule="exponential", decay_steps=5, progress=False
    )
    reference = from_relu(relu, x, neuron="b1")
    train_b1(reference, x, y, cfg)

    net = from_relu(relu, x, neuron="b1")
    calls = {"n": 0}
    original = net.run

    def crashing_run(xb):
        calls["n"] += 1
        if calls["n"] > 7 + 4:  # 7 steps per epoch: crash inside the second epoch
            raise Interrupt
        return original(xb)

    net.run = crashing_run
    ckpt = tmp_path / "b1.pt"
    with pytest.raises(Interrupt):
        train_b1(net, x, y, cfg, checkpoint=ckpt)
    resumed = from_relu(relu, x, neuron="b1")
    log = train_b1(resumed, x, y, cfg, checkpoint=ckpt)
    assert len(log.losses) == 3
    for (name, a), b in zip(
        reference.state_dict().items(), resumed.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), name
    assert bool((reference.windows.widths > from_relu(relu, x).windows.widths).any())
    with pytest.raises(ValueError, match="B1"):
        train_b1(from_relu(relu, x, neuron="alpha1"), x, y, cfg)
