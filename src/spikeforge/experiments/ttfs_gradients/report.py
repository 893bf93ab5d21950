"""Markdown tables and plots of the gradient experiment's result (or ``gradients.json``)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from spikeforge.experiments.ttfs_gradients.runs import (
    DISTANCE_RUNS,
    FLOOR,
    RUN_COLORS,
    RUN_LABELS,
    RUNS,
)
from spikeforge.tables import format_table
from spikeforge.viz import write_png

_DPI = 120
_LOG_FLOOR = 1e-17  # exact zeros are drawn here on log axes


# ---------------------------------------------------------------------------------------------
# tables and plots
# ---------------------------------------------------------------------------------------------


def format_gradient_tables(results: dict) -> str:
    """Markdown tables from :func:`run_gradient_experiment`'s result (or ``gradients.json``):
    per depth and run, the final parameter distance to the ReLU run (and the largest max-abs
    distance over all steps), the final logit distance, final test accuracy and loss, window
    violations (spikes before ``t_min``, summed over the training batches) and divergence
    (plus the float64 noise-floor row, a ReLU run from a perturbed initialisation, when
    recorded); then the per-layer gradient norm ratio
    ``||dL/dW_last|| / ||dL/dW_first||`` (output layer over first hidden layer) at
    initialisation and at the end."""
    traj_rows: list[list[object]] = []
    grad_rows: list[list[object]] = []
    for depth, rep in results["depths"].items():
        for name in RUNS:
            s = rep["summary"][name]
            diverged = s["diverged_at"]
            traj_rows.append(
                [
                    depth,
                    RUN_LABELS[name],
                    s.get("final_param_rel_l2"),
                    s.get("final_param_max_abs"),
                    s.get("max_param_max_abs"),
                    s.get("final_function_rel_l2"),
                    s["final_accuracy"] if diverged is None else s["last_accuracy"],
                    s["final_loss"],
                    s["window_violations"],
                    "-" if diverged is None else f"step {diverged}",
                ]
            )
            norms = rep["eval"]["grad_norms"][name]
            first = norms[0]
            last = next((v for v in reversed(norms) if v is not None), None)
            grad_rows.append(
                [
                    depth,
                    RUN_LABELS[name],
                    first[0] if first else None,
                    first[-1] if first else None,
                    s["grad_ratio_init"],
                    last[0] if last else None,
                    last[-1] if last else None,
                    s["grad_ratio_final"],
                ]
            )
        floor = rep["summary"].get(FLOOR)
        if floor and floor["final_param_rel_l2"] is not None:
            traj_rows.append(
                [
                    depth,
                    RUN_LABELS[FLOOR],
                    floor["final_param_rel_l2"],
                    floor["final_param_max_abs"],
                    floor["max_param_max_abs"],
                    floor["final_function_rel_l2"],
                    None,
                    None,
                    None,
                    "-",
                ]
            )
    traj = format_table(
        [
            "depth",
            "run",
            "param dist (rel L2)",
            "param dist (max abs)",
            "worst step (max abs)",
            "logit dist (rel L2)",
            "test acc",
            "final loss",
            "early spikes (train)",
            "diverged",
        ],
        traj_rows,
    )
    grads = format_table(
        [
            "depth",
            "run",
            "|g_first| init",
            "|g_last| init",
            "last/first init",
            "|g_first| end",
            "|g_last| end",
            "last/first end",
        ],
        grad_rows,
    )
    return f"{traj}\n\n{grads}"


def _series(values: Sequence[float | None], floor: float | None = None) -> np.ndarray:
    arr = np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64)
    arr[~np.isfinite(arr)] = np.nan
    if floor is not None:
        arr = np.where(arr < floor, floor, arr)  # NaN stays NaN
    return arr


def _figure(columns: int, rows: int = 1) -> Figure:
    return Figure(figsize=(4.2 * columns, 3.4 * rows), layout="constrained")


def plot_parameter_distance(results: dict, path: str | os.PathLike[str]) -> Path:
    """Per depth (columns): parameter distance (top; relative L2 solid, max-abs dotted) and
    logit distance on the probe batch (bottom) of each SNN run, and of the perturbed-init ReLU
    run (float64 noise floor, grey), to the ReLU run, per step, log y-axis; exact zeros are drawn
    at 1e-17."""
    depths = list(results["depths"])
    fig = _figure(len(depths), 2)
    axes = fig.subplots(2, len(depths), squeeze=False)
    for col, depth in enumerate(depths):
        rep = results["depths"][depth]
        top, bottom = axes[0][col], axes[1][col]
        for name in DISTANCE_RUNS:
            if name not in rep["parameter_distance"]:
                continue
            pd = rep["parameter_distance"][name]
            steps = np.arange(len(pd["rel_l2"]))
            color = RUN_COLORS[name]
            top.plot(steps, _series(pd["rel_l2"], _LOG_FLOOR), color=color, label=RUN_LABELS[name])
            top.plot(steps, _series(pd["max_abs"], _LOG_FLOOR), color=color, linestyle=":")
            fd = rep["function_distance"][name]
            bottom.plot(steps, _series(fd, _LOG_FLOOR), color=color, label=RUN_LABELS[name])
        top.set_title(f"{depth} hidden layers")
        for ax in (top, bottom):
            ax.set_yscale("log")
            ax.grid(True, alpha=0.3)
            ax.set_xlabel("training step")
        if col == 0:
            top.set_ylabel("parameter distance to ReLU\n(solid: rel. L2, dotted: max abs)")
            bottom.set_ylabel("logit distance to ReLU (rel. L2)")
            top.legend(fontsize=7)
    return write_png(fig, path, dpi=_DPI)


def plot_gradient_norms(results: dict, path: str | os.PathLike[str]) -> Path:
    """Per depth (columns): L2 norm of the loss gradient w.r.t. each weight layer (1 = first
    hidden, last = output) for every run, at initialisation (solid) and at the last evaluation
    (dashed), log y-axis."""
    depths = list(results["depths"])
    fig = _figure(len(depths))
    axes = fig.subplots(1, len(depths), squeeze=False)[0]
    for ax, depth in zip(axes, depths, strict=True):
        ev = results["depths"][depth]["eval"]
        for name in RUNS:
            norms = ev["grad_norms"][name]
            color = RUN_COLORS[name]
            wide = {"linewidth": 3.0, "alpha": 0.5} if name == "relu" else {}
            if norms[0]:
                layers = np.arange(1, len(norms[0]) + 1)
                ax.plot(
                    layers,
                    _series(norms[0], _LOG_FLOOR),
                    color=color,
                    marker="o",
                    markersize=3,
                    label=f"{RUN_LABELS[name]}, step 0",
                    **wide,
                )
            k = max((i for i, v in enumerate(norms) if v is not None), default=None)
            if k:
                layers = np.arange(1, len(norms[k]) + 1)
                ax.plot(
                    layers,
                    _series(norms[k], _LOG_FLOOR),
                    color=color,
                    linestyle="--",
                    marker="x",
                    markersize=4,
                    label=f"{RUN_LABELS[name]}, step {ev['steps'][k]}",
                    **wide,
                )
        ax.set_yscale("log")
        ax.set_xlabel("weight layer (last = output)")
        ax.set_title(f"{depth} hidden layers")
        ax.grid(True, alpha=0.3)
    axes[0].set_ylabel("||dL/dW|| (fixed batch)")
    axes[0].legend(fontsize=6)
    return write_png(fig, path, dpi=_DPI)


def plot_accuracy(results: dict, path: str | os.PathLike[str]) -> Path:
    """Per depth (columns): test accuracy of every run over training."""
    depths = list(results["depths"])
    fig = _figure(len(depths))
    axes = fig.subplots(1, len(depths), squeeze=False)[0]
    for ax, depth in zip(axes, depths, strict=True):
        ev = results["depths"][depth]["eval"]
        for name in RUNS:
            style = "--" if name == "b1" else "-"
            ax.plot(
                ev["steps"],
                _series(ev["accuracy"][name]),
                color=RUN_COLORS[name],
                linestyle=style,
                marker="o",
                markersize=2,
                label=RUN_LABELS[name],
            )
        ax.set_xlabel("training step")
        ax.set_title(f"{depth} hidden layers")
        ax.set_ylim(0.0, 1.0)
        ax.grid(True, alpha=0.3)
    axes[0].set_ylabel("test accuracy")
    axes[0].legend(fontsize=7)
    return write_png(fig, path, dpi=_DPI)
