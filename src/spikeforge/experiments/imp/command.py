"""The ``spikeforge reproduce imp`` subcommand: its options and the run."""

from __future__ import annotations

import argparse

from spikeforge.experiments.arguments import comma_list, positive_int
from spikeforge.experiments.imp.experiments import (
    ALL_FASHION_ARMS,
    EXPERIMENTS,
    FASHION_ARMS,
    run_imp_reproduction,
)
from spikeforge.experiments.imp.objectives import OBJECTIVE_NAMES
from spikeforge.experiments.imp.report import format_imp_tables
from spikeforge.experiments.registry import Command

__all__ = ["COMMANDS"]


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="reports/imp", help="report folder (default %(default)s)")
    parser.add_argument(
        "--experiments",
        type=comma_list(EXPERIMENTS),
        default=list(EXPERIMENTS),
        help=f"comma-separated subset of {','.join(EXPERIMENTS)} (default: all)",
    )
    parser.add_argument("--threads", type=positive_int, default=None, help="torch threads")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    dg = parser.add_argument_group("digits (per-time-step accuracy, spec 9.2)")
    dg.add_argument("--seeds", type=positive_int, default=5, help="seeds 0..N-1 (default 5)")
    dg.add_argument(
        "--losses",
        type=comma_list(OBJECTIVE_NAMES),
        default=list(OBJECTIVE_NAMES),
        help="comma-separated losses, each run with and without IMP (default: all four)",
    )
    dg.add_argument("--digits-epochs", type=positive_int, default=30)
    dg.add_argument("--digits-batch-size", type=positive_int, default=64)
    dg.add_argument("--digits-lr", type=float, default=2e-3)
    cv = parser.add_argument_group("convergence (LTS on random data, spec 9.3)")
    cv.add_argument("--convergence-width", type=positive_int, default=256)
    cv.add_argument("--convergence-epochs", type=positive_int, default=300)
    cv.add_argument("--convergence-seeds", type=positive_int, default=3)
    cv.add_argument("--convergence-samples", type=positive_int, default=1024)
    fm = parser.add_argument_group("fashion (Fashion-MNIST conv SNN, T = 4)")
    fm.add_argument("--data-dir", default=None, help="folder holding fashion-mnist/")
    fm.add_argument(
        "--fashion-arms",
        type=comma_list(ALL_FASHION_ARMS),
        default=list(FASHION_ARMS),
        help=f"comma-separated subset of {','.join(ALL_FASHION_ARMS)} (default sdt,imp+lts)",
    )
    fm.add_argument(
        "--fashion-train-samples", type=positive_int, default=None, help="first N (all)"
    )
    fm.add_argument("--fashion-test-samples", type=positive_int, default=None, help="first N (all)")
    fm.add_argument("--fashion-epochs", type=positive_int, default=2)
    fm.add_argument("--fashion-batch-size", type=positive_int, default=128)
    fm.add_argument("--fashion-neuron", choices=["if", "lif"], default="if")
    fm.add_argument("--fashion-seed", type=int, default=0)


def _run_command(args: argparse.Namespace) -> int:
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


COMMANDS = (
    Command(
        "imp",
        "IMP / LTS / TET: pattern mappings, per-step accuracy on digits, LTS convergence, "
        "Fashion-MNIST conv SNN",
        _arguments,
        _run_command,
        group="reproduce",
        runtime="10 min at 2 threads (Fashion-MNIST 7 min of it; 4 arms: 16 min)",
    ),
)
