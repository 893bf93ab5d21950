"""The hardware sweeps of ``spikeforge reproduce ttfs-hardware`` on a small MNIST subset."""

from __future__ import annotations

import json

import pytest

from spikeforge.data import load_dataset
from spikeforge.experiments.ttfs_hardware import format_hardware_tables, run_hardware_sweeps
from spikeforge.ttfs import load
from spikeforge.ttfs.hardware import Hardware


def test_hardware_sweeps_on_a_small_mnist_subset(tmp_path) -> None:
    try:
        dataset = load_dataset("mnist").subset(600, 200)
    except FileNotFoundError as exc:
        pytest.skip(f"MNIST not available: {exc}")
    kwargs = dict(
        relu_epochs=2,
        finetune_epochs=1,
        finetune_samples=160,
        noise_levels=[1.0],
        time_bits=[2],
        weight_bits=[2],
        quantiles=[0.9],
        repeats=2,
        progress=False,
        echo=lambda _: None,
    )
    report = run_hardware_sweeps(dataset, tmp_path, **kwargs)
    saved = json.loads((tmp_path / "hardware.json").read_text())
    assert saved["sweeps"].keys() == {"noise", "time_bits", "weight_bits", "latency"}
    lo, hi = saved["weight_range"]
    assert lo == -hi and hi > 0
    control = saved["control"]  # the exact network fine-tuned with the same settings
    assert control["before"]["accuracy"] == saved["exact"]["accuracy"]
    assert control["hardware"] == Hardware().as_dict()
    ops = saved["operation_counts"]  # the exact network's operation and energy table
    assert ops["samples"] == 200 and 0 < ops["synaptic_ops"] < ops["relu_macs"]
    for kind, points in saved["sweeps"].items():
        (p,) = points
        for key in ("before", "after"):
            assert 0.0 <= p[key]["accuracy"] <= 1.0 and 0 < p[key]["spikes_per_neuron"] < 1
        if kind == "noise":
            assert len(p["before"]["accuracies"]) == 2 and p["hardware"]["noise_std"] == 1.0
            # grown windows, re-calibrated to 1.5 x the largest activation for the latency
            assert p["after"]["latency_recalibrated"] <= p["after"]["latency"]
        if kind == "latency":
            assert p["before"]["latency_factor"] > 1 and p["hardware"]["saturate"]
            assert p["after"]["latency"] == p["before"]["latency"]  # the budget is kept
        assert (tmp_path / p["checkpoint"]).exists()
        tuned = load(tmp_path / p["network"])  # the fine-tuned SNN with its hardware model
        assert tuned.hardware.as_dict() == p["hardware"]
        assert tuned.latency == p["after"]["latency"]
    for name in saved["plots"]:
        assert (tmp_path / name).read_bytes().startswith(b"\x89PNG")
    tables = format_hardware_tables(report)
    assert tables.count("| noise std") == 1 and "| quantile" in tables
    # a second run resumes every checkpoint and reproduces the report
    again = run_hardware_sweeps(dataset, tmp_path, **kwargs)
    for kind in saved["sweeps"]:
        a, b = saved["sweeps"][kind][0], again["sweeps"][kind][0]
        assert a["after"]["accuracies"] == b["after"]["accuracies"]
