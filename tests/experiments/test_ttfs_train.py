"""``reproduce ttfs-train`` on small MNIST subsets: the B1 SNN trained from scratch ends where
the same-seed ReLU network ends, and a fine-tuned SNN is still exactly its ReLU network."""

from __future__ import annotations

import json

import pytest

from spikeforge.data import DataNotFoundError, load_dataset
from spikeforge.experiments.ttfs_train import (
    Recipe,
    format_train_table,
    report_counts,
    run_finetune,
    run_scratch,
    scratch_recipe,
)
from spikeforge.training import TrainConfig
from spikeforge.ttfs.hardware import Hardware


@pytest.fixture(scope="module")
def mnist_small():
    try:
        return load_dataset("mnist").subset(400, 150)
    except DataNotFoundError as exc:
        pytest.skip(f"MNIST not available: {exc}")


@pytest.mark.parametrize("arch", ["fc2", "lenet5"])
def test_scratch_snn_follows_the_same_seed_relu_network(mnist_small, tmp_path, arch) -> None:
    recipe = scratch_recipe(
        arch, epochs=2, batch_size=16, lr=2e-3, progress=False, activity_l1=1e-3
    )
    report = run_scratch(
        mnist_small, arch, tmp_path, recipe, event_samples=40, progress=False, echo=lambda s: None
    )
    snn = report["snn"]
    assert report["parameter_distance"] < 1e-9
    assert snn["max_error"] < 1e-9  # hidden activations and logits of the trained networks
    assert snn["snn_accuracy"] == report["relu"]["accuracy"]
    assert snn["agreement"] == 1.0
    assert snn["event_agreement"] == 1.0 and snn["event_max_error"] < 1e-9
    assert snn["window_violations"] == 0 and snn["early_spikes"] == 0
    # the event engine (compiled where a compiler is available) equals the closed form
    assert snn["event_engine"] in ("compiled", "python") and snn["event_vs_closed"] < 1e-12
    # the stated figure: logits and window-relative spike times t_max - t
    assert snn["event_vs_closed_window_relative"] == snn["event_vs_closed"]
    assert snn["event_vs_closed_absolute"] < 1e-11
    counts = snn["operation_counts"]  # operation and energy table of the reproduced network
    assert counts["samples"] == 150 and 0 < counts["synaptic_ops"] < counts["relu_macs"]
    assert counts["snn_energy_pj"] > 0 and counts["relu_energy_pj"] > 0
    losses = report["relu"]["losses"]
    assert (
        losses == report["snn"]["losses"]
        or max(abs(a - b) for a, b in zip(losses, snn["losses"], strict=True)) < 1e-9
    )
    assert losses[1] < losses[0]  # it did learn
    assert json.loads((tmp_path / "scratch.json").read_text())["arch"] == arch
    assert "scratch" in format_train_table([report])
    (text,) = report_counts([report])  # printed by the command after its table
    assert "event engine - closed form" in text and "nJ (TTFS)" in text


def test_finetuned_snn_is_still_exactly_a_relu_network(mnist_small, tmp_path) -> None:
    relu = TrainConfig(epochs=2, batch_size=32, lr=1e-3, progress=False, schedule="cosine")
    finetune = Recipe(TrainConfig(epochs=1, batch_size=8, lr=1e-4, progress=False))
    report = run_finetune(
        mnist_small,
        "fc2",
        tmp_path,
        relu,
        finetune,
        event_samples=40,
        progress=False,
        echo=lambda s: None,
    )
    mapped, tuned = report["mapped"], report["finetuned"]
    assert mapped["snn_accuracy"] == report["relu_accuracy"]
    assert mapped["agreement"] == 1.0
    assert tuned["event_agreement"] == 1.0 and tuned["event_max_error"] < 1e-9
    assert tuned["max_error"] < 1e-9
    assert tuned["losses"] and tuned["losses"][0] > 0
    assert "finetune" in format_train_table([report])
    # operation and energy tables of the mapped and of the fine-tuned network
    for ev in (mapped, tuned):
        counts = ev["operation_counts"]
        assert counts["samples"] == 150 and 0 < counts["synaptic_ops"] < counts["relu_macs"]
    assert tuned["event_vs_closed_window_relative"] < 1e-12
    texts = report_counts([report])
    assert [t.split("\n")[0].split()[2].rstrip(";") for t in texts] == ["mapped", "finetuned"]


def test_finetune_under_a_hardware_model(mnist_small, tmp_path) -> None:
    relu = TrainConfig(epochs=2, batch_size=32, lr=1e-3, progress=False, schedule="cosine")
    finetune = Recipe(TrainConfig(epochs=1, batch_size=16, lr=1e-4, progress=False))
    report = run_finetune(
        mnist_small,
        "fc2",
        tmp_path,
        relu,
        finetune,
        hardware=Hardware(noise_std=0.5, time_bits=3),
        latency_quantile=0.9,
        repeats=2,
        echo=lambda s: None,
    )
    assert report["mode"] == "finetune-hardware"
    assert report["hardware"]["saturate"] and report["hardware"]["time_bits"] == 3
    assert report["latency_factor"] > 1.0
    assert report["after"]["latency"] == report["before"]["latency"]  # budget kept
    assert len(report["before"]["accuracies"]) == 2 and report["after"]["losses"]
    assert json.loads((tmp_path / "finetune-hardware.json").read_text())["mode"] == report["mode"]
    assert "noise 0.5, 3-bit times, quantile 0.9" in format_train_table([report])
