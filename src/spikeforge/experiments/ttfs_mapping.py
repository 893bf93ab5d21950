"""End-to-end mapping experiments: ``spikeforge demo`` (sklearn digits) and ``spikeforge
reproduce ttfs-mapping`` (MNIST / Fashion-MNIST). Each trains a ReLU network (resumable, constant
learning rate), maps it with both neuron models, evaluates closed form and event simulation, and
writes a report folder (metrics JSON, plots, the mapped networks as ``snn-<neuron>.pt``, read
by :func:`spikeforge.ttfs.load`)."""

from __future__ import annotations

import argparse
import copy
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import torch
from torch import Tensor

from spikeforge.data.datasets import Dataset, load_dataset
from spikeforge.experiments.arguments import add_dataset_args
from spikeforge.experiments.registry import Command
from spikeforge.experiments.report import ReportFolder
from spikeforge.metrics import predictions_in_batches
from spikeforge.models import ARCHITECTURES
from spikeforge.tables import format_table
from spikeforge.training import TrainConfig, train_classifier
from spikeforge.ttfs.evaluate import MappingEvaluation, evaluate_mapping, format_counts
from spikeforge.ttfs.mapping import from_relu
from spikeforge.ttfs.network import TTFSNetwork
from spikeforge.viz import spike_raster, spike_time_histograms, training_curve

__all__ = [
    "COMMANDS",
    "calibration_batches",
    "run_demo",
    "run_mapping_experiment",
]

NEURONS = ("b1", "alpha1")
DEFAULT_EPOCHS = {"fc2": 30, "lenet5": 15, "vgg-small": 10}
"""ReLU training epochs per architecture (constant learning rate)."""

# Paper anchor (P1 notebook, stored output): MNIST FC2 ReLU 98.62 %, SNN 98.62 %, agreement 1.0
PAPER_ANCHORS = {
    ("mnist", "fc2"): {"ann_accuracy": 0.9862, "snn_accuracy": 0.9862, "agreement": 1.0}
}


def calibration_batches(x: Tensor, size: int = 2000) -> list[Tensor]:
    """``x`` ``[N, ...]`` as float64 chunks of ``size`` samples (calibration data for
    :func:`~spikeforge.ttfs.mapping.from_relu` without a float64 copy of the whole set)."""
    return [chunk.double() for chunk in x.split(size)]


def _layer_names(net: TTFSNetwork) -> list[str]:
    kinds = {"linear": "dense", "conv": "conv"}
    hidden = [f"{kinds[layer.synapses.kind]} {layer.path}" for layer in net.layers[:-1]]
    return ["input", *hidden]


def _plots(net: TTFSNetwork, ev: MappingEvaluation, out_dir: Path, title: str) -> list[str]:
    windows = [(0.0, 1.0)] + [(w.t_min, w.t_max) for w in net.windows.layers()[:-1]]
    names = _layer_names(net)
    raster = spike_raster(
        [t[0] for t in ev.plot_times],
        windows,
        out_dir / f"raster_{net.neuron}.png",
        labels=names,
        title=f"{title}, {net.neuron}: spike raster of test sample 0",
        readout_time=net.latency,
    )
    hist = spike_time_histograms(
        ev.plot_times[1:],
        windows[1:],
        out_dir / f"spike_times_{net.neuron}.png",
        labels=names[1:],
        title=f"{title}, {net.neuron}: spike times of {ev.plot_times[0].shape[0]} test samples",
    )
    return [raster.name, hist.name]


TABLE_HEADERS = [
    "neuron",
    "ANN acc",
    "SNN acc",
    "SNN acc (event)",
    "agreement",
    "max|x_snn-x_relu|",
    "(event)",
    "spikes/neuron",
    "latency",
    "violations",
]


def table_rows(results: dict[str, MappingEvaluation]) -> list[list[object]]:
    return [
        [
            neuron,
            ev.ann_accuracy,
            ev.snn_accuracy,
            ev.event_accuracy,
            ev.agreement,
            ev.max_error,
            ev.event_max_error,
            ev.spikes_per_neuron,
            ev.latency,
            ev.window_violations + (ev.early_spikes or 0),
        ]
        for neuron, ev in results.items()
    ]


def run_mapping_experiment(
    dataset: Dataset,
    arch: str,
    out_dir: str | Path,
    *,
    train: TrainConfig,
    zeta: float = 0.5,
    event_samples: int | None = None,
    progress: bool = True,
    echo: Callable[[str], None] = print,
) -> dict:
    """Train ``arch`` on ``dataset`` (resuming from ``out_dir/relu_checkpoint.pt``), map it with
    both neuron models, evaluate on the test set and write ``out_dir/metrics.json`` and plots.
    Returns the report dictionary."""
    folder = ReportFolder(out_dir)
    out = folder.path
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r}; choose from {sorted(ARCHITECTURES)}")
    torch.manual_seed(train.seed)
    model = ARCHITECTURES[arch]()
    echo(
        f"training {arch} on {dataset.name} ({dataset.x_train.shape[0]} samples, "
        f"{train.epochs} epochs) ..."
    )
    start = time.perf_counter()
    log = train_classifier(
        model, dataset.x_train, dataset.y_train, train, checkpoint=out / "relu_checkpoint.pt"
    )
    train_seconds = time.perf_counter() - start
    model64 = copy.deepcopy(model).double().eval()
    x_test = dataset.x_test.double()
    reference = predictions_in_batches(model64, x_test)  # saved before any folding
    calibration = calibration_batches(dataset.x_train)
    results: dict[str, MappingEvaluation] = {}
    report: dict = {
        "dataset": dataset.name,
        "arch": arch,
        "zeta": zeta,
        "train": asdict(train) | {"losses": log.losses, "seconds": round(train_seconds, 2)},
        "test_samples": int(x_test.shape[0]),
        "neurons": {},
        "plots": [],
        "environment": folder.environment(),
    }
    anchor = PAPER_ANCHORS.get((dataset.name, arch))
    if anchor:
        report["paper_anchor"] = anchor
    for neuron in NEURONS:
        net = from_relu(model64, calibration, neuron=neuron, zeta=zeta)
        ev = evaluate_mapping(
            net, x_test, dataset.y_test, reference, event_samples=event_samples, progress=progress
        )
        results[neuron] = ev
        report["neurons"][neuron] = ev.as_dict() | {
            "max_activations": net.mapping.max_activations,
            "network": net.save(out / f"snn-{neuron}.pt").name,  # spikeforge.ttfs.load
        }
        report["plots"] += _plots(net, ev, out, f"{dataset.name} {arch}")
        echo(format_counts(ev.operation_counts))
    report["plots"].append(
        training_curve(log.losses, out / "training_loss.png", title=f"{dataset.name} {arch}").name
    )
    folder.write_json("metrics.json", report)
    echo(format_table(TABLE_HEADERS, table_rows(results)))
    echo(f"report written to {out}/ (metrics.json, {', '.join(report['plots'])})")
    return report


def run_demo(
    out_dir: str | Path,
    *,
    epochs: int = 60,
    seed: int = 0,
    event: bool = True,
    progress: bool = True,
    echo: Callable[[str], None] = print,
) -> dict:
    """The main job: a small ReLU CNN with BatchNorm (before and after ReLU) and max pooling on
    sklearn digits, mapped with both neuron models, closed form and event simulation."""
    dataset = load_dataset("digits")
    cfg = TrainConfig(epochs=epochs, batch_size=64, lr=2e-3, seed=seed, progress=progress)
    return run_mapping_experiment(
        dataset,
        "digits-cnn",
        out_dir,
        train=cfg,
        event_samples=None if event else 0,
        progress=progress,
        echo=echo,
    )


# ---------------------------------------------------------------------------------------------
# commands
# ---------------------------------------------------------------------------------------------


def _demo_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="reports/demo", help="report folder (default %(default)s)")
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-event", action="store_true", help="skip the event simulation")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def _run_demo_command(args: argparse.Namespace) -> int:
    run_demo(
        args.out,
        epochs=args.epochs,
        seed=args.seed,
        event=not args.no_event,
        progress=not args.quiet,
    )
    return 0


def _mapping_arguments(parser: argparse.ArgumentParser) -> None:
    add_dataset_args(parser, "ttfs-mapping")
    parser.add_argument("--arch", choices=["fc2", "lenet5"], default="fc2")
    parser.add_argument(
        "--epochs", type=int, default=None, help="training epochs (default: fc2 30, lenet5 15)"
    )
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--zeta", type=float, default=0.5, help="window margin (default 0.5)")


def _run_mapping_command(args: argparse.Namespace) -> int:
    dataset = load_dataset(args.dataset, args.data_dir).subset(
        args.train_samples, args.test_samples
    )
    cfg = TrainConfig(
        epochs=args.epochs or DEFAULT_EPOCHS[args.arch],
        batch_size=args.batch_size,
        lr=args.lr,
        seed=args.seed,
        progress=not args.quiet,
    )
    run_mapping_experiment(
        dataset,
        args.arch,
        args.out or f"reports/ttfs-mapping-{args.dataset}-{args.arch}",
        train=cfg,
        zeta=args.zeta,
        event_samples=args.event_samples,
        progress=not args.quiet,
    )
    return 0


COMMANDS = (
    Command(
        "demo",
        "digits CNN -> TTFS SNN, closed form and event simulation",
        _demo_arguments,
        _run_demo_command,
        runtime="under 1 min",
    ),
    Command(
        "ttfs-mapping",
        "exact ReLU -> TTFS mapping on MNIST / Fashion-MNIST",
        _mapping_arguments,
        _run_mapping_command,
        group="reproduce",
        runtime="3 min (fc2), 4 min (lenet5): training and event simulation of the test set",
    ),
)
