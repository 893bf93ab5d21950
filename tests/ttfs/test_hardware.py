"""Hardware constraints of TTFS networks (spec ``ttfs.md`` §10): fake quantisation, the
hardware model in the closed form, latency budgets, evaluation and fine-tuning, the sweeps."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

from spikeforge.data import load_digits_split
from spikeforge.metrics import max_abs_difference
from spikeforge.training import TrainConfig, train_classifier
from spikeforge.ttfs import from_relu
from spikeforge.ttfs.events import simulate
from spikeforge.ttfs.finetune import (
    _quantile,
    evaluate_hardware,
    finetune_hardware,
    quantile_windows,
)
from spikeforge.ttfs.hardware import Hardware, fake_quantize
from spikeforge.ttfs.network import TTFSNetwork

# --- fixtures -----------------------------------------------------------------------------------


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def digits():
    split = load_digits_split()
    return (
        torch.from_numpy(split.x_train),
        torch.from_numpy(split.y_train),
        torch.from_numpy(split.x_test),
        torch.from_numpy(split.y_test),
    )


@pytest.fixture(scope="module")
def relu(digits) -> nn.Sequential:
    """A trained FC net 64-32-16-10 on sklearn digits (float64)."""
    x, y, _, _ = digits
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 16), nn.ReLU(), nn.Linear(16, 10)
    ).double()
    cfg = TrainConfig(epochs=20, batch_size=32, lr=3e-3, progress=False)
    train_classifier(model, x, y, cfg)
    model.zero_grad(set_to_none=True)
    return model


def linears(model: nn.Sequential) -> list[nn.Linear]:
    return [m for m in model if isinstance(m, nn.Linear)]


def reference_forward(model: nn.Sequential, x: torch.Tensor, widths: list[float]) -> list:
    """Plain torch: hidden activations ``min(max(W x + b, 0), B_n)`` and the logits."""
    h = x.flatten(1)
    acts = []
    layers = linears(model)
    for layer, width in zip(layers[:-1], widths, strict=True):
        h = (h @ layer.weight.t() + layer.bias).clamp(0.0, width)
        acts.append(h)
    return [*acts, h @ layers[-1].weight.t() + layers[-1].bias]


def values(net: TTFSNetwork, hidden_times: list[torch.Tensor]) -> list[torch.Tensor]:
    return [w.t_max - t for t, w in zip(hidden_times, net.windows.layers(), strict=False)]


# --- fake quantisation --------------------------------------------------------------------------


def test_fake_quantize_levels_step_range_and_rounding() -> None:
    v = torch.linspace(-1.0, 4.0, 10001, dtype=torch.float64)
    q = fake_quantize(v, 0.0, 3.0, 2)  # step 1: levels 0, 1, 2, 3
    assert set(q.tolist()) == {0.0, 1.0, 2.0, 3.0}
    assert float(q.min()) == 0.0 and float(q.max()) == 3.0  # clamped to the explicit range
    inside = (v >= 0) & (v <= 3)
    assert float((q - v)[inside].abs().max()) <= 0.5 + 1e-12  # nearest level
    # ties go to the even level index (torch.round: half to even)
    ties = fake_quantize(torch.tensor([0.5, 1.5, 2.5], dtype=torch.float64), 0.0, 3.0, 2)
    assert ties.tolist() == [0.0, 2.0, 2.0]
    for bits in (1, 2, 3, 5, 8):
        lo, hi = -0.7, 1.3
        q = fake_quantize(torch.linspace(lo - 1, hi + 1, 20001, dtype=torch.float64), lo, hi, bits)
        levels = torch.unique(q)
        assert levels.numel() == 2**bits
        assert float(levels[0]) == lo and abs(float(levels[-1]) - hi) < 1e-12
        step = (hi - lo) / (2**bits - 1)
        assert torch.allclose(levels.diff(), torch.full_like(levels.diff(), step), atol=1e-12)


def test_fake_quantize_straight_through_gradient_mask() -> None:
    v = torch.tensor([-2.0, -1.0, -0.3, 0.0, 0.49, 1.0, 1.5], dtype=torch.float64)
    v.requires_grad_(True)
    fake_quantize(v, -1.0, 1.0, 3).mul(torch.arange(1.0, 8.0, dtype=torch.float64)).sum().backward()
    assert v.grad.tolist() == [0.0, 2.0, 3.0, 4.0, 5.0, 6.0, 0.0]  # 1 on [lo, hi], 0 outside


@pytest.mark.parametrize(
    ("lo", "hi", "bits", "match"),
    [
        (0.0, 1.0, 0, "bits"),
        (0.0, 1.0, 2.0, "bits"),
        (0.0, 1.0, True, "bits"),
        (1.0, 1.0, 2, "lo < hi"),
        (1.0, 0.0, 2, "lo < hi"),
        (0.0, float("nan"), 2, "lo < hi"),
    ],
)
def test_fake_quantize_validation(lo, hi, bits, match) -> None:
    with pytest.raises(ValueError, match=match):
        fake_quantize(torch.zeros(3), lo, hi, bits)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"noise_std": -0.1}, "noise_std"),
        ({"noise_std": float("inf")}, "noise_std"),
        ({"time_bits": 0}, "time_bits"),
        ({"weight_bits": 1.5}, "weight_bits"),
        ({"weight_range": (1.0, -1.0)}, "weight_range"),
        ({"weight_range": (0.0,)}, "weight_range"),
        ({"saturate": 1}, "saturate"),
    ],
)
def test_hardware_validation(kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        Hardware(**kwargs)


# --- the hardware model in the closed form ------------------------------------------------------


def test_no_hardware_is_bit_identical_and_state_dicts_load(relu, digits) -> None:
    x = digits[0]
    net = from_relu(relu, x, neuron="b1")
    with torch.no_grad():
        t = net.encode(x)  # the closed form without any hardware code
        for layer, win in zip(net.layers, net.windows.layers(), strict=True):
            t = layer(t, win)
        plain = net(x)  # window-relative closed form: the same to rounding
        assert max_abs_difference(plain, t) < 1e-12
        net.hardware = Hardware()  # every constraint off: the absolute-time path, bit for bit
        assert torch.equal(net(x), t)
        net.hardware = Hardware(weight_bits=2, time_bits=2, noise_std=1.0, saturate=True)
        assert max_abs_difference(net(x), plain) > 1e-3
        net.hardware = None
        assert torch.equal(net(x), plain)
        out = net.run(x)
        assert net.window_violations(out.hidden_times) == [0, 0]
        assert torch.equal(simulate(net, x[:20]).logits, net.simulate(x[:20], engine="python"))
        # an exact network's state dict loads into one with hardware (no extra entries)
        hw = Hardware(weight_bits=3, weight_range=(-0.5, 0.5))
        target = copy.deepcopy(net)
        for p in target.parameters():
            p.zero_()
        target.hardware = hw
        target.load_state_dict(net.state_dict())
        net.hardware = hw
        assert torch.equal(target(x), net(x))
    with pytest.raises(ValueError, match="does not model hardware"):
        net.simulate(x[:2])
    with pytest.raises(TypeError, match="Hardware"):
        net.hardware = {"noise_std": 1.0}


@pytest.mark.parametrize("bits", [1, 2, 3])
def test_time_quantisation_levels_per_layer(relu, digits, bits) -> None:
    x = digits[0]
    net = from_relu(relu, x, neuron="b1")
    net.hardware = Hardware(time_bits=bits)
    seen: list[torch.Tensor] = []
    hooks = [
        layer.register_forward_pre_hook(lambda _m, args: seen.append(args[1].t_min - args[0]))
        for layer in net.layers
    ]
    with torch.no_grad():
        net(x)
    for h in hooks:
        h.remove()
    windows = net.windows.layers()
    for n, (v, win) in enumerate(zip(seen, windows, strict=True)):
        levels = torch.unique(v)
        assert levels.numel() <= 2**bits
        width = win.t_min - win.t_min_prev  # B_{n-1}, 1 for the input layer
        # a difference of two cumulative sums: B_{n-1} up to one rounding of the larger sum
        expected = 1.0 if n == 0 else float(net.windows.widths[n - 1])
        assert math.isclose(width, expected, rel_tol=0.0, abs_tol=4 * math.ulp(win.t_min))
        k = levels / (width / (2**bits - 1))  # on the grid k * step, k in 0 .. 2**bits - 1
        assert torch.allclose(k, k.round(), atol=1e-9)
        assert float(levels.min()) >= -1e-12 and float(levels.max()) <= width + 1e-12


def test_noise_only_on_hidden_times_after_the_clip(relu, digits) -> None:
    x = digits[0][:200]
    net = from_relu(relu, x, neuron="b1")
    sigma = 0.3
    with torch.no_grad():
        net.hardware = Hardware()  # every constraint off: the same (absolute-time) path
        exact = net.run(x)
        net.hardware = Hardware(noise_std=sigma)
        noisy = net.run(x, generator=torch.Generator().manual_seed(7))
    assert torch.equal(noisy.input_times, exact.input_times)  # inputs are not perturbed
    gen = torch.Generator().manual_seed(7)
    draw = [torch.randn(t.shape, generator=gen, dtype=t.dtype) for t in exact.hidden_times]
    wins = net.windows.layers()
    # layer 1: the clipped exact times plus the first draw, silent neurons included
    assert torch.equal(noisy.hidden_times[0], exact.hidden_times[0] + sigma * draw[0])
    silent = exact.hidden_times[0] == wins[0].t_max
    assert 0 < int(silent.sum()) and bool((noisy.hidden_times[0][silent] != wins[0].t_max).all())
    # layer 2: its closed form (clipped at t_max) on the noisy layer-1 times, plus the second draw
    with torch.no_grad():
        clipped = net.layers[1](noisy.hidden_times[0], wins[1])
    assert float(clipped.max()) <= wins[1].t_max
    assert torch.equal(noisy.hidden_times[1], clipped + sigma * draw[1])
    # without a generator the noise comes from torch's global RNG (checkpoints resume exactly)
    torch.manual_seed(7)
    with torch.no_grad():
        global_rng = net.run(x)
    assert torch.equal(global_rng.logits, noisy.logits)


def test_saturating_clamp_matches_a_plain_clamped_relu_network(relu, digits) -> None:
    x, y = digits[0], digits[1]
    relu.zero_grad(set_to_none=True)
    net = from_relu(relu, x, neuron="b1")
    net.windows.set_widths(net.windows.widths * 0.4)  # budgets below the largest activations
    net.hardware = Hardware(saturate=True)
    widths = net.windows.widths.tolist()
    out = net.run(x)
    ref = reference_forward(relu, x, widths)
    for v, r, width in zip(values(net, out.hidden_times), ref[:-1], widths, strict=True):
        assert float((v - r).abs().max()) < 1e-12
        assert float(v.max()) <= width + 1e-12
        assert int((r == width).sum()) > 0  # some neurons do saturate
    assert float((out.logits - ref[-1]).abs().max()) < 1e-12
    # gradients: 0 on saturated neurons, exactly as the clamped ReLU network
    loss_fn = nn.CrossEntropyLoss()
    loss_fn(out.logits, y).backward()
    loss_fn(ref[-1], y).backward()
    snn = [p.grad for layer in net.layers for p in (layer.synapses.weight, layer.bias)]
    ann = [p.grad for layer in linears(relu) for p in (layer.weight, layer.bias)]
    for a, b in zip(snn, ann, strict=True):
        assert float((a - b).abs().max()) < 1e-10
    relu.zero_grad(set_to_none=True)


def test_weight_quantisation_b1_and_alpha1(relu, digits) -> None:
    x = digits[0]
    for neuron in ("b1", "alpha1"):
        net = from_relu(relu, x, neuron=neuron)
        top = max(float(layer.synapses.weight.abs().max()) for layer in net.layers)
        hw = Hardware(weight_bits=3, weight_range=(-0.5 * top, 0.5 * top))
        manual = copy.deepcopy(net)
        with torch.no_grad():  # the same network with its weights replaced by quantised ones
            for layer in manual.layers:
                w = layer.synapses.weight
                w.copy_(fake_quantize(w, *hw.weight_range, 3))
                assert torch.unique(w).numel() <= 8
        full = [layer.synapses.weight.detach().clone() for layer in net.layers]
        net.hardware = hw
        logits = net(x)
        assert float((logits - manual(x)).abs().max()) < 1e-9
        if neuron == "alpha1":  # the slope uses the fan-in sum of the quantised weights
            assert torch.equal(net.layers[0].slope(), manual.layers[0].slope())
        # full-precision parameters: unchanged, updated by the optimiser, STE outside the range
        opt = torch.optim.SGD(net.parameters(), lr=1e-3)
        nn.functional.cross_entropy(logits, digits[1]).backward()
        clamped = 0
        for layer, w0 in zip(net.layers, full, strict=True):
            w = layer.synapses.weight
            assert torch.equal(w.detach(), w0)
            outside = (w0 < hw.weight_range[0]) | (w0 > hw.weight_range[1])
            clamped += int(outside.sum())
            assert bool((w.grad[outside] == 0).all())
            assert float(w.grad[~outside].abs().max()) > 0
        assert clamped > 0
        opt.step()
        moved = net.layers[0].synapses.weight.detach()
        assert torch.unique(moved).numel() > 8  # the stored weights stay full precision


def test_gradients_flow_through_every_constraint(relu, digits) -> None:
    x, y = digits[0][:256], digits[1][:256]
    net = from_relu(relu, x, neuron="b1")
    top = max(float(layer.synapses.weight.abs().max()) for layer in net.layers)
    net.hardware = Hardware(
        noise_std=0.2, time_bits=4, weight_bits=4, weight_range=(-top, top), saturate=True
    )
    nn.functional.cross_entropy(net(x), y).backward()
    for p in net.parameters():
        assert p.grad is not None and bool(torch.isfinite(p.grad).all())
        assert float(p.grad.abs().max()) > 0


# --- latency budgets ------------------------------------------------------------------------------


def test_quantile_windows_shrink_latency_layer_by_layer(relu, digits) -> None:
    x = digits[0]
    net = from_relu(relu, x, neuron="b1")
    old = net.latency
    net.hardware = Hardware(weight_bits=8, weight_range=(-2.0, 2.0))
    factor = quantile_windows(net, x, rho=0.9, zeta=0.2, batch_size=500)
    assert net.hardware == Hardware(weight_bits=8, weight_range=(-2.0, 2.0), saturate=True)
    assert factor > 1.2 and abs(factor - old / net.latency) < 1e-12
    # independent reference: quantile of the positive activations of a plain torch network
    # whose earlier layers are already clamped at their new windows (weights quantised as well)
    quantised = copy.deepcopy(relu)
    with torch.no_grad():
        for layer in linears(quantised):
            layer.weight.copy_(fake_quantize(layer.weight, -2.0, 2.0, 8))
    widths = net.windows.widths.tolist()
    for n in range(2):
        acts = reference_forward(quantised, x, [*widths[:n], float("inf"), float("inf")][:2])
        u = acts[n][acts[n] > 0]
        assert abs(widths[n] - 1.2 * float(torch.quantile(u, 0.9))) < 1e-9
    # rho = 1 with zeta = 0.5 gives the windows of the exact mapping
    again = from_relu(relu, x, neuron="b1")
    assert abs(quantile_windows(again, x, rho=1.0, zeta=0.5) - 1.0) < 1e-12
    assert torch.allclose(again.windows.widths, from_relu(relu, x).windows.widths, rtol=1e-12)
    with pytest.raises(ValueError, match="B1"):
        quantile_windows(from_relu(relu, x, neuron="alpha1"), x, rho=0.9)
    with pytest.raises(ValueError, match="rho"):
        quantile_windows(again, x, rho=0.0)


def test_quantile_subsamples_deterministically() -> None:
    v = torch.rand(100_001, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert abs(_quantile(v, 0.9, 1 << 24) - float(torch.quantile(v, 0.9))) < 1e-15
    sub = _quantile(v, 0.9, 10_000)
    assert sub == _quantile(v, 0.9, 10_000) and abs(sub - 0.9) < 0.02


# --- evaluation and fine-tuning -------------------------------------------------------------------


def test_evaluate_hardware_draws_and_spike_counts(relu, digits) -> None:
    x, y = digits[2], digits[3]
    net = from_relu(relu, digits[0], neuron="b1")
    exact = evaluate_hardware(net, x, y, repeats=5, batch_size=100)
    assert exact.accuracies == [exact.accuracy] and exact.accuracy_std == 0.0
    assert exact.accuracy == float((net(x).argmax(1) == y).double().mean())
    net.hardware = Hardware(noise_std=1.0)
    a = evaluate_hardware(net, x, y, repeats=4, seed=3, batch_size=100)
    assert len(a.accuracies) == 4 and a.accuracy_std > 0
    assert a.accuracy == pytest.approx(sum(a.accuracies) / 4)
    assert (
        a.accuracies == evaluate_hardware(net, x, y, repeats=4, seed=3, batch_size=100).accuracies
    )
    assert (
        a.accuracies != evaluate_hardware(net, x, y, repeats=4, seed=4, batch_size=100).accuracies
    )
    assert a.spikes_per_neuron == exact.spikes_per_neuron  # counted noise-free


def test_finetuning_under_noise_beats_the_mapped_network(relu, digits) -> None:
    """Genuine comparison: the same seeded noise draws (20) on the test set, the mapped
    network against a copy fine-tuned under that noise with P2's optimiser at lr 1e-3."""
    x, y, x_test, y_test = digits
    mapped = from_relu(relu, x, neuron="b1")
    # noise of the size of the typical (median) positive hidden activation
    acts = [v[v > 0] for v in values(mapped, mapped.run(x).hidden_times)]
    sigma = float(torch.cat(acts).median())
    mapped.hardware = Hardware(noise_std=sigma)
    tuned = copy.deepcopy(mapped)
    cfg = TrainConfig(epochs=5, batch_size=16, lr=1e-3, schedule="exponential", progress=False)
    finetune_hardware(tuned, x, y, cfg)
    before = evaluate_hardware(mapped, x_test, y_test, repeats=20, seed=1)
    after = evaluate_hardware(tuned, x_test, y_test, repeats=20, seed=1)
    exact = evaluate_hardware(from_relu(relu, x), x_test, y_test)
    assert before.accuracy < exact.accuracy - 0.02  # the noise does hurt
    # the gain exceeds three standard errors of the difference of the two means
    stderr = ((before.accuracy_std**2 + after.accuracy_std**2) / 20) ** 0.5
    assert after.accuracy - before.accuracy > 3 * stderr


def test_finetune_keeps_windows_fixed_under_budgets(relu, digits) -> None:
    x, y = digits[0][:256], digits[1][:256]
    cfg = TrainConfig(epochs=1, batch_size=32, lr=1e-3, progress=False)
    for hw, fixed in (
        (Hardware(saturate=True), True),
        (Hardware(time_bits=3), True),
        (Hardware(noise_std=0.1), False),
    ):
        net = from_relu(relu, x, neuron="b1")
        net.hardware = hw
        widths = net.windows.widths.clone()
        finetune_hardware(net, x, y, cfg)
        assert torch.equal(net.windows.widths, widths) == fixed
    with pytest.raises(ValueError, match="B1"):
        finetune_hardware(from_relu(relu, x, neuron="alpha1"), x, y, cfg)


@pytest.mark.parametrize("neuron", ["b1", "alpha1"])
def test_weight_and_time_quantisation_in_conv_layers(neuron) -> None:
    torch.manual_seed(3)
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.ReLU(),
        nn.AvgPool2d(2),
        nn.Conv2d(4, 6, 3),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(6 * 2 * 2, 5),
    ).double()
    x = torch.rand(16, 1, 8, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    net = from_relu(model, x, neuron=neuron)
    top = max(float(layer.synapses.weight.abs().max()) for layer in net.layers)
    hw = Hardware(weight_bits=4, weight_range=(-0.7 * top, 0.7 * top), time_bits=3)
    manual = copy.deepcopy(net)
    with torch.no_grad():
        for layer in manual.layers:
            layer.synapses.weight.copy_(fake_quantize(layer.synapses.weight, *hw.weight_range, 4))
    manual.hardware = Hardware(time_bits=3)
    net.hardware = hw
    with torch.no_grad():
        assert float((net(x) - manual(x)).abs().max()) < 1e-9
        assert not torch.equal(net(x), from_relu(model, x, neuron=neuron)(x))
