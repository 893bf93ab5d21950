"""Smoke tests of the benchmarks: neurons.py (same spikes everywhere, the report, the memory
child) and the TTFS inference / training-step scripts (their JSON, on tiny settings)."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def neurons():
    sys.path.insert(0, str(BENCH))
    try:
        yield importlib.import_module("neurons")
    finally:
        sys.path.remove(str(BENCH))


def test_every_installed_contender_fires_the_same_spikes(neurons) -> None:
    names = ["sf-fused", "sf-fused-dense"] + [p for p in neurons.PEERS if neurons.peer_version(p)]
    for workload in ("W1", "W2"):
        result = neurons.spike_check(neurons.NAMED[workload], names)
        assert set(result) == {"sf-reference", *names}
        assert result["sf-reference"]["spikes"] > 10_000  # the gain makes both layers fire
        for name, counts in result.items():
            assert counts == {"spikes": result["sf-reference"]["spikes"], "differ": 0}, name


def test_report_and_memory_child(neurons, tmp_path: Path, capsys) -> None:
    out = tmp_path / "bench.json"
    argv = ["--workloads", "W2", "--repeats", "1", "--contenders", "sf-fused,relu-T"]
    assert neurons.main([*argv, "--threads", "1", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "relu-T" in printed and "peak +" in printed
    report = json.loads(out.read_text())
    assert set(report["W2"]["median_ms"]) == {"sf-fused", "relu-T"}
    for name in ("sf-fused", "relu-T"):
        assert report["W2"]["memory_kib"][name]["peak_growth_kib"] > 10_000


def test_gpu_option_fails_clearly_without_a_gpu_and_keeps_gpu_contenders_off_the_cpu(
    neurons,
) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present: --device cuda would run")
    with pytest.raises(SystemExit, match="no usable CUDA device"):
        neurons.main(["--device", "cuda", "--workloads", "W1", "--repeats", "1"])
    with pytest.raises(SystemExit, match="with --device cuda only"):
        neurons.main(["--contenders", "relu-T,spikingjelly-triton", "--repeats", "1"])
    assert neurons.DEVICE.type == "cpu"


def test_spikingjelly_implementation_switch(neurons) -> None:
    """The private SpikingJelly API the GPU contenders use to force an implementation."""
    if neurons.peer_version("spikingjelly") is None:
        pytest.skip("SpikingJelly is not installed")
    from spikingjelly._ops.lif import _selection

    saved = _selection._requested
    try:
        neurons._force_sj_implementation("triton")
        assert _selection._requested == "triton" and _selection._selections == {}
        neurons._force_sj_implementation(None)
        assert _selection._requested == "auto"
    finally:
        _selection._requested = saved


def test_matrix_covers_every_pair_and_resumes(neurons, tmp_path: Path) -> None:
    import itertools

    import neuron_matrix

    factors = neuron_matrix.FACTORS
    rows = neuron_matrix.covering_array(factors)
    assert len(rows) < 40  # far fewer than the 540 of the full product
    for a, b in itertools.combinations(factors, 2):
        assert {(r[a], r[b]) for r in rows} == set(itertools.product(factors[a], factors[b]))
    cells = neuron_matrix.cells()
    assert {(w.arch, w.train) for w, _ in cells} == set(neuron_matrix.NETWORKS)

    out = tmp_path / "matrix.json"
    argv = ["--matrix", "--max-cells", "1", "--repeats", "3", "--cell-budget", "0.1"]
    argv += ["--contenders", "relu-T,sf-fused,sf-fused-dense,sf-reference", "--json", str(out)]
    assert neurons.main(argv) == 0
    report = json.loads(out.read_text())
    (cell,) = report["cells"]
    assert cell["repeats"] == 3 and cell["ratio_to_bound"]["relu-T"] == 1.0
    assert all(c["differ"] == 0 for c in cell["spikes"].values())
    assert report["summary"]["train"]["ratio_to_bound"]["sf-fused"]["cells"] == 1
    cell["median_ms"]["relu-T"] = -1.0  # a resumed run keeps the cells it finds
    out.write_text(json.dumps(report))
    assert neurons.main(argv) == 0
    assert json.loads(out.read_text())["cells"][0]["median_ms"]["relu-T"] == -1.0


def _mnist_benchmark(script: str):
    """The benchmark script ``benchmarks/<script>.py`` as a module; skips without MNIST."""
    from spikeforge.data import resolve_data_dir

    try:
        resolve_data_dir()
    except FileNotFoundError as exc:
        pytest.skip(f"MNIST not available: {exc}")
    return _benchmark(script)


def _benchmark(script: str):
    """The benchmark script ``benchmarks/<script>.py`` as a module."""
    sys.path.insert(0, str(BENCH))
    try:
        return importlib.import_module(script)
    finally:
        sys.path.remove(str(BENCH))


@pytest.mark.parametrize(
    ("script", "argv"),
    [
        ("ttfs_inference", ["--train-steps", "2", "--calib-samples", "128", "--sim-samples", "4"]),
        ("ttfs_training", ["--steps", "2"]),
    ],
)
def test_ttfs_benchmark_writes_its_json(script: str, argv: list[str], tmp_path: Path) -> None:
    from spikeforge.io import code_version

    bench = _mnist_benchmark(script)
    out = tmp_path / "bench.json"
    common = ["--arch", "fc2", "--dtype", "float32", "--repeats", "1", "--threads", "1"]
    assert bench.main([*argv, *common, "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["code_version"] == code_version() and report["cpu"] and report["threads"] == [1]
    assert [(r["arch"], r["dtype"], r["threads"]) for r in report["timing"]] == [
        ("fc2", "float32", 1)
    ]
    assert report["worst_ratio"]["overall"]["ratio"] > 0


def test_conversion_benchmark_writes_its_json(tmp_path: Path) -> None:
    from spikeforge.io import code_version

    bench = _mnist_benchmark("conversion")
    out = tmp_path / "bench.json"
    argv = ["--train-steps", "5", "--samples", "40", "--batch-size", "20", "--repeats", "1"]
    argv += ["--max-steps", "3", "--simulate-samples", "4", "--width", "4", "--threads", "1"]
    assert bench.main([*argv, "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["code_version"] == code_version() and report["cpu"] and report["threads"] == [1]
    assert (
        report["pascal_agreement"] == 1.0 and report["pascal_accuracy"] == report["qcfs_accuracy"]
    )
    assert 1 <= report["if_steps"] <= 3 and len(report["if_accuracy"]) == 3
    (row,) = report["timing"]
    assert set(row["ms_per_image"]) == {"qcfs-ann", "pascal", "if-snn"}
    assert row["ratio"]["if-snn/pascal"] > 0


def test_dwam_cost_benchmark_writes_its_json(tmp_path: Path) -> None:
    from spikeforge.io import code_version

    bench = _benchmark("dwam_cost")
    out = tmp_path / "bench.json"
    argv = ["--steps", "5", "--repeats", "1", "--tasks", "pendulum", "--json", str(out)]
    assert bench.main(argv) == 0
    report = json.loads(out.read_text())
    assert report["code_version"] == code_version() and report["cpu"]
    assert len(report["rows"]) == 3 * 3 * 2  # families x (batch, per_sample) x phases
    for row in report["rows"]:
        assert row["ratio"] > 0 and row["ratio_with_env"] > 0
        assert set(row["us_per_step"]) == {"host", "dwam", "env"}
    assert report["worst"]["ratio"] == max(r["ratio"] for r in report["rows"])


def test_spike_linear_auto_benchmark_writes_its_json(tmp_path: Path) -> None:
    from spikeforge.io import code_version

    bench = _benchmark("spike_linear_auto")
    out = tmp_path / "bench.json"
    argv = ["--max-cells", "2", "--repeats", "2", "--min-ms", "1", "--json", str(out)]
    assert bench.main(argv) == 0
    report = json.loads(out.read_text())
    assert report["code_version"] == code_version() and report["cpu"]
    assert [len(r["ratios"]) for r in report["results"]] == [2, 2]
    for row in report["results"]:
        assert row["path"].startswith(("event", "dense")) and row["ratio"] > 0
    assert report["summary"]["worst"] == max(r["ratio"] for r in report["results"])
