"""Command-line argument helpers shared by the experiments' subcommands."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence

__all__ = ["add_dataset_args", "add_jobs_arg", "comma_list", "positive_int"]


def comma_list(choices: Sequence[str]) -> Callable[[str], list[str]]:
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


def positive_int(text: str) -> int:
    """An argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def add_jobs_arg(parser: argparse.ArgumentParser) -> None:
    """``--jobs N`` (default 2): units in N worker processes, one torch thread each."""
    parser.add_argument(
        "--jobs",
        type=positive_int,
        default=2,
        help="units run in parallel worker processes, one torch thread each (2)",
    )


def add_dataset_args(parser: argparse.ArgumentParser, name: str) -> None:
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
