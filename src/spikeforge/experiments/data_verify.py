"""``spikeforge data verify``: check that the MNIST / Fashion-MNIST files are there and match
their checksums."""

from __future__ import annotations

import argparse

from spikeforge.data import load_idx_dataset, resolve_data_dir
from spikeforge.experiments.registry import Command

__all__ = ["COMMANDS"]


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", default=None)


def _run_command(args: argparse.Namespace) -> int:
    root = resolve_data_dir(args.data_dir)
    print(f"data directory: {root}")
    for name in ("mnist", "fashion-mnist"):
        for split in ("train", "test"):
            images, _ = load_idx_dataset(name, split, root)
            print(f"  {name:14s} {split:5s} {images.shape[0]:6d} images  checksums OK")
    return 0


COMMANDS = (
    Command(
        "verify",
        "check MNIST / Fashion-MNIST files and checksums",
        _arguments,
        _run_command,
        group="data",
        runtime="5 s",
    ),
)
