"""Tables and the accuracy-against-time-steps plot of the conversion reproduction, from the
JSON-ready result dict of :func:`~spikeforge.experiments.conversion.runs.run_conversion` (or
``conversion.json`` read back). Accuracies are fractions in the JSON, percent in the tables.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from spikeforge.experiments.conversion.curves import steps_to_reach
from spikeforge.tables import format_table
from spikeforge.viz import write_png

__all__ = [
    "CURVE_LABELS",
    "REPORT_STEPS",
    "TOLERANCES",
    "format_tables",
    "plot_accuracy",
    "step_comparison",
]

TOLERANCES = (0.0, 0.001, 0.005, 0.01)
"""Accuracy a method may fall short of PASCAL's and still count as "the same" (fractions)."""

REPORT_STEPS = (1, 2, 4, 8, 16, 32, 64)

CURVE_LABELS = {
    "if-L4": "IF-SNN from QCFS L=4",
    "if-L8": "IF-SNN from QCFS L=8",
    "if-AL": "IF-SNN from QCFS AL",
    "spikingjelly-max": "SpikingJelly max-norm (ReLU)",
    "spikingjelly-99.9%": "SpikingJelly 99.9% (ReLU)",
    "maxnorm-if": "own max-norm IF (ReLU)",
}
_COLORS = {
    "if-L4": "tab:blue",
    "if-L8": "tab:cyan",
    "if-AL": "tab:olive",
    "spikingjelly-max": "tab:red",
    "spikingjelly-99.9%": "tab:orange",
    "maxnorm-if": "tab:brown",
}
_QCFS_COLORS = {"L4": "tab:blue", "L8": "tab:cyan", "AL": "tab:green"}
_DPI = 110


def _pct(v: float | None, digits: int = 2) -> str:
    return "-" if v is None else f"{100 * v:.{digits}f}"


def _num(v: float | None, digits: int = 2) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def step_comparison(results: dict[str, Any]) -> list[dict[str, Any]]:
    """For every PASCAL network (``L4``, ``L8``, ``AL``) and every accuracy curve: the first
    ``T`` at which the curve reaches PASCAL's accuracy on the curve images, exactly and within
    each of :data:`TOLERANCES`, and that ``T`` over PASCAL's ``T_eff`` and over its latency
    (``None``: not reached within the simulated steps)."""
    rows = []
    for variant, q in results["qcfs"].items():
        pascal = q.get("pascal")
        if not pascal:
            continue
        target = pascal["accuracy_curve_images"]
        for method, curve in results["curves"].items():
            entry: dict[str, Any] = {
                "pascal": variant,
                "target_accuracy": target,
                "pascal_t_eff": pascal["t_eff"],
                "pascal_latency": pascal["latency"]["pipelined"],
                "method": method,
                "method_best": max(curve["accuracy"]),
                "steps": {},
                "ratio_t_eff": {},
                "ratio_latency": {},
            }
            for tol in TOLERANCES:
                t = steps_to_reach(curve["accuracy"], target - tol)
                key = f"{100 * tol:g}pp"
                entry["steps"][key] = t
                entry["ratio_t_eff"][key] = None if t is None else t / pascal["t_eff"]
                entry["ratio_latency"][key] = (
                    None if t is None else t / pascal["latency"]["pipelined"]
                )
            rows.append(entry)
    return rows


def _networks_table(results: dict[str, Any]) -> str:
    rows = []
    relu = results.get("relu")
    if relu:
        rows.append(["ReLU ANN", "-", _pct(relu["accuracy"]), "-", "-", "-", "-", "-", "-", "-"])
    for variant, q in results["qcfs"].items():
        p = q.get("pascal") or {}
        lat = p.get("latency") or {}
        rows.append(
            [
                f"QCFS {variant} -> PASCAL",
                " ".join(str(v) for v in q["levels"]),
                _pct(q["accuracy"]),
                _pct(p.get("accuracy")),
                "-" if "agreement" not in p else f"{p['agreement']:.4f}",
                "-" if "max_abs_logit_diff" not in p else f"{p['max_abs_logit_diff']:.1e}",
                _num(p.get("t_eff")),
                f"{lat.get('pipelined', '-')} / {lat.get('sequential', '-')}",
                _num(p.get("spikes_per_neuron"), 3),
                "-" if p.get("synaptic_ops") is None else f"{p['synaptic_ops']:.3g}",
            ]
        )
    return format_table(
        [
            "network",
            "levels per layer",
            "ANN acc %",
            "PASCAL acc %",
            "agreement",
            "max |logit diff|",
            "T_eff",
            "latency pipel. / seq.",
            "spikes/neuron",
            "SOPs/image",
        ],
        rows,
    )


def _curves_table(results: dict[str, Any]) -> str:
    steps = [t for t in REPORT_STEPS if t <= results["settings"]["steps"]]
    rows = []
    for method, curve in results["curves"].items():
        acc = curve["accuracy"]
        spn = curve.get("spikes_per_neuron")
        best, at = max(acc), acc.index(max(acc)) + 1
        rows.append(
            [CURVE_LABELS.get(method, method)]
            + [_pct(acc[t - 1]) for t in steps]
            + [f"{_pct(best)} (T={at})", _num(spn[-1] if spn else None, 2)]
        )
    return format_table(
        ["method (accuracy % after T steps)", *[f"T={t}" for t in steps], "best", "spikes/n."],
        rows,
    )


def _steps_table(results: dict[str, Any], variant: str) -> str:
    rows = []
    for r in results["steps_table"]:
        if r["pascal"] != variant:
            continue
        cells = []
        for key, t in r["steps"].items():
            ratio = r["ratio_t_eff"][key]
            cells.append("not reached" if t is None else f"{t} ({ratio:.1f}x)")
        rows.append([CURVE_LABELS.get(r["method"], r["method"]), *cells, _pct(r["method_best"])])
    if not rows:
        return ""
    first = next(r for r in results["steps_table"] if r["pascal"] == variant)
    keys = list(first["steps"])
    headers = [
        f"steps for PASCAL {variant}'s {_pct(first['target_accuracy'])} % "
        f"(T_eff {first['pascal_t_eff']:.2f}; x = T / T_eff)",
        *[("same" if k == "0pp" else f"-{k}") for k in keys],
        "method best %",
    ]
    return format_table(headers, rows)


def format_tables(results: dict[str, Any]) -> str:
    """The networks table (QCFS / PASCAL), the accuracy of every curve at ``T = 1, 2, 4, ...``,
    and the steps every curve needs for each PASCAL network's accuracy."""
    parts = [
        f"{results['dataset']} {results['arch']}: QCFS ANN and PASCAL on {results['test_samples']}"
        " test images",
        _networks_table(results),
        f"accuracy against time steps on {results['curve_samples']} test images",
        _curves_table(results),
    ]
    for variant in results["qcfs"]:
        table = _steps_table(results, variant)
        if table:
            parts.append(table)
    sj = results.get("spikingjelly") or {}
    if sj.get("error"):
        parts.append(f"SpikingJelly: {sj['error']}")
    return "\n\n".join(parts)


def plot_accuracy(
    results: dict[str, Any], path: str | os.PathLike[str], log_x: bool = True
) -> Path:
    """Accuracy against time steps on the curve images: every rate-coded curve, the QCFS ANNs
    (dashed lines), the ReLU ANN (grey dotted), and each PASCAL network at its ``T_eff``
    (filled marker) and its pipelined latency (hollow marker)."""
    fig = Figure(figsize=(7.5, 4.6), layout="constrained")
    ax = fig.subplots()
    steps = results["settings"]["steps"]
    t = np.arange(1, steps + 1)
    for method, curve in results["curves"].items():
        ax.plot(
            t,
            100 * np.asarray(curve["accuracy"]),
            color=_COLORS.get(method),
            label=CURVE_LABELS.get(method, method),
            linewidth=1.4,
        )
    relu = results.get("relu")
    if relu and relu.get("accuracy_curve_images") is not None:
        ax.axhline(
            100 * relu["accuracy_curve_images"],
            color="grey",
            linestyle=":",
            label=f"ReLU ANN {_pct(relu['accuracy_curve_images'])} %",
        )
    for variant, q in results["qcfs"].items():
        color = _QCFS_COLORS.get(variant, "black")
        acc = q.get("accuracy_curve_images")
        if acc is not None:
            ax.axhline(100 * acc, color=color, linestyle="--", linewidth=0.9)
        p = q.get("pascal")
        if p:
            y = 100 * p["accuracy_curve_images"]
            ax.plot(
                [p["t_eff"]],
                [y],
                marker="*",
                markersize=13,
                color=color,
                linestyle="none",
                label=f"PASCAL {variant} at T_eff {p['t_eff']:.2f} "
                f"({_pct(p['accuracy_curve_images'])} % = QCFS ANN, dashed)",
            )
            ax.plot(
                [p["latency"]["pipelined"]],
                [y],
                marker="o",
                markersize=7,
                markerfacecolor="none",
                color=color,
                linestyle="none",
            )
    if log_x:
        ax.set_xscale("log", base=2)
    right = max(
        [steps]
        + [q["pascal"]["latency"]["pipelined"] for q in results["qcfs"].values() if q.get("pascal")]
    )
    ax.set_xlim(0.8, right * 1.25)
    lows = [min(c["accuracy"][min(3, steps - 1) :]) for c in results["curves"].values()]
    floor = 100 * min(lows) if lows else 0.0
    ax.set_ylim(max(0.0, floor - 5), 100.0)
    ax.set_xlabel("time steps T (PASCAL: T_eff = star, pipelined latency = circle)")
    ax.set_ylabel(f"test accuracy % ({results['curve_samples']} images)")
    ax.set_title(f"{results['dataset']} {results['arch']}: accuracy against time steps")
    ax.grid(True, alpha=0.3, which="both")
    ax.legend(fontsize=7, loc="lower right")
    return write_png(fig, path, dpi=_DPI)
