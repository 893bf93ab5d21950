"""Atomic file writes (nothing half-written is ever left under the final name) and the
environment / code version recorded in every report."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import secrets
import subprocess
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import IO, Any

import torch


def atomic_write(path: str | os.PathLike[str], write: Callable[[IO[bytes]], None]) -> Path:
    """Call ``write(fh)`` on a temporary file beside ``path``, then rename it over ``path``.

    The parent directory is created. If ``write`` fails the temporary file is removed and an
    existing file at ``path`` is left untouched. The temporary file is opened with
    ``open(..., "xb")`` (not :func:`tempfile.mkstemp`) so the result gets the usual
    umask-derived permissions.
    """
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    while True:
        tmp = out.parent / f".{out.name}.{os.getpid()}.{secrets.token_hex(6)}.tmp"
        try:
            fh = open(tmp, "xb")  # closed by the with block below
        except FileExistsError:  # pragma: no cover - 48 random bits collided
            continue
        break
    try:
        with fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return out


def write_json(path: str | os.PathLike[str], data: Any) -> Path:
    """Write ``data`` as indented JSON, atomically."""
    text = json.dumps(data, indent=2, sort_keys=False, allow_nan=True) + "\n"
    return atomic_write(path, lambda fh: fh.write(text.encode()))


def save_torch(path: str | os.PathLike[str], obj: Any) -> Path:
    """``torch.save`` atomically."""
    return atomic_write(path, lambda fh: torch.save(obj, fh))


def load_torch(path: str | os.PathLike[str]) -> Any:
    """``torch.load`` with ``weights_only=True`` (tensors, dicts, lists, numbers only); a
    missing file raises ``FileNotFoundError``, anything else that stops the read (a corrupt or
    truncated file, garbage bytes, pickled code) ``ValueError`` naming the file."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as exc:  # the unpickler fails on garbage with KeyError, IndexError, ...
        raise ValueError(f"cannot read checkpoint {path}: {type(exc).__name__}: {exc}") from exc


def content_digest(obj: Any) -> str:
    """SHA-256 (hex) of a tree of dicts, lists / tuples, tensors and plain values: structure,
    keys in order, every tensor's dtype, shape and bytes, and ``repr`` of every other value.
    Stored beside saved data, it detects corruption that still unpickles (torch's zip reader does
    not check its records' CRC)."""
    h = hashlib.sha256()

    def feed(o: Any) -> None:
        if isinstance(o, torch.Tensor):
            t = o.detach().cpu().contiguous().reshape(-1)
            h.update(f"T{t.dtype}{tuple(o.shape)};".encode())
            h.update(t.view(torch.uint8).numpy().tobytes())
        elif isinstance(o, dict):
            h.update(f"D{len(o)};".encode())
            for k, v in o.items():
                feed(k)
                feed(v)
        elif isinstance(o, list | tuple):
            h.update(f"L{len(o)};".encode())
            for v in o:
                feed(v)
        else:
            h.update(f"S{type(o).__name__}:{o!r};".encode())

    feed(obj)
    return h.hexdigest()


def _git(args: list[str], cwd: Path) -> str | None:
    try:
        done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, check=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.decode(errors="replace")


@cache
def code_version() -> str:
    """The code a result comes from: ``git:<commit>`` of the checkout holding this package,
    ``git:<commit>+dirty.<hash>`` when its tracked files differ from the commit (the hash is a
    SHA-256 prefix of ``git diff HEAD`` over the package, so two different uncommitted states
    get different versions), or ``spikeforge <version>`` outside a git checkout."""
    import spikeforge  # here: the package imports this module

    package = Path(spikeforge.__file__).resolve().parent
    commit = _git(["rev-parse", "HEAD"], package)
    if not commit or not commit.strip():
        return f"spikeforge {spikeforge.__version__}"
    version = f"git:{commit.strip()}"
    diff = _git(["diff", "HEAD", "--", "."], package)
    if diff:
        version += "+dirty." + hashlib.sha256(diff.encode()).hexdigest()[:12]
    return version


def environment() -> dict[str, Any]:
    """Versions, code version (:func:`code_version`) and thread count, recorded in every
    report."""
    import spikeforge  # here: the package imports this module

    return {
        "spikeforge": spikeforge.__version__,
        "code_version": code_version(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "threads": torch.get_num_threads(),
    }


__all__ = [
    "atomic_write",
    "code_version",
    "content_digest",
    "environment",
    "load_torch",
    "save_torch",
    "write_json",
]
