"""The scanner on a hostile tree built here: every problem counted, nothing fatal."""

from __future__ import annotations

import csv
import gzip
import io
import os
import socket
import sys
from pathlib import Path

import pytest

from spikeforge.files import FIELDS, compare_throughput, iter_scan, scan, walk_baseline

AS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


def _write(path: Path, data: bytes) -> None:
    path.write_bytes(data)


def _hostile_tree(root: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Build the tree; returns the problem counts the scan must report."""
    expected: dict[str, int] = {}
    _write(root / "plain.txt", b"hello\n")
    _write(root / "script.py", b"#!/usr/bin/env python3\nprint(1)\n")
    (root / "empty").touch()
    os.symlink("loop_b", root / "loop_a")
    os.symlink("loop_a", root / "loop_b")
    os.symlink(".", root / "self_dir")  # a link to a directory: never followed
    expected["symlink_loop"] = 2
    os.symlink("does-not-exist", root / "broken")
    expected["broken_symlink"] = 1
    os.mkfifo(root / "fifo")
    special = 1
    if hasattr(socket, "AF_UNIX"):
        monkeypatch.chdir(root)  # AF_UNIX paths are limited to ~108 bytes: bind relatively
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind("sock")
        sock.close()
        special += 1
    expected["special_not_opened"] = special
    _write(root / "secret", b"unreadable")
    (root / "locked").mkdir()
    _write(root / "locked" / "inside", b"x")
    expected["permission_file"] = 1
    expected["permission_dir"] = 1
    _write(root / "victim_lstat", b"gone before lstat")
    _write(root / "victim_open", b"gone before open")
    expected["vanished"] = 2
    _write(root / "grower", b"small")
    expected["changed"] = 1
    try:
        fd = os.open(os.fsencode(root) + b"/bad-\xff\xfe-name.txt", os.O_CREAT | os.O_WRONLY, 0o644)
        os.close(fd)
        expected["non_utf8_name"] = 1
    except OSError:
        pass  # the filesystem refuses undecodable names: that case alone is skipped
    deep = root / "deep"
    os.makedirs(os.path.join(deep, *["d"] * 300))
    _write(Path(os.path.join(deep, *["d"] * 300, "bottom.txt")), b"deep\n")
    return expected


def _sabotage(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Permission denial (chmod, or injected when running as root), files vanishing between
    listing and lstat/open, and a file growing between lstat and open."""
    secret = os.fsencode(root / "secret")
    locked = os.fsencode(root / "locked")
    real_open, real_lstat, real_scandir = os.open, os.lstat, os.scandir

    def fake_open(path, flags, *args, **kwargs):  # type: ignore[no-untyped-def]
        p = os.fsencode(path)
        if p.endswith(b"/victim_open"):
            os.unlink(p)
        elif p.endswith(b"/grower"):
            with open(p, "ab") as fh:
                fh.write(b" and now bigger")
        elif AS_ROOT and p == secret:
            raise PermissionError(13, "Permission denied", path)
        return real_open(path, flags, *args, **kwargs)

    def fake_lstat(path, *args, **kwargs):  # type: ignore[no-untyped-def]
        if os.fsencode(path).endswith(b"/victim_lstat"):
            os.unlink(path)
        return real_lstat(path, *args, **kwargs)

    def fake_scandir(path):  # type: ignore[no-untyped-def]
        if AS_ROOT and os.fsencode(path) == locked:
            raise PermissionError(13, "Permission denied", path)
        return real_scandir(path)

    monkeypatch.setattr(os, "open", fake_open)
    monkeypatch.setattr(os, "lstat", fake_lstat)
    monkeypatch.setattr(os, "scandir", fake_scandir)


@pytest.fixture
def hostile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    root = tmp_path / "tree"
    root.mkdir()
    expected = _hostile_tree(root, monkeypatch)
    os.chmod(root / "secret", 0)
    os.chmod(root / "locked", 0)
    _sabotage(root, monkeypatch)
    yield root, expected
    monkeypatch.undo()
    os.chmod(root / "secret", 0o644)
    os.chmod(root / "locked", 0o755)


def test_hostile_tree_every_case_counted(hostile, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    root, expected = hostile
    out = tmp_path / "out" / "scan.csv.gz"
    result = scan(root, out=out)
    assert result.problems == expected
    assert result.types["symlink"] == 4
    assert result.types["fifo"] == 1
    assert result.types["dir"] == 2 + 300  # locked, deep, 300 nested
    assert result.out == out
    assert result.files_per_s > 0
    with gzip.open(out, "rt", encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == result.records
    assert list(rows[0]) == list(FIELDS)
    by_name = {r["name"]: r for r in rows}
    assert by_name["plain.txt"]["kind"] == "text"
    assert by_name["plain.txt"]["ext"] == "txt"
    assert by_name["script.py"]["kind"] == "python_source"
    assert by_name["empty"]["kind"] == "empty"
    assert by_name["fifo"]["kind"] == "" and by_name["fifo"]["type"] == "fifo"
    assert by_name["loop_a"]["type"] == "symlink"
    assert by_name["secret"]["kind"] == ""
    assert by_name["bottom.txt"]["kind"] == "text"
    assert int(by_name["bottom.txt"]["depth"]) == len(Path(root).parts) - 1 + 302
    assert "victim_lstat" not in by_name
    if "non_utf8_name" in expected:
        assert "bad-\\xff\\xfe-name.txt" in by_name
    assert [p.name for p in out.parent.iterdir()] == ["scan.csv.gz"]  # no temporary left


def test_iter_scan_streams_without_output(hostile) -> None:  # type: ignore[no-untyped-def]
    root, _ = hostile
    first = next(iter_scan(root))
    assert set(first) == set(FIELDS)
    result = scan(root, progress=True)
    assert result.out is None
    assert result.problems["symlink_loop"] == 2


def test_failed_write_leaves_existing_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "t").mkdir()
    _write(tmp_path / "t" / "a", b"a")
    out = tmp_path / "scan.csv.gz"
    out.write_bytes(b"old")
    scan_module = sys.modules["spikeforge.files.scan"]

    def boom(head: bytes, size: int) -> str:
        raise RuntimeError("boom")

    monkeypatch.setattr(scan_module, "classify", boom)
    with pytest.raises(RuntimeError):
        scan(tmp_path / "t", out=out)
    assert out.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scan.csv.gz", "t"]


def test_real_system_folder_and_baseline() -> None:
    folder = Path(os.__file__).parent  # the stdlib: present wherever Python runs
    result = scan(folder, max_entries=1500)
    assert 0 < result.records <= 1500
    assert result.types.get("file", 0) > 0
    base = walk_baseline(folder, max_entries=1500)
    assert base.records == result.records
    assert base.files_per_s > 0


def test_csv_is_valid_utf8(tmp_path: Path) -> None:
    root = tmp_path / "u"
    root.mkdir()
    _write(root / "ünïcode.json", b'{"a": 1}')
    out = tmp_path / "x.csv.gz"
    scan(root, out=out)
    text = gzip.decompress(out.read_bytes()).decode("utf-8")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert rows[0]["name"] == "ünïcode.json" and rows[0]["kind"] == "json"


def test_entries_replaced_between_lstat_and_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A regular file swapped for a symlink (O_NOFOLLOW refuses it) and one swapped for a FIFO
    (O_NONBLOCK opens it without blocking; fstat shows it is no longer the file): both counted
    as changed, neither read."""
    root = tmp_path / "r"
    root.mkdir()
    _write(root / "to_link", b"a")
    _write(root / "to_fifo", b"b")
    _write(tmp_path / "target", b"never read")
    real_open = os.open

    def fake_open(path, flags, *args, **kwargs):  # type: ignore[no-untyped-def]
        p = os.fsencode(path)
        if p.endswith(b"/to_link"):
            os.unlink(p)
            os.symlink(tmp_path / "target", p)
        elif p.endswith(b"/to_fifo"):
            os.unlink(p)
            os.mkfifo(p)
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", fake_open)
    result = scan(root)
    assert result.problems == {"changed": 2}
    assert result.records == 2


def test_compare_throughput_and_summary(tmp_path: Path) -> None:
    for i in range(50):
        _write(tmp_path / f"f{i}.txt", b"x")
    numbers = compare_throughput(tmp_path)
    assert numbers["records"] == 50
    assert numbers["scan_files_per_s"] > 0 and numbers["walk_lstat_files_per_s"] > 0
    assert "50 entries" in scan(tmp_path).summary()
