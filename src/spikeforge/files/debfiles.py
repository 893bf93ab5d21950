"""The debfiles data set (spec file-classification.md §4): loader, schema and feature sets.

``debfiles.csv.gz`` holds one row per regular file of 692 Debian packages (40,036 rows, 28
columns, :data:`COLUMNS`): metadata features, the owning package, a grouped ``fold`` and the
content label ``kind`` (16 classes, :data:`CLASSES`). :func:`load_debfiles` reads it into a
column-oriented :class:`Debfiles`, checking the SHA-256 of the decompressed CSV, the header and
every value.

Array layout: every column is a 1-D numpy array of length ``N`` (rows in file order, sorted by
path). Integer columns (:data:`INT_COLUMNS`) are ``int64``; text columns are ``object`` arrays of
Python ``str``.

**Empty fields.** An empty text field is the empty string ``""`` (in the canonical file only
``ext`` and ``multi_arch`` are ever empty). An empty integer field is :data:`MISSING_INT`
(``-1``; every real value is non-negative). ``path``, ``name``, ``package``, ``fold`` and
``kind`` may never be empty. :meth:`Debfiles.records` turns both kinds of empty into ``None``,
which :class:`spikeforge.encoding.KeyValueEncoder` encodes as a silent group.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import re
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from spikeforge.data.errors import DataCorruptError, DataNotFoundError
from spikeforge.data.paths import resolve_data_dir
from spikeforge.encoding import KEY_TYPES, tokenize
from spikeforge.files.kinds import KINDS, MERGED

__all__ = [
    "CLASSES",
    "COLUMNS",
    "FEATURE_SETS",
    "INT_COLUMNS",
    "KEY_TYPE_OF",
    "MISSING_INT",
    "N_FOLDS",
    "SHA256",
    "TEXT_COLUMNS",
    "Debfiles",
    "default_debfiles_path",
    "feature_value",
    "load_debfiles",
    "schema",
]

SHA256 = "19d093c52f1c61d8a24151969b2d10d683d1b1a8886516d8290bc935ed3443ce"
"""SHA-256 (hex) of the canonical ``debfiles.csv`` after decompression."""

COLUMNS = (
    "path",
    "dir",
    "name",
    "ext",
    "n_dots",
    "depth",
    "name_len",
    "top2",
    "size",
    "mode",
    "exec",
    "setid",
    "uid",
    "gid",
    "nlink",
    "mtime",
    "package",
    "version",
    "section",
    "priority",
    "arch",
    "multi_arch",
    "essential",
    "installed_size_kb",
    "conffile",
    "has_md5",
    "fold",
    "kind",
)
"""The 28 CSV columns in file order (spec §4.3)."""

INT_COLUMNS = (
    "n_dots",
    "depth",
    "name_len",
    "size",
    "exec",
    "setid",
    "uid",
    "gid",
    "nlink",
    "mtime",
    "essential",
    "installed_size_kb",
    "conffile",
    "has_md5",
    "fold",
)
"""Columns held as ``int64`` arrays (:data:`MISSING_INT` for an empty field)."""

TEXT_COLUMNS = tuple(c for c in COLUMNS if c not in INT_COLUMNS)
"""Columns held as ``object`` arrays of ``str`` (``""`` for an empty field)."""

MISSING_INT = -1
"""The value of an empty integer field."""

N_FOLDS = 5
"""``fold`` = crc32(package) mod 5."""

CLASSES = tuple(k for k in KINDS if k not in MERGED)
"""The 16 ``kind`` classes: :data:`spikeforge.files.KINDS` order without the merged labels
(``elf_object``, ``elf_other``, ``font`` -> ``binary_other``). Class index = position here:
empty, elf_executable, elf_shared_lib, compressed, archive, image, gettext_catalog, terminfo,
binary_other, python_source, shell_script, other_script, markup, json, c_source, text."""

_BOOLEAN = ("exec", "setid", "essential", "conffile", "has_md5")
_REQUIRED = ("path", "name", "package", "fold", "kind")
_MODE = re.compile(r"0o[0-7]+")

KEY_TYPE_OF: dict[str, str] = {
    **dict.fromkeys(
        ("ext", "section", "priority", "arch", "multi_arch", "top2", "mode", "uid", "gid"),
        "categorical",
    ),
    **dict.fromkeys(_BOOLEAN, "boolean"),
    **dict.fromkeys(
        ("size", "installed_size_kb", "depth", "name_len", "n_dots", "nlink", "mtime"), "numeric"
    ),
    "dir": "tokens",
    "name": "tokens",
}
"""Spec §3.2: feature key -> :data:`spikeforge.encoding.KEY_TYPES` entry."""

_META = (
    "size",
    "mode",
    "exec",
    "setid",
    "uid",
    "gid",
    "nlink",
    "mtime",
    "depth",
    "top2",
    "section",
    "priority",
    "arch",
    "multi_arch",
    "essential",
    "installed_size_kb",
    "conffile",
    "has_md5",
)

FEATURE_SETS: dict[str, tuple[str, ...]] = {
    "meta": _META,
    "full": (*_META, "ext", "n_dots", "name_len", "dir", "name"),
}
"""Spec §4.8. ``path``, ``package``, ``version``, ``fold`` and ``kind`` are never features."""

assert all(KEY_TYPE_OF[k] in KEY_TYPES for k in FEATURE_SETS["full"])

_BUILD_HINT = (
    "The canonical file ships with the project under shared/data/debfiles/ (point "
    "SPIKEFORGE_DATA or data_dir at the folder holding debfiles/), or rebuild it on a Debian 12 "
    "machine with the reference packages: spikeforge files build-debfiles "
    "<data dir>/debfiles/debfiles.csv.gz --manifest <data dir>/debfiles/manifest.txt"
)


def _feature_names(features: str | Sequence[str]) -> tuple[str, ...]:
    if isinstance(features, str):
        if features not in FEATURE_SETS:
            raise ValueError(f"unknown feature set {features!r}; valid: {', '.join(FEATURE_SETS)}")
        return FEATURE_SETS[features]
    names = tuple(features)
    bad = [n for n in names if n not in KEY_TYPE_OF]
    if bad or not names:
        raise ValueError(
            f"not feature keys: {bad or 'empty list'}; valid: {', '.join(KEY_TYPE_OF)}"
        )
    return names


def schema(features: str | Sequence[str] = "full") -> dict[str, str]:
    """The :class:`~spikeforge.encoding.KeyValueEncoder` schema (key -> key type, spec §3.2) of
    a feature set (``"meta"``, ``"full"``) or an explicit list of feature keys, in that order."""
    return {k: KEY_TYPE_OF[k] for k in _feature_names(features)}


class Debfiles:
    """The debfiles table, column-oriented.

    ``columns`` maps each name of :data:`COLUMNS` to a 1-D array of length ``N``: ``int64`` for
    :data:`INT_COLUMNS` (empty = :data:`MISSING_INT`), ``object`` arrays of ``str`` otherwise
    (empty = ``""``). ``source`` is the file it was read from (``None`` for a subset built in
    memory)."""

    def __init__(self, columns: dict[str, np.ndarray], source: Path | None = None) -> None:
        lengths = {len(a) for a in columns.values()}
        if set(columns) != set(COLUMNS) or len(lengths) > 1:
            raise ValueError("columns must hold every name of COLUMNS, all of one length")
        self.columns = {c: columns[c] for c in COLUMNS}
        self.source = source

    def __len__(self) -> int:
        return len(self.columns["path"])

    def __getitem__(self, column: str) -> np.ndarray:
        return self.columns[column]

    def __repr__(self) -> str:
        return f"Debfiles({len(self)} rows, {len(np.unique(self.package))} packages)"

    @property
    def kind(self) -> np.ndarray:
        """``[N]`` object array of class names (entries of :data:`CLASSES`)."""
        return self.columns["kind"]

    @property
    def fold(self) -> np.ndarray:
        """``[N]`` int64 fold index in 0..4 (grouped by package)."""
        return self.columns["fold"]

    @property
    def package(self) -> np.ndarray:
        """``[N]`` object array of owning package names."""
        return self.columns["package"]

    @property
    def y(self) -> np.ndarray:
        """``[N]`` int64 class indices into :data:`CLASSES`."""
        return self.labels()

    def labels(self) -> np.ndarray:
        """``[N]`` int64 class indices into :data:`CLASSES`."""
        index = {c: i for i, c in enumerate(CLASSES)}
        return np.fromiter((index[k] for k in self.kind), dtype=np.int64, count=len(self))

    def subset(self, index: Any) -> Debfiles:
        """The rows selected by ``index`` (int indices, a boolean mask of length ``N`` or a
        slice), as a new :class:`Debfiles` with copied arrays."""
        return Debfiles({c: np.array(a[index]) for c, a in self.columns.items()}, self.source)

    def split(self, test_fold: int) -> tuple[np.ndarray, np.ndarray]:
        """``(train, test)`` int64 row indices: ``test`` are the rows with ``fold == test_fold``,
        ``train`` all others (no package is in both)."""
        if not 0 <= int(test_fold) < N_FOLDS:
            raise ValueError(f"test_fold must be in 0..{N_FOLDS - 1}, got {test_fold}")
        is_test = self.fold == int(test_fold)
        return np.flatnonzero(~is_test), np.flatnonzero(is_test)

    def records(
        self, features: str | Sequence[str] = "full", index: Any = None
    ) -> list[dict[str, object]]:
        """One dict per row (all rows, or those of ``index``) with the keys of ``features``
        (a :data:`FEATURE_SETS` name or a list of keys), ready for
        ``KeyValueEncoder(schema(features))``.

        Values: ``int`` for integer columns, ``str`` for text columns, ``None`` where the field
        is empty. Token-set keys: ``dir`` is the list of its path components
        (``"/usr/share/doc"`` -> ``["usr", "share", "doc"]``, ``None`` for ``/``), ``name`` the
        list of :func:`spikeforge.encoding.tokenize` tokens of the base name (``None`` if it has
        no letters or digits)."""
        keys = _feature_names(features)
        rows = np.arange(len(self)) if index is None else np.arange(len(self))[index]
        cols: dict[str, list[object]] = {}
        for key in keys:
            cols[key] = [feature_value(key, v) for v in self.columns[key][rows].tolist()]
        return [dict(zip(keys, vals, strict=True)) for vals in zip(*cols.values(), strict=True)]

    def schema(self, features: str | Sequence[str] = "full") -> dict[str, str]:
        """Same as the module function :func:`schema`."""
        return schema(features)


def feature_value(key: str, value: object) -> object:
    """One field as a record value (the rules of :meth:`Debfiles.records`), from the loader's
    typed value or from the CSV text (e.g. a ``spikeforge files scan`` output): ``dir`` -> its
    path components, ``name`` -> its tokens, integer columns -> ``int``, text -> ``str``; an
    empty field (``""``, ``None`` or :data:`MISSING_INT`) -> ``None``."""
    if value is None or value == "" or (key in INT_COLUMNS and value == MISSING_INT):
        return None
    if key == "dir":
        return [p for p in str(value).split("/") if p] or None
    if key == "name":
        return tokenize(str(value)) or None
    if key in INT_COLUMNS:
        return int(value)  # type: ignore[call-overload]
    return str(value)


def default_debfiles_path(data_dir: str | Path | None = None) -> Path:
    """``<data dir>/debfiles/debfiles.csv.gz`` (data dir per
    :func:`spikeforge.data.resolve_data_dir`)."""
    try:
        root = resolve_data_dir(data_dir)
    except DataNotFoundError as exc:
        raise DataNotFoundError(f"{exc}\nFor the debfiles data set: {_BUILD_HINT}") from exc
    return root / "debfiles" / "debfiles.csv.gz"


def _expected_from_sums(path: Path) -> tuple[Path, str] | None:
    """The hash that ``SHA256SUMS.uncompressed`` beside ``path`` lists for it, if any."""
    sums = path.parent / "SHA256SUMS.uncompressed"
    if not sums.is_file():
        return None
    plain = path.name[:-3] if path.name.endswith(".gz") else path.name
    for line in sums.read_text(encoding="utf-8").splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].lstrip("*") in (plain, path.name):
            return sums, parts[0].lower()
    return None


def _verify(raw: bytes, path: Path) -> None:
    actual = hashlib.sha256(raw).hexdigest()
    if actual != SHA256:
        raise DataCorruptError(
            f"{path}: SHA-256 mismatch (decompressed CSV): expected {SHA256}, got {actual}. "
            f"The file is corrupt or not the canonical build (load with verify=False to read "
            f"another build).\n{_BUILD_HINT}"
        )
    listed = _expected_from_sums(path)
    if listed is not None and listed[1] != SHA256:
        raise DataCorruptError(
            f"{listed[0]} lists SHA-256 {listed[1]} for {path.name}, but spikeforge pins "
            f"{SHA256} (and the file matches the pinned value); the sums file is stale or edited"
        )


def _bad(path: Path, row: int, column: str, value: str, why: str) -> DataCorruptError:
    return DataCorruptError(
        f"{path}: line {row + 2} (data row {row + 1}), column {column!r}: {why}, got {value!r}"
    )


def _parse(raw: bytes, path: Path) -> dict[str, np.ndarray]:
    try:
        text = raw.decode("utf-8", "surrogateescape")
        rows = list(csv.reader(io.StringIO(text, newline="")))
    except csv.Error as exc:
        raise DataCorruptError(f"{path}: not a valid CSV file: {exc}") from exc
    if not rows:
        raise DataCorruptError(f"{path}: empty file (no header)")
    header = tuple(rows[0])
    if header != COLUMNS:
        raise DataCorruptError(
            f"{path}: bad header: expected the {len(COLUMNS)} columns {','.join(COLUMNS)}; "
            f"got {len(header)}: {','.join(header)}"
        )
    body = rows[1:]
    for i, row in enumerate(body):
        if len(row) != len(COLUMNS):
            raise DataCorruptError(
                f"{path}: line {i + 2} (data row {i + 1}) has {len(row)} fields, "
                f"expected {len(COLUMNS)}"
            )
    columns: dict[str, np.ndarray] = {}
    for j, name in enumerate(COLUMNS):
        values = [row[j] for row in body]
        if name in _REQUIRED:
            for i, v in enumerate(values):
                if not v:
                    raise _bad(path, i, name, v, "empty value not allowed")
        if name in INT_COLUMNS:
            ints: list[int] = []
            for i, v in enumerate(values):
                if not v:
                    ints.append(MISSING_INT)
                elif v.isascii() and v.isdigit():
                    ints.append(int(v))
                else:
                    raise _bad(path, i, name, v, "expected a non-negative integer or empty")
            arr = np.array(ints, dtype=np.int64)
            if name in _BOOLEAN:
                bad = np.flatnonzero((arr != 0) & (arr != 1) & (arr != MISSING_INT))
                if bad.size:
                    raise _bad(path, int(bad[0]), name, values[bad[0]], "expected 0 or 1")
            if name == "fold":
                bad = np.flatnonzero(arr >= N_FOLDS)
                if bad.size:
                    raise _bad(path, int(bad[0]), name, values[bad[0]], "expected 0..4")
            columns[name] = arr
        else:
            if name == "kind":
                known = set(CLASSES)
                for i, v in enumerate(values):
                    if v not in known:
                        raise _bad(path, i, name, v, f"expected one of {', '.join(CLASSES)}")
            if name == "mode":
                for i, v in enumerate(values):
                    if v and not _MODE.fullmatch(v):
                        raise _bad(path, i, name, v, "expected an octal string like '0o644'")
            arr = np.empty(len(values), dtype=object)
            arr[:] = values
            columns[name] = arr
    return columns


def load_debfiles(path: str | Path | None = None, *, verify: bool = True) -> Debfiles:
    """Read the debfiles data set.

    Args:
        path: the ``.csv.gz`` (or plain ``.csv``) file; default
            ``resolve_data_dir(None) / "debfiles" / "debfiles.csv.gz"``.
        verify: check the SHA-256 of the decompressed CSV against :data:`SHA256` (and against
            ``SHA256SUMS.uncompressed`` beside the file when present). The header and every
            value are always checked.

    Raises:
        DataNotFoundError: the file (or the data directory) does not exist; the message says
            where it looked and how to get or build the file.
        DataCorruptError: bad gzip stream, checksum mismatch (naming both hashes), wrong header,
            wrong field count or a bad value (naming line and column).
    """
    path = default_debfiles_path() if path is None else Path(path)
    if not path.is_file():
        raise DataNotFoundError(f"debfiles data set not found: looked for {path}.\n{_BUILD_HINT}")
    data = path.read_bytes()
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as exc:
            raise DataCorruptError(f"{path}: corrupt or truncated gzip stream: {exc}") from exc
    if verify:
        _verify(data, path)
    return Debfiles(_parse(data, path), source=path)
