"""Summary, tables and confusion-matrix plot of the debfiles reproduction, from the unit results
of :func:`~spikeforge.experiments.files.runs.run_files` (or ``files.json`` read back).
Accuracies and macro-F1 are fractions in the JSON, percent in the tables (mean ± std over folds).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.figure import Figure

from spikeforge.files.debfiles import CLASSES
from spikeforge.tables import format_table
from spikeforge.viz import new_figure

__all__ = ["LABELS", "format_summary", "plot_confusion", "summarise"]

LABELS = {
    "snn": "SNN, supervised (van Rossum BPTT)",
    "snn-memristive": "SNN, supervised, memristive synapses",
    "stdp": "SNN, unsupervised STDP + logistic readout",
    "logistic": "logistic regression",
    "linear_svm": "linear SVM",
    "rbf_svm": "RBF SVM (10k-row subsample)",
    "raster_logistic": "logistic regression on the input spike raster",
}


def _mean_std(values: list[float]) -> dict[str, float]:
    arr = np.asarray(values, dtype=float)
    return {"mean": float(arr.mean()), "std": float(arr.std()), "n": int(arr.size)}


def summarise(units: list[dict[str, Any]]) -> dict[str, Any]:
    """Per feature set and model: accuracy, macro-F1, train seconds and prediction µs per record
    (mean, std, folds), the confusion matrix summed over folds and per-class recall averaged;
    per feature set the majority-class accuracy, the best baseline and the SNN's gap to it."""
    out: dict[str, Any] = {}
    for features in dict.fromkeys(u["features"] for u in units):
        rows = [u for u in units if u["features"] == features]
        models: dict[str, Any] = {}
        for model in dict.fromkeys(u["model"] for u in rows):
            mine = [u for u in rows if u["model"] == model]
            recall = {
                c: float(np.mean([u["recall"][c] for u in mine if c in u["recall"]]))
                for c in CLASSES
                if any(c in u["recall"] for u in mine)
            }
            models[model] = {
                "folds": sorted(u["fold"] for u in mine),
                "accuracy": _mean_std([u["accuracy"] for u in mine]),
                "macro_f1": _mean_std([u["macro_f1"] for u in mine]),
                "train_s": _mean_std([u["train_s"] for u in mine]),
                "predict_us_per_record": _mean_std([u["predict_us_per_record"] for u in mine]),
                "recall": recall,
                "confusion": np.sum([u["confusion"] for u in mine], axis=0).tolist(),
            }
        by_fold = {u["fold"]: u["majority_accuracy"] for u in rows}
        entry: dict[str, Any] = {
            "models": models,
            "majority_accuracy": _mean_std(list(by_fold.values())),
        }
        baselines = [m for m in ("logistic", "linear_svm", "rbf_svm") if m in models]
        if baselines:
            best = max(baselines, key=lambda m: models[m]["macro_f1"]["mean"])
            entry["best_baseline"] = best
            if "snn" in models:
                entry["snn_gap_macro_f1"] = (
                    models[best]["macro_f1"]["mean"] - models["snn"]["macro_f1"]["mean"]
                )
        out[features] = entry
    return out


def _pct(stat: dict[str, float]) -> str:
    return f"{100 * stat['mean']:.1f} ± {100 * stat['std']:.1f}"


def format_summary(summary: dict[str, Any]) -> str:
    """One Markdown table per feature set: model, accuracy, macro-F1, training time, prediction
    time per record, folds; then the majority baseline and the SNN's gap to the best baseline."""
    parts = []
    for features, entry in summary.items():
        rows = [
            [
                LABELS.get(model, model),
                _pct(m["accuracy"]),
                _pct(m["macro_f1"]),
                f"{m['train_s']['mean']:.1f}",
                f"{m['predict_us_per_record']['mean']:.0f}",
                m["accuracy"]["n"],
            ]
            for model, m in entry["models"].items()
        ]
        table = format_table(
            ["model", "accuracy %", "macro-F1 %", "train s", "predict µs/record", "folds"], rows
        )
        notes = [f"majority class: {_pct(entry['majority_accuracy'])} % accuracy"]
        if "snn_gap_macro_f1" in entry:
            gap = 100 * entry["snn_gap_macro_f1"]
            side = "below" if gap >= 0 else "above"
            notes.append(
                f"supervised SNN {abs(gap):.1f} points of macro-F1 {side} the best baseline "
                f"({LABELS[entry['best_baseline']]})"
            )
        parts.append(f"**feature set {features}**\n\n{table}\n\n" + "; ".join(notes) + ".")
    return "\n\n".join(parts)


def plot_confusion(summary: dict[str, Any], features: str, models: list[str]) -> Figure:
    """Row-normalised confusion matrices (summed over folds) of ``models`` on ``features``."""
    fig = new_figure((6.2 * len(models), 5.6))
    axes = fig.subplots(1, len(models), squeeze=False)[0]
    for ax, model in zip(axes, models, strict=True):
        m = np.asarray(summary[features]["models"][model]["confusion"], dtype=float)
        norm = m / np.maximum(m.sum(axis=1, keepdims=True), 1)
        ax.imshow(norm, vmin=0, vmax=1, cmap="Blues")
        ax.set_xticks(range(len(CLASSES)), CLASSES, rotation=90, fontsize=7)
        ax.set_yticks(range(len(CLASSES)), CLASSES, fontsize=7)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true kind")
        ax.set_title(f"{LABELS.get(model, model)} ({features})", fontsize=9)
    return fig
