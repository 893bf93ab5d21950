"""``spikeforge reproduce ttfs-train``: B1 TTFS networks trained like ReLU networks (P2).

Two modes, each written to its own report folder with resumable checkpoints:

* **scratch**: a BatchNorm-free ReLU network and its B1 SNN (:func:`b1_from_scratch`, windows
  of ``1.5 * X_n`` with ``X_n = 1000``) start from the same initialisation and train side by
  side on the same batches in float64 with P2's recipe (Adam, exponential decay, window growth
  after every step). The report compares the SNN with the same-seed ReLU network: test accuracy
  (closed form and event-simulated), agreement, largest difference of hidden activations and
  parameters, spikes per hidden neuron, latency.
* **finetune**: a ReLU network (with BatchNorm where the architecture has it) is trained as in
  ``reproduce ttfs-mapping``, mapped exactly to B1 (:func:`from_relu`), then fine-tuned as an
  SNN at a low learning rate. The report gives accuracy before and after; after fine-tuning the
  SNN is still exactly a (folded) ReLU network, which the event simulation checks.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
from torch import nn

from spikeforge.data import Dataset, load_dataset
from spikeforge.experiments.arguments import add_dataset_args
from spikeforge.experiments.registry import Command
from spikeforge.experiments.report import ReportFolder
from spikeforge.experiments.ttfs_mapping import DEFAULT_EPOCHS, calibration_batches
from spikeforge.metrics import accuracy, max_abs_difference, predictions_in_batches
from spikeforge.models import ARCHITECTURES, fc2_p2, lenet5, vgg_small
from spikeforge.tables import format_table
from spikeforge.training import TrainConfig, relu_activity_l1, train_classifier
from spikeforge.ttfs.evaluate import evaluate_mapping, format_counts
from spikeforge.ttfs.finetune import evaluate_hardware, finetune_hardware, quantile_windows
from spikeforge.ttfs.fold import Chain, canonicalize
from spikeforge.ttfs.hardware import Hardware
from spikeforge.ttfs.mapping import b1_from_scratch, from_relu
from spikeforge.ttfs.network import MappingInfo, TTFSNetwork
from spikeforge.ttfs.trace import trace_chain
from spikeforge.ttfs.train import P2_DEFAULTS, train_b1
from spikeforge.viz import training_curve

SCRATCH_ARCHITECTURES: dict[str, Callable[[], nn.Module]] = {
    "fc2": fc2_p2,
    "lenet5": lambda: lenet5(batch_norm=False),
    "vgg-small": lambda: vgg_small(batch_norm=False),
}

# What is known of the papers' results (spec ttfs.md §12): P1's MNIST FC2 (784-600-10) maps with
# 98.62 % for ReLU and SNN; P2 claims "exact same performance as that of ANNs" from scratch on
# MNIST / Fashion-MNIST with "< 0.3 spikes per neuron"; P2's own tables are not available.
PAPER_ANCHORS = {
    "mnist": "P1 FC2 98.62 % (ReLU = SNN); P2: SNN = ANN, < 0.3 spikes/neuron",
    "fashion-mnist": "P2: SNN = ANN, < 0.3 spikes/neuron (figures not available)",
}


@dataclass
class Recipe:
    """Training settings of one mode: the optimiser and schedule (``TrainConfig``) and P1's
    optional L1 activity regularisation (applied to the ReLU outputs and the B1 activations
    alike)."""

    train: TrainConfig
    activity_l1: float = 0.0


# L1 activity weight per architecture: the term sums over every hidden activation, so the
# wide convolutional layers of vgg-small need a much smaller weight (1e-3 silences it entirely).
SCRATCH_ACTIVITY_L1 = {"fc2": 1e-3, "lenet5": 1e-3, "vgg-small": 1e-5}


def scratch_recipe(arch: str, **changes: object) -> Recipe:
    """P2's from-scratch defaults (Adam 5e-4, exponential decay 0.9 per 5000 steps, batch 8, 10
    epochs for FC2, 5 otherwise) with an L1 activity term (:data:`SCRATCH_ACTIVITY_L1`; P1 used
    4.5e-4 on its FC2) for a sparse network."""
    settings: dict = {"epochs": 10 if arch == "fc2" else 5} | changes
    l1 = float(settings.pop("activity_l1", SCRATCH_ACTIVITY_L1.get(arch, 1e-3)))
    return Recipe(replace(P2_DEFAULTS, **settings), activity_l1=l1)


def _chain_of(model: nn.Module, in_shape: tuple[int, ...]) -> Chain:
    unit = torch.zeros((1, *in_shape), dtype=torch.float64)
    return canonicalize(trace_chain(model), unit, (0.0, 1.0))


def refreshed_chain(net: TTFSNetwork) -> Chain:
    """The canonical ReLU network a B1 network computes with its *current* parameters (a B1
    network's parameters are its ReLU network's, so training keeps this correspondence)."""
    if net.neuron != "b1" or net.mapping is None:
        raise ValueError("only B1 networks built by from_relu / b1_from_scratch have a chain")
    chain = copy.deepcopy(net.mapping.chain)
    with torch.no_grad():
        for stage, layer in zip(chain.stages, net.layers, strict=True):
            stage.affine.weight = layer.synapses.weight.detach().clone()
            stage.affine.bias = layer.bias.detach().clone()
    return chain


def _parameter_distance(net: TTFSNetwork, chain: Chain) -> float:
    params = [p for layer in net.layers for p in (layer.synapses.weight, layer.bias)]
    reference = [t for s in chain.stages for t in (s.affine.weight, s.affine.bias)]
    return max_abs_difference(params, reference)


def run_scratch(
    dataset: Dataset,
    arch: str,
    out_dir: str | Path,
    recipe: Recipe,
    *,
    event_samples: int | None = None,
    progress: bool = True,
    echo: Callable[[str], None] = print,
) -> dict:
    """Train ``arch`` (BatchNorm-free) from scratch as a ReLU network and as a B1 SNN from the same
    initialisation on the same batches (float64), then evaluate both on the test set. Writes
    ``out_dir/scratch.json`` and a loss plot; checkpoints make the run resumable."""
    if arch not in SCRATCH_ARCHITECTURES:
        raise ValueError(
            f"unknown architecture {arch!r}; choose from {sorted(SCRATCH_ARCHITECTURES)}"
        )
    folder = ReportFolder(out_dir)
    out = folder.path
    cfg = recipe.train
    in_shape = tuple(dataset.x_train.shape[1:])
    torch.manual_seed(cfg.seed)
    relu = SCRATCH_ARCHITECTURES[arch]().double()
    snn = b1_from_scratch(copy.deepcopy(relu), in_shape)
    x, y = dataset.x_train.double(), dataset.y_train
    echo(
        f"training {arch} from scratch on {dataset.name} as ReLU and as B1 SNN "
        f"({x.shape[0]} samples, {cfg.epochs} epochs, batch {cfg.batch_size}) ..."
    )
    start = time.perf_counter()
    relu_forward = relu_activity_l1(recipe.activity_l1) if recipe.activity_l1 else None
    relu_log = train_classifier(
        relu, x, y, cfg, out / "relu_scratch.pt", forward=relu_forward, desc="ReLU"
    )
    relu_seconds = time.perf_counter() - start
    start = time.perf_counter()
    snn_log = train_b1(snn, x, y, cfg, out / "snn_scratch.pt", activity_l1=recipe.activity_l1)
    snn_seconds = time.perf_counter() - start
    relu.eval()
    chain = _chain_of(relu, in_shape)  # the trained ReLU network, independent of the SNN
    snn.mapping = MappingInfo(chain, snn.mapping.max_activations, snn.mapping.zeta)
    x_test = dataset.x_test.double()
    reference = predictions_in_batches(relu, x_test)
    ev = evaluate_mapping(
        snn, x_test, dataset.y_test, reference, event_samples=event_samples, progress=progress
    )
    report = {
        "mode": "scratch",
        "dataset": dataset.name,
        "arch": arch,
        "train_samples": int(x.shape[0]),
        "recipe": asdict(recipe),
        "relu": {
            "accuracy": accuracy(reference, dataset.y_test),
            "losses": relu_log.losses,
            "seconds": round(relu_seconds, 1),
        },
        "snn": ev.as_dict() | {"losses": snn_log.losses, "seconds": round(snn_seconds, 1)},
        "parameter_distance": _parameter_distance(snn, chain),
        "network": snn.save(out / "snn-scratch.pt").name,  # spikeforge.ttfs.load
        "paper_anchor": PAPER_ANCHORS.get(dataset.name),
        "environment": folder.environment(),
    }
    report["plots"] = [
        training_curve(
            snn_log.losses,
            out / "scratch_loss.png",
            title=f"{dataset.name} {arch}: B1 SNN from scratch",
        ).name
    ]
    folder.write_json("scratch.json", report)
    return report


def run_finetune(
    dataset: Dataset,
    arch: str,
    out_dir: str | Path,
    relu_recipe: TrainConfig,
    finetune: Recipe,
    *,
    hardware: Hardware | None = None,
    latency_quantile: float | None = None,
    repeats: int = 5,
    event_samples: int | None = None,
    progress: bool = True,
    echo: Callable[[str], None] = print,
) -> dict:
    """Train the ReLU ``arch`` (with BatchNorm where it has it), map it exactly to B1 and
    fine-tune the SNN. Writes ``out_dir/finetune.json``; resumable.

    With ``hardware`` (noise, time / weight quantisation) and / or ``latency_quantile`` (windows
    from that activation quantile with ``zeta = 0`` and the saturating clamp,
    :func:`~spikeforge.ttfs.finetune.quantile_windows`), the mapped network is put under that
    hardware model and fine-tuned under it (:func:`~spikeforge.ttfs.finetune.finetune_hardware`);
    the report (``finetune-hardware.json``) gives the test accuracy under the model before and
    after, mean and std over ``repeats`` seeded noise draws. The event simulator models the
    exact network only, so this mode has no event simulation."""
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r}; choose from {sorted(ARCHITECTURES)}")
    folder = ReportFolder(out_dir)
    out = folder.path
    torch.manual_seed(relu_recipe.seed)
    model = ARCHITECTURES[arch]()
    echo(f"training the ReLU {arch} on {dataset.name} ({relu_recipe.epochs} epochs) ...")
    train_classifier(
        model, dataset.x_train, dataset.y_train, relu_recipe, out / "relu_checkpoint.pt"
    )
    model64 = copy.deepcopy(model).double().eval()
    x_test = dataset.x_test.double()
    relu_logits = predictions_in_batches(model64, x_test)
    snn = from_relu(model64, calibration_batches(dataset.x_train), neuron="b1")
    mapped = evaluate_mapping(snn, x_test, dataset.y_test, relu_logits, event_samples=0)
    report = {
        "mode": "finetune",
        "dataset": dataset.name,
        "arch": arch,
        "relu_train": asdict(relu_recipe),
        "recipe": asdict(finetune),
        "relu_accuracy": accuracy(relu_logits, dataset.y_test),
        "mapped": mapped.as_dict(),
        "paper_anchor": PAPER_ANCHORS.get(dataset.name),
        "environment": folder.environment(),
    }
    if hardware is not None or latency_quantile is not None:
        report |= _finetune_under_hardware(
            snn, dataset, out, finetune, hardware, latency_quantile, repeats, echo
        )
        folder.write_json("finetune-hardware.json", report)
        return report
    echo(f"fine-tuning the B1 SNN ({finetune.train.epochs} epochs, lr {finetune.train.lr}) ...")
    start = time.perf_counter()
    log = train_b1(
        snn,
        dataset.x_train.double(),
        dataset.y_train,
        finetune.train,
        out / "snn_finetune.pt",
        activity_l1=finetune.activity_l1,
    )
    seconds = time.perf_counter() - start
    # after fine-tuning the SNN is exactly the ReLU network with its current parameters
    chain = refreshed_chain(snn)
    snn.mapping = replace(snn.mapping, chain=chain)
    own_relu = torch.cat([chain.forward(x_test[i : i + 1000]) for i in range(0, len(x_test), 1000)])
    tuned = evaluate_mapping(
        snn, x_test, dataset.y_test, own_relu, event_samples=event_samples, progress=progress
    )
    report["finetuned"] = tuned.as_dict() | {
        "losses": log.losses,
        "seconds": round(seconds, 1),
        "network": snn.save(out / "snn-finetuned.pt").name,  # spikeforge.ttfs.load
    }
    folder.write_json("finetune.json", report)
    return report


def _finetune_under_hardware(
    snn: TTFSNetwork,
    dataset: Dataset,
    out: Path,
    finetune: Recipe,
    hardware: Hardware | None,
    latency_quantile: float | None,
    repeats: int,
    echo: Callable[[str], None],
) -> dict:
    """Put the mapped ``snn`` under the hardware model, evaluate, fine-tune, evaluate."""
    x_train = dataset.x_train.double()
    x_test, y_test = dataset.x_test.double(), dataset.y_test
    exact_latency = snn.latency
    snn.hardware = hardware
    if latency_quantile is not None:
        quantile_windows(snn, x_train, latency_quantile, zeta=0.0)
    settings = snn.hardware.as_dict() | {"latency_quantile": latency_quantile}
    seed = finetune.train.seed
    before = evaluate_hardware(snn, x_test, y_test, repeats, seed)
    echo(f"fine-tuning the B1 SNN under {snn.hardware} (mapped: {before.accuracy:.4f}) ...")
    tag = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:10]
    start = time.perf_counter()
    log = finetune_hardware(
        snn,
        x_train,
        dataset.y_train,
        finetune.train,
        out / f"snn_finetune_hardware_{tag}.pt",
        activity_l1=finetune.activity_l1,
    )
    seconds = time.perf_counter() - start
    after = evaluate_hardware(snn, x_test, y_test, repeats, seed)
    network = snn.save(out / f"snn-finetuned-hardware-{tag}.pt").name
    return {
        "mode": "finetune-hardware",
        "network": network,  # spikeforge.ttfs.load
        "hardware": settings,
        "latency_factor": exact_latency / snn.latency,
        "before": before.as_dict(),
        "after": after.as_dict() | {"losses": log.losses, "seconds": round(seconds, 1)},
    }


TABLE_HEADERS = [
    "dataset",
    "arch",
    "mode",
    "ReLU acc",
    "SNN acc",
    "SNN acc (event)",
    "agreement",
    "max|x_snn-x_relu|",
    "param dist",
    "spikes/neuron",
    "per layer",
    "latency",
]


def table_rows(reports: list[dict]) -> list[list[object]]:
    """One row per report of :func:`run_scratch` / :func:`run_finetune`."""
    rows = []
    for r in reports:
        if r["mode"] == "finetune-hardware":
            b, a = r["before"], r["after"]
            hw = r["hardware"]
            parts = [
                f"noise {hw['noise_std']:g}" if hw["noise_std"] else "",
                f"{hw['time_bits']}-bit times" if hw["time_bits"] else "",
                f"{hw['weight_bits']}-bit weights" if hw["weight_bits"] else "",
                f"quantile {hw['latency_quantile']:g}" if hw["latency_quantile"] else "",
            ]
            rows.append(
                [
                    r["dataset"],
                    r["arch"],
                    f"finetune, {', '.join(p for p in parts if p)} (mapped {b['accuracy']:.4f})",
                    r["relu_accuracy"],
                    a["accuracy"],
                    None,
                    None,
                    None,
                    None,
                    a["spikes_per_neuron"],
                    "",
                    a["latency"],
                ]
            )
            continue
        if r["mode"] == "scratch":
            ev, relu_acc, mode = r["snn"], r["relu"]["accuracy"], "scratch"
        else:
            ev, relu_acc = r["finetuned"], r["relu_accuracy"]
            mode = f"finetune (mapped {r['mapped']['snn_accuracy']:.4f})"
        rows.append(
            [
                r["dataset"],
                r["arch"],
                mode,
                relu_acc,
                ev["snn_accuracy"],
                ev["event_accuracy"],
                ev["event_agreement"],
                max(ev["max_error"], ev["event_max_error"] or 0.0),
                r.get("parameter_distance"),
                ev["spikes_per_neuron"],
                " / ".join(f"{s:.3f}" for s in ev["spikes_per_layer"]),
                ev["latency"],
            ]
        )
    return rows


def format_train_table(reports: list[dict]) -> str:
    return format_table(TABLE_HEADERS, table_rows(reports))


def report_counts(reports: list[dict]) -> list[str]:
    """Per evaluated network of :func:`run_scratch` / :func:`run_finetune` reports, a title line
    (with the engine's largest difference from the closed form, window-relative) and its
    operation and energy table (:func:`~spikeforge.ttfs.evaluate.format_counts`)."""
    texts = []
    for r in reports:
        if r["mode"] == "scratch":
            evaluations = [("scratch", r["snn"])]
        elif r["mode"] == "finetune":
            evaluations = [("mapped", r["mapped"]), ("finetuned", r["finetuned"])]
        else:
            continue
        for label, ev in evaluations:
            if not ev.get("operation_counts"):
                continue
            engine = ev.get("event_vs_closed_window_relative")
            vs = "" if engine is None else f"; event engine - closed form {engine:.1e}"
            title = f"{r['dataset']} {r['arch']} {label}{vs} (logits, window-relative times)"
            texts.append(f"{title}\n{format_counts(ev['operation_counts'])}")
    return texts


# ---------------------------------------------------------------------------------------------
# command
# ---------------------------------------------------------------------------------------------


def _arguments(parser: argparse.ArgumentParser) -> None:
    add_dataset_args(parser, "ttfs-train")
    parser.add_argument("--arch", choices=["fc2", "lenet5", "vgg-small"], default="fc2")
    parser.add_argument(
        "--mode",
        choices=["scratch", "finetune", "both"],
        default="both",
        help="train from scratch beside the same-seed ReLU network, fine-tune a mapped "
        "network, or both (default)",
    )
    parser.add_argument(
        "--epochs", type=int, default=None, help="from-scratch epochs (default fc2 10, else 5)"
    )
    parser.add_argument("--batch-size", type=int, default=8, help="P2 default 8")
    parser.add_argument("--lr", type=float, default=5e-4, help="from scratch (P2 default 5e-4)")
    parser.add_argument(
        "--activity-l1",
        type=float,
        default=None,
        help="L1 activity regularisation on hidden activations, from scratch (default 1e-3, "
        "vgg-small 1e-5)",
    )
    parser.add_argument(
        "--relu-epochs", type=int, default=None, help="epochs of the ReLU network to fine-tune"
    )
    parser.add_argument("--finetune-epochs", type=int, default=1)
    parser.add_argument("--finetune-lr", type=float, default=1e-5)
    parser.add_argument("--finetune-activity-l1", type=float, default=0.0)
    hw = parser.add_argument_group(
        "hardware fine-tuning (finetune mode: the mapped network is fine-tuned and evaluated "
        "under these constraints; see spikeforge.ttfs.hardware)"
    )
    hw.add_argument("--noise", type=float, default=None, help="spike-time noise std (tau_c)")
    hw.add_argument("--time-bits", type=int, default=None, help="input spike-time bits")
    hw.add_argument("--weight-bits", type=int, default=None, help="weight bits")
    hw.add_argument(
        "--weight-range",
        type=float,
        nargs=2,
        default=[-1.0, 1.0],
        metavar=("W_MIN", "W_MAX"),
        help="weight quantiser range (default P2's -1 1)",
    )
    hw.add_argument(
        "--latency-quantile",
        type=float,
        default=None,
        help="windows from this activation quantile, with the saturating clamp",
    )
    hw.add_argument("--repeats", type=int, default=5, help="noise draws per evaluation")


def _run_command(args: argparse.Namespace) -> int:
    dataset = load_dataset(args.dataset, args.data_dir).subset(
        args.train_samples, args.test_samples
    )
    out = args.out or f"reports/ttfs-train-{args.dataset}-{args.arch}"
    progress = not args.quiet
    reports = []
    if args.mode in ("scratch", "both"):
        changes: dict = {"seed": args.seed, "progress": progress, "batch_size": args.batch_size}
        changes |= {"lr": args.lr} | ({"epochs": args.epochs} if args.epochs else {})
        if args.activity_l1 is not None:
            changes["activity_l1"] = args.activity_l1
        recipe = scratch_recipe(args.arch, **changes)
        reports.append(
            run_scratch(
                dataset,
                args.arch,
                out,
                recipe,
                event_samples=args.event_samples,
                progress=progress,
            )
        )
    if args.mode in ("finetune", "both"):
        relu = TrainConfig(
            epochs=args.relu_epochs or DEFAULT_EPOCHS[args.arch],
            batch_size=128,
            lr=1e-3,
            seed=args.seed,
            progress=progress,
            schedule="cosine",
        )
        finetune = Recipe(
            TrainConfig(
                epochs=args.finetune_epochs,
                batch_size=args.batch_size,
                lr=args.finetune_lr,
                seed=args.seed,
                progress=progress,
                schedule="exponential",
            ),
            activity_l1=args.finetune_activity_l1,
        )
        hardware = None
        if args.noise or args.time_bits or args.weight_bits:
            hardware = Hardware(
                noise_std=args.noise or 0.0,
                time_bits=args.time_bits,
                weight_bits=args.weight_bits,
                weight_range=tuple(args.weight_range),
            )
        reports.append(
            run_finetune(
                dataset,
                args.arch,
                out,
                relu,
                finetune,
                hardware=hardware,
                latency_quantile=args.latency_quantile,
                repeats=args.repeats,
                event_samples=args.event_samples,
                progress=progress,
            )
        )
    print(format_train_table(reports))
    for text in report_counts(reports):
        print(text)
    print(f"reports written to {out}/")
    return 0


COMMANDS = (
    Command(
        "ttfs-train",
        "B1 TTFS networks trained from scratch and fine-tuned (P2)",
        _arguments,
        _run_command,
        group="reproduce",
        runtime="20 min (fc2, both modes), 15 min (lenet5); from scratch at batch 8",
    ),
)


__all__ = [
    "COMMANDS",
    "PAPER_ANCHORS",
    "SCRATCH_ACTIVITY_L1",
    "SCRATCH_ARCHITECTURES",
    "TABLE_HEADERS",
    "Recipe",
    "format_train_table",
    "refreshed_chain",
    "report_counts",
    "run_finetune",
    "run_scratch",
    "scratch_recipe",
    "table_rows",
]
