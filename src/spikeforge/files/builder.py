"""Build the debfiles data set from a dpkg database (spec file-classification.md §4.2-4.7).

One row per **regular file** owned by an installed package of the manifest: paths from
``<dpkg_dir>/info/*.list`` (multiarch names such as ``libc6:amd64.list`` included), package
fields from ``<dpkg_dir>/status``, conffiles from every ``info/*.conffiles``, checksummed files
from the owning package's ``info/<package>.md5sums``. File metadata and the first 4 KiB come
from ``<root>/<path>`` (``lstat``, never following the last component).

Rules, in order:

1. ``.list`` files are read in sorted file-name order; packages named ``google-cloud-cli*`` are
   excluded and packages whose ``name=version`` is not a manifest line are ignored (so extra
   installed packages never change the rows).
2. A path listed by several packages is kept once, for the first package in that order.
3. Only paths that are regular files on disk become rows (directories, symlinks, missing paths
   are skipped and counted; a file that cannot be read is counted as unreadable, never fatal).
4. Every package keeps at most :data:`CAP` rows: those with the smallest
   ``(crc32(path), path)``.
5. ``fold`` = crc32(package name, UTF-8) mod 5; ``kind`` from :func:`spikeforge.files.classify`
   merged into 16 classes by :data:`spikeforge.files.MERGED`.
6. Rows are sorted by path and written as UTF-8 CSV (``\\n`` line ends, minimal quoting,
   non-UTF-8 path bytes kept via surrogate escapes) in a deterministic gzip stream (mtime 0, no
   file name), atomically (a temporary file, then :func:`os.replace`).
"""

from __future__ import annotations

import csv
import errno
import fnmatch
import gzip
import hashlib
import io
import os
import stat
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from spikeforge.files.debfiles import COLUMNS
from spikeforge.files.fields import path_fields, read_head, stat_fields
from spikeforge.files.kinds import MERGED, classify
from spikeforge.io import atomic_write

__all__ = [
    "CAP",
    "EXCLUDE",
    "BuildReport",
    "build_debfiles",
    "read_manifest",
    "read_status",
]

CAP = 2000
"""At most this many rows per package (spec §4.4)."""

EXCLUDE = ("google-cloud-cli*",)
"""Shell patterns of package names left out entirely (spec §4.4)."""


@dataclass
class BuildReport:
    """What a build did.

    ``rows`` written, ``packages`` contributing rows, ``skipped`` (reason -> count: e.g.
    ``excluded_package``, ``not_in_manifest``, ``duplicate_path``, ``not_regular``, ``missing``,
    ``over_cap``), ``unreadable`` (regular files that could not be lstat'ed/opened/read),
    ``missing_from_system`` (manifest lines without a matching installed package), ``sha256`` of
    the uncompressed CSV, ``seconds`` and ``out``.
    """

    rows: int = 0
    packages: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    unreadable: int = 0
    missing_from_system: list[str] = field(default_factory=list)
    sha256: str = ""
    seconds: float = 0.0
    out: Path | None = None

    def summary(self) -> str:
        """A few lines for the CLI."""
        skipped = ", ".join(f"{k} {v}" for k, v in sorted(self.skipped.items())) or "none"
        lines = [
            f"{self.rows} rows from {self.packages} packages in {self.seconds:.1f} s -> {self.out}",
            f"skipped: {skipped}",
            f"unreadable files: {self.unreadable}",
            f"manifest lines not installed: {len(self.missing_from_system)}",
            f"sha256 (uncompressed csv): {self.sha256}",
        ]
        return "\n".join(lines)


def read_manifest(path: str | os.PathLike[str]) -> set[str]:
    """The ``name=version`` lines of a manifest (blank lines and ``#`` comments ignored)."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return {s for s in (line.strip() for line in lines) if s and not s.startswith("#")}


def read_status(path: str | os.PathLike[str]) -> dict[tuple[str, str], dict[str, str]]:
    """Parse a dpkg ``status`` file: ``(Package, Architecture)`` -> its fields (continuation
    lines dropped; only the first line of each field is kept)."""
    out: dict[tuple[str, str], dict[str, str]] = {}
    text = Path(path).read_text(encoding="utf-8", errors="surrogateescape")
    for para in text.split("\n\n"):
        fields: dict[str, str] = {}
        for line in para.splitlines():
            if not line or line[0] in " \t" or ":" not in line:
                continue
            name, _, value = line.partition(":")
            fields[name.strip()] = value.strip()
        if "Package" in fields:
            out[(fields["Package"], fields.get("Architecture", ""))] = fields
    return out


def _crc32(text: str) -> int:
    return zlib.crc32(text.encode("utf-8", "surrogateescape"))


def _decode(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


def _lines(path: Path) -> list[str]:
    """The non-empty lines of a text file (bytes decoded with surrogate escapes); [] if absent."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return []
    return [_decode(line) for line in raw.split(b"\n") if line.strip()]


def _is_installed(fields: dict[str, str]) -> bool:
    return fields.get("Status", "").split()[-1:] == ["installed"]


def _package_fields(
    list_name: str, status: dict[tuple[str, str], dict[str, str]]
) -> dict[str, str] | None:
    """The status entry of a ``.list`` file name's package (``pkg`` or ``pkg:arch``)."""
    name, _, arch = list_name.partition(":")
    if arch:
        return status.get((name, arch))
    matches = [f for (pkg, _a), f in status.items() if pkg == name]
    installed = [f for f in matches if _is_installed(f)]
    pool = installed or matches
    return pool[0] if len(pool) == 1 else None


def _read_kind(full: bytes, st: os.stat_result) -> str | None:
    """The merged kind of the regular file ``full`` lstat'ed as ``st``; None if unreadable."""
    try:
        head, _ = read_head(full, st)
    except OSError:  # FileReplacedError included
        return None
    kind = classify(head, st.st_size)
    return MERGED.get(kind, kind)


def _csv_bytes(rows: Iterable[dict[str, Any]]) -> bytes:
    """The uncompressed CSV: header and rows, ``\\n`` line ends, minimal quoting, UTF-8 with
    surrogate escapes for path bytes that are not valid UTF-8."""
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return text.getvalue().encode("utf-8", "surrogateescape")


def _write_gzip(data: bytes, fh: IO[bytes]) -> None:
    """``data`` as a deterministic gzip stream (mtime 0, no file name in the header)."""
    with gzip.GzipFile(filename="", fileobj=fh, mode="wb", mtime=0, compresslevel=9) as gz:
        gz.write(data)


def build_debfiles(
    out: str | os.PathLike[str],
    manifest: str | os.PathLike[str],
    *,
    dpkg_dir: str | os.PathLike[str] = Path("/var/lib/dpkg"),
    root: str | os.PathLike[str] = Path("/"),
    progress: Callable[[str], None] | None = None,
    cap: int = CAP,
) -> BuildReport:
    """Build ``out`` (a ``.csv.gz``) from the dpkg database ``dpkg_dir`` and the file tree under
    ``root``, keeping only packages whose ``name=version`` is a line of ``manifest``.

    ``progress``, when given, is called with a short message per phase; ``cap`` is the
    per-package row limit (spec: :data:`CAP` = 2,000). Returns a
    :class:`BuildReport`; raises ``FileNotFoundError`` only when ``manifest``,
    ``dpkg_dir/status`` or ``dpkg_dir/info`` is missing."""
    start = time.perf_counter()
    say = progress or (lambda _msg: None)
    dpkg_dir, root = Path(dpkg_dir), Path(root)
    info = dpkg_dir / "info"
    wanted = read_manifest(manifest)
    status = read_status(dpkg_dir / "status")
    if not info.is_dir():
        raise FileNotFoundError(f"{info}: not a dpkg info directory")
    skipped: Counter[str] = Counter()
    report = BuildReport()
    root_b = os.fsencode(root)

    conffiles: set[str] = set()
    for cf in sorted(info.glob("*.conffiles")):
        for line in _lines(cf):
            line = line.strip()
            if line.startswith("remove-on-upgrade "):
                line = line[len("remove-on-upgrade ") :].strip()
            conffiles.add(line)

    list_files = sorted(p.name for p in info.iterdir() if p.name.endswith(".list"))
    say(f"{len(list_files)} .list files")
    seen_paths: set[str] = set()
    by_package: dict[str, list[dict[str, Any]]] = {}
    for list_name in list_files:
        stem = list_name[: -len(".list")]
        name = stem.partition(":")[0]
        if any(fnmatch.fnmatchcase(name, pat) for pat in EXCLUDE):
            skipped["excluded_package"] += 1
            continue
        fields = _package_fields(stem, status)
        version = fields.get("Version", "") if fields else ""
        if fields is None or f"{name}={version}" not in wanted:
            skipped["not_in_manifest"] += 1
            continue
        md5 = {
            "/" + line.split(None, 1)[1].strip().lstrip("/")
            for line in _lines(info / f"{stem}.md5sums")
            if len(line.split(None, 1)) == 2
        }
        package_fields = {
            "package": name,
            "version": version,
            "section": fields.get("Section", ""),
            "priority": fields.get("Priority", ""),
            "arch": fields.get("Architecture", ""),
            "multi_arch": fields.get("Multi-Arch", ""),
            "essential": int(fields.get("Essential", "").lower() == "yes"),
            "installed_size_kb": fields.get("Installed-Size", ""),
            "fold": _crc32(name) % 5,
        }
        rows = by_package.setdefault(name, [])
        for path in _lines(info / list_name):
            if path in ("/.", "/") or not path.startswith("/"):
                continue
            if path in seen_paths:
                skipped["duplicate_path"] += 1
                continue
            seen_paths.add(path)
            full = os.path.join(root_b, os.fsencode(path).lstrip(b"/"))
            try:
                st = os.lstat(full)
            except FileNotFoundError:
                skipped["missing"] += 1
                continue
            except OSError as exc:
                if exc.errno in (errno.ENOENT, errno.ENOTDIR):
                    skipped["missing"] += 1
                else:
                    report.unreadable += 1
                continue
            if not stat.S_ISREG(st.st_mode):
                skipped["not_regular"] += 1
                continue
            kind = _read_kind(full, st)
            if kind is None:
                report.unreadable += 1
                continue
            rows.append(
                {
                    **path_fields(path),
                    **stat_fields(st),
                    **package_fields,
                    "conffile": int(path in conffiles),
                    "has_md5": int(path in md5),
                    "kind": kind,
                }
            )
        if not rows:
            del by_package[name]
    say(f"{sum(map(len, by_package.values()))} regular files from {len(by_package)} packages")

    kept: list[dict[str, Any]] = []
    for rows in by_package.values():
        if len(rows) > cap:
            rows.sort(key=lambda r: (_crc32(r["path"]), r["path"]))
            skipped["over_cap"] += len(rows) - cap
            rows = rows[:cap]
        kept.extend(rows)
    kept.sort(key=lambda r: r["path"])

    data = _csv_bytes(kept)
    report.out = atomic_write(out, lambda fh: _write_gzip(data, fh))
    report.rows = len(kept)
    report.packages = len(by_package)
    report.skipped = dict(skipped)
    installed = {
        f"{pkg}={f.get('Version', '')}" for (pkg, _a), f in status.items() if _is_installed(f)
    }
    report.missing_from_system = sorted(wanted - installed)
    report.sha256 = hashlib.sha256(data).hexdigest()
    report.seconds = time.perf_counter() - start
    say(f"wrote {report.rows} rows")
    return report
