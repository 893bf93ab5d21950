"""Stream the metadata of every entry of a directory tree (spec §4.3 path and lstat fields,
plus the §4.5 content ``kind`` of regular files), safely and with bounded memory.

The walk is iterative (a stack of pending directories, never the tree) over :func:`os.scandir`
with bytes paths, so non-UTF-8 names survive. Symlinks are recorded, never followed; FIFOs,
sockets and devices are recorded, never opened (``lstat`` + ``S_ISREG`` before ``open``, and the
open uses ``O_NONBLOCK | O_NOFOLLOW``). Permission errors, entries that vanish or change during the
scan and undecodable names are counted in :attr:`ScanResult.problems`, never fatal.
"""

from __future__ import annotations

import csv
import errno
import gzip
import io
import os
import stat
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from spikeforge.files.fields import FileReplacedError, path_fields, read_head, stat_fields
from spikeforge.files.kinds import classify
from spikeforge.io import atomic_write

FIELDS = (
    "path",
    "dir",
    "name",
    "ext",
    "n_dots",
    "depth",
    "name_len",
    "top2",
    "type",
    "size",
    "mode",
    "exec",
    "setid",
    "uid",
    "gid",
    "nlink",
    "mtime",
    "kind",
)
"""The columns of a scan record, in output order."""


@dataclass
class ScanResult:
    """What a scan saw: record count, entries by type, problems by kind, time and output."""

    records: int = 0
    types: dict[str, int] = field(default_factory=dict)
    problems: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    out: Path | None = None

    @property
    def files_per_s(self) -> float:
        """Records per second of wall-clock time."""
        return self.records / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> str:
        """One line: records, time, throughput and the problems by kind."""
        probs = ", ".join(f"{k} {v}" for k, v in sorted(self.problems.items())) or "none"
        return (
            f"{self.records} entries in {self.seconds:.2f} s ({self.files_per_s:,.0f} files/s); "
            f"problems: {probs}"
        )


_TYPE_NAMES = {
    stat.S_IFREG: "file",
    stat.S_IFDIR: "dir",
    stat.S_IFLNK: "symlink",
    stat.S_IFIFO: "fifo",
    stat.S_IFSOCK: "socket",
    stat.S_IFCHR: "char_device",
    stat.S_IFBLK: "block_device",
}


def _type_name(mode: int) -> str:
    return _TYPE_NAMES.get(stat.S_IFMT(mode), "other")


def safe_text(raw: bytes) -> str:
    """A path or name as text that always encodes as UTF-8 (undecodable bytes as ``\\xNN``).

    Lossy by design: a name that really contains a backslash sequence reads the same; the
    ``non_utf8_name`` problem count says how many names were rewritten."""
    return raw.decode("utf-8", "backslashreplace")


def _problem(problems: Counter[str], exc: OSError, where: str) -> None:
    if isinstance(exc, FileNotFoundError):
        problems["vanished"] += 1
    elif isinstance(exc, NotADirectoryError):
        problems["changed"] += 1  # a directory replaced by something else since listing
    elif isinstance(exc, PermissionError):
        problems[f"permission_{where}"] += 1
    else:
        problems[f"os_error_{where}"] += 1


def _read_head(path: bytes, st: os.stat_result, problems: Counter[str]) -> str:
    """The kind of the regular file ``path`` lstat'ed as ``st``; '' when it cannot be read."""
    try:
        head, now = read_head(path, st)
    except FileReplacedError:
        problems["changed"] += 1  # replaced since lstat: do not read what it became
        return ""
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            problems["changed"] += 1  # replaced by a symlink since lstat
        else:
            _problem(problems, exc, "file")
        return ""
    if now.st_size != st.st_size or now.st_mtime_ns != st.st_mtime_ns:
        problems["changed"] += 1  # still the same file; label what it holds now
    return classify(head, now.st_size or len(head))  # pseudo-files report size 0 yet hold bytes


def _record(path: bytes, st: os.stat_result, kind: str) -> dict[str, Any]:
    fields = path_fields(safe_text(path))
    return {**fields, "type": _type_name(st.st_mode), **stat_fields(st), "kind": kind}


def iter_scan(
    root: str | os.PathLike[str],
    problems: Counter[str] | None = None,
    types: Counter[str] | None = None,
    max_entries: int | None = None,
) -> Iterator[dict[str, Any]]:
    """Yield one record (a dict with :data:`FIELDS`) per entry below ``root`` (not ``root``
    itself), depth first, at most ``max_entries``. Problems and entry types are counted into
    the given counters."""
    problems = Counter() if problems is None else problems
    types = Counter() if types is None else types
    stack = [os.fsencode(os.path.abspath(os.fspath(root)))]
    emitted = 0
    while stack:
        folder = stack.pop()
        try:
            it = os.scandir(folder)
        except OSError as exc:
            _problem(problems, exc, "dir")
            continue
        subdirs: list[bytes] = []
        with it:
            while True:
                try:
                    entry = next(it)
                except StopIteration:
                    break
                except OSError as exc:  # the listing itself failed part-way
                    _problem(problems, exc, "dir")
                    break
                if max_entries is not None and emitted >= max_entries:
                    return
                path = entry.path
                try:
                    entry.name.decode("utf-8")
                except UnicodeDecodeError:
                    problems["non_utf8_name"] += 1
                try:
                    st = os.lstat(path)
                except OSError as exc:
                    _problem(problems, exc, "lstat")
                    continue
                mode = st.st_mode
                kind = ""
                if stat.S_ISREG(mode):
                    kind = _read_head(path, st, problems)
                elif stat.S_ISDIR(mode):
                    subdirs.append(path)
                elif stat.S_ISLNK(mode):
                    try:
                        os.stat(path)
                    except FileNotFoundError:
                        problems["broken_symlink"] += 1
                    except OSError as exc:
                        if exc.errno == errno.ELOOP:
                            problems["symlink_loop"] += 1
                        else:
                            problems["symlink_unresolvable"] += 1
                else:
                    problems["special_not_opened"] += 1
                types[_type_name(mode)] += 1
                emitted += 1
                yield _record(path, st, kind)
        stack.extend(reversed(subdirs))


class _Progress:
    """A tqdm counter on stderr when tqdm is installed, else a throttled plain line."""

    def __init__(self, enabled: bool) -> None:
        self.bar: Any = None
        self.enabled = enabled
        self.n = 0
        self.last = 0.0
        if enabled:
            try:
                from tqdm import tqdm
            except ImportError:  # pragma: no cover - tqdm is a dependency here
                return
            self.bar = tqdm(unit=" entries", file=sys.stderr, mininterval=0.5)

    def step(self) -> None:
        if not self.enabled:
            return
        self.n += 1
        if self.bar is not None:
            self.bar.update(1)
        elif time.monotonic() - self.last > 0.5:  # pragma: no cover
            self.last = time.monotonic()
            print(f"\r{self.n} entries", end="", file=sys.stderr)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _write_csv_gz(records: Iterator[dict[str, Any]], fh: IO[bytes], progress: _Progress) -> None:
    with gzip.GzipFile(fileobj=fh, mode="wb", mtime=0) as gz:
        text = io.TextIOWrapper(gz, encoding="utf-8", newline="")
        writer = csv.DictWriter(text, fieldnames=FIELDS)
        writer.writeheader()
        for rec in records:
            writer.writerow(rec)
            progress.step()
        text.flush()
        text.detach()


def scan(
    root: str | os.PathLike[str],
    out: str | os.PathLike[str] | None = None,
    progress: bool = False,
    max_entries: int | None = None,
) -> ScanResult:
    """Scan the tree below ``root``; with ``out``, write the records as CSV.gz atomically
    (a temporary file beside ``out``, then a rename). Returns counts, problems and timing."""
    problems: Counter[str] = Counter()
    types: Counter[str] = Counter()
    result = ScanResult()
    bar = _Progress(progress)
    start = time.perf_counter()

    def counted() -> Iterator[dict[str, Any]]:
        for rec in iter_scan(root, problems, types, max_entries):
            result.records += 1
            yield rec

    try:
        if out is not None:
            result.out = atomic_write(out, lambda fh: _write_csv_gz(counted(), fh, bar))
        else:
            for _ in counted():
                bar.step()
    finally:
        bar.close()
    result.seconds = time.perf_counter() - start
    result.problems = dict(problems)
    result.types = dict(types)
    return result


def walk_baseline(root: str | os.PathLike[str], max_entries: int | None = None) -> ScanResult:
    """Time a plain ``os.walk`` + ``os.lstat`` pass over the same tree (no reads, no records
    written), for comparing the scanner's throughput with the cost of merely listing."""
    result = ScanResult()
    errors: Counter[str] = Counter()
    start = time.perf_counter()
    done = False
    for folder, dirs, files in os.walk(os.fsencode(os.fspath(root)), onerror=lambda e: None):
        for name in dirs + files:
            if max_entries is not None and result.records >= max_entries:
                done = True
                break
            try:
                os.lstat(os.path.join(folder, name))
            except OSError as exc:
                _problem(errors, exc, "lstat")
            result.records += 1
        if done:
            break
    result.seconds = time.perf_counter() - start
    result.problems = dict(errors)
    return result


def compare_throughput(
    root: str | os.PathLike[str], max_entries: int | None = None
) -> dict[str, float]:
    """Scan ``root`` (no output) and time :func:`walk_baseline` over the same tree: both rates in
    files/s and ``ratio`` = scan time / baseline time per entry (what reading the heads and
    building records cost over merely listing). The baseline runs second, on a warm cache, as
    the scan itself does for every entry after its lstat.

    Measured on ``/usr`` (137,736 entries, 2 shared cores): 18k files/s warm against 100k for
    the bare walk (reading the 4 KiB heads, labelling and writing CSV cost ~5x); 3.8k files/s
    on a cold page cache, where reading the heads from disk dominates."""
    scanned = scan(root, max_entries=max_entries)
    base = walk_baseline(root, max_entries=max_entries)
    return {
        "records": float(scanned.records),
        "scan_files_per_s": scanned.files_per_s,
        "walk_lstat_files_per_s": base.files_per_s,
        "ratio": base.files_per_s / scanned.files_per_s if scanned.files_per_s else float("nan"),
    }


__all__ = [
    "FIELDS",
    "ScanResult",
    "compare_throughput",
    "iter_scan",
    "safe_text",
    "scan",
    "walk_baseline",
]
