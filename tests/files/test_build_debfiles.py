"""The debfiles builder (spec file-classification.md §4.2-4.7) on a fake dpkg database and file
tree, plus the optional full rebuild of the canonical fixture on a matching machine."""

from __future__ import annotations

import gzip
import hashlib
import os
import subprocess
import time
import zlib
from pathlib import Path

import numpy as np
import pytest

from spikeforge.data import DataNotFoundError, resolve_data_dir
from spikeforge.files.builder import (
    CAP,
    BuildReport,
    build_debfiles,
    read_manifest,
    read_status,
)
from spikeforge.files.debfiles import COLUMNS, SHA256, load_debfiles

STATUS = """\
Package: alpha
Status: install ok installed
Priority: important
Section: utils
Installed-Size: 10
Maintainer: Someone <a@b.c>
Architecture: amd64
Multi-Arch: foreign
Essential: yes
Version: 1.0
Description: alpha
 a continuation line: with a colon

Package: beta
Status: install ok installed
Priority: optional
Section: doc
Installed-Size: 20
Architecture: all
Version: 2.0-1

Package: libx
Status: install ok installed
Priority: optional
Section: libs
Installed-Size: 30
Architecture: amd64
Multi-Arch: same
Version: 3:1.2

Package: libx
Status: install ok installed
Priority: optional
Section: libs
Installed-Size: 31
Architecture: i386
Multi-Arch: same
Version: 3:1.2

Package: google-cloud-cli
Status: install ok installed
Section: misc
Architecture: amd64
Version: 500.0

Package: gamma
Status: install ok installed
Section: misc
Architecture: all
Version: 3.0

Package: delta
Status: install ok installed
Section: misc
Architecture: all
Version: 1
"""

MANIFEST = "alpha=1.0\nbeta=2.0-1\nlibx=3:1.2\ngamma=3.1\n# a comment\n\ngoogle-cloud-cli=500.0\n"

ELF_SO = b"\x7fELF\x02\x01\x01" + b"\x00" * 9 + b"\x03\x00" + b"\x00" * 46


def _tree(tmp_path: Path, n_beta: int = 6) -> tuple[Path, Path, Path]:
    """A fake dpkg dir, root tree and manifest; returns (dpkg_dir, root, manifest)."""
    dpkg, root = tmp_path / "dpkg", tmp_path / "root"
    info = dpkg / "info"
    info.mkdir(parents=True)
    (dpkg / "status").write_text(STATUS)
    manifest = tmp_path / "manifest.txt"
    manifest.write_text(MANIFEST)

    def put(path: str, data: bytes, mode: int = 0o644) -> None:
        full = root / path.lstrip("/")
        full.parent.mkdir(parents=True, exist_ok=True)
        full.write_bytes(data)
        os.chmod(full, mode)
        os.utime(full, (1_600_000_000, 1_600_000_000))

    put("/etc/alpha.conf", b"key = value\n")
    put("/usr/bin/alpha", b"#!/bin/sh\necho hi\n", 0o4755)
    put("/usr/share/doc/shared.txt", b"shared\n")
    (root / "usr/share/alpha").mkdir(parents=True)
    (root / "usr/share/alpha/link").symlink_to("/etc/alpha.conf")
    (info / "alpha.list").write_text(
        "/.\n/etc\n/etc/alpha.conf\n/usr\n/usr/bin\n/usr/bin/alpha\n/usr/share/alpha\n"
        "/usr/share/alpha/link\n/usr/share/alpha/missing\n/usr/share/doc/shared.txt\n"
    )
    (info / "alpha.md5sums").write_text("0123  usr/bin/alpha\n")
    (info / "alpha.conffiles").write_text("/etc/alpha.conf\n")

    beta = [f"/usr/share/doc/beta/f{i:02d}.json" for i in range(n_beta)]
    for p in beta:
        put(p, b'{"a": 1}\n')
    put("/usr/share/doc/beta/empty", b"")
    (info / "beta.list").write_text(
        "\n".join(["/.", "/usr/share/doc/shared.txt", *beta, "/usr/share/doc/beta/empty"]) + "\n"
    )
    (info / "beta.md5sums").write_text(
        "".join(f"00  {p.lstrip('/')}\n" for p in beta) + "00  usr/share/doc/shared.txt\n"
    )

    put("/usr/lib/x86_64-linux-gnu/libx.so.1", ELF_SO + b"\x00" * 100)
    (info / "libx:amd64.list").write_text("/usr/lib/x86_64-linux-gnu/libx.so.1\n")
    (info / "libx:amd64.md5sums").write_text("00  usr/lib/x86_64-linux-gnu/libx.so.1\n")
    put("/usr/lib/i386-linux-gnu/libx.so.1", b"\x7fELF\x01")
    (info / "libx:i386.list").write_text("/usr/lib/i386-linux-gnu/libx.so.1\n")

    put("/usr/lib/google-cloud-sdk/x.py", b"import os\n")
    (info / "google-cloud-cli.list").write_text("/usr/lib/google-cloud-sdk/x.py\n")
    put("/usr/share/gamma/g.txt", b"g\n")
    (info / "gamma.list").write_text("/usr/share/gamma/g.txt\n")
    put("/usr/share/delta/d.txt", b"d\n")
    (info / "delta.list").write_text("/usr/share/delta/d.txt\n")
    (info / "delta.conffiles").write_text("/usr/share/doc/beta/f00.json\n")  # any .conffiles
    return dpkg, root, manifest


def _build(tmp_path: Path, **kw: object) -> tuple[BuildReport, list[dict[str, str]]]:
    dpkg, root, manifest = _tree(tmp_path)
    report = build_debfiles(tmp_path / "out.csv.gz", manifest, dpkg_dir=dpkg, root=root, **kw)
    text = gzip.decompress((tmp_path / "out.csv.gz").read_bytes()).decode()
    header, *lines = text.splitlines()
    assert header == ",".join(COLUMNS)
    return report, [dict(zip(COLUMNS, line.split(","), strict=True)) for line in lines]


def test_parsers(tmp_path: Path) -> None:
    (tmp_path / "m").write_text(MANIFEST)
    assert read_manifest(tmp_path / "m") == {
        "alpha=1.0",
        "beta=2.0-1",
        "libx=3:1.2",
        "gamma=3.1",
        "google-cloud-cli=500.0",
    }
    (tmp_path / "s").write_text(STATUS)
    status = read_status(tmp_path / "s")
    assert status[("alpha", "amd64")]["Essential"] == "yes"
    assert status[("libx", "i386")]["Installed-Size"] == "31"
    assert "a continuation line" not in status[("alpha", "amd64")]["Description"]


def test_rows_fields_and_rules(tmp_path: Path) -> None:
    messages: list[str] = []
    report, rows = _build(tmp_path, progress=messages.append)
    by_path = {r["path"]: r for r in rows}
    assert [r["path"] for r in rows] == sorted(by_path)
    assert set(by_path) == {
        "/etc/alpha.conf",
        "/usr/bin/alpha",
        "/usr/share/doc/shared.txt",
        "/usr/share/doc/beta/empty",
        *(f"/usr/share/doc/beta/f{i:02d}.json" for i in range(6)),
        "/usr/lib/x86_64-linux-gnu/libx.so.1",
        "/usr/lib/i386-linux-gnu/libx.so.1",
    }  # no google-cloud-cli, no gamma (version differs), no delta (not in the manifest)
    conf = by_path["/etc/alpha.conf"]
    assert conf == {
        "path": "/etc/alpha.conf",
        "dir": "/etc",
        "name": "alpha.conf",
        "ext": "conf",
        "n_dots": "1",
        "depth": "2",
        "name_len": "10",
        "top2": "etc/alpha.conf",
        "size": "12",
        "mode": "0o644",
        "exec": "0",
        "setid": "0",
        "uid": str(os.getuid()),
        "gid": str(os.getgid()),
        "nlink": "1",
        "mtime": "1600000000",
        "package": "alpha",
        "version": "1.0",
        "section": "utils",
        "priority": "important",
        "arch": "amd64",
        "multi_arch": "foreign",
        "essential": "1",
        "installed_size_kb": "10",
        "conffile": "1",
        "has_md5": "0",
        "fold": str(zlib.crc32(b"alpha") % 5),
        "kind": "text",
    }
    script = by_path["/usr/bin/alpha"]
    assert (script["mode"], script["exec"], script["setid"]) == ("0o4755", "1", "1")
    assert (script["has_md5"], script["kind"], script["ext"]) == ("1", "shell_script", "")
    shared = by_path["/usr/share/doc/shared.txt"]  # listed by alpha and beta: alpha wins
    assert (shared["package"], shared["has_md5"]) == ("alpha", "0")
    assert by_path["/usr/share/doc/beta/f00.json"]["conffile"] == "1"  # delta's .conffiles
    assert by_path["/usr/share/doc/beta/f01.json"]["kind"] == "json"
    assert by_path["/usr/share/doc/beta/empty"]["kind"] == "empty"
    beta = by_path["/usr/share/doc/beta/f01.json"]
    assert (beta["multi_arch"], beta["essential"], beta["fold"]) == (
        "",
        "0",
        str(zlib.crc32(b"beta") % 5),
    )
    lib = by_path["/usr/lib/x86_64-linux-gnu/libx.so.1"]
    assert (lib["package"], lib["arch"], lib["version"], lib["has_md5"]) == (
        "libx",
        "amd64",
        "3:1.2",
        "1",
    )
    assert (lib["kind"], lib["installed_size_kb"]) == ("elf_shared_lib", "30")
    i386 = by_path["/usr/lib/i386-linux-gnu/libx.so.1"]
    assert (i386["arch"], i386["kind"], i386["has_md5"]) == ("i386", "binary_other", "0")

    assert report.rows == len(rows) == 12
    assert report.packages == 3  # alpha, beta, libx (both architectures)
    assert report.skipped == {
        "excluded_package": 1,
        "not_in_manifest": 2,
        "duplicate_path": 1,
        "missing": 1,
        "not_regular": 5,  # /etc, /usr, /usr/bin, /usr/share/alpha, the symlink
    }
    assert report.unreadable == 0
    assert report.missing_from_system == ["gamma=3.1"]
    assert (
        report.sha256
        == hashlib.sha256(gzip.decompress((tmp_path / "out.csv.gz").read_bytes())).hexdigest()
    )
    assert messages and "rows" in report.summary()
    # the output reads back with the loader (no checksum: not the canonical file)
    data = load_debfiles(tmp_path / "out.csv.gz", verify=False)
    assert len(data) == 12 and data["size"].dtype == np.int64


def test_cap_keeps_smallest_crc32(tmp_path: Path) -> None:
    assert CAP == 2000
    report, rows = _build(tmp_path, cap=3)
    beta = sorted(
        [f"/usr/share/doc/beta/f{i:02d}.json" for i in range(6)] + ["/usr/share/doc/beta/empty"],
        key=lambda p: (zlib.crc32(p.encode()), p),
    )[:3]
    assert sorted(r["path"] for r in rows if r["package"] == "beta") == sorted(beta)
    assert sum(r["package"] == "alpha" for r in rows) == 3  # exactly at the cap
    assert report.skipped["over_cap"] == 4
    assert report.rows == len(rows) == 3 + 3 + 2


def test_unreadable_and_vanishing_files_are_counted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_open, real_lstat = os.open, os.lstat

    def fake_open(path: object, *args: object, **kw: object) -> int:
        if os.fsencode(path).endswith(b"f02.json"):  # type: ignore[arg-type]
            raise PermissionError(13, "denied")
        return real_open(path, *args, **kw)  # type: ignore[arg-type]

    def fake_lstat(path: object, *args: object, **kw: object) -> os.stat_result:
        name = os.fsencode(path)  # type: ignore[arg-type]
        if name.endswith(b"f03.json"):
            raise FileNotFoundError(2, "vanished")
        if name.endswith(b"f04.json"):
            raise PermissionError(13, "denied")
        return real_lstat(path, *args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "open", fake_open)
    monkeypatch.setattr(os, "lstat", fake_lstat)
    report, rows = _build(tmp_path)
    paths = {r["path"] for r in rows}
    assert not any(p.endswith(("f02.json", "f03.json", "f04.json")) for p in paths)
    assert report.unreadable == 2
    assert report.skipped["missing"] == 2
    assert report.rows == 9


def test_output_is_deterministic_and_atomic(tmp_path: Path) -> None:
    dpkg, root, manifest = _tree(tmp_path)
    a = build_debfiles(tmp_path / "a.csv.gz", manifest, dpkg_dir=dpkg, root=root)
    time.sleep(1.1)
    b = build_debfiles(tmp_path / "sub" / "b.csv.gz", manifest, dpkg_dir=dpkg, root=root)
    assert (tmp_path / "a.csv.gz").read_bytes() == (tmp_path / "sub" / "b.csv.gz").read_bytes()
    assert a.sha256 == b.sha256
    assert not [p for p in tmp_path.rglob("*.tmp")]
    with pytest.raises(FileNotFoundError):
        build_debfiles(tmp_path / "c.csv.gz", manifest, dpkg_dir=tmp_path / "none", root=root)
    assert not (tmp_path / "c.csv.gz").exists()


# --- the full rebuild on this machine ------------------------------------------------------


def _installed() -> set[str] | None:
    try:
        out = subprocess.run(
            ["dpkg-query", "-W", "-f", "${Package}=${Version}\n"],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return set(out.split())


def _post_install_mtime(path: str, package: str, arch: str) -> float | None:
    """The mtime of ``path`` if it is newer than its package's dpkg ``.list`` file, i.e. the
    file was modified after dpkg installed it (a machine property, not the package's)."""
    info = Path("/var/lib/dpkg/info")
    for name in (f"{package}.list", f"{package}:{arch}.list"):
        if (info / name).exists():
            installed = (info / name).stat().st_mtime
            mtime = os.lstat(path).st_mtime
            return mtime if mtime > installed else None
    return None


def test_full_rebuild_matches_the_fixture(tmp_path: Path) -> None:
    try:
        folder = resolve_data_dir(None) / "debfiles"
    except DataNotFoundError:
        pytest.skip("no spikeforge data directory")
    fixture, manifest = folder / "debfiles.csv.gz", folder / "manifest.txt"
    if not fixture.is_file() or not manifest.is_file():
        pytest.skip(f"{folder} lacks debfiles.csv.gz or manifest.txt")
    installed = _installed()
    if installed is None:
        pytest.skip("dpkg-query not available (not a Debian machine)")
    missing = read_manifest(manifest) - installed
    if missing:
        pytest.skip(f"{len(missing)} manifest packages not installed, e.g. {sorted(missing)[:3]}")

    report = build_debfiles(tmp_path / "debfiles.csv.gz", manifest)
    assert report.seconds < 60
    if report.sha256 == SHA256:
        return
    # Not byte-identical: find out which fields differ, and whether the machine explains it.
    built = load_debfiles(tmp_path / "debfiles.csv.gz", verify=False)
    ref = load_debfiles(fixture)
    assert len(built) == len(ref)
    assert (built["path"] == ref["path"]).all(), "the set of files differs from the fixture"
    for column in COLUMNS:
        if column not in ("mtime", "kind"):
            same = built[column] == ref[column]
            assert same.all(), f"{column} differs at {ref['path'][~same][:5].tolist()}"
    # mtime may differ only for files modified after their package was installed
    differ = np.flatnonzero(built["mtime"] != ref["mtime"])
    unexplained = [
        ref["path"][i]
        for i in differ
        if _post_install_mtime(ref["path"][i], ref["package"][i], ref["arch"][i]) is None
    ]
    assert not unexplained, f"mtime differs for files dpkg installed as is: {unexplained[:5]}"
    kinds = np.flatnonzero(built["kind"] != ref["kind"])
    assert not kinds.size, (
        f"kind differs for {kinds.size} files, e.g. "
        f"{[(ref['path'][i], ref['kind'][i], built['kind'][i]) for i in kinds[:3]]}"
    )
    # Every column equals the fixture's, mtimes apart from files the machine rewrote after
    # installation (e.g. npm's files touched at provisioning): the byte hash cannot match here.


def test_cli_build_debfiles(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from spikeforge.cli import main

    dpkg, root, manifest = _tree(tmp_path)
    out = tmp_path / "cli" / "debfiles.csv.gz"
    argv = ["files", "build-debfiles", str(out), "--manifest", str(manifest)]
    assert main([*argv, "--dpkg-dir", str(dpkg), "--root", str(root), "--quiet"]) == 0
    printed = capsys.readouterr().out
    digest = hashlib.sha256(gzip.decompress(out.read_bytes())).hexdigest()
    assert "12 rows from 3 packages" in printed and f"SHA-256 {digest}" in printed
    assert "differs from the canonical" in printed
    assert main([*argv, "--dpkg-dir", str(tmp_path / "nowhere")]) == 2
    assert "nowhere" in capsys.readouterr().err
