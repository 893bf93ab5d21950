"""Markdown tables and plots of the IMP / LTS / TET reproductions
(:mod:`spikeforge.experiments.imp.experiments`).

Every function takes the JSON-ready result dict an experiment returns (or reads back from
``imp-<name>.json``). Accuracies are printed in percent; ``a ± s`` is the mean and the sample
standard deviation over seeds.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from spikeforge.tables import format_table
from spikeforge.viz import write_png

__all__ = [
    "format_convergence_table",
    "format_digits_acceptance",
    "format_digits_table",
    "format_fashion_table",
    "format_imp_tables",
    "format_patterns_table",
    "plot_convergence",
    "plot_digits",
    "plot_fashion",
]

_DPI = 100
_COLORS = {"sdt": "tab:blue", "lts": "tab:red", "tet": "tab:green", "tet-s": "tab:purple"}


def _pct(stats: dict[str, Any], std: bool = True) -> str:
    """``"96.2 ± 0.5"`` from a ``{"mean", "std"}`` of fractions (no ``±`` for one seed)."""
    mean = 100 * stats["mean"]
    if not std or stats.get("n", 1) < 2:
        return f"{mean:.1f}"
    return f"{mean:.1f} ± {100 * stats['std']:.1f}"


def _verdict(passed: bool | None) -> str:
    return "n/a" if passed is None else ("PASS" if passed else "FAIL")


def format_patterns_table(results: dict[str, Any]) -> str:
    """Pairs / mappings with ``IMP = 0`` and on the IMP grid per setting, beside the spec's."""
    rows = []
    for r in results["rows"]:
        spec = r["spec"]
        rows.append(
            [
                r["setting"],
                f"{r['imp_zero']['pairs']} / {r['imp_zero']['mappings']}",
                f"{r['imp_grid']['pairs']} / {r['imp_grid']['mappings']}",
                "-"
                if spec is None
                else f"{spec['imp_zero']['pairs']} / {spec['imp_zero']['mappings']} -> "
                f"{spec['imp_grid']['pairs']} / {spec['imp_grid']['mappings']}",
                "-" if r["matches_spec"] is None else ("yes" if r["matches_spec"] else "NO"),
            ]
        )
    return format_table(
        [
            "setting (w: 9 pts in [0, 1], IMP: 9 pts in [-1, 1])",
            "IMP = 0: pairs / mappings",
            "IMP grid: pairs / mappings",
            "spec §4.6",
            "match",
        ],
        rows,
    )


def format_digits_table(results: dict[str, Any]) -> str:
    """Per arm: test accuracy (%) of ``O[1..T]``, of the loss's readout and of the mean readout,
    mean ± std over seeds."""
    summary = results["summary"]
    steps = len(next(iter(summary.values()))["per_step"])
    rows = []
    for row in summary.values():
        rows.append(
            [
                "yes" if row["imp"] else "no",
                row["loss"].upper(),
                *(_pct(s) for s in row["per_step"]),
                f"{_pct(row['readout_accuracy'])} ({row['readout']})",
                _pct(row["mean_readout"]),
            ]
        )
    return format_table(
        ["IMP", "loss", *(f"O[{t}]" for t in range(1, steps + 1)), "readout", "mean readout"],
        rows,
    )


def format_digits_acceptance(results: dict[str, Any]) -> str:
    """The issue's acceptance check of the digits experiment, one line per comparison."""
    acc = results["acceptance"]
    lines = [f"Acceptance ({acc['definition']}): **{_verdict(acc['passed'])}**"]
    for c in acc["within"]:
        lines.append(
            f"* {c['arm']}: O[1] {100 * c['first_step']:.1f} vs readout {100 * c['final']:.1f} "
            f"(gap {100 * c['gap']:+.1f} points): {_verdict(c['passed'])}"
        )
    for c in acc["clearly_above"]:
        lines.append(
            f"* {c['arm']} O[1] {100 * c['first_step']:.1f} vs no-IMP {c['baseline'].upper()} "
            f"O[1] {100 * c['baseline_first_step']:.1f} ({100 * c['difference']:+.1f} points, "
            f"seeds {'separated' if c['seeds_separated'] else 'overlap'}): "
            f"{_verdict(c['passed'])}"
        )
    return "\n".join(lines)


def format_convergence_table(results: dict[str, Any]) -> str:
    """Per loss: training accuracy (%) at the report epoch and at the end, and the first epoch
    reaching 90 % / 99 % per seed; then the spec's check."""
    cfg = results["config"]
    e = cfg["report_epoch"]

    def reach(values: Sequence[int | None]) -> str:
        return ", ".join("-" if v is None else str(v) for v in values)

    rows = [
        [
            s["label"],
            _pct(s["at_report_epoch"]),
            _pct(s["final"]),
            reach(s["epochs_to_90"]),
            reach(s["epochs_to_99"]),
        ]
        for s in results["summary"].values()
    ]
    table = format_table(
        [
            "loss",
            f"train acc @ epoch {e}",
            f"train acc @ epoch {cfg['epochs']}",
            "epochs to 90 % (per seed)",
            "epochs to 99 % (per seed)",
        ],
        rows,
    )
    check = results.get("check")
    if check:
        n = len(cfg["seeds"])
        table += (
            f"\n\nCheck ({check['definition']}): {100 * check['lts']:.1f} vs "
            f"{100 * check['sdt']:.1f}, LTS ahead in {check['seeds_with_lts_ahead']} of {n} "
            f"seeds: **{_verdict(check['passed'])}**"
        )
    return table


def format_fashion_table(results: dict[str, Any]) -> str:
    """Per arm: test accuracy (%) of ``O[1..T]``, of the loss's readout and of the mean readout,
    and the training time."""
    arms = results["arms"]
    steps = len(next(iter(arms.values()))["per_step"])
    rows = [
        [
            a["label"],
            *(f"{100 * v:.2f}" for v in a["per_step"]),
            f"{100 * a['readout_accuracy']:.2f} ({a['readout']})",
            f"{100 * a['mean_readout']:.2f}",
            f"{a['train_seconds']:.0f}",
        ]
        for a in arms.values()
    ]
    return format_table(
        ["arm", *(f"O[{t}]" for t in range(1, steps + 1)), "readout", "mean readout", "train s"],
        rows,
    )


def format_imp_tables(results: dict[str, dict[str, Any]]) -> str:
    """All tables of a :func:`~spikeforge.experiments.imp.experiments.run_imp_reproduction`
    result, each under a Markdown heading."""
    parts = []
    if "patterns" in results:
        parts.append(
            "## Pattern mappings (spec §4.6)\n\n" + format_patterns_table(results["patterns"])
        )
    if "digits" in results:
        cfg = results["digits"]["config"]
        parts.append(
            f"## Per-time-step test accuracy, sklearn digits ({len(cfg['seeds'])} seeds, "
            f"{cfg['epochs']} epochs)\n\n"
            + format_digits_table(results["digits"])
            + "\n\n"
            + format_digits_acceptance(results["digits"])
        )
    if "convergence" in results:
        cfg = results["convergence"]["config"]
        parts.append(
            f"## LTS convergence, random data (width {cfg['sizes'][1]}, "
            f"{len(cfg['seeds'])} seeds)\n\n" + format_convergence_table(results["convergence"])
        )
    if "fashion" in results:
        cfg = results["fashion"]["config"]
        parts.append(
            f"## Fashion-MNIST conv SNN, T = {cfg['time_steps']} ({cfg['train_samples']} "
            f"training images, {cfg['epochs']} epochs, {cfg['test_samples']} test images)\n\n"
            + format_fashion_table(results["fashion"])
        )
    return "\n\n".join(parts)


# ---------------------------------------------------------------------------------------------
# plots
# ---------------------------------------------------------------------------------------------


def plot_digits(results: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """One panel per loss: bars of the test accuracy of ``O[1..T]`` and of the loss's readout,
    without IMP (light) and with IMP (dark), mean over seeds with ± std error bars."""
    summary = results["summary"]
    losses = list(dict.fromkeys(r["loss"] for r in summary.values()))
    fig = Figure(figsize=(3.4 * len(losses), 3.2), layout="constrained")
    axes = fig.subplots(1, len(losses), squeeze=False, sharey=True)[0]
    for ax, loss in zip(axes, losses, strict=True):
        for k, imp in enumerate((False, True)):
            row = summary.get(f"imp+{loss}" if imp else loss)
            if row is None:
                continue
            stats = [*row["per_step"], row["readout_accuracy"]]
            means = np.array([100 * s["mean"] for s in stats])
            stds = np.array([100 * s["std"] for s in stats])
            pos = np.arange(len(stats)) + (k - 0.5) * 0.38
            ax.bar(
                pos,
                means,
                width=0.38,
                yerr=stds,
                capsize=2,
                color=_COLORS.get(loss, "tab:gray"),
                alpha=1.0 if imp else 0.4,
                label="with IMP" if imp else "no IMP",
            )
        steps = len(next(iter(summary.values()))["per_step"])
        ax.set_xticks(range(steps + 1), [*(f"O[{t}]" for t in range(1, steps + 1)), "readout"])
        ax.set_title(loss.upper())
        ax.set_ylim(0, 100)
        ax.grid(True, axis="y", alpha=0.3)
    axes[0].set_ylabel("test accuracy (%)")
    axes[0].legend(fontsize=7, loc="lower right")
    return write_png(fig, path, dpi=_DPI)


def plot_convergence(results: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """Training accuracy (left) and loss (right) per epoch for every loss, mean over seeds with
    a min-max band."""
    runs = results["runs"]
    names = list(results["summary"])
    fig = Figure(figsize=(9.0, 3.4), layout="constrained")
    acc_ax, loss_ax = fig.subplots(1, 2)
    for name in names:
        color = _COLORS.get(name, "tab:gray")
        label = results["summary"][name]["label"]
        for key, ax in (("accuracy", acc_ax), ("loss", loss_ax)):
            curves = np.array([runs[s][name][key] for s in runs], dtype=np.float64)
            if key == "accuracy":
                curves = 100 * curves
            x = np.arange(curves.shape[1]) + (0 if key == "accuracy" else 1)
            ax.plot(x, curves.mean(0), color=color, label=label)
            if curves.shape[0] > 1:
                ax.fill_between(x, curves.min(0), curves.max(0), color=color, alpha=0.2)
    e = results["config"]["report_epoch"]
    acc_ax.axvline(e, color="gray", linestyle=":", linewidth=1)
    acc_ax.set_xlabel("epoch")
    acc_ax.set_ylabel("training accuracy (%)")
    acc_ax.set_ylim(0, 100)
    loss_ax.set_xlabel("epoch")
    loss_ax.set_ylabel("training loss")
    for ax in (acc_ax, loss_ax):
        ax.grid(True, alpha=0.3)
    acc_ax.legend(fontsize=8)
    w = results["config"]["sizes"][1]
    fig.suptitle(f"IF MLP 16-{w}-{w}-{w}-16, T = {results['config']['time_steps']}, full batch")
    return write_png(fig, path, dpi=_DPI)


def plot_fashion(results: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """Test accuracy of ``O[t]`` per time step for every arm (lines; solid with IMP, dashed
    without), with each arm's readout accuracy as a star at the right."""
    arms = results["arms"]
    fig = Figure(figsize=(5.0, 3.4), layout="constrained")
    ax = fig.subplots()
    steps = len(next(iter(arms.values()))["per_step"])
    t = np.arange(1, steps + 1)
    for a in arms.values():
        color = _COLORS.get(a["loss"], "tab:gray")
        style = "-" if a["imp"] else "--"
        line = ax.plot(
            t, [100 * v for v in a["per_step"]], style, marker="o", color=color, label=a["label"]
        )[0]
        ax.plot(
            [steps + 1],
            [100 * a["readout_accuracy"]],
            marker="*",
            markersize=10,
            color=line.get_color(),
            linestyle="none",
        )
    ax.set_xticks([*t, steps + 1], [*(f"O[{k}]" for k in t), "readout"])
    ax.set_ylabel("test accuracy (%)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, handlelength=3.5)
    cfg = results["config"]
    ax.set_title(
        f"Fashion-MNIST conv SNN, {cfg['train_samples']} images x {cfg['epochs']} epochs",
        fontsize=9,
    )
    return write_png(fig, path, dpi=_DPI)
