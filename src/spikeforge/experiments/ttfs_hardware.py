"""Hardware sweeps (spec ``ttfs.md`` §10): a mapped MNIST FC2 B1 network under noise, time
quantisation, weight quantisation and latency budgets, before and after fine-tuning under each
constraint.

:func:`run_hardware_sweeps` trains (or resumes) a ReLU FC2 (784-600-10, float64, Adam with a
cosine schedule), maps it exactly to B1 with windows calibrated on the training set, and for
every sweep point evaluates

* the mapped network under the constraint, not fine-tuned ("before"), and
* a copy fine-tuned under the same constraint (:func:`~spikeforge.ttfs.hardware.
  finetune_hardware`: Adam at a low learning rate with P2's exponential decay, a few thousand
  steps on the first ``finetune_samples`` training images; resumable checkpoints per point)
  ("after"),

on the test set: accuracy (mean and sample std over ``repeats`` noise draws; before and after
use the same seeded draws), latency, latency factor against the exact mapping, spikes per
hidden neuron (noise-free). The constraints are explicit in ``hardware.json`` (one
:class:`~spikeforge.ttfs.hardware.Hardware` dictionary per point).

Defaults, chosen so that every kind shows an effect on MNIST FC2 (hidden activations O(1 .. 10),
``X_1`` about 8 .. 9, window ``1.5 X_1``): noise sigma 0.5 .. 4 tau_c (accuracy falls from about
97 % to below 50 % at sigma = 4 before fine-tuning); 1 .. 4 time bits and 1 .. 4 weight bits (with
5 bits neither differs measurably from the exact network); weights quantised in the symmetric
range at the largest ``|w|`` of the mapped network; latency budgets at the 0.99 .. 0.5 quantiles
of the positive hidden activations with ``zeta = 0`` (the clamp saturates a fraction
``1 - rho`` of the spiking neurons; latency factors of about 4 to 8).
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from spikeforge.data import Dataset, load_dataset
from spikeforge.experiments.registry import Command
from spikeforge.experiments.report import ReportFolder
from spikeforge.experiments.ttfs_mapping import calibration_batches
from spikeforge.metrics import accuracy, predictions_in_batches
from spikeforge.models import fc2
from spikeforge.tables import format_table
from spikeforge.training import TrainConfig, train_classifier
from spikeforge.ttfs.counts import counts
from spikeforge.ttfs.finetune import evaluate_hardware, finetune_hardware, quantile_windows
from spikeforge.ttfs.hardware import Hardware
from spikeforge.ttfs.mapping import from_relu
from spikeforge.ttfs.network import TTFSNetwork
from spikeforge.viz import new_figure, write_png

# Budgets that cost the exact network accuracy. Under milder ones (noise 0.5, 4 bits, the 0.9 and
# 0.99 quantiles) the gain of fine-tuning on MNIST FC2 was within +-0.07 points: there is little
# to recover, and the fine-tuning's own effect (-0.07 points for the exact network fine-tuned the
# same way) is as large.
DEFAULT_NOISE_LEVELS = (1.0, 2.0, 4.0)
DEFAULT_TIME_BITS = (1, 2, 3)
DEFAULT_WEIGHT_BITS = (1, 2, 3)
DEFAULT_QUANTILES = (0.7, 0.5, 0.3)

KINDS = {
    # kind: (x-axis label, table column, plot file)
    "noise": ("noise std (tau_c)", "noise std", "hardware_noise.png"),
    "time_bits": ("time bits", "time bits", "hardware_time_bits.png"),
    "weight_bits": ("weight bits", "weight bits", "hardware_weight_bits.png"),
    "latency": ("latency reduction factor", "quantile", "hardware_latency.png"),
}


def _point_tag(kind: str, value: float, settings: dict) -> str:
    """Checkpoint name of one sweep point; the hash covers every setting that changes it."""
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:10]
    return f"finetune_{kind}_{value:g}_{digest}.pt"


def _largest_weight(net: TTFSNetwork) -> float:
    return max(float(layer.synapses.weight.detach().abs().max()) for layer in net.layers)


def sweep_plot(
    points: list[dict],
    exact_accuracy: float,
    path: str | Path,
    *,
    xlabel: str,
    title: str = "",
    control_accuracy: float | None = None,
) -> Path:
    """Test accuracy (%) against the sweep value (``point["x"]``) before and after
    fine-tuning, error bars one std over noise draws, the exact SNN as a dashed line (and the
    exact SNN fine-tuned with the same settings as a dotted one). Written atomically as PNG;
    returns the path."""
    if not points:
        raise ValueError("no sweep points to plot")
    x = np.array([p["x"] for p in points], dtype=np.float64)
    fig = new_figure((6.4, 4.2))
    try:
        ax = fig.add_subplot()
        for key, label, marker in (("before", "mapped", "o"), ("after", "fine-tuned", "s")):
            mean = np.array([100 * p[key]["accuracy"] for p in points])
            std = np.array([100 * p[key]["accuracy_std"] for p in points])
            ax.errorbar(x, mean, yerr=std, marker=marker, capsize=3, label=label)
        ax.axhline(100 * exact_accuracy, color="0.4", linestyle="--", label="exact SNN")
        if control_accuracy is not None:
            ax.axhline(
                100 * control_accuracy, color="0.4", linestyle=":", label="exact SNN fine-tuned"
            )
        ax.set_xlabel(xlabel)
        ax.set_ylabel("test accuracy (%)")
        ax.grid(True, alpha=0.3)
        ax.legend()
        if title:
            ax.set_title(title)
        return write_png(fig, path)
    finally:
        fig.clear()


def run_hardware_sweeps(
    dataset: Dataset,
    out_dir: str | Path,
    *,
    relu_epochs: int = 10,
    finetune_epochs: int = 1,
    finetune_samples: int = 40000,
    noise_levels: Sequence[float] = DEFAULT_NOISE_LEVELS,
    time_bits: Sequence[int] = DEFAULT_TIME_BITS,
    weight_bits: Sequence[int] = DEFAULT_WEIGHT_BITS,
    weight_range: tuple[float, float] | None = None,
    quantiles: Sequence[float] = DEFAULT_QUANTILES,
    seed: int = 0,
    repeats: int = 5,
    progress: bool = True,
    finetune_lr: float = 1e-4,
    finetune_batch_size: int = 16,
    latency_zeta: float = 0.0,
    echo: Callable[[str], None] = print,
) -> dict:
    """Train / resume the ReLU FC2, map it to B1 and run every sweep; write
    ``out_dir/hardware.json`` (after every point, atomically) and one plot per kind; return the
    report dictionary.

    Args:
        dataset: images ``[N, 1, 28, 28]`` in [0, 1] and labels.
        out_dir: report folder; holds ``relu_checkpoint.pt`` and one fine-tuning checkpoint per
            sweep point, so an interrupted run resumes.
        relu_epochs: ReLU training epochs (batch 128, Adam 1e-3, cosine schedule).
        finetune_epochs, finetune_samples, finetune_lr, finetune_batch_size: fine-tuning on the
            first ``finetune_samples`` training images (Adam, exponential decay 0.9 per 5000
            steps), ``finetune_epochs * finetune_samples / finetune_batch_size`` steps.
        noise_levels: sigma of the hidden spike-time noise, units of tau_c.
        time_bits, weight_bits: quantiser bit widths.
        weight_range: weight quantiser range; ``None``: symmetric at the largest ``|w|`` of
            the mapped network (recorded in the report).
        quantiles: quantile levels ``rho`` of the latency budgets
            (:func:`~spikeforge.ttfs.finetune.quantile_windows` on the training set with
            ``zeta = latency_zeta``).
        seed: seed of the ReLU training, the fine-tuning and the noise draws.
        repeats: noise draws per evaluation (1 is used for constraints without noise).
        progress: progress bars on stderr.
        echo: receives one line of text per sweep point and the final tables.

    Raises:
        ValueError: a sweep value no hardware model accepts (checked before any training).
    """
    for s in noise_levels:
        Hardware(noise_std=float(s))
    for b in (*time_bits, *weight_bits):
        Hardware(time_bits=int(b), weight_bits=int(b))
    if weight_range is not None:
        Hardware(weight_bits=1, weight_range=weight_range)
    if not all(0.0 < q <= 1.0 for q in quantiles):
        raise ValueError(f"latency quantiles must lie in (0, 1], got {list(quantiles)}")
    folder = ReportFolder(out_dir)
    out = folder.path
    start = time.perf_counter()
    x_train = dataset.x_train.double()
    y_train = dataset.y_train
    x_test = dataset.x_test.double()
    y_test = dataset.y_test
    relu_cfg = TrainConfig(
        epochs=relu_epochs, batch_size=128, lr=1e-3, seed=seed, progress=progress, schedule="cosine"
    )
    torch.manual_seed(seed)
    model = fc2().double()
    echo(f"training FC2 on {dataset.name} ({x_train.shape[0]} samples, {relu_epochs} epochs) ...")
    relu_log = train_classifier(model, x_train, y_train, relu_cfg, out / "relu_checkpoint.pt")
    model.eval()
    relu_accuracy = accuracy(predictions_in_batches(model, x_test), y_test)
    calibration = calibration_batches(x_train)
    base = from_relu(model, calibration, neuron="b1")
    exact = evaluate_hardware(base, x_test, y_test)
    if weight_range is None:
        w = _largest_weight(base)
        weight_range = (-w, w)
    weight_range = (float(weight_range[0]), float(weight_range[1]))
    ft_cfg = TrainConfig(
        epochs=finetune_epochs,
        batch_size=finetune_batch_size,
        lr=finetune_lr,
        seed=seed,
        progress=progress,
        schedule="exponential",
    )
    x_ft, y_ft = x_train[:finetune_samples], y_train[:finetune_samples]
    steps = finetune_epochs * ((x_ft.shape[0] + finetune_batch_size - 1) // finetune_batch_size)
    report: dict = {
        "dataset": dataset.name,
        "arch": "fc2",
        "neuron": "b1",
        "train_samples": int(x_train.shape[0]),
        "test_samples": int(x_test.shape[0]),
        "relu_train": asdict(relu_cfg) | {"losses": relu_log.losses},
        "finetune": asdict(ft_cfg) | {"samples": int(x_ft.shape[0]), "steps": steps},
        "repeats": repeats,
        "seed": seed,
        "latency_zeta": latency_zeta,
        "weight_range": list(weight_range),
        "relu_accuracy": relu_accuracy,
        "exact": exact.as_dict() | {"window_widths": base.windows.widths.tolist()},
        # spikes, synaptic operations and energy of the exact network (spikeforge.ttfs.counts)
        "operation_counts": counts(base, x_test).as_dict(),
        "max_activations": base.mapping.max_activations if base.mapping else None,
        "conventions": (
            "accuracy: mean and sample std over noise draws (same seeded draws before and "
            "after fine-tuning); spikes_per_neuron: hidden neurons, t < t_max, noise-free; "
            "latency: t_min of the output layer (tau_c); latency_factor: exact mapping's "
            "latency / this network's latency; noise on hidden spike times only (not inputs), "
            "after the clip; fine-tuning grows the windows (P2) except under time quantisation "
            "and latency budgets, where the windows are the constraint; *_recalibrated: the "
            "grown windows reset to 1.5 x the noise-free maximum activation on the training set "
            "(same function); control: the exact network fine-tuned with the same settings, "
            "which separates the gain of training longer from the gain of training under a "
            "constraint"
        ),
        "sweeps": {kind: [] for kind in KINDS},
        "plots": [],
        "environment": folder.environment(),
    }
    points: list[tuple[str, float, Hardware | None]] = [
        ("control", 0.0, Hardware()),
        *(("noise", float(s), Hardware(noise_std=float(s))) for s in noise_levels),
        *(("time_bits", int(b), Hardware(time_bits=int(b))) for b in time_bits),
        *(
            ("weight_bits", int(b), Hardware(weight_bits=int(b), weight_range=weight_range))
            for b in weight_bits
        ),
        *(("latency", float(q), None) for q in quantiles),
    ]
    for kind, value, hw in points:
        net = copy.deepcopy(base)
        if hw is None:  # latency budget
            quantile_windows(net, x_train, value, zeta=latency_zeta)
        else:
            net.hardware = hw
        assert net.hardware is not None
        before = evaluate_hardware(net, x_test, y_test, repeats=repeats, seed=seed)
        settings = {
            "hardware": net.hardware.as_dict(),
            "widths": net.windows.widths.tolist(),
            "finetune": {k: v for k, v in report["finetune"].items() if k != "progress"},
        }
        ckpt = out / _point_tag(kind, value, settings)
        ft_start = time.perf_counter()
        ft_log = finetune_hardware(net, x_ft, y_ft, ft_cfg, ckpt)
        ft_seconds = time.perf_counter() - ft_start
        after = evaluate_hardware(net, x_test, y_test, repeats=repeats, seed=seed)
        after_dict = after.as_dict() | {"latency_factor": base.latency / after.latency}
        if not (net.hardware.saturate or net.hardware.time_bits is not None):
            # the windows grew during fine-tuning (P2's rule, 10x the batch maximum); without
            # the clamp or time quantisation the function does not depend on them, so shrinking
            # them back to 1.5 x the (noise-free) maximum activation is free
            recalibrated = copy.deepcopy(net)
            quantile_windows(recalibrated, x_train, 1.0, zeta=0.5)
            after_dict["latency_recalibrated"] = recalibrated.latency
            after_dict["latency_factor_recalibrated"] = base.latency / recalibrated.latency
        point = {
            "value": value,
            "x": base.latency / before.latency if kind == "latency" else value,
            "hardware": net.hardware.as_dict(),
            "before": before.as_dict() | {"latency_factor": base.latency / before.latency},
            "after": after_dict,
            "finetune_losses": ft_log.losses,
            "finetune_seconds": round(ft_seconds, 2),
            "checkpoint": ckpt.name,
            "network": net.save(out / f"snn-{ckpt.name}").name,  # spikeforge.ttfs.load
        }
        if kind == "control":
            report["control"] = point
            label = "control (exact, no constraint)"
        else:
            report["sweeps"][kind].append(point)
            label = f"{kind} {value:g}"
        echo(
            f"{label}: accuracy {100 * before.accuracy:.2f} % -> "
            f"{100 * after.accuracy:.2f} % after fine-tuning "
            f"(latency {before.latency:.2f} -> {after.latency:.2f})"
        )
        folder.write_json("hardware.json", report)
    for kind, (xlabel, _, filename) in KINDS.items():
        if report["sweeps"][kind]:
            path = sweep_plot(
                report["sweeps"][kind],
                exact.accuracy,
                out / filename,
                xlabel=xlabel,
                title=f"{dataset.name} FC2 B1: {kind.replace('_', ' ')}",
                control_accuracy=report["control"]["after"]["accuracy"],
            )
            report["plots"].append(path.name)
    report["seconds"] = round(time.perf_counter() - start, 2)
    folder.write_json("hardware.json", report)
    echo(format_hardware_tables(report))
    return report


TABLE_HEADERS = [
    "acc mapped",
    "± std",
    "acc fine-tuned",
    "± std",
    "latency factor",
    "(fine-tuned)",
    "spikes/neuron",
    "(fine-tuned)",
]


def format_hardware_tables(results: dict) -> str:
    """Markdown tables (one per sweep kind) of a :func:`run_hardware_sweeps` report:
    accuracies in %, latency factors against the exact mapping (for fine-tuned networks whose
    windows grew, after re-calibrating them), spikes per hidden neuron."""
    lo, hi = results["weight_range"]
    text = (
        f"{results['dataset']} FC2 (B1): ReLU {100 * results['relu_accuracy']:.2f} %, exact SNN "
        f"{100 * results['exact']['accuracy']:.2f} %, latency {results['exact']['latency']:.2f} "
        f"tau_c; weights quantised in [{lo:.4g}, {hi:.4g}]; {results['repeats']} noise draws"
    )
    control = results.get("control")
    if control:
        text += (
            f"; the exact SNN fine-tuned with the same settings: "
            f"{100 * control['after']['accuracy']:.2f} %"
        )
    parts = [text]
    for kind, (_, column, _) in KINDS.items():
        points = results["sweeps"].get(kind, [])
        if not points:
            continue
        rows = [
            [
                f"{p['value']:g}",
                100 * p["before"]["accuracy"],
                100 * p["before"]["accuracy_std"],
                100 * p["after"]["accuracy"],
                100 * p["after"]["accuracy_std"],
                p["before"]["latency_factor"],
                p["after"].get("latency_factor_recalibrated", p["after"]["latency_factor"]),
                p["before"]["spikes_per_neuron"],
                p["after"]["spikes_per_neuron"],
            ]
            for p in points
        ]
        parts.append(format_table([column, *TABLE_HEADERS], rows))
    return "\n\n".join(parts)


__all__ = [
    "COMMANDS",
    "DEFAULT_NOISE_LEVELS",
    "DEFAULT_QUANTILES",
    "DEFAULT_TIME_BITS",
    "DEFAULT_WEIGHT_BITS",
    "format_hardware_tables",
    "run_hardware_sweeps",
    "sweep_plot",
]


# ---------------------------------------------------------------------------------------------
# command
# ---------------------------------------------------------------------------------------------


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", choices=["mnist", "fashion-mnist"], default="mnist")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--out", default=None, help="default reports/ttfs-hardware-DATASET-fc2")
    parser.add_argument("--test-samples", type=int, default=None)
    parser.add_argument("--relu-epochs", type=int, default=10)
    parser.add_argument("--finetune-epochs", type=int, default=1)
    parser.add_argument("--finetune-samples", type=int, default=40000)
    parser.add_argument("--finetune-lr", type=float, default=1e-4)
    parser.add_argument(
        "--noise",
        type=float,
        nargs="+",
        help="spike-time noise std, units of tau_c (default 1 2 4)",
    )
    parser.add_argument("--time-bits", type=int, nargs="+", help="default 1 2 3")
    parser.add_argument("--weight-bits", type=int, nargs="+", help="default 1 2 3")
    parser.add_argument(
        "--weight-range",
        type=float,
        nargs=2,
        default=None,
        metavar=("W_MIN", "W_MAX"),
        help="weight quantiser range (default: symmetric at the largest |w|)",
    )
    parser.add_argument(
        "--quantiles",
        type=float,
        nargs="+",
        help="activation quantiles that set the latency-budget windows (default 0.7 0.5 0.3)",
    )
    parser.add_argument("--repeats", type=int, default=5, help="noise draws per evaluation")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def _run_command(args: argparse.Namespace) -> int:
    dataset = load_dataset(args.dataset, args.data_dir).subset(None, args.test_samples)
    out = args.out or f"reports/ttfs-hardware-{args.dataset}-fc2"
    sweeps = {
        "noise_levels": args.noise,
        "time_bits": args.time_bits,
        "weight_bits": args.weight_bits,
        "quantiles": args.quantiles,
    }
    results = run_hardware_sweeps(
        dataset,
        out,
        relu_epochs=args.relu_epochs,
        finetune_epochs=args.finetune_epochs,
        finetune_samples=args.finetune_samples,
        weight_range=None if args.weight_range is None else tuple(args.weight_range),
        seed=args.seed,
        repeats=args.repeats,
        finetune_lr=args.finetune_lr,
        progress=not args.quiet,
        **{k: v for k, v in sweeps.items() if v is not None},
    )
    print(format_hardware_tables(results))
    print(f"report written to {out}/ (hardware.json and plots)")
    return 0


COMMANDS = (
    Command(
        "ttfs-hardware",
        "MNIST FC2 B1 SNN fine-tuned for spike-time noise, few-bit times / weights and "
        "low latency, against the un-fine-tuned network",
        _arguments,
        _run_command,
        group="reproduce",
        runtime="8 min at 2 threads (a ReLU FC2 and 13 fine-tuning runs of 2,500 steps)",
    ),
)
