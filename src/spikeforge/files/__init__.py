"""File metadata for classification (spec file-classification.md §4): a safe streaming
scanner of directory trees, the magic-byte content ``kind`` rules, and the debfiles data set
(loader :func:`load_debfiles`, builder :func:`build_debfiles`)."""

from __future__ import annotations

from spikeforge.files.build_debfiles import BuildReport, build_debfiles
from spikeforge.files.debfiles import (
    CLASSES,
    COLUMNS,
    FEATURE_SETS,
    SHA256,
    Debfiles,
    load_debfiles,
)
from spikeforge.files.kinds import HEAD_BYTES, KINDS, MERGED, classify
from spikeforge.files.scan import (
    FIELDS,
    ScanResult,
    compare_throughput,
    iter_scan,
    scan,
    walk_baseline,
)

__all__ = [
    "CLASSES",
    "COLUMNS",
    "FEATURE_SETS",
    "FIELDS",
    "HEAD_BYTES",
    "KINDS",
    "MERGED",
    "SHA256",
    "BuildReport",
    "Debfiles",
    "ScanResult",
    "build_debfiles",
    "classify",
    "compare_throughput",
    "iter_scan",
    "load_debfiles",
    "scan",
    "walk_baseline",
]
