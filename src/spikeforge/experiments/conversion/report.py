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
    "format_summary",
    "format_tables",
    "headline",
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
    each of :data:`TOLERANCES` (keys ``"0pp"``, ``"0.1pp"``, ...), that ``T`` over PASCAL's
    ``T_eff`` and over its pipelined latency, and the curve's spikes per neuron and synaptic
    operations up to that ``T``. Where the curve does not reach the accuracy within its
    ``T_max`` steps, ``steps`` is ``None`` and ``ratio_t_eff_above`` holds the lower bound
    ``T_max / T_eff`` (the method needs more than ``T_max`` steps)."""
    rows = []
    for variant, q in results["qcfs"].items():
        pascal = q.get("pascal")
        if not pascal:
            continue
        target = pascal["accuracy_curve_images"]
        t_eff, latency = pascal["t_eff"], pascal["latency"]["pipelined"]
        for method, curve in results["curves"].items():
            t_max = len(curve["accuracy"])
            entry: dict[str, Any] = {
                "pascal": variant,
                "target_accuracy": target,
                "pascal_t_eff": t_eff,
                "pascal_latency": latency,
                "method": method,
                "method_best": max(curve["accuracy"]),
                "t_max": t_max,
                "steps": {},
                "ratio_t_eff": {},
                "ratio_t_eff_above": {},
                "ratio_latency": {},
                "spikes_per_neuron": {},
                "synaptic_ops": {},
            }
            for tol in TOLERANCES:
                t = steps_to_reach(curve["accuracy"], target - tol)
                key = f"{100 * tol:g}pp"
                entry["steps"][key] = t
                entry["ratio_t_eff"][key] = None if t is None else t / t_eff
                entry["ratio_t_eff_above"][key] = t_max / t_eff if t is None else None
                entry["ratio_latency"][key] = None if t is None else t / latency
                for count in ("spikes_per_neuron", "synaptic_ops"):
                    values = curve.get(count)
                    entry[count][key] = values[t - 1] if values and t is not None else None
            rows.append(entry)
    return rows


def headline(results: dict[str, Any], variant: str = "AL") -> dict[str, Any] | None:
    """The step ratio PASCAL ``variant`` saves at equal accuracy: per tolerance, the fewest
    steps any IF-SNN curve (``if-*``) and any ReLU-based converter curve (SpikingJelly or the
    max-norm baseline) needs for PASCAL's accuracy, over PASCAL's ``T_eff`` (``above``: not
    reached within ``T_max``, the ratio is a lower bound)."""
    rows = [r for r in results.get("steps_table", []) if r["pascal"] == variant]
    if not rows:
        return None
    groups = {
        "if_snn": [r for r in rows if r["method"].startswith("if-")],
        "relu_converters": [r for r in rows if not r["method"].startswith("if-")],
    }
    out: dict[str, Any] = {
        "pascal": variant,
        "accuracy": rows[0]["target_accuracy"],
        "t_eff": rows[0]["pascal_t_eff"],
        "latency": rows[0]["pascal_latency"],
    }
    for group, members in groups.items():
        if not members:
            continue
        out[group] = {}
        for key in rows[0]["steps"]:
            reached = [r for r in members if r["steps"][key] is not None]
            if reached:
                best = min(reached, key=lambda r: r["steps"][key])
                out[group][key] = {
                    "method": best["method"],
                    "steps": best["steps"][key],
                    "ratio": best["ratio_t_eff"][key],
                    "above": False,
                }
            else:
                t_max = min(r["t_max"] for r in members)
                out[group][key] = {
                    "method": None,
                    "steps": None,
                    "ratio": t_max / rows[0]["pascal_t_eff"],
                    "above": True,
                    "t_max": t_max,
                }
    return out


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
            if t is None:
                cells.append(f"> {r['t_max']} (> {r['ratio_t_eff_above'][key]:.1f}x)")
            else:
                cells.append(f"{t} ({r['ratio_t_eff'][key]:.1f}x)")
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


def _draw(ax: Any, results: dict[str, Any], legend: bool) -> None:
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
            levels = " ".join(str(v) for v in p["levels"])
            ax.plot(
                [p["t_eff"]],
                [y],
                marker="*",
                markersize=13,
                color=color,
                linestyle="none",
                label=f"PASCAL {variant} (L {levels}): {_pct(y / 100)} % = its QCFS ANN "
                f"(dashed), T_eff {p['t_eff']:.2f}",
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
    ax.set_xscale("log", base=2)
    pascals = [q["pascal"] for q in results["qcfs"].values() if q.get("pascal")]
    right = max([steps] + [p["latency"]["pipelined"] for p in pascals])
    ax.set_xlim(0.8, right * 1.25)
    ax.set_xlabel("time steps T (PASCAL: star at T_eff, circle at its pipelined latency)")
    ax.grid(True, alpha=0.3, which="both")
    if legend:
        ax.legend(fontsize=6.5, loc="lower right")


def plot_accuracy(results: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """Accuracy against time steps on the curve images, whole range (left) and near the top
    (right): every rate-coded curve, the QCFS ANNs (dashed lines), the ReLU ANN (grey dotted),
    and each PASCAL network at its ``T_eff`` (star) and its pipelined latency (circle)."""
    fig = Figure(figsize=(12.0, 4.6), layout="constrained")
    full, zoom = fig.subplots(1, 2)
    _draw(full, results, legend=True)
    _draw(zoom, results, legend=False)
    full.set_ylim(0.0, 100.0)
    full.set_ylabel(f"test accuracy % ({results['curve_samples']} images)")
    pascal = [
        q["pascal"]["accuracy_curve_images"] for q in results["qcfs"].values() if q.get("pascal")
    ]
    tops = pascal + [max(c["accuracy"]) for c in results["curves"].values()]
    high = 100 * max(tops) if tops else 100.0
    low = 100 * min(pascal) if pascal else 0.0
    zoom.set_ylim(max(0.0, low - 3.0), min(100.0, high + 0.5))
    zoom.set_title("near the top")
    full.set_title(f"{results['dataset']} {results['arch']}: accuracy against time steps")
    return write_png(fig, path, dpi=_DPI)


def _steps_cell(entry: dict[str, Any] | None) -> str:
    if entry is None:
        return "-"
    if entry["above"]:
        return f"> {entry['t_max']} (> {entry['ratio']:.0f}x)"
    return f"{entry['steps']} ({entry['ratio']:.0f}x)"


def format_summary(lines: list[dict[str, Any]], tolerance: str = "0.5pp") -> str:
    """One row per reproduction line (``conversion.json`` dicts): PASCAL AL's levels, accuracy
    (= its QCFS ANN's, agreement on the whole test set), ``T_eff`` and latency, and the fewest
    steps an IF-SNN and a ReLU-network converter (SpikingJelly; the max-norm IF conversion
    where SpikingJelly could not run) need to come within ``tolerance`` of that
    accuracy, with the ratio to ``T_eff`` (Markdown)."""
    rows = []
    for r in lines:
        top = r.get("headline") or {}
        p = r["qcfs"]["AL"]["pascal"]
        rows.append(
            [
                f"{r['dataset']} {r['arch']}",
                " ".join(str(v) for v in p["levels"]),
                f"{_pct(r['qcfs']['AL']['accuracy'])} / {_pct(p['accuracy'])}",
                f"{p['agreement']:.4f}",
                f"{p['t_eff']:.2f} / {p['latency']['pipelined']}",
                _steps_cell((top.get("if_snn") or {}).get(tolerance)),
                _steps_cell((top.get("relu_converters") or {}).get(tolerance)),
            ]
        )
    tol = "same accuracy" if tolerance == "0pp" else f"within {tolerance[:-2]} pp"
    return format_table(
        [
            "data set, network",
            "AL levels",
            "QCFS ANN / PASCAL acc %",
            "agreement",
            "T_eff / latency",
            f"IF-SNN steps ({tol})",
            f"ReLU converter steps ({tol})",
        ],
        rows,
    )
