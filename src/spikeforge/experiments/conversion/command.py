"""The ``spikeforge reproduce conversion`` subcommand."""

from __future__ import annotations

import argparse

import torch

from spikeforge.data import load_dataset
from spikeforge.experiments.arguments import positive_int
from spikeforge.experiments.conversion.networks import ARCHITECTURES, DEFAULT_WIDTHS
from spikeforge.experiments.conversion.report import format_tables
from spikeforge.experiments.conversion.runs import Settings, run_conversion
from spikeforge.experiments.registry import Command

__all__ = ["COMMANDS", "QUICK", "settings_from_args"]

QUICK = {
    "epochs": 1,
    "al_epochs": 1,
    "steps": 16,
    "train_samples": 2000,
    "test_samples": 500,
    "curve_samples": 250,
    "calib_samples": 512,
    "simulate_samples": 100,
}
"""``--quick``: a smoke run of a minute or two (not a result)."""


def _levels(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected levels like 4,8, got {text!r}") from None
    if not values or min(values) < 1 or len(set(values)) != len(values):
        raise argparse.ArgumentTypeError(f"expected distinct levels >= 1, got {text!r}")
    return values


def _arguments(parser: argparse.ArgumentParser) -> None:
    default = Settings("mnist", "vgg-small")
    parser.add_argument("--dataset", choices=["mnist", "fashion-mnist"], default="mnist")
    parser.add_argument("--arch", choices=sorted(ARCHITECTURES), default="vgg-small")
    parser.add_argument("--data-dir", default=None, help="folder holding mnist/ and fashion-mnist/")
    parser.add_argument(
        "--out", default=None, help="report folder (default reports/conversion-DATASET-ARCH)"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="tiny settings for a smoke run: "
        + ", ".join(f"{k.replace('_', '-')} {v}" for k, v in QUICK.items()),
    )
    parser.add_argument(
        "--width",
        type=positive_int,
        default=None,
        help="channels of the first stage (default "
        + ", ".join(f"{k} {v}" for k, v in DEFAULT_WIDTHS.items())
        + ")",
    )
    parser.add_argument("--epochs", type=positive_int, default=None, help="ReLU and QCFS epochs")
    parser.add_argument(
        "--al-epochs", type=int, default=None, help="training after choosing AL levels (0: none)"
    )
    parser.add_argument("--batch-size", type=positive_int, default=default.batch_size)
    parser.add_argument("--lr", type=float, default=default.lr, help="Adam learning rate")
    parser.add_argument("--weight-decay", type=float, default=default.weight_decay)
    parser.add_argument(
        "--init-lambda",
        type=float,
        default=default.init_lambda,
        help="initial QCFS clip level (PASCAL's code 1.0, QCFS's 8.0)",
    )
    parser.add_argument(
        "--levels", type=_levels, default=default.uniform_levels, help="uniform QCFS levels"
    )
    parser.add_argument(
        "--al-from", type=positive_int, default=default.al_from, help="AL starts from this L"
    )
    parser.add_argument("--steps", type=positive_int, default=None, help="T_max of the curves")
    parser.add_argument(
        "--curve-samples",
        type=int,
        default=None,
        help=f"test images of the time curves, spread evenly (default {default.curve_samples}; "
        "0: all)",
    )
    parser.add_argument("--train-samples", type=positive_int, default=None)
    parser.add_argument("--test-samples", type=positive_int, default=None)
    parser.add_argument("--calib-samples", type=positive_int, default=None)
    parser.add_argument(
        "--simulate-samples",
        type=int,
        default=None,
        help=f"test images for PASCAL's step-by-step reference (default "
        f"{default.simulate_samples})",
    )
    parser.add_argument(
        "--own-baseline",
        action="store_true",
        help="also run the max-norm IF conversion of our own (always when SpikingJelly is missing)",
    )
    parser.add_argument(
        "--no-spikingjelly", action="store_true", help="skip SpikingJelly's converter"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=positive_int, default=None, help="torch threads")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def settings_from_args(args: argparse.Namespace) -> Settings:
    """The :class:`Settings` an argument namespace asks for (``--quick`` first, explicit
    options over it)."""
    values: dict = dict(QUICK) if args.quick else {}
    explicit = {
        "epochs": args.epochs,
        "al_epochs": args.al_epochs,
        "steps": args.steps,
        "train_samples": args.train_samples,
        "test_samples": args.test_samples,
        "calib_samples": args.calib_samples,
        "simulate_samples": args.simulate_samples,
    }
    values |= {k: v for k, v in explicit.items() if v is not None}
    if args.curve_samples is not None:
        values["curve_samples"] = args.curve_samples or None
    return Settings(
        args.dataset,
        args.arch,
        width=args.width,
        batch_size=args.batch_size,
        lr=args.lr,
        weight_decay=args.weight_decay,
        init_lambda=args.init_lambda,
        uniform_levels=tuple(args.levels),
        al_from=args.al_from,
        own_baseline=args.own_baseline,
        spikingjelly=not args.no_spikingjelly,
        seed=args.seed,
        **values,
    )


def _run_command(args: argparse.Namespace) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        settings = settings_from_args(args)
    except ValueError as exc:
        print(f"spikeforge: error: {exc}")
        return 2
    data = load_dataset(args.dataset, args.data_dir).subset(
        settings.train_samples, settings.test_samples
    )
    out = args.out or f"reports/conversion-{args.dataset}-{args.arch}"
    results = run_conversion(data, out, settings, progress=not args.quiet)
    print(format_tables(results))
    print(f"report written to {out}/ (conversion.json, accuracy.png, tables.md)")
    return 0


COMMANDS = (
    Command(
        "conversion",
        "QCFS training, IF conversion and PASCAL (exact), against SpikingJelly's converter",
        _arguments,
        _run_command,
        group="reproduce",
        runtime="8-17 min per data set and architecture (measured 456-995 s, shared machine)",
    ),
)
