"""Neurons against window size for the DNF, complement and THRESH constructions (d = 1): every
count is introspected from a built circuit, beside its closed-form value."""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.figure import Figure

from spikeforge import universal as U
from spikeforge.viz import new_figure

__all__ = ["plot_scaling", "scaling"]


def _parity(w: np.ndarray) -> int:
    return int(w.sum() % 2)


def scaling(max_window: int = 10, random_tables: int = 5, seed: int = 0) -> list[dict[str, Any]]:
    """For window sizes ``m + 1 = 1..max_window``: parity by DNF, complement and THRESH, and
    the mean over ``random_tables`` random truth tables by DNF and complement (neurons and
    synapses, measured and by formula) and of the smaller of the two (what ``compile`` picks)."""
    rng = np.random.default_rng(seed)
    rows = []
    for window in range(1, max_window + 1):
        m = window - 1
        row: dict[str, Any] = {"window": window, "memory": m}
        for method in ("dnf", "complement", "thresh"):
            c = U.compile(_parity, inputs=1, memory=m, method=method, max_detectors=2**window)
            row[f"parity_{method}"] = {
                "neurons": c.neurons,
                "synapses": c.synapses,
                "formula_neurons": c.formula["neurons"],  # type: ignore[index]
            }
        for method in ("dnf", "complement"):
            counts = []
            for _ in range(random_tables):
                table = rng.integers(0, 2, size=2**window)
                c = U.compile(table, inputs=1, memory=m, method=method, max_detectors=2**window)
                counts.append((c.neurons, c.synapses, c.formula["neurons"]))  # type: ignore[index]
            arr = np.array(counts, dtype=float)
            if method == "dnf":
                dnf_neurons = arr[:, 0]
            else:
                row["random_auto"] = {"neurons": float(np.minimum(dnf_neurons, arr[:, 0]).mean())}
            row[f"random_{method}"] = {
                "neurons": float(arr[:, 0].mean()),
                "synapses": float(arr[:, 1].mean()),
                "formula_neurons": float(arr[:, 2].mean()),
            }
        rows.append(row)
    return rows


def plot_scaling(rows: list[dict[str, Any]]) -> Figure:
    """Neurons (log scale) against window size."""
    fig = new_figure((6.4, 4.2))
    ax = fig.add_subplot(1, 1, 1)
    w = [r["window"] for r in rows]
    series = [
        ("parity_dnf", "parity, DNF", "o-"),
        ("parity_complement", "parity, complement", "s--"),
        ("parity_thresh", "parity, THRESH", "^-"),
        ("random_dnf", "random table, DNF (mean of 5)", "x:"),
        ("random_complement", "random table, complement (mean of 5)", "+:"),
        ("random_auto", "random table, smaller of the two (compile)", "d-"),
    ]
    for key, label, style in series:
        ax.plot(w, [r[key]["neurons"] for r in rows], style, label=label)
    ax.set_yscale("log")
    ax.set_xlabel("window size m + 1 (d = 1)")
    ax.set_ylabel("neurons (measured)")
    ax.set_title("spikeforge constructions: neurons against window size")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    return fig
