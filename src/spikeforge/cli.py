"""The ``spikeforge`` command (also ``python -m spikeforge``).

Subcommands:

* ``spikeforge demo``: the main job (sklearn digits, CNN -> TTFS, both neuron models);
* ``spikeforge reproduce ttfs-mapping --dataset mnist|fashion-mnist --arch fc2|lenet5``;
* ``spikeforge reproduce ttfs-train --dataset ... --arch fc2|lenet5|vgg-small --mode ...``: B1
  SNNs trained from scratch beside the same-seed ReLU network, and fine-tuned after mapping;
* ``spikeforge reproduce ttfs-gradients``: ReLU, B1 and alpha1 networks trained side by side;
* ``spikeforge reproduce ttfs-hardware``: noise, quantisation and latency fine-tuning sweeps;
* ``spikeforge reproduce imp``: IMP / LTS / TET (pattern mappings, per-step accuracy on digits,
  LTS convergence, Fashion-MNIST conv SNN);
* ``spikeforge data verify``: check the MNIST / Fashion-MNIST files and their checksums.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from spikeforge.data import DataCorruptError, DataNotFoundError

REPRODUCE_DEFAULT_EPOCHS = {"fc2": 30, "lenet5": 15, "vgg-small": 10}
# kept in step with spikeforge.multistep.imp (not imported here: the CLI imports lazily)
IMP_EXPERIMENTS = ("patterns", "digits", "convergence", "fashion")
IMP_LOSSES = ("sdt", "lts", "tet", "tet-s")
IMP_FASHION_ARMS = ("sdt", "imp+sdt", "lts", "imp+lts")


def _demo(args: argparse.Namespace) -> int:
    from spikeforge.ttfs.experiments import run_demo

    run_demo(
        args.out,
        epochs=args.epochs,
        seed=args.seed,
        event=not args.no_event,
        progress=not args.quiet,
    )
    return 0


def _reproduce_ttfs_mapping(args: argparse.Namespace) -> int:
    from spikeforge.data import load_dataset
    from spikeforge.training import TrainConfig
    from spikeforge.ttfs.experiments import run_mapping_experiment

    dataset = load_dataset(args.dataset, args.data_dir).subset(
        args.train_samples, args.test_samples
    )
    epochs = args.epochs or REPRODUCE_DEFAULT_EPOCHS[args.arch]
    cfg = TrainConfig(
        epochs=epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        seed=args.seed,
        progress=not args.quiet,
    )
    out = args.out or f"reports/ttfs-mapping-{args.dataset}-{args.arch}"
    run_mapping_experiment(
        dataset,
        args.arch,
        out,
        train=cfg,
        zeta=args.zeta,
        event_samples=args.event_samples,
        progress=not args.quiet,
    )
    return 0


def _reproduce_ttfs_train(args: argparse.Namespace) -> int:
    from spikeforge.data import load_dataset
    from spikeforge.training import TrainConfig
    from spikeforge.ttfs.hardware import Hardware
    from spikeforge.ttfs.reproduce_train import (
        Recipe,
        format_train_table,
        run_finetune,
        run_scratch,
        scratch_recipe,
    )

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
            epochs=args.relu_epochs or REPRODUCE_DEFAULT_EPOCHS[args.arch],
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
    print(f"reports written to {out}/")
    return 0


def _reproduce_ttfs_gradients(args: argparse.Namespace) -> int:
    from spikeforge.data import load_dataset
    from spikeforge.ttfs.reproduce_gradients import (
        format_gradient_tables,
        run_gradient_experiment,
    )

    dataset = load_dataset(args.dataset, args.data_dir)
    out = args.out or f"reports/ttfs-gradients-{args.dataset}"
    results = run_gradient_experiment(
        dataset,
        out,
        depths=args.depths,
        width=args.width,
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        train_samples=args.train_samples,
        test_samples=args.test_samples,
        seed=args.seed,
        progress=not args.quiet,
    )
    print(format_gradient_tables(results))
    print(f"report written to {out}/ (gradients.json and plots)")
    return 0


def _reproduce_ttfs_hardware(args: argparse.Namespace) -> int:
    from spikeforge.data import load_dataset
    from spikeforge.ttfs.reproduce_hardware import format_hardware_tables, run_hardware_sweeps

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


def _reproduce_imp(args: argparse.Namespace) -> int:
    from spikeforge.multistep.imp import run_imp_reproduction
    from spikeforge.multistep.report import format_imp_tables

    digits = {
        "seeds": args.seeds,
        "losses": args.losses,
        "epochs": args.digits_epochs,
        "batch_size": args.digits_batch_size,
        "lr": args.digits_lr,
    }
    convergence = {
        "width": args.convergence_width,
        "epochs": args.convergence_epochs,
        "seeds": args.convergence_seeds,
        "samples": args.convergence_samples,
    }
    fashion = {
        "arms": args.fashion_arms,
        "data_dir": args.data_dir,
        "train_samples": args.fashion_train_samples,
        "test_samples": args.fashion_test_samples,
        "epochs": args.fashion_epochs,
        "batch_size": args.fashion_batch_size,
        "neuron": args.fashion_neuron,
        "seed": args.fashion_seed,
    }
    results = run_imp_reproduction(
        args.out,
        args.experiments,
        digits=digits,
        convergence=convergence,
        fashion=fashion,
        threads=args.threads,
        progress=not args.quiet,
    )
    print(format_imp_tables(results))
    print(f"reports written to {args.out}/ (imp-*.json, imp-*.png, imp-tables.md)")
    return 0


def _data_verify(args: argparse.Namespace) -> int:
    from spikeforge.data import load_idx_dataset, resolve_data_dir

    root = resolve_data_dir(args.data_dir)
    print(f"data directory: {root}")
    for name in ("mnist", "fashion-mnist"):
        for split in ("train", "test"):
            images, _ = load_idx_dataset(name, split, root)
            print(f"  {name:14s} {split:5s} {images.shape[0]:6d} images  checksums OK")
    return 0


def _comma_list(choices: Sequence[str]) -> Callable[[str], list[str]]:
    """An argparse type: a comma-separated list of names from ``choices``, no repeats."""

    def parse(text: str) -> list[str]:
        items = [t.strip() for t in text.split(",") if t.strip()]
        bad = [t for t in items if t not in choices]
        if bad or not items or len(set(items)) != len(items):
            raise argparse.ArgumentTypeError(
                f"expected a comma-separated list of distinct names from {', '.join(choices)}; "
                f"got {text!r}"
            )
        return items

    return parse


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _add_dataset_args(parser: argparse.ArgumentParser, name: str) -> None:
    """Options every MNIST / Fashion-MNIST reproduction shares."""
    parser.add_argument("--dataset", choices=["mnist", "fashion-mnist"], default="mnist")
    parser.add_argument("--data-dir", default=None, help="folder holding mnist/ and fashion-mnist/")
    parser.add_argument(
        "--out", default=None, help=f"report folder (default reports/{name}-DATASET-ARCH)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--train-samples", type=int, default=None, help="only the first N training images"
    )
    parser.add_argument(
        "--test-samples", type=int, default=None, help="only the first N test images"
    )
    parser.add_argument(
        "--event-samples", type=int, default=None, help="test samples to event-simulate (all)"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="spikeforge", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="digits CNN -> TTFS SNN, closed form and event simulation")
    demo.add_argument("--out", default="reports/demo", help="report folder (default %(default)s)")
    demo.add_argument("--epochs", type=int, default=60)
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--no-event", action="store_true", help="skip the event simulation")
    demo.add_argument("--quiet", action="store_true", help="no progress bars")
    demo.set_defaults(run=_demo)

    repro = sub.add_parser("reproduce", help="reproduce a paper experiment")
    experiments = repro.add_subparsers(dest="experiment", required=True)
    mapping = experiments.add_parser(
        "ttfs-mapping", help="exact ReLU -> TTFS mapping on MNIST / Fashion-MNIST"
    )
    _add_dataset_args(mapping, "ttfs-mapping")
    mapping.add_argument("--arch", choices=["fc2", "lenet5"], default="fc2")
    mapping.add_argument(
        "--epochs", type=int, default=None, help="training epochs (default: fc2 30, lenet5 15)"
    )
    mapping.add_argument("--batch-size", type=int, default=128)
    mapping.add_argument("--lr", type=float, default=1e-3)
    mapping.add_argument("--zeta", type=float, default=0.5, help="window margin (default 0.5)")
    mapping.set_defaults(run=_reproduce_ttfs_mapping)

    train = experiments.add_parser(
        "ttfs-train", help="B1 TTFS networks trained from scratch and fine-tuned (P2)"
    )
    _add_dataset_args(train, "ttfs-train")
    train.add_argument("--arch", choices=["fc2", "lenet5", "vgg-small"], default="fc2")
    train.add_argument(
        "--mode",
        choices=["scratch", "finetune", "both"],
        default="both",
        help="train from scratch beside the same-seed ReLU network, fine-tune a mapped "
        "network, or both (default)",
    )
    train.add_argument(
        "--epochs", type=int, default=None, help="from-scratch epochs (default fc2 10, else 5)"
    )
    train.add_argument("--batch-size", type=int, default=8, help="P2 default 8")
    train.add_argument("--lr", type=float, default=5e-4, help="from scratch (P2 default 5e-4)")
    train.add_argument(
        "--activity-l1",
        type=float,
        default=None,
        help="L1 activity regularisation on hidden activations, from scratch (default 1e-3, "
        "vgg-small 1e-5)",
    )
    train.add_argument(
        "--relu-epochs", type=int, default=None, help="epochs of the ReLU network to fine-tune"
    )
    train.add_argument("--finetune-epochs", type=int, default=1)
    train.add_argument("--finetune-lr", type=float, default=1e-5)
    train.add_argument("--finetune-activity-l1", type=float, default=0.0)
    hw = train.add_argument_group(
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
    train.set_defaults(run=_reproduce_ttfs_train)

    gradients = experiments.add_parser(
        "ttfs-gradients",
        help="ReLU, B1 and alpha1 trained side by side: trajectories and gradient norms (P2)",
    )
    gradients.add_argument(
        "--dataset", choices=["mnist", "fashion-mnist", "digits"], default="mnist"
    )
    gradients.add_argument("--data-dir", default=None)
    gradients.add_argument("--out", default=None, help="default reports/ttfs-gradients-DATASET")
    gradients.add_argument("--depths", type=int, nargs="+", default=[2, 4, 8])
    gradients.add_argument("--width", type=int, default=128)
    gradients.add_argument("--steps", type=int, default=1000)
    gradients.add_argument("--batch-size", type=int, default=32)
    gradients.add_argument("--lr", type=float, default=5e-4)
    gradients.add_argument("--train-samples", type=int, default=10_000)
    gradients.add_argument("--test-samples", type=int, default=2_000)
    gradients.add_argument("--seed", type=int, default=0)
    gradients.add_argument("--quiet", action="store_true", help="no progress bars")
    gradients.set_defaults(run=_reproduce_ttfs_gradients)

    hardware = experiments.add_parser(
        "ttfs-hardware",
        help="MNIST FC2 B1 SNN fine-tuned for spike-time noise, few-bit times / weights and "
        "low latency, against the un-fine-tuned network",
    )
    hardware.add_argument("--dataset", choices=["mnist", "fashion-mnist"], default="mnist")
    hardware.add_argument("--data-dir", default=None)
    hardware.add_argument("--out", default=None, help="default reports/ttfs-hardware-DATASET-fc2")
    hardware.add_argument("--test-samples", type=int, default=None)
    hardware.add_argument("--relu-epochs", type=int, default=10)
    hardware.add_argument("--finetune-epochs", type=int, default=1)
    hardware.add_argument("--finetune-samples", type=int, default=40000)
    hardware.add_argument("--finetune-lr", type=float, default=1e-4)
    hardware.add_argument(
        "--noise",
        type=float,
        nargs="+",
        help="spike-time noise std, units of tau_c (default 1 2 4)",
    )
    hardware.add_argument("--time-bits", type=int, nargs="+", help="default 1 2 3")
    hardware.add_argument("--weight-bits", type=int, nargs="+", help="default 1 2 3")
    hardware.add_argument(
        "--weight-range",
        type=float,
        nargs=2,
        default=None,
        metavar=("W_MIN", "W_MAX"),
        help="weight quantiser range (default: symmetric at the largest |w|)",
    )
    hardware.add_argument(
        "--quantiles",
        type=float,
        nargs="+",
        help="activation quantiles that set the latency-budget windows (default 0.7 0.5 0.3)",
    )
    hardware.add_argument("--repeats", type=int, default=5, help="noise draws per evaluation")
    hardware.add_argument("--seed", type=int, default=0)
    hardware.add_argument("--quiet", action="store_true", help="no progress bars")
    hardware.set_defaults(run=_reproduce_ttfs_hardware)

    imp = experiments.add_parser(
        "imp",
        help="IMP / LTS / TET: pattern mappings, per-step accuracy on digits, LTS convergence, "
        "Fashion-MNIST conv SNN",
    )
    imp.add_argument("--out", default="reports/imp", help="report folder (default %(default)s)")
    imp.add_argument(
        "--experiments",
        type=_comma_list(IMP_EXPERIMENTS),
        default=list(IMP_EXPERIMENTS),
        help=f"comma-separated subset of {','.join(IMP_EXPERIMENTS)} (default: all)",
    )
    imp.add_argument("--threads", type=_positive_int, default=None, help="torch threads")
    imp.add_argument("--quiet", action="store_true", help="no progress bars")
    dg = imp.add_argument_group("digits (per-time-step accuracy, spec 9.2)")
    dg.add_argument("--seeds", type=_positive_int, default=5, help="seeds 0..N-1 (default 5)")
    dg.add_argument(
        "--losses",
        type=_comma_list(IMP_LOSSES),
        default=list(IMP_LOSSES),
        help="comma-separated losses, each run with and without IMP (default: all four)",
    )
    dg.add_argument("--digits-epochs", type=_positive_int, default=30)
    dg.add_argument("--digits-batch-size", type=_positive_int, default=64)
    dg.add_argument("--digits-lr", type=float, default=2e-3)
    cv = imp.add_argument_group("convergence (LTS on random data, spec 9.3)")
    cv.add_argument("--convergence-width", type=_positive_int, default=256)
    cv.add_argument("--convergence-epochs", type=_positive_int, default=300)
    cv.add_argument("--convergence-seeds", type=_positive_int, default=3)
    cv.add_argument("--convergence-samples", type=_positive_int, default=1024)
    fm = imp.add_argument_group("fashion (Fashion-MNIST conv SNN, T = 4)")
    fm.add_argument("--data-dir", default=None, help="folder holding fashion-mnist/")
    fm.add_argument(
        "--fashion-arms",
        type=_comma_list(IMP_FASHION_ARMS),
        default=["sdt", "imp+lts"],
        help=f"comma-separated subset of {','.join(IMP_FASHION_ARMS)} (default sdt,imp+lts)",
    )
    fm.add_argument(
        "--fashion-train-samples", type=_positive_int, default=None, help="first N (all)"
    )
    fm.add_argument(
        "--fashion-test-samples", type=_positive_int, default=None, help="first N (all)"
    )
    fm.add_argument("--fashion-epochs", type=_positive_int, default=2)
    fm.add_argument("--fashion-batch-size", type=_positive_int, default=128)
    fm.add_argument("--fashion-neuron", choices=["if", "lif"], default="if")
    fm.add_argument("--fashion-seed", type=int, default=0)
    imp.set_defaults(run=_reproduce_imp)

    data = sub.add_parser("data", help="data set utilities")
    data_sub = data.add_subparsers(dest="action", required=True)
    verify = data_sub.add_parser("verify", help="check MNIST / Fashion-MNIST files and checksums")
    verify.add_argument("--data-dir", default=None)
    verify.set_defaults(run=_data_verify)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (DataNotFoundError, DataCorruptError) as exc:
        print(f"spikeforge: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("spikeforge: interrupted (rerun the same command to resume)", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
