"""The command line: demo and reproduction end to end on small settings, and clear errors."""

from __future__ import annotations

import json

import pytest

from spikeforge.cli import main
from spikeforge.data import resolve_data_dir


def test_demo_writes_a_report(tmp_path, capsys) -> None:
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--epochs", "3", "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "b1" in printed and "alpha1" in printed and "SNN acc" in printed
    report = json.loads((out / "metrics.json").read_text())
    for neuron in ("b1", "alpha1"):
        m = report["neurons"][neuron]
        assert m["agreement"] == 1.0 and m["event_agreement"] == 1.0
        assert m["snn_accuracy"] == m["ann_accuracy"] == m["event_accuracy"]
        assert m["max_error"] < 1e-9 and m["event_max_error"] < 1e-9
        assert m["window_violations"] == 0 and m["early_spikes"] == 0
        assert 0 < m["spikes_per_neuron"] < 1
    for name in report["plots"]:
        assert (out / name).read_bytes().startswith(b"\x89PNG")
    # a second run resumes from the finished checkpoint instead of training again
    assert main(["demo", "--out", str(out), "--epochs", "3", "--quiet", "--no-event"]) == 0


def test_reproduce_on_a_small_mnist_subset(tmp_path) -> None:
    try:
        resolve_data_dir()
    except FileNotFoundError as exc:
        pytest.skip(f"MNIST not available: {exc}")
    out = tmp_path / "mnist"
    args = [
        "reproduce",
        "ttfs-mapping",
        "--dataset",
        "mnist",
        "--arch",
        "lenet5",
        "--epochs",
        "1",
        "--train-samples",
        "512",
        "--test-samples",
        "64",
        "--out",
        str(out),
        "--quiet",
    ]
    assert main(args) == 0
    report = json.loads((out / "metrics.json").read_text())
    assert report["neurons"]["b1"]["agreement"] == 1.0
    assert report["neurons"]["alpha1"]["event_agreement"] == 1.0


def test_missing_data_gives_a_clear_error(tmp_path, capsys) -> None:
    args = ["reproduce", "ttfs-mapping", "--data-dir", str(tmp_path / "nowhere"), "--quiet"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "nowhere" in err and "SPIKEFORGE_DATA" in err


def test_reproduce_ttfs_train_and_gradients_end_to_end(tmp_path, capsys) -> None:
    try:
        resolve_data_dir()
    except FileNotFoundError as exc:
        pytest.skip(f"MNIST not available: {exc}")
    out = tmp_path / "train"
    args = ["reproduce", "ttfs-train", "--arch", "fc2", "--mode", "both", "--epochs", "1"]
    args += ["--relu-epochs", "1", "--train-samples", "256", "--test-samples", "64"]
    args += ["--event-samples", "16", "--batch-size", "32", "--out", str(out), "--quiet"]
    assert main(args) == 0
    assert "finetune" in capsys.readouterr().out
    scratch = json.loads((out / "scratch.json").read_text())
    assert scratch["snn"]["snn_accuracy"] == scratch["relu"]["accuracy"]
    assert json.loads((out / "finetune.json").read_text())["finetuned"]["event_agreement"] == 1.0
    grads = tmp_path / "gradients"
    args = ["reproduce", "ttfs-gradients", "--dataset", "digits", "--depths", "2", "--width", "16"]
    args += ["--steps", "10", "--train-samples", "200", "--test-samples", "50"]
    assert main([*args, "--out", str(grads), "--quiet"]) == 0
    assert "alpha1" in capsys.readouterr().out
    assert (grads / "gradients.json").exists()


def test_ttfs_hardware_rejects_a_bad_bit_width(tmp_path, capsys) -> None:
    try:
        resolve_data_dir()
    except FileNotFoundError as exc:
        pytest.skip(f"MNIST not available: {exc}")
    with pytest.raises(ValueError, match="bits"):
        main(["reproduce", "ttfs-hardware", "--time-bits", "0", "--out", str(tmp_path), "--quiet"])
