"""Tests for :mod:`spikeforge.viz`: PNGs from a real mapped TTFS network, input validation,
atomic writes."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from spikeforge.ttfs import from_relu
from spikeforge.viz import spike_raster, spike_time_histograms, training_curve

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def mapped() -> tuple[list[torch.Tensor], list[tuple[float, float]], float]:
    """Input + hidden spike times ``[B, *shape]`` of a small conv net, their windows and the
    readout time."""
    torch.manual_seed(0)
    m = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(4 * 4 * 4, 10),
    )
    m = m.double().eval()
    x = torch.rand(32, 1, 8, 8, dtype=torch.float64)
    net = from_relu(m, x, neuron="b1")
    with torch.no_grad():
        out = net.run(x)
    wins = net.windows.layers()
    times = [out.input_times, *out.hidden_times]
    windows = [(0.0, 1.0)] + [(w.t_min, w.t_max) for w in wins[:-1]]
    return times, windows, wins[-1].t_min


def assert_png(path: Path, min_size: int = 5_000) -> None:
    assert path.is_file()
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE)
    assert len(data) > min_size


def assert_no_leftovers(directory: Path, expected: set[str]) -> None:
    assert {p.name for p in directory.iterdir()} == expected


def test_spike_raster_real_network(tmp_path, mapped):
    times, windows, readout = mapped
    target = tmp_path / "nested" / "dir" / "raster.png"
    got = spike_raster(
        [t[0] for t in times],
        windows,
        target,
        labels=["input", "conv1"],
        title="sample 0",
        readout_time=readout,
        max_neurons_per_layer=100,  # conv1 has 256 neurons: subsampled
    )
    assert got == target
    assert isinstance(got, Path)
    assert_png(target)
    assert_no_leftovers(target.parent, {"raster.png"})


def test_spike_raster_accepts_numpy_and_layer_windows(tmp_path):
    torch.manual_seed(0)
    m = nn.Sequential(nn.Flatten(), nn.Linear(64, 20), nn.ReLU(), nn.Linear(20, 3)).double()
    x = torch.rand(8, 1, 8, 8, dtype=torch.float64)
    net = from_relu(m.eval(), x, neuron="b1")
    with torch.no_grad():
        out = net.run(x)
    hidden_windows = net.windows.layers()[:-1]
    got = spike_raster([t[0].numpy() for t in out.hidden_times], hidden_windows, tmp_path / "r.png")
    assert_png(got)


def test_spike_time_histograms_real_network(tmp_path, mapped):
    times, windows, _ = mapped
    got = spike_time_histograms(
        times, windows, tmp_path / "h" / "hist.png", labels=["input", "conv1"], bins=20
    )
    assert_png(got)
    assert_no_leftovers(got.parent, {"hist.png"})


def test_training_curve(tmp_path):
    got = training_curve([2.3, 1.2, 0.8, float("nan"), 0.5], tmp_path / "curve.png", title="t")
    assert_png(got)
    assert_png(training_curve([1.0], tmp_path / "single.png"))
    assert_no_leftovers(tmp_path, {"curve.png", "single.png"})


def test_empty_layers_are_drawn(tmp_path):
    """A layer in which no neuron spikes (all at t_max), and a layer with zero neurons."""
    silent = np.full((3, 5), 2.0)
    spiking = np.array([0.1, 0.5, 1.0, 0.9])  # 1.0 = silent input neuron
    windows = [(0.0, 1.0), (1.0, 2.0), (2.0, 3.0)]
    layers = [spiking, silent, np.empty(0)]
    assert_png(spike_raster(layers, windows, tmp_path / "r.png"), min_size=2_000)
    assert_png(spike_time_histograms(layers, windows, tmp_path / "h.png"), min_size=2_000)


def test_zero_width_window_and_out_of_window_times(tmp_path):
    # a zero-width (readout-like) window, and a spike before t_min
    layers = [np.array([0.2, 0.4]), np.array([0.5, 1.5, 3.0])]
    windows = [(0.0, 1.0), (1.0, 1.0)]
    assert_png(spike_raster(layers, windows, tmp_path / "r.png", readout_time=1.0), 2_000)
    assert_png(spike_time_histograms(layers, windows, tmp_path / "h.png"), 2_000)


def test_overwrite_is_atomic_and_leaves_no_temp_files(tmp_path, mapped):
    times, windows, _ = mapped
    target = tmp_path / "hist.png"
    target.write_bytes(b"old")
    spike_time_histograms(times, windows, target)
    assert_png(target)
    assert_no_leftovers(tmp_path, {"hist.png"})


def test_failed_save_keeps_old_file_and_removes_temp(tmp_path, monkeypatch, mapped):
    from matplotlib.figure import Figure

    def boom(self, *args, **kwargs):
        raise RuntimeError("disk full")

    times, windows, _ = mapped
    target = tmp_path / "raster.png"
    target.write_bytes(b"old")
    monkeypatch.setattr(Figure, "savefig", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        spike_raster([t[0] for t in times], windows, target)
    assert target.read_bytes() == b"old"
    assert_no_leftovers(tmp_path, {"raster.png"})


@pytest.mark.parametrize("fn", [spike_raster, spike_time_histograms])
def test_length_mismatch_names_both_lengths(tmp_path, fn):
    with pytest.raises(ValueError, match=r"2 layers.*1 entries"):
        fn([np.zeros(3), np.zeros(3)], [(0.0, 1.0)], tmp_path / "x.png")
    with pytest.raises(ValueError, match=r"labels has 1 entries but layer_times has 2"):
        fn([np.zeros(3), np.zeros(3)], [(0.0, 1.0)] * 2, tmp_path / "x.png", labels=["a"])
    assert not os.listdir(tmp_path)


@pytest.mark.parametrize("fn", [spike_raster, spike_time_histograms])
def test_invalid_inputs(tmp_path, fn):
    out = tmp_path / "x.png"
    with pytest.raises(ValueError, match="NaN"):
        fn([np.array([0.1, np.nan])], [(0.0, 1.0)], out)
    with pytest.raises(ValueError, match="NaN"):
        fn([torch.tensor([0.1, float("nan")])], [(0.0, 1.0)], out)
    with pytest.raises(ValueError, match="-inf"):
        fn([np.array([-np.inf])], [(0.0, 1.0)], out)
    with pytest.raises(ValueError, match="empty"):
        fn([], [], out)
    with pytest.raises(ValueError, match="t_max < t_min"):
        fn([np.zeros(2)], [(1.0, 0.0)], out)
    with pytest.raises(ValueError, match="pair"):
        fn([np.zeros(2)], [(0.0, 1.0, 2.0)], out)
    with pytest.raises(ValueError, match="labels"):
        fn([np.zeros(2)], [(0.0, 1.0)], out, labels=["a", "b"])
    assert not out.exists()


def test_raster_and_histogram_specific_validation(tmp_path):
    out = tmp_path / "x.png"
    with pytest.raises(ValueError, match="max_neurons_per_layer"):
        spike_raster([np.zeros(2)], [(0.0, 1.0)], out, max_neurons_per_layer=0)
    with pytest.raises(ValueError, match="readout_time"):
        spike_raster([np.zeros(2)], [(0.0, 1.0)], out, readout_time=float("inf"))
    with pytest.raises(ValueError, match="bins"):
        spike_time_histograms([np.zeros(2)], [(0.0, 1.0)], out, bins=0)
    with pytest.raises(ValueError, match="empty"):
        training_curve([], out)
    with pytest.raises(ValueError, match="1-D"):
        training_curve([[1.0, 2.0]], out)
    assert not out.exists()


def test_no_pyplot_figures_leak(tmp_path, mapped):
    import matplotlib.pyplot as plt

    times, windows, _ = mapped
    before = plt.get_fignums()
    spike_raster([t[0] for t in times], windows, tmp_path / "r.png")
    spike_time_histograms(times, windows, tmp_path / "h.png")
    training_curve([1.0, 0.5], tmp_path / "c.png")
    assert plt.get_fignums() == before


def test_written_file_has_normal_permissions(tmp_path):
    reference = tmp_path / "reference"
    reference.write_bytes(b"")
    got = training_curve([1.0, 0.5], tmp_path / "c.png")
    assert got.stat().st_mode & 0o777 == reference.stat().st_mode & 0o777
