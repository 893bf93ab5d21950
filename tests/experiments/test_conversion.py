"""``reproduce conversion`` on a tiny MNIST subset: PASCAL equals its QCFS network on every test
image (fast path and step-by-step reference), every curve and table is written, the run resumes
without retraining, and the baselines (SpikingJelly's converter, the max-norm IF fallback) and
the counters behave."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from torch import nn

from spikeforge.cli import build_parser
from spikeforge.convert import to_if, to_qcfs
from spikeforge.data import DataNotFoundError, load_dataset
from spikeforge.experiments.conversion import runs as conversion_runs
from spikeforge.experiments.conversion import spikingjelly_baseline as sjb
from spikeforge.experiments.conversion.command import QUICK, settings_from_args
from spikeforge.experiments.conversion.counting import SynapticOpCounter, fanout_map
from spikeforge.experiments.conversion.curves import steps_to_reach
from spikeforge.experiments.conversion.networks import activation_count, build
from spikeforge.experiments.conversion.report import format_tables
from spikeforge.experiments.conversion.runs import (
    Settings,
    curve_indices,
    if_curve,
    run_conversion,
)

STEPS = 6


@pytest.fixture(scope="module")
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def mnist_tiny():
    try:
        return load_dataset("mnist").subset(300, 120)
    except DataNotFoundError as exc:
        pytest.skip(f"MNIST not available: {exc}")


def _settings(arch: str = "vgg-small", **changes) -> Settings:
    base = {
        "width": 4,
        "epochs": 1,
        "al_epochs": 1,
        "batch_size": 32,
        "lr": 5e-3,
        "steps": STEPS,
        "curve_samples": 60,
        "calib_samples": 128,
        "calib_batch": 64,
        "simulate_samples": 40,
        "curve_batch": 30,
    }
    return Settings("mnist", arch, **(base | changes))


@pytest.fixture(scope="module")
def line(mnist_tiny, tmp_path_factory, one_thread):
    out = tmp_path_factory.mktemp("conversion")
    results = run_conversion(mnist_tiny, out, _settings(), progress=False, echo=lambda s: None)
    return out, results


def test_pascal_equals_qcfs_on_every_test_image(line) -> None:
    _, results = line
    assert set(results["qcfs"]) == {"L4", "L8", "AL"}
    for name, q in results["qcfs"].items():
        p = q["pascal"]
        assert p["agreement"] == 1.0 and p["disagreeing_images"] == [], name
        assert p["max_abs_logit_diff"] < 1e-9
        assert p["accuracy"] == p["qcfs_accuracy_float64"]
        assert p["float32"]["agreement"] >= 0.99
        sim = p["simulate"]
        assert sim["samples"] == 40 and sim["agreement"] == 1.0
        assert sim["max_abs_logit_diff"] < 1e-9 and sim["max_abs_diff_to_fast_path"] < 1e-9
        assert p["levels"] == q["levels"] and len(p["levels"]) == 5
        assert p["t_eff"] > 0 and p["latency"]["pipelined"] <= p["latency"]["sequential"]
        assert p["spikes_per_neuron"] >= 0 and p["synaptic_ops"] >= 0
    assert results["qcfs"]["L4"]["levels"] == [4] * 5
    al = results["qcfs"]["AL"]
    assert len(al["al_metrics"]) == 5 and al["al_from"] == "L8"
    assert al["train"]["recipe"]["lr"] == pytest.approx(5e-3 * conversion_runs.AL_LR_FACTOR)


def test_curves_tables_and_files(line) -> None:
    out, results = line
    assert results["curve_samples"] == 60 and results["test_samples"] == 120
    expected = {"if-L4", "if-L8", "spikingjelly-max", "spikingjelly-99.9%"}
    if not results["spikingjelly"]["used"]:
        expected = {"if-L4", "if-L8", "maxnorm-if"}
    assert set(results["curves"]) == expected
    for curve in results["curves"].values():
        assert len(curve["accuracy"]) == STEPS and curve["samples"] == 60
        assert all(0.0 <= a <= 1.0 for a in curve["accuracy"])
        spikes = curve["spikes_per_neuron"]
        assert len(spikes) == STEPS and spikes == sorted(spikes) and spikes[-1] > 0
        assert curve["synaptic_ops"] == sorted(curve["synaptic_ops"])
    rows = results["steps_table"]
    assert len(rows) == 3 * len(expected)
    for r in rows:
        t = r["steps"]["0pp"]
        assert t is None or 1 <= t <= STEPS
        assert r["steps"]["1pp"] is None or t is None or r["steps"]["1pp"] <= t
        if t is None:
            assert r["ratio_t_eff_above"]["0pp"] == pytest.approx(STEPS / r["pascal_t_eff"])
        else:
            assert r["ratio_t_eff"]["0pp"] == pytest.approx(t / r["pascal_t_eff"])
            curve = results["curves"][r["method"]]
            assert r["spikes_per_neuron"]["0pp"] == curve["spikes_per_neuron"][t - 1]
    top = results["headline"]
    assert top["pascal"] == "AL" and top["t_eff"] == results["qcfs"]["AL"]["pascal"]["t_eff"]
    for group in ("if_snn", "relu_converters"):
        for entry in top[group].values():
            assert entry["ratio"] > 0 and (entry["steps"] is None) == entry["above"]
    stored = json.loads((out / "conversion.json").read_text())
    assert stored["qcfs"]["AL"]["levels"] == results["qcfs"]["AL"]["levels"]
    assert (out / "accuracy.png").read_bytes().startswith(b"\x89PNG")
    tables = (out / "tables.md").read_text()
    assert "PASCAL" in tables and "T=4" in tables
    assert format_tables(stored) == format_tables(results)
    assert stored["environment"]["code_versions"]


def test_rerun_resumes_without_training(line, mnist_tiny, monkeypatch) -> None:
    out, results = line

    def no_training(*args, **kwargs):
        raise AssertionError("a finished part was computed again")

    monkeypatch.setattr(conversion_runs, "train", no_training)
    monkeypatch.setattr(conversion_runs, "pascal_report", no_training)
    again = run_conversion(mnist_tiny, out, _settings(), progress=False, echo=lambda s: None)
    assert again["qcfs"] == results["qcfs"] and again["curves"] == results["curves"]
    with pytest.raises(ValueError, match="other settings"):
        run_conversion(mnist_tiny, out, _settings(steps=5), progress=False, echo=lambda s: None)


def test_a_baseline_can_be_added_to_a_finished_folder(line, mnist_tiny, tmp_path, monkeypatch):
    out, results = line
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    monkeypatch.setattr(conversion_runs, "train", None)  # nothing may train again
    more = run_conversion(
        mnist_tiny, copy, _settings(own_baseline=True), progress=False, echo=lambda s: None
    )
    assert set(more["curves"]) == set(results["curves"]) | {"maxnorm-if"}
    assert more["settings"]["own_baseline"] is True


def test_missing_spikingjelly_falls_back_to_max_norm(line, mnist_tiny, tmp_path, monkeypatch):
    out, _ = line
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    for part in (copy / "parts").glob("curve-spikingjelly-*.json"):
        part.unlink()

    def unavailable():
        raise sjb.SpikingJellyUnavailable("SpikingJelly is not installed (test)")

    monkeypatch.setattr(conversion_runs, "import_spikingjelly", unavailable)
    results = run_conversion(mnist_tiny, copy, _settings(), progress=False, echo=lambda s: None)
    error = "SpikingJelly is not installed (test)"
    assert results["spikingjelly"] == {"used": False, "error": error}
    assert set(results["curves"]) == {"if-L4", "if-L8", "maxnorm-if"}
    assert len(results["curves"]["maxnorm-if"]["thresholds"]) == 5
    assert "not installed" in format_tables(results)


def test_missing_spikingjelly_gives_a_clear_message(monkeypatch) -> None:
    monkeypatch.setitem(__import__("sys").modules, "spikingjelly", None)
    with pytest.raises(sjb.SpikingJellyUnavailable, match="bench"):
        sjb.import_spikingjelly()


def test_resnet_small_converts_exactly(mnist_tiny, tmp_path, one_thread) -> None:
    """The residual architecture end to end without the baselines (vgg-small covers them)."""
    settings = _settings(
        "resnet-small", uniform_levels=(4,), al_from=4, spikingjelly=False, curve_samples=30
    )
    results = run_conversion(mnist_tiny, tmp_path, settings, progress=False, echo=lambda s: None)
    for q in results["qcfs"].values():
        assert q["pascal"]["agreement"] == 1.0 and q["pascal"]["simulate"]["agreement"] == 1.0
        assert q["pascal"]["max_abs_logit_diff"] < 1e-9
    assert set(results["curves"]) == {"if-L4", "maxnorm-if"}


def test_architectures_have_five_spiking_layers_and_run_on_mnist_shapes() -> None:
    for arch in ("vgg-small", "resnet-small"):
        model = build(arch, width=4)
        assert activation_count(model) == 5
        assert model(torch.rand(2, 1, 28, 28)).shape == (2, 10)
    with pytest.raises(ValueError, match="unknown architecture"):
        build("lenet")


def test_if_curve_counts_equal_the_library_counts(one_thread) -> None:
    torch.manual_seed(0)
    qnet = to_qcfs(build("resnet-small", width=4), levels=4).eval()
    x, y = torch.rand(12, 1, 28, 28), torch.randint(0, 10, (12,))
    curve = if_curve(qnet, x, y, 5, batch_size=12)
    stats = to_if(qnet).run(x, 5, return_stats=True)
    neurons = sum(s[0].numel() for s in stats.spikes.values())
    spikes = sum(float(s.sum()) for s in stats.spikes.values())
    assert curve.spikes_per_neuron[-1] == pytest.approx(spikes / (12 * neurons))
    synops = sum(float(v.sum()) for v in stats.synops.values())
    assert curve.synaptic_ops[-1] == pytest.approx(synops / 12)
    readout = stats.outputs.argmax(-1)
    assert curve.accuracy == [float((readout[t] == y).double().mean()) for t in range(5)]


def test_synaptic_op_counter_counts_border_fanout() -> None:
    conv = nn.Conv2d(2, 3, 3, padding=1, bias=False)
    fan = fanout_map(conv, (2, 4, 4))
    assert fan[0, 0, 0] == 3 * 4 and fan[0, 1, 1] == 3 * 9 and fan[1, 0, 1] == 3 * 6
    net = nn.Sequential(nn.Linear(4, 2 * 4 * 4), nn.Unflatten(1, (2, 4, 4)), conv)
    counter = SynapticOpCounter(net)
    with torch.no_grad():
        net[0].weight.zero_()
        net[0].bias.zero_()
        net[0].bias[0] = 1.0  # channel 0, corner pixel
        net(torch.zeros(1, 4))
    assert counter.total == 12  # the first (analog) layer is not counted
    counter.remove()


def test_max_norm_if_approaches_the_relu_network(one_thread) -> None:
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 3)).eval()
    x = torch.rand(64, 6)
    net = sjb.maxnorm_if(model, [x], steps=512)
    with torch.no_grad():
        rates = net(x.unsqueeze(0).expand(512, *x.shape).flatten(0, 1)).unflatten(0, (512, -1))
        ann = model(x)
    assert (rates.mean(0) - ann).abs().max() < 0.02 * ann.abs().max()


def test_helpers() -> None:
    assert curve_indices(10, 5).tolist() == [0, 2, 4, 6, 8]
    assert curve_indices(10, None).tolist() == list(range(10))
    assert curve_indices(10, 20).tolist() == list(range(10))
    assert steps_to_reach([0.5, 0.7, 0.9], 0.7) == 2
    assert steps_to_reach([0.5, 0.7], 0.8) is None


def test_command_settings() -> None:
    parser = build_parser()
    args = parser.parse_args(["reproduce", "conversion", "--quick", "--steps", "8"])
    settings = settings_from_args(args)
    assert settings.steps == 8 and settings.epochs == QUICK["epochs"]
    assert settings.train_samples == QUICK["train_samples"]
    args = parser.parse_args(
        ["reproduce", "conversion", "--arch", "resnet-small", "--curve-samples", "0"]
    )
    settings = settings_from_args(args)
    assert settings.arch == "resnet-small" and settings.curve_samples is None
    assert settings.uniform_levels == (4, 8) and settings.steps == 64
    with pytest.raises(SystemExit):
        parser.parse_args(["reproduce", "conversion", "--levels", "4,4"])
