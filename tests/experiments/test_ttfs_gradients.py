"""The P2 gradient experiment: B1 follows the ReLU trajectory, alpha1 does not (spec §7), and the
effective ReLU parameters of an alpha1 network are derived correctly."""

from __future__ import annotations

import copy
import json

import pytest
import torch

from spikeforge.data import load_dataset
from spikeforge.experiments import ttfs_gradients as rg
from spikeforge.experiments.ttfs_gradients import networks as rgn
from spikeforge.ttfs import from_relu

PNGS = ("parameter_distance.png", "gradient_norms.png", "accuracy.png")
DEPTHS = (2, 3)
STEPS = 40


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


@pytest.fixture(scope="module")
def experiment(digits, tmp_path_factory):
    out = tmp_path_factory.mktemp("gradients")
    results = rg.run_gradient_experiment(
        digits,
        out,
        depths=DEPTHS,
        width=24,
        steps=STEPS,
        eval_every=20,
        train_samples=600,
        test_samples=200,
        probe_samples=64,
        grad_samples=64,
        progress=False,
    )
    return out, results


def test_b1_follows_relu_and_alpha1_departs(experiment) -> None:
    _, results = experiment
    assert list(results["depths"]) == [str(d) for d in DEPTHS]
    for rep in results["depths"].values():
        b1 = rep["parameter_distance"]["b1"]
        assert len(b1["max_abs"]) == STEPS + 1  # step 0 .. STEPS
        assert all(v is not None and v < 1e-9 for v in b1["max_abs"])
        assert all(v < 1e-9 for v in rep["function_distance"]["b1"])
        assert rep["loss"]["b1"] == pytest.approx(rep["loss"]["relu"], rel=1e-9)
        assert rep["eval"]["accuracy"]["b1"] == rep["eval"]["accuracy"]["relu"]
        assert rep["loss"]["relu"][-1] < rep["loss"]["relu"][0]  # the ReLU network did train
        smart = rep["parameter_distance"]["alpha1_smart"]
        assert smart["max_abs"][0] < 1e-9 and smart["rel_l2"][0] < 1e-12  # equal at init
        assert rep["function_distance"]["alpha1_smart"][0] < 1e-9
        assert smart["rel_l2"][-1] > 1e-2  # then the trajectories separate
        assert rep["function_distance"]["alpha1_smart"][-1] > 1e-2
        floor = rep["parameter_distance"]["relu_perturbed"]
        assert 0 < floor["max_abs"][0] < 1e-14 and max(floor["max_abs"]) < 1e-11
        naive = rep["parameter_distance"]["alpha1_naive"]
        assert naive["rel_l2"][0] > 1e-2  # a different function from the start
        check = rep["init"]["effective_check"]["alpha1_smart"]
        assert max(check.values()) < 1e-9
        assert rep["summary"]["b1"]["window_violations"] == 0
        for name in rg.RUNS:
            norms = rep["eval"]["grad_norms"][name][0]
            assert len(norms) == int(rep["depth"]) + 1 and all(v > 0 for v in norms)
        assert rep["eval"]["grad_norms"]["b1"][0] == pytest.approx(
            rep["eval"]["grad_norms"]["relu"][0], rel=1e-9
        )


def test_outputs_written(experiment) -> None:
    out, results = experiment
    for name in PNGS:
        assert (out / name).read_bytes().startswith(b"\x89PNG")
    stored = json.loads((out / "gradients.json").read_text())
    assert stored["config"]["steps"] == STEPS
    assert stored["depths"]["2"]["summary"] == results["depths"]["2"]["summary"]
    table = rg.format_gradient_tables(stored)
    assert table.count("alpha1 (smart init)") == 2 * len(DEPTHS)
    assert "last/first init" in table


def _check_effective(net, x) -> float:
    """Max error of ReLU(W_eff x + b_eff) against the spike-time values of every layer."""
    eff = rg.effective_parameters(net)
    with torch.no_grad():
        out = net.run(x)
        hidden, logits = rg.mlp_forward(eff, x)
    values = rg.hidden_values(net, out.hidden_times)
    errors = [float((a - b).abs().max()) for a, b in zip(values, hidden, strict=True)]
    return max([*errors, float((out.logits - logits).abs().max())])


def test_effective_parameters_reproduce_alpha1_activations(digits) -> None:
    x = digits.x_train[:300].double()
    relu = rg.glorot_mlp(64, 24, 3, 10, torch.Generator().manual_seed(3))
    with torch.no_grad():
        for lin in rgn._linears(relu):
            lin.bias.uniform_(-0.3, 0.3, generator=torch.Generator().manual_seed(4))
    net = from_relu(copy.deepcopy(relu), x, neuron="alpha1")
    factors = rg.weight_sum_factors(relu)
    assert any(bool((f != 1).any()) for f in factors)  # the scaling is exercised
    # the effective parameters are the canonical scaled network, and the scaled ReLU parameters
    canonical = [(s.affine.weight, s.affine.bias) for s in net.mapping.chain.stages]
    eff = rg.effective_parameters(net)
    assert rg.parameter_distance(eff, canonical)[0] < 1e-12
    scaled = rg.scaled_parameters(rg.relu_parameters(relu), factors)
    assert rg.parameter_distance(scaled, canonical)[0] < 1e-12
    assert _check_effective(net, x) < 1e-9
    with torch.no_grad():
        hidden = rg.hidden_values(net, net.run(x).hidden_times)
    assert all(float(h.max()) > 0.1 for h in hidden)  # layers are active: not a vacuous check

    # after arbitrary changes of J, theta and the readout (as in training) the derivation still
    # holds although the effective parameters have moved far from the initial ones
    gen = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for layer in net.layers[:-1]:
            w = layer.synapses.weight
            w.add_(0.02 * torch.randn(w.shape, generator=gen, dtype=w.dtype))
            layer.theta.add_(0.2 * torch.randn(layer.theta.shape, generator=gen, dtype=w.dtype))
        net.layers[-1].alpha.add_(0.1)
    moved = rg.effective_parameters(net)
    assert rg.parameter_distance(moved, eff)[1] > 1e-2
    assert _check_effective(net, x) < 1e-9
    # a wrong derivation (dropping the S (t_max - t_min) term of b_eff) is caught
    wrong = [
        (w, b - layer.synapses.fan_in_sum().detach() * win.width / layer.slope().detach())
        for (w, b), layer, win in zip(moved[:-1], net.layers, net.windows.layers(), strict=False)
    ]
    with torch.no_grad():
        hidden_wrong, _ = rg.mlp_forward([*wrong, moved[-1]], x)
        values = rg.hidden_values(net, net.run(x).hidden_times)
    assert float((hidden_wrong[0] - values[0]).abs().max()) > 1e-3


def test_naive_alpha1_init(digits) -> None:
    x = digits.x_train[:300].double()
    relu = rg.glorot_mlp(64, 24, 2, 10, torch.Generator().manual_seed(0))
    net = rg.naive_alpha1(relu, [x])
    eff = rg.effective_parameters(net)
    for (w, b), (w_relu, b_relu) in zip(eff[:-1], rg.relu_parameters(relu)[:-1], strict=True):
        expected = w_relu / (1.0 + w_relu.sum(1, keepdim=True))
        assert float((w - expected).abs().max()) < 1e-9
        assert float((b - b_relu).abs().max()) < 1e-9
    assert _check_effective(net, x) < 1e-6 * max(net.mapping.max_activations)
    # J is the ReLU initialisation's weights
    for layer, (w_relu, _) in zip(net.layers, rg.relu_parameters(relu), strict=True):
        assert torch.equal(layer.synapses.weight, w_relu)


def test_a_diverging_alpha1_run_stops_cleanly(digits, tmp_path, monkeypatch) -> None:
    original = rg.naive_alpha1

    def poisoned(model, calibration, zeta=0.5):
        net = original(model, calibration, zeta)
        with torch.no_grad():
            net.layers[0].theta[0] = float("nan")
        return net

    monkeypatch.setattr(rg.experiment, "naive_alpha1", poisoned)  # where the run looks it up
    results = rg.run_gradient_experiment(
        digits,
        tmp_path,
        depths=(2,),
        width=16,
        steps=6,
        eval_every=3,
        train_samples=200,
        test_samples=100,
        progress=False,
    )
    rep = results["depths"]["2"]
    naive = rep["summary"]["alpha1_naive"]
    assert naive["diverged_at"] == 0 and "non-finite" in naive["divergence"]
    assert rep["parameter_distance"]["alpha1_naive"]["rel_l2"][1:] == [None] * 6
    assert rep["eval"]["accuracy"]["alpha1_naive"][1:] == [None, None]
    assert rep["summary"]["b1"]["diverged_at"] is None  # the other runs carry on
    assert len(rep["loss"]["relu"]) == 6
    assert "step 0" in rg.format_gradient_tables(results)
    assert (tmp_path / "gradients.json").exists()
