"""The spec §4.3 path and lstat fields of a file, and a safe read of its first bytes; shared by
the scanner (:mod:`.scan`) and the debfiles builder (:mod:`.builder`), so both define every field
the same way."""

from __future__ import annotations

import os
import stat
from typing import Any

from spikeforge.files.kinds import HEAD_BYTES

__all__ = ["FileReplacedError", "path_fields", "read_head", "stat_fields"]

_OPEN_FLAGS = (
    os.O_RDONLY
    | getattr(os, "O_NONBLOCK", 0)
    | getattr(os, "O_NOFOLLOW", 0)
    | getattr(os, "O_CLOEXEC", 0)
    | getattr(os, "O_NOCTTY", 0)
)


class FileReplacedError(OSError):
    """The path no longer names the regular file that was ``lstat``-ed (replaced since)."""


def path_fields(path: str) -> dict[str, Any]:
    """``path dir name ext n_dots depth name_len top2`` of an absolute path (spec §4.3): ``ext``
    is the text after the last dot, lower-cased, empty when the name without its leading dots has
    no dot; ``depth`` counts the path components; ``top2`` joins the first two."""
    parent, name = os.path.split(path)
    parts = [p for p in path.split("/") if p]
    return {
        "path": path,
        "dir": parent,
        "name": name,
        "ext": name.rsplit(".", 1)[1].lower() if "." in name.lstrip(".") else "",
        "n_dots": name.count("."),
        "depth": len(parts),
        "name_len": len(name),
        "top2": "/".join(parts[:2]),
    }


def stat_fields(st: os.stat_result) -> dict[str, Any]:
    """``size mode exec setid uid gid nlink mtime`` of an ``lstat`` result (spec §4.3)."""
    mode = st.st_mode
    return {
        "size": st.st_size,
        "mode": oct(stat.S_IMODE(mode)),
        "exec": int(bool(mode & (stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH))),
        "setid": int(bool(mode & (stat.S_ISUID | stat.S_ISGID))),
        "uid": st.st_uid,
        "gid": st.st_gid,
        "nlink": st.st_nlink,
        "mtime": int(st.st_mtime),
    }


def read_head(path: bytes | str, st: os.stat_result) -> tuple[bytes, os.stat_result]:
    """The first :data:`HEAD_BYTES` bytes of the regular file ``path`` ``lstat``-ed as ``st``,
    and its ``fstat`` now. Opened without following a symlink or blocking (so a FIFO or device
    put in its place is never read); raises :class:`FileReplacedError` when the path now names
    another file, ``OSError`` when it cannot be read (``ELOOP``: a symlink now)."""
    fd = os.open(path, _OPEN_FLAGS)
    try:
        now = os.fstat(fd)
        if not stat.S_ISREG(now.st_mode) or (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino):
            raise FileReplacedError(f"{path!r} was replaced since it was listed")
        head = b""
        while len(head) < HEAD_BYTES:
            chunk = os.read(fd, HEAD_BYTES - len(head))
            if not chunk:
                break
            head += chunk
        return head, now
    finally:
        os.close(fd)
