"""Metadata tables on disk for the ``spikeforge files`` tools: a ``spikeforge files scan`` output
or the debfiles CSV, read as records for the classifiers.

Both files share the spec §4.3 definitions of the path and lstat fields, so a model trained on
one applies to the other with the feature set :data:`SCAN_FEATURES` (every feature a scan of any
directory provides: the debfiles ``full`` set without the dpkg fields). Rows are read as text;
:func:`records_from_rows` turns them into records exactly as :meth:`Debfiles.records` does.
"""

from __future__ import annotations

import csv
import gzip
import io
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np

from spikeforge.files.debfiles import CLASSES, FEATURE_SETS, KEY_TYPE_OF, feature_value
from spikeforge.files.kinds import MERGED
from spikeforge.files.scan import FIELDS

__all__ = [
    "SCAN_FEATURES",
    "TableError",
    "iter_rows",
    "labels_from_rows",
    "records_from_rows",
    "scan_schema",
]

SCAN_FEATURES = tuple(f for f in FEATURE_SETS["full"] if f in FIELDS)
"""The features of a scan of any tree (path and lstat fields, spec §4.3): size, mode, exec,
setid, uid, gid, nlink, mtime, depth, top2, ext, n_dots, name_len, dir, name."""


class TableError(ValueError):
    """A metadata table that cannot be read or lacks a needed column (names file and column)."""


def scan_schema(features: Sequence[str] = SCAN_FEATURES) -> dict[str, str]:
    """``KeyValueEncoder`` schema of ``features`` (spec §3.2 key types)."""
    unknown = [f for f in features if f not in KEY_TYPE_OF]
    if unknown:
        raise TableError(f"unknown feature(s) {unknown}; known: {', '.join(KEY_TYPE_OF)}")
    return {f: KEY_TYPE_OF[f] for f in features}


def iter_rows(
    path: str | os.PathLike[str], required: Sequence[str] = ()
) -> Iterator[dict[str, str]]:
    """Rows of a CSV or CSV.gz table as dicts of text, streaming. Regular files only when the
    table has a ``type`` column (a scan lists directories, links and devices too). Raises
    :class:`TableError` for an unreadable file or a missing ``required`` column."""
    path = Path(path)
    try:
        raw = path.open("rb")
    except OSError as exc:
        raise TableError(f"cannot read {path}: {exc.strerror or exc}") from exc
    with raw:
        stream = gzip.GzipFile(fileobj=raw) if path.suffix == ".gz" else raw
        text = io.TextIOWrapper(stream, encoding="utf-8", errors="surrogateescape", newline="")
        try:
            reader = csv.DictReader(text)
            header = reader.fieldnames or []
            missing = [c for c in required if c not in header]
            if missing:
                raise TableError(f"{path} lacks the column(s) {missing} (header: {header})")
            for row in reader:
                if row.get("type", "file") == "file":
                    yield row
        except (OSError, EOFError, csv.Error, UnicodeError) as exc:
            raise TableError(f"{path} is corrupt or not a CSV table: {exc}") from exc


def records_from_rows(
    rows: Sequence[Mapping[str, str]], features: Sequence[str] = SCAN_FEATURES
) -> list[dict[str, object]]:
    """Records of ``features`` from text rows (the rules of :func:`feature_value`)."""
    out = []
    for i, row in enumerate(rows):
        try:
            out.append({k: feature_value(k, row[k]) for k in features})
        except (KeyError, ValueError) as exc:
            raise TableError(f"row {i + 1} ({row.get('path', '?')}): bad field {exc}") from exc
    return out


def labels_from_rows(rows: Sequence[Mapping[str, str]]) -> np.ndarray:
    """The 16-class ``kind`` of each row (spec §4.5 merge applied), ``[n]`` str."""
    kinds = [MERGED.get(r["kind"], r["kind"]) for r in rows]
    bad = sorted(set(kinds) - set(CLASSES))
    if bad:
        raise TableError(f"unknown kind label(s) {bad}; known: {', '.join(CLASSES)}")
    return np.array(kinds, dtype=object)
