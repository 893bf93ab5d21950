"""The ``spikeforge reproduce ttfs-gradients`` subcommand."""

from __future__ import annotations

import argparse

from spikeforge.data import load_dataset
from spikeforge.experiments.registry import Command
from spikeforge.experiments.ttfs_gradients.experiment import (
    run_gradient_experiment,
)
from spikeforge.experiments.ttfs_gradients.report import (
    format_gradient_tables,
)

# ---------------------------------------------------------------------------------------------
# command
# ---------------------------------------------------------------------------------------------


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", choices=["mnist", "fashion-mnist", "digits"], default="mnist")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--out", default=None, help="default reports/ttfs-gradients-DATASET")
    parser.add_argument("--depths", type=int, nargs="+", default=[2, 4, 8])
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--train-samples", type=int, default=10_000)
    parser.add_argument("--test-samples", type=int, default=2_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def _run_command(args: argparse.Namespace) -> int:
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


COMMANDS = (
    Command(
        "ttfs-gradients",
        "ReLU, B1 and alpha1 trained side by side: trajectories and gradient norms (P2)",
        _arguments,
        _run_command,
        group="reproduce",
        runtime="3.5 min (MNIST, depths 2 4 8, 1000 steps)",
    ),
)
