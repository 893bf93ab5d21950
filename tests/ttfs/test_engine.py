"""The compiled event engine (:mod:`spikeforge.ttfs.engine`): independence from the closed
form, agreement with the Python event simulator where exactness is lost (window violations),
the time-ordered scan, errors.

Its exactness on every mapping-test network (== closed form to 1e-12) is checked in
``test_mapping.py``.
"""

from __future__ import annotations

import ast
import os
from pathlib import Path

import pytest
import torch
from torch import nn

import spikeforge.ttfs.engine as engine_module
from spikeforge.metrics import max_abs_difference
from spikeforge.ttfs import Hardware, from_relu, ir, layers
from spikeforge.ttfs import engine as engine
from spikeforge.ttfs.events import simulate as reference_simulate

pytestmark = pytest.mark.usefixtures("one_thread")

TOL = 1e-12


@pytest.fixture(autouse=True, scope="module")
def compiled() -> None:
    if not engine.is_available():
        reason = f"compiled TTFS engine unavailable: {engine.unavailable_reason()}"
        if os.environ.get("SPIKEFORGE_ALLOW_NO_KERNELS", "") not in ("", "0"):
            pytest.skip(reason)
        pytest.fail(reason + " (set SPIKEFORGE_ALLOW_NO_KERNELS=1 to skip)")


def small_cnn(seed: int, avg: bool = False) -> nn.Module:
    torch.manual_seed(seed)
    pool: nn.Module = nn.AvgPool2d(2) if avg else nn.MaxPool2d(2)
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.ReLU(),
        nn.BatchNorm2d(4),
        pool,
        nn.Conv2d(4, 6, 3),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(6, 12),
        nn.ReLU(),
        nn.Linear(12, 3),
    ).double()
    bn = model[2]
    gen = torch.Generator().manual_seed(seed)
    bn.running_mean.copy_(torch.randn(4, generator=gen, dtype=torch.float64) * 0.3)
    bn.weight.data.copy_(torch.tensor([1.0, -0.7, 1.3, -1.1], dtype=torch.float64))
    return model.eval()


def inputs(n: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, 6, 6, generator=gen, dtype=torch.float64)


def test_module_imports_no_closed_form() -> None:
    """The engine imports nothing from the closed form (layers), the IR's pooling formulas or
    the Python simulator; only the kernel build mechanism."""
    tree = ast.parse(Path(engine_module.__file__).read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            imported.add(node.module or "")
        elif isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
    spikeforge_imports = {m for m in imported if m.startswith("spikeforge")}
    assert spikeforge_imports == {"spikeforge.core.kernels"}


@pytest.mark.parametrize("neuron", ["b1", "alpha1"])
@pytest.mark.parametrize("avg", [False, True])
def test_runs_with_every_closed_form_function_disabled(
    monkeypatch: pytest.MonkeyPatch, neuron: str, avg: bool
) -> None:
    """Replace every closed-form formula (thresholds, initial potentials, slopes, layer forward
    passes, synaptic products, pooling) by a function that raises: the engine still runs and
    still equals the closed form computed before."""
    model = small_cnn(3, avg)
    x = inputs(16, 4)
    net = from_relu(model, inputs(64, 5), neuron=neuron)
    expected = net.run(x)

    def broken(*args: object, **kwargs: object) -> None:
        raise AssertionError("the engine used a closed-form function")

    targets = [
        (layers.B1Layer, "threshold"),
        (layers.B1Layer, "forward"),
        (layers.Alpha1Layer, "forward"),
        (layers.Alpha1Layer, "slope"),
        (layers.B1Readout, "initial_potential"),
        (layers.B1Readout, "forward"),
        (layers.Alpha1Readout, "initial_potential"),
        (layers.Alpha1Readout, "forward"),
        (layers.TTFSLayer, "input_values"),
        (layers.Synapses, "forward"),
        (layers.Synapses, "subtract_from"),
        (layers.Synapses, "fan_in_sum"),
        (layers.Synapses, "effective_weight"),
        (layers.SpikeTimePool, "forward"),
        (layers.SpikeTimePool, "values"),
        (layers.SpikeTimeFlatten, "forward"),
        (ir.Pool, "max_or_min"),
        (ir.Pool, "avg"),
        (ir.Pool, "apply"),
        (ir, "max_min_pool"),
        (layers, "window_violations"),
    ]
    for owner, name in targets:
        monkeypatch.setattr(owner, name, broken)
    result = engine.simulate(net, x)
    assert max_abs_difference(result.logits, expected.logits) < TOL
    assert max_abs_difference(result.hidden_times, expected.hidden_times) < TOL


@pytest.mark.parametrize("neuron", ["b1", "alpha1"])
def test_time_ordered_scan_gives_the_same_times(neuron: str) -> None:
    model = small_cnn(6)
    x = inputs(24, 7)
    net = from_relu(model, inputs(64, 8), neuron=neuron)
    default = engine.simulate(net, x)
    scanned = engine.simulate(net, x, always_scan=True)
    assert max_abs_difference(default.logits, scanned.logits) < TOL
    assert max_abs_difference(default.hidden_times, scanned.hidden_times) < TOL
    if neuron == "alpha1":  # every neuron of every sample and position was scanned
        total = sum(t[0].numel() for t in default.hidden_times) * x.shape[0]
        assert sum(scanned.scanned_neurons) == total
    else:
        assert sum(scanned.scanned_neurons) == 0


@pytest.mark.parametrize("always_scan", [False, True])
@pytest.mark.parametrize("neuron", ["b1", "alpha1"])
def test_window_violations_match_the_python_simulator(neuron: str, always_scan: bool) -> None:
    """With zeta < 0 neurons cross their threshold before their window opens; the closed form
    extrapolates them, the two event simulators (independent code) agree on the physical
    spike times, the early-spike counts and the logits."""
    model = small_cnn(9)
    x = inputs(32, 10)
    net = from_relu(model, x, neuron=neuron, zeta=-0.4)
    fast = engine.simulate(net, x, always_scan=always_scan)
    slow = reference_simulate(net, x)
    assert sum(fast.early_spikes) > 0
    assert fast.early_spikes == slow.early_spikes
    assert max_abs_difference(fast.hidden_times, slow.hidden_times) < 1e-10
    assert max_abs_difference(fast.logits, slow.logits) < 1e-10
    assert max_abs_difference(fast.logits, net(x)) > 1e-6  # the closed form is not physical


def test_alpha1_early_crossing_by_hand() -> None:
    """One alpha1 neuron, two inputs. Layer 1 window [1, 2] (B_1 = 1), bias onset at 0 with
    alpha = 1, theta = 0.55: J = (1, -3), input spikes at 0.2 and 0.5. V(0.2) = 0.2; then slope
    2: V reaches 0.55 at 0.2 + 0.35 / 2 = 0.375 < 0.5, before the inhibitory spike and before
    the window opens (an early spike)."""
    model = nn.Sequential(nn.Linear(2, 1), nn.ReLU(), nn.Linear(1, 1)).double().eval()
    with torch.no_grad():
        model[0].weight.fill_(0.25)
        model[0].bias.fill_(0.1)
    net = from_relu(model, torch.rand(4, 2, dtype=torch.float64), neuron="alpha1")
    net.windows.set_widths([1.0])
    hidden = net.layers[0]
    with torch.no_grad():
        hidden.synapses.weight.copy_(torch.tensor([[1.0, -3.0]]))
        hidden.alpha.fill_(1.0)
        hidden.theta.fill_(0.55)
    x = torch.tensor([[0.8, 0.5]], dtype=torch.float64)  # spike times 0.2 and 0.5
    for always_scan in (False, True):
        result = engine.simulate(net, x, always_scan=always_scan)
        assert result.hidden_times[0].item() == pytest.approx(0.375, abs=1e-15)
        assert result.early_spikes == [1]
    assert reference_simulate(net, x).hidden_times[0].item() == pytest.approx(0.375, abs=1e-15)


def test_synaptic_events_count_input_spikes_times_fan_out() -> None:
    model = nn.Sequential(nn.Flatten(), nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3))
    model = model.double().eval()
    x = torch.tensor([[[0.0, 0.3, 0.0], [1.0, 0.2, 0.0]]], dtype=torch.float64)
    net = from_relu(model, torch.rand(8, 2, 3, dtype=torch.float64))
    result = engine.simulate(net, x)
    assert result.synaptic_events[0].tolist() == [3 * 5]  # three non-zero pixels
    hidden_spikes = int((result.hidden_times[0] < net.windows.layer(1).t_max).sum())
    assert result.synaptic_events[1].tolist() == [hidden_spikes * 3]


def test_float32_network_is_simulated_in_float64() -> None:
    model = small_cnn(11)
    x = inputs(8, 12)
    net = from_relu(model, inputs(32, 13))
    expected = net(x)
    result = engine.simulate(net.to(torch.float32), x.float())
    assert result.logits.dtype == torch.float64
    assert max_abs_difference(result.logits, expected) < 1e-5


def test_errors() -> None:
    model = small_cnn(14)
    x = inputs(4, 15)
    net = from_relu(model, x)
    net.hardware = Hardware(noise_std=0.1)
    with pytest.raises(ValueError, match="hardware"):
        engine.simulate(net, x)


def test_network_simulate_selects_the_engine() -> None:
    model = small_cnn(16)
    x = inputs(8, 17)
    net = from_relu(model, x, neuron="alpha1")
    closed = net(x)
    for choice in ("auto", "compiled", "python"):
        assert max_abs_difference(net.simulate(x, engine=choice), closed) < 1e-9
    with pytest.raises(ValueError, match="engine must be"):
        net.simulate(x, engine="gpu")


def test_unavailable_library_raises_and_auto_falls_back(monkeypatch: pytest.MonkeyPatch) -> None:
    model = small_cnn(18)
    x = inputs(6, 19)
    net = from_relu(model, x)
    monkeypatch.setattr(engine, "_MISSING", "the kernel source is missing (test)")
    assert not engine.is_available()
    with pytest.raises(RuntimeError, match="unavailable: the kernel source is missing"):
        engine.simulate(net, x)
    with pytest.raises(RuntimeError, match="unavailable"):
        net.simulate(x, engine="compiled")
    assert max_abs_difference(net.simulate(x), net(x)) < 1e-9  # "auto": the Python simulator
