"""``spikeforge files build-debfiles``: build the debfiles data set from this machine's dpkg
database (spec file-classification.md §4.7) and say whether it equals the canonical fixture."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from spikeforge.data.errors import DataNotFoundError
from spikeforge.experiments.registry import Command
from spikeforge.files.builder import build_debfiles
from spikeforge.files.debfiles import SHA256

__all__ = ["COMMANDS"]


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out", type=Path, help="output .csv.gz (written atomically)")
    parser.add_argument(
        "--manifest", type=Path, required=True, help="name=version lines of the packages to keep"
    )
    parser.add_argument("--dpkg-dir", type=Path, default=Path("/var/lib/dpkg"))
    parser.add_argument("--root", type=Path, default=Path("/"), help="root of the file tree")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")


def _run_command(args: argparse.Namespace) -> int:
    for needed in (args.manifest, args.dpkg_dir / "status", args.dpkg_dir / "info"):
        if not needed.exists():
            raise DataNotFoundError(
                f"{needed} does not exist (build-debfiles needs --manifest and a dpkg database "
                "under --dpkg-dir)"
            )

    def progress(message: str) -> None:
        if not args.quiet:
            print(message, file=sys.stderr)

    report = build_debfiles(
        args.out, args.manifest, dpkg_dir=args.dpkg_dir, root=args.root, progress=progress
    )
    print(report.summary())
    same = report.sha256 == SHA256
    print(
        f"SHA-256 {report.sha256} ({'equals' if same else 'differs from'} the canonical {SHA256})"
    )
    return 0


COMMANDS = (
    Command(
        "build-debfiles",
        "build the debfiles data set from the dpkg database (spec §4)",
        _arguments,
        _run_command,
        group="files",
        runtime="15 s",
    ),
)
