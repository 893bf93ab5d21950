"""Plots of spike times and training curves, written as PNG files.

Conventions (shared with :mod:`spikeforge.ttfs` and :mod:`spikeforge.metrics`):

* ``layer_times[k]`` holds the spike times of layer ``k`` (a :class:`torch.Tensor` or a
  :class:`numpy.ndarray` of any shape; it is flattened). For :func:`spike_raster` it is *one*
  sample (e.g. ``out.hidden_times[n][b]``); for :func:`spike_time_histograms` any number of
  samples (e.g. ``out.hidden_times[n]`` of shape ``[B, *shape]``).
* ``windows[k] = (t_min, t_max)`` is that layer's firing window. A time ``>= t_max`` (``+inf``
  included) means "no spike" (a silent neuron); a neuron spikes iff its time is ``< t_max``.
  The input layer's window is ``(0.0, 1.0)``; hidden layer ``n`` has
  ``(w.t_min, w.t_max)`` for ``w = net.windows.layer(n)``. Objects with ``t_min`` / ``t_max``
  attributes (such as :class:`spikeforge.ttfs.LayerWindow`) are accepted too.

Every function validates its inputs, creates missing parent directories, writes the PNG
atomically (a temporary file in the target directory, then :func:`os.replace`), closes the
figure and returns the :class:`~pathlib.Path` written. Figures are plain
:class:`matplotlib.figure.Figure` objects on the Agg canvas; no pyplot state is touched.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from torch import Tensor

from spikeforge.io import atomic_write

__all__ = ["new_figure", "spike_raster", "spike_time_histograms", "training_curve", "write_png"]

_DPI = 120


# ---------------------------------------------------------------------------------------------
# validation helpers
# ---------------------------------------------------------------------------------------------


def _as_flat_times(t: Tensor | np.ndarray, name: str) -> np.ndarray:
    """Flatten one layer's times to a float64 numpy vector; reject NaN and ``-inf``."""
    if isinstance(t, Tensor):
        arr = t.detach().to("cpu").double().numpy().reshape(-1)
    else:
        try:
            arr = np.asarray(t, dtype=np.float64).reshape(-1)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{name}: cannot read spike times as numbers ({exc})") from exc
    if np.isnan(arr).any():
        raise ValueError(f"{name}: {int(np.isnan(arr).sum())} spike time(s) are NaN")
    if np.isneginf(arr).any():
        raise ValueError(f"{name}: {int(np.isneginf(arr).sum())} spike time(s) are -inf")
    return arr


def _as_window(w: Any, name: str) -> tuple[float, float]:
    """``(t_min, t_max)`` from a pair or from an object with ``t_min`` / ``t_max``."""
    if hasattr(w, "t_min") and hasattr(w, "t_max"):
        pair = (w.t_min, w.t_max)
    else:
        try:
            pair = tuple(w)
        except TypeError as exc:
            raise ValueError(f"{name} must be a pair (t_min, t_max), got {w!r}") from exc
    if len(pair) != 2:
        raise ValueError(f"{name} must be a pair (t_min, t_max), got {w!r}")
    try:
        t_min, t_max = float(pair[0]), float(pair[1])
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must hold two numbers, got {w!r}") from exc
    if not (math.isfinite(t_min) and math.isfinite(t_max)):
        raise ValueError(f"{name} must be finite, got ({t_min}, {t_max})")
    if t_max < t_min:
        raise ValueError(f"{name} has t_max < t_min: ({t_min}, {t_max})")
    return t_min, t_max


def _prepare_layers(
    layer_times: Sequence[Tensor | np.ndarray],
    windows: Sequence[Any],
    labels: Sequence[str] | None,
) -> tuple[list[np.ndarray], list[tuple[float, float]], list[str]]:
    if len(layer_times) != len(windows):
        raise ValueError(
            f"layer_times has {len(layer_times)} layers but windows has {len(windows)} entries"
        )
    if len(layer_times) == 0:
        raise ValueError("layer_times is empty: nothing to plot")
    if labels is None:
        names = [f"layer {k}" for k in range(len(layer_times))]
    else:
        if isinstance(labels, str) or len(labels) != len(layer_times):
            n_labels = 1 if isinstance(labels, str) else len(labels)
            raise ValueError(
                f"labels has {n_labels} entries but layer_times has {len(layer_times)} layers"
            )
        names = [str(s) for s in labels]
    times = [_as_flat_times(t, f"layer_times[{k}] ({names[k]})") for k, t in enumerate(layer_times)]
    wins = [_as_window(w, f"windows[{k}] ({names[k]})") for k, w in enumerate(windows)]
    return times, wins, names


def _subsample_indices(n: int, limit: int) -> np.ndarray:
    """At most ``limit`` indices out of ``range(n)``, evenly spaced, first and last included."""
    if n <= limit:
        return np.arange(n)
    return np.unique(np.round(np.linspace(0, n - 1, limit)).astype(np.int64))


def write_png(fig: Figure, path: str | os.PathLike[str], dpi: int = _DPI) -> Path:
    """Save ``fig`` as PNG to ``path`` atomically (:func:`spikeforge.io.atomic_write`), then
    clear it (its artists are not needed once written)."""
    try:
        return atomic_write(path, lambda fh: fig.savefig(fh, format="png", dpi=dpi))
    finally:
        fig.clear()


def new_figure(figsize: tuple[float, float]) -> Figure:
    """A constrained-layout figure not registered with pyplot (no global state); savefig
    attaches an Agg canvas by itself."""
    return Figure(figsize=figsize, layout="constrained")


def _colors(n: int) -> list[Any]:
    from matplotlib import colormaps

    cmap = colormaps["tab10"]
    return [cmap(k % 10) for k in range(n)]


# ---------------------------------------------------------------------------------------------
# public plots
# ---------------------------------------------------------------------------------------------


def spike_raster(
    layer_times: Sequence[Tensor | np.ndarray],
    windows: Sequence[tuple[float, float]],
    path: str | os.PathLike[str],
    *,
    labels: Sequence[str] | None = None,
    title: str = "",
    readout_time: float | None = None,
    max_neurons_per_layer: int = 400,
) -> Path:
    """Spike raster of one sample across layers.

    Args:
        layer_times: per layer ``k``, the spike times of *one* sample, any shape (flattened in
            C order, so neuron ``i`` is flat index ``i``). Tensors are detached and moved to CPU.
        windows: per layer ``k``, its window ``(t_min, t_max)``; same length as
            ``layer_times``. Times ``>= t_max`` are silent neurons and are not drawn.
        path: PNG file to write (parent directories are created).
        labels: layer names for the legend (default ``"layer k"``).
        title: figure title.
        readout_time: if given, drawn as a dashed vertical line (e.g. the output layer's
            ``t_min``).
        max_neurons_per_layer: at most this many neurons per layer are drawn, evenly spaced
            over the flat index (deterministic); the legend says when a layer was subsampled.
            Spike counts in the legend are over *all* neurons of the layer.

    Layout: x is time, y is the neuron row; layer 0 occupies the bottom band, later layers are
    stacked above it. Each band is shaded over its layer's window ``[t_min, t_max]``.

    Returns:
        The path written.

    Raises:
        ValueError: lengths of ``layer_times`` / ``windows`` / ``labels`` differ, no layers,
            NaN or ``-inf`` times, a malformed window, a non-finite ``readout_time`` or
            ``max_neurons_per_layer < 1``.
    """
    times, wins, names = _prepare_layers(layer_times, windows, labels)
    if isinstance(max_neurons_per_layer, bool) or int(max_neurons_per_layer) < 1:
        raise ValueError(f"max_neurons_per_layer must be >= 1, got {max_neurons_per_layer}")
    limit = int(max_neurons_per_layer)
    if readout_time is not None:
        readout_time = float(readout_time)
        if not math.isfinite(readout_time):
            raise ValueError(f"readout_time must be finite, got {readout_time}")

    colors = _colors(len(times))
    fig = new_figure((9.0, 5.5))
    try:
        ax = fig.add_subplot()
        offset = 0
        band_centers: list[float] = []
        x_lo = min(w[0] for w in wins)
        x_hi = max(w[1] for w in wins)
        for k, (t, (t_min, t_max), name) in enumerate(zip(times, wins, names, strict=True)):
            n = t.size
            idx = _subsample_indices(n, limit)
            rows = idx.size
            band = max(rows, 1)
            shown = t[idx]
            spiking = shown < t_max
            n_spikes = int((t < t_max).sum())
            color = colors[k]
            # shade the layer's window inside its band
            if t_max > t_min:
                ax.add_patch(
                    Rectangle(
                        (t_min, offset - 0.5),
                        t_max - t_min,
                        band,
                        facecolor=color,
                        alpha=0.10,
                        edgecolor="none",
                        zorder=0,
                    )
                )
            else:  # zero-width window (e.g. a readout layer): mark it with a thin line
                ax.plot([t_min, t_min], [offset - 0.5, offset + band - 0.5], color=color, alpha=0.4)
            label = f"{name}: {n_spikes} of {n} spike"
            if rows < n:
                label += f" (showing {rows} of {n} neurons)"
            rows_y = offset + np.nonzero(spiking)[0]
            ax.scatter(
                shown[spiking],
                rows_y,
                s=6 if rows > 100 else 14,
                marker="o",
                linewidths=0,
                color=color,
                label=label,
                zorder=2,
            )
            if spiking.any():
                x_lo = min(x_lo, float(shown[spiking].min()))
            band_centers.append(offset + (band - 1) / 2)
            offset += band
            if k < len(times) - 1:
                ax.axhline(offset - 0.5, color="0.6", linewidth=0.6, zorder=1)
        if readout_time is not None:
            ax.axvline(
                readout_time,
                color="black",
                linestyle="--",
                linewidth=1.0,
                label=f"readout t = {readout_time:.4g}",
                zorder=3,
            )
            x_lo = min(x_lo, readout_time)
            x_hi = max(x_hi, readout_time)
        span = x_hi - x_lo if x_hi > x_lo else 1.0
        ax.set_xlim(x_lo - 0.02 * span, x_hi + 0.02 * span)
        ax.set_ylim(-0.5, offset - 0.5)
        ax.set_xlabel("time")
        ax.set_ylabel("neuron (layers stacked bottom to top)")
        # secondary labels on the right: layer names at band centres
        sec = ax.secondary_yaxis("right")
        sec.set_yticks(band_centers, labels=names)
        sec.tick_params(length=0)
        if title:
            ax.set_title(title)
        legend = ax.legend(
            loc="upper center",
            bbox_to_anchor=(0.5, -0.12),
            ncol=1 if len(times) > 3 else 2,
            fontsize="small",
            frameon=False,
        )
        for handle in legend.legend_handles:  # same marker size for every layer
            if hasattr(handle, "set_sizes"):
                handle.set_sizes([30.0])
        return write_png(fig, path)
    finally:
        fig.clear()


def spike_time_histograms(
    layer_times: Sequence[Tensor | np.ndarray],
    windows: Sequence[tuple[float, float]],
    path: str | os.PathLike[str],
    *,
    labels: Sequence[str] | None = None,
    title: str = "",
    bins: int = 50,
) -> Path:
    """Histograms of spike times, one subplot per layer, pooled over all samples and neurons.

    Args:
        layer_times: per layer ``k``, spike times of any shape, typically ``[B, *shape]``
            (all entries are pooled).
        windows: per layer ``k``, its window ``(t_min, t_max)``; same length as
            ``layer_times``. Only spiking neurons (time ``< t_max``) enter the histogram; the
            silent fraction (time ``>= t_max``) is written in the subplot title.
        path: PNG file to write (parent directories are created).
        labels: layer names (default ``"layer k"``).
        title: figure title.
        bins: number of equal-width bins over the window.

    The x-range of each subplot is its layer's window. Spikes before ``t_min`` (which a correct
    mapping never produces) fall outside it and are counted in the subplot title. A layer
    without spikes shows "no spikes"; a zero-width window is widened by ``±0.5`` for display.

    Returns:
        The path written.

    Raises:
        ValueError: lengths of ``layer_times`` / ``windows`` / ``labels`` differ, no layers,
            NaN or ``-inf`` times, a malformed window, or ``bins < 1``.
    """
    times, wins, names = _prepare_layers(layer_times, windows, labels)
    if isinstance(bins, bool) or not isinstance(bins, (int, np.integer)) or bins < 1:
        raise ValueError(f"bins must be a positive integer, got {bins!r}")

    colors = _colors(len(times))
    n_layers = len(times)
    fig = new_figure((7.0, 0.6 + 2.1 * n_layers))
    try:
        axes = fig.subplots(n_layers, 1, squeeze=False)[:, 0]
        for k, (ax, t, (t_min, t_max), name) in enumerate(
            zip(axes, times, wins, names, strict=True)
        ):
            n = t.size
            spikes = t[t < t_max]
            n_silent = n - spikes.size
            early = int((spikes < t_min).sum())
            lo, hi = (t_min, t_max) if t_max > t_min else (t_min - 0.5, t_max + 0.5)
            if spikes.size:
                ax.hist(
                    spikes,
                    bins=int(bins),
                    range=(lo, hi),
                    color=colors[k],
                    edgecolor="white",
                    linewidth=0.3,
                )
            else:
                ax.text(
                    0.5,
                    0.5,
                    "no spikes",
                    transform=ax.transAxes,
                    ha="center",
                    va="center",
                    color="0.4",
                )
            ax.set_xlim(lo, hi)
            frac = n_silent / n if n else float("nan")
            sub = f"{name}: {frac:.1%} silent ({n_silent} of {n} neuron-samples)"
            if early:
                sub += f", {early} spike(s) before t_min not shown"
            ax.set_title(sub, fontsize="medium")
            ax.set_ylabel("spikes")
            ax.set_xlabel("spike time")
        if title:
            fig.suptitle(title)
        return write_png(fig, path)
    finally:
        fig.clear()


def training_curve(
    values: Sequence[float],
    path: str | os.PathLike[str],
    *,
    ylabel: str = "loss",
    title: str = "",
    xlabel: str = "epoch",
) -> Path:
    """Line plot of a per-epoch (or per-step) scalar, e.g. ``TrainLog.losses``.

    Args:
        values: 1-D sequence of numbers; value ``i`` is plotted at x = ``i + 1``. Non-finite
            values (a diverged loss) are left as gaps and counted in the title.
        path: PNG file to write (parent directories are created).
        ylabel: y-axis label.
        title: figure title.
        xlabel: x-axis label.

    Returns:
        The path written.

    Raises:
        ValueError: ``values`` is empty, not 1-D or not numeric.
    """
    if isinstance(values, Tensor):
        arr = values.detach().to("cpu").double().numpy()
    else:
        try:
            arr = np.asarray(values, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"values must be numbers ({exc})") from exc
    if arr.ndim != 1:
        raise ValueError(f"values must be 1-D, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError("values is empty: nothing to plot")
    finite = np.isfinite(arr)
    shown = np.where(finite, arr, np.nan)

    fig = new_figure((6.4, 4.0))
    try:
        ax = fig.add_subplot()
        x = np.arange(1, arr.size + 1)
        ax.plot(x, shown, marker="o" if arr.size <= 50 else None, markersize=3, linewidth=1.2)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.grid(True, alpha=0.3)
        full_title = title
        if not finite.all():
            note = f"{int((~finite).sum())} non-finite value(s) not shown"
            full_title = f"{title} ({note})" if title else note
        if full_title:
            ax.set_title(full_title)
        if arr.size == 1:
            ax.set_xlim(0.5, 1.5)
        return write_png(fig, path)
    finally:
        fig.clear()
