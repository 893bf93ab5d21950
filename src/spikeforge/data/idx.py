"""Reading IDX files (the MNIST / Fashion-MNIST container format) with integrity checks.

IDX layout: two zero bytes, one element-type byte, one byte ``ndim``, then ``ndim`` big-endian
uint32 dimension sizes, then the elements in C order. Only element type ``0x08`` (unsigned
byte) is supported, which is what MNIST and Fashion-MNIST use.
"""

from __future__ import annotations

import gzip
import hashlib
import math
import os
import struct
import zlib
from pathlib import Path
from types import MappingProxyType

import numpy as np

from spikeforge.data.errors import OBTAIN_DATA_HELP, DataCorruptError, DataNotFoundError
from spikeforge.data.paths import resolve_data_dir

__all__ = [
    "DATASET_NAMES",
    "SHA256_CHECKSUMS",
    "SPLITS",
    "load_fashion_mnist",
    "load_idx_dataset",
    "load_mnist",
    "read_idx",
]

DATASET_NAMES = ("mnist", "fashion-mnist")
SPLITS = ("train", "test")
_SPLIT_PREFIX = {"train": "train", "test": "t10k"}
_UNSIGNED_BYTE = 0x08

SHA256_CHECKSUMS = MappingProxyType(
    {
        # SHA-256 of the *decompressed* IDX files, keyed by "<data set>/<file name>".
        "mnist/t10k-images-idx3-ubyte": (
            "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7"
        ),
        "mnist/t10k-labels-idx1-ubyte": (
            "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"
        ),
        "mnist/train-images-idx3-ubyte": (
            "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db"
        ),
        "mnist/train-labels-idx1-ubyte": (
            "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5"
        ),
        "fashion-mnist/t10k-images-idx3-ubyte": (
            "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b"
        ),
        "fashion-mnist/t10k-labels-idx1-ubyte": (
            "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34"
        ),
        "fashion-mnist/train-images-idx3-ubyte": (
            "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888"
        ),
        "fashion-mnist/train-labels-idx1-ubyte": (
            "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9"
        ),
    }
)

# Files whose checksum already matched in this process: (resolved path, size, mtime_ns).
_VERIFIED: set[tuple[str, int, int]] = set()


def _read_bytes(path: Path) -> bytes:
    """Return the (decompressed when the name ends in ``.gz``) contents of ``path``."""
    try:
        if path.name.endswith(".gz"):
            with gzip.open(path, "rb") as fh:
                return fh.read()
        return path.read_bytes()
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise DataCorruptError(
            f"{path}: corrupt or truncated gzip stream ({type(exc).__name__}: {exc})"
        ) from exc
    except OSError as exc:
        raise type(exc)(exc.errno, f"cannot read IDX file ({exc.strerror})", str(path)) from exc


def _parse_idx(raw: bytes, path: Path) -> np.ndarray:
    """Parse IDX bytes into a writable uint8 array of the header's shape."""
    if len(raw) < 4:
        raise DataCorruptError(f"{path}: truncated IDX header ({len(raw)} bytes, need at least 4)")
    zero0, zero1, elem_type, ndim = raw[:4]
    if zero0 != 0 or zero1 != 0:
        raise DataCorruptError(
            f"{path}: bad IDX magic, first two bytes are {zero0:#04x} {zero1:#04x}, expected 0x00 "
            "0x00 (not an IDX file, or a gzipped file without the .gz suffix?)"
        )
    if elem_type != _UNSIGNED_BYTE:
        raise DataCorruptError(
            f"{path}: unsupported IDX element type {elem_type:#04x}; only 0x08 (unsigned byte) "
            "is supported"
        )
    if ndim == 0:
        raise DataCorruptError(f"{path}: IDX header declares 0 dimensions")
    header_len = 4 + 4 * ndim
    if len(raw) < header_len:
        raise DataCorruptError(
            f"{path}: truncated IDX header ({len(raw)} bytes, {ndim} dimensions need {header_len})"
        )
    shape = struct.unpack(f">{ndim}I", raw[4:header_len])
    expected = header_len + math.prod(shape)
    if len(raw) != expected:
        what = "truncated" if len(raw) < expected else "over-long"
        raise DataCorruptError(
            f"{path}: {what} IDX file: header declares shape {shape} so the file should be "
            f"{expected} bytes (decompressed), but it is {len(raw)} bytes"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header_len).reshape(shape).copy()


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an IDX file of unsigned bytes, gzipped when the name ends in ``.gz``.

    Returns:
        A writable ``uint8`` array whose shape is the one declared in the header
        (e.g. ``[N, 28, 28]`` for image files, ``[N]`` for label files).

    Raises:
        DataCorruptError: bad magic, unsupported element type, truncated or over-long file,
            corrupt gzip stream; the message names the file.
        OSError: the path cannot be read (missing, permissions, a directory); names the path.
    """
    path = Path(path)
    return _parse_idx(_read_bytes(path), path)


def _validate(name: str, split: str) -> None:
    if name not in DATASET_NAMES:
        raise ValueError(f"unknown data set {name!r}; valid names: {', '.join(DATASET_NAMES)}")
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; valid splits: {', '.join(SPLITS)}")


def _find_file(folder: Path, file_name: str) -> Path:
    """Return ``folder/file_name.gz`` or, failing that, the uncompressed ``folder/file_name``."""
    for candidate in (folder / f"{file_name}.gz", folder / file_name):
        if candidate.is_file():
            return candidate
    raise DataNotFoundError(
        f"Missing data file: expected {folder / file_name}.gz (or uncompressed "
        f"{folder / file_name}).\n{OBTAIN_DATA_HELP}"
    )


def _cache_key(path: Path) -> tuple[str, int, int]:
    stat = path.stat()
    return (str(path.resolve()), stat.st_size, stat.st_mtime_ns)


def _check_sha256(raw: bytes, path: Path, key: str) -> None:
    """Compare the SHA-256 of the decompressed bytes with the pinned value for ``key``."""
    expected = SHA256_CHECKSUMS[key]
    actual = hashlib.sha256(raw).hexdigest()
    if actual != expected:
        raise DataCorruptError(
            f"{path}: SHA-256 mismatch for {key} (decompressed): expected {expected}, got "
            f"{actual}. The file is corrupt or not the original; obtain it again.\n"
            f"{OBTAIN_DATA_HELP}"
        )


def _load_file(folder: Path, name: str, file_name: str, verify: bool) -> tuple[np.ndarray, Path]:
    path = _find_file(folder, file_name)
    # Stat before reading, so a file replaced mid-read is never cached as verified.
    cache_key = _cache_key(path) if verify else None
    raw = _read_bytes(path)
    if cache_key is not None and cache_key not in _VERIFIED:
        _check_sha256(raw, path, f"{name}/{file_name}")
        _VERIFIED.add(cache_key)
    return _parse_idx(raw, path), path


def load_idx_dataset(
    name: str,
    split: str,
    data_dir: str | os.PathLike[str] | None = None,
    verify: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Load one split of MNIST or Fashion-MNIST from ``<data dir>/<name>/``.

    Args:
        name: ``"mnist"`` or ``"fashion-mnist"``.
        split: ``"train"`` (60000 examples) or ``"test"`` (10000 examples).
        data_dir: the data directory; see :func:`spikeforge.data.resolve_data_dir`.
        verify: check the SHA-256 of the decompressed files against pinned values. A successful
            check is remembered for this process (per path, size and mtime).

    Returns:
        ``(images, labels)``: ``images`` is ``uint8`` of shape ``[N, 28, 28]`` (row-major pixels,
        0 = background), ``labels`` is ``int64`` of shape ``[N]`` with values in ``0..9``.

    Raises:
        ValueError: unknown ``name`` or ``split``.
        DataNotFoundError: data directory or a file missing (says where and how to obtain it).
        DataCorruptError: malformed file, checksum mismatch, or inconsistent images/labels.
    """
    _validate(name, split)
    folder = resolve_data_dir(data_dir) / name
    prefix = _SPLIT_PREFIX[split]
    images, images_path = _load_file(folder, name, f"{prefix}-images-idx3-ubyte", verify)
    labels, labels_path = _load_file(folder, name, f"{prefix}-labels-idx1-ubyte", verify)
    if images.ndim != 3 or images.shape[1:] != (28, 28):
        raise DataCorruptError(f"{images_path}: expected images [N, 28, 28], got {images.shape}")
    if labels.ndim != 1:
        raise DataCorruptError(f"{labels_path}: expected labels [N], got {labels.shape}")
    if images.shape[0] != labels.shape[0]:
        raise DataCorruptError(
            f"{images_path} holds {images.shape[0]} images but {labels_path} holds "
            f"{labels.shape[0]} labels"
        )
    if labels.size and labels.max() > 9:
        raise DataCorruptError(f"{labels_path}: label {labels.max()} outside 0..9")
    return images, labels.astype(np.int64)


def load_mnist(
    split: str, data_dir: str | os.PathLike[str] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Load an MNIST split; see :func:`load_idx_dataset` for layouts and errors."""
    return load_idx_dataset("mnist", split, data_dir)


def load_fashion_mnist(
    split: str, data_dir: str | os.PathLike[str] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Load a Fashion-MNIST split; see :func:`load_idx_dataset` for layouts and errors."""
    return load_idx_dataset("fashion-mnist", split, data_dir)
