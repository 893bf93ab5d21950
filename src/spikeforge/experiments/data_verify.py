"""``spikeforge data verify``: check that the MNIST / Fashion-MNIST files and the debfiles data
set are there and match their checksums."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from spikeforge.data import DataCorruptError, DataNotFoundError, load_idx_dataset, resolve_data_dir
from spikeforge.experiments.registry import Command
from spikeforge.files.debfiles import load_debfiles

__all__ = ["COMMANDS"]


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", default=None)


def _run_command(args: argparse.Namespace) -> int:
    """Check every data set; print one line each. Returns 0 when all pass, else raises the
    first failure (the CLI prints it and exits with status 2) after reporting the others."""
    root = resolve_data_dir(args.data_dir)
    print(f"data directory: {root}")
    checks: list[tuple[str, Callable[[], str]]] = []
    for name in ("mnist", "fashion-mnist"):
        for split in ("train", "test"):

            def idx(name: str = name, split: str = split) -> str:
                images, _ = load_idx_dataset(name, split, root)
                return f"{images.shape[0]:6d} images  checksums OK"

            checks.append((f"{name:14s} {split:5s}", idx))

    def debfiles() -> str:
        data = load_debfiles(root / "debfiles" / "debfiles.csv.gz")
        return f"{len(data):6d} rows    checksum OK"

    checks.append((f"{'debfiles':20s}", debfiles))
    failures: list[Exception] = []
    for label, check in checks:
        try:
            print(f"  {label} {check()}")
        except (DataNotFoundError, DataCorruptError) as exc:
            print(f"  {label} FAILED: {str(exc).splitlines()[0]}")
            failures.append(exc)
    if failures:
        raise failures[0]
    return 0


COMMANDS = (
    Command(
        "verify",
        "check MNIST / Fashion-MNIST and debfiles files and checksums",
        _arguments,
        _run_command,
        group="data",
        runtime="5 s",
    ),
)
