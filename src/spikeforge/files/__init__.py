"""File metadata for classification (spec file-classification.md §4): a safe streaming
scanner of directory trees and the magic-byte content ``kind`` rules."""

from __future__ import annotations

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
    "FIELDS",
    "HEAD_BYTES",
    "KINDS",
    "MERGED",
    "ScanResult",
    "classify",
    "compare_throughput",
    "iter_scan",
    "scan",
    "walk_baseline",
]
