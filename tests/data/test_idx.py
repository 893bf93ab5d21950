"""Tests for spikeforge.data.idx (IDX reading, checksums, MNIST / Fashion-MNIST loaders)."""

from __future__ import annotations

import gzip
import hashlib
import os
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from spikeforge.data import (
    DATA_ENV_VAR,
    DataCorruptError,
    DataNotFoundError,
    load_fashion_mnist,
    load_idx_dataset,
    load_mnist,
    read_idx,
    resolve_data_dir,
    to_unit_float,
)
from spikeforge.data import idx as idx_module

IMAGES = "t10k-images-idx3-ubyte"
LABELS = "t10k-labels-idx1-ubyte"


def idx_bytes(array: np.ndarray, elem_type: int = 0x08) -> bytes:
    """Encode a uint8 array as IDX bytes."""
    header = bytes([0, 0, elem_type, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def write(path: Path, raw: bytes) -> Path:
    """Write raw bytes to ``path``, gzipping them when the name ends in ``.gz``."""
    path.write_bytes(gzip.compress(raw) if path.name.endswith(".gz") else raw)
    return path


@pytest.fixture(autouse=True)
def clean_cache() -> None:
    idx_module._VERIFIED.clear()


@pytest.fixture
def fake_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A data dir with a tiny 5-example MNIST test split whose checksums are pinned."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(5, 28, 28), dtype=np.uint8)
    labels = np.array([3, 1, 4, 1, 5], dtype=np.uint8)
    folder = tmp_path / "mnist"
    folder.mkdir()
    table = {}
    for file_name, array in ((IMAGES, images), (LABELS, labels)):
        raw = idx_bytes(array)
        write(folder / f"{file_name}.gz", raw)
        table[f"mnist/{file_name}"] = hashlib.sha256(raw).hexdigest()
    monkeypatch.setattr(idx_module, "SHA256_CHECKSUMS", table)
    return tmp_path


# --- read_idx -------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize("shape", [(7,), (3, 4, 5)])
def test_read_idx_round_trip(tmp_path: Path, suffix: str, shape: tuple[int, ...]) -> None:
    array = np.arange(np.prod(shape), dtype=np.uint8).reshape(shape)
    path = write(tmp_path / f"file{suffix}", idx_bytes(array))
    out = read_idx(path)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, array)
    out[...] = 0  # the result is writable
    np.testing.assert_array_equal(read_idx(str(path)), array)


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_truncated_file(tmp_path: Path, suffix: str) -> None:
    raw = idx_bytes(np.zeros((2, 3), dtype=np.uint8))
    path = write(tmp_path / f"short{suffix}", raw[:-1])
    with pytest.raises(DataCorruptError, match=r"short.*truncated IDX file.*18 bytes.*17 bytes"):
        read_idx(path)


def test_over_long_file(tmp_path: Path) -> None:
    raw = idx_bytes(np.zeros((2, 3), dtype=np.uint8))
    path = write(tmp_path / "long", raw + b"\x00")
    with pytest.raises(DataCorruptError, match=r"long.*over-long"):
        read_idx(path)


def test_truncated_header(tmp_path: Path) -> None:
    with pytest.raises(DataCorruptError, match=r"tiny.*truncated IDX header"):
        read_idx(write(tmp_path / "tiny", b"\x00\x00"))
    with pytest.raises(DataCorruptError, match=r"dims.*truncated IDX header"):
        read_idx(write(tmp_path / "dims", bytes([0, 0, 8, 3, 0, 0, 0, 1])))


def test_bad_magic(tmp_path: Path) -> None:
    raw = b"\x01" + idx_bytes(np.zeros(4, dtype=np.uint8))[1:]
    with pytest.raises(DataCorruptError, match=r"magic.*bad IDX magic"):
        read_idx(write(tmp_path / "magic", raw))


def test_gzipped_file_without_gz_suffix(tmp_path: Path) -> None:
    path = tmp_path / "looks-plain"
    path.write_bytes(gzip.compress(idx_bytes(np.zeros(4, dtype=np.uint8))))
    with pytest.raises(DataCorruptError, match=r"looks-plain.*magic"):
        read_idx(path)


def test_unsupported_element_type(tmp_path: Path) -> None:
    raw = idx_bytes(np.zeros(4, dtype=np.uint8), elem_type=0x0D)
    with pytest.raises(DataCorruptError, match=r"float\.idx.*element type 0x0d"):
        read_idx(write(tmp_path / "float.idx", raw))


def _not_gzip(good: bytes) -> bytes:
    return b"this is not gzip data at all"


def _truncated_gzip(good: bytes) -> bytes:
    return good[: len(good) // 2]


def _flipped_gzip(good: bytes) -> bytes:
    middle = len(good) // 2
    return good[:middle] + bytes([good[middle] ^ 0xFF]) + good[middle + 1 :]


@pytest.mark.parametrize("damage", [_not_gzip, _truncated_gzip, _flipped_gzip])
def test_corrupt_gzip(tmp_path: Path, damage) -> None:
    rng = np.random.default_rng(1)
    good = gzip.compress(idx_bytes(rng.integers(0, 256, size=(20, 28, 28), dtype=np.uint8)))
    path = tmp_path / "broken.gz"
    path.write_bytes(damage(good))
    with pytest.raises(DataCorruptError, match=r"broken\.gz"):
        read_idx(path)


def test_unreadable_path_is_named(tmp_path: Path) -> None:
    folder = tmp_path / "a-directory.gz"
    folder.mkdir()
    with pytest.raises(OSError, match="a-directory"):
        read_idx(folder)
    with pytest.raises(FileNotFoundError, match="absent"):
        read_idx(tmp_path / "absent")


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root reads all")
def test_permission_denied_is_named(tmp_path: Path) -> None:
    path = write(tmp_path / "secret", idx_bytes(np.zeros(4, dtype=np.uint8)))
    path.chmod(0)
    try:
        with pytest.raises(PermissionError, match="secret"):
            read_idx(path)
    finally:
        path.chmod(0o600)


# --- load_idx_dataset on a fake data dir ---------------------------------------------------


def test_load_fake_dataset(fake_data: Path) -> None:
    images, labels = load_idx_dataset("mnist", "test", fake_data)
    assert images.shape == (5, 28, 28)
    assert images.dtype == np.uint8
    assert labels.dtype == np.int64
    np.testing.assert_array_equal(labels, [3, 1, 4, 1, 5])
    np.testing.assert_array_equal(load_mnist("test", fake_data)[0], images)


def test_uncompressed_files_accepted(fake_data: Path) -> None:
    folder = fake_data / "mnist"
    for file_name in (IMAGES, LABELS):
        gz = folder / f"{file_name}.gz"
        (folder / file_name).write_bytes(gzip.decompress(gz.read_bytes()))
        gz.unlink()
    images, labels = load_idx_dataset("mnist", "test", fake_data)
    assert images.shape == (5, 28, 28)
    assert labels.tolist() == [3, 1, 4, 1, 5]


def test_checksum_mismatch(fake_data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    table = dict(idx_module.SHA256_CHECKSUMS)
    actual = table[f"mnist/{LABELS}"]
    table[f"mnist/{LABELS}"] = "0" * 64
    monkeypatch.setattr(idx_module, "SHA256_CHECKSUMS", table)
    with pytest.raises(DataCorruptError) as info:
        load_idx_dataset("mnist", "test", fake_data)
    message = str(info.value)
    assert str(fake_data / "mnist" / f"{LABELS}.gz") in message
    assert "0" * 64 in message
    assert actual in message
    # Skipping verification loads the same files without complaint.
    assert load_idx_dataset("mnist", "test", fake_data, verify=False)[1].shape == (5,)


def test_verification_is_cached(fake_data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    real_sha256 = hashlib.sha256

    def counting_sha256(data: bytes = b"") -> object:
        calls.append(len(data))
        return real_sha256(data)

    monkeypatch.setattr(idx_module.hashlib, "sha256", counting_sha256)
    load_idx_dataset("mnist", "test", fake_data)
    assert len(calls) == 2
    load_idx_dataset("mnist", "test", fake_data)
    assert len(calls) == 2  # second load did not re-hash

    # A changed file (new size and mtime) is hashed again, and the change is caught.
    labels = fake_data / "mnist" / f"{LABELS}.gz"
    write(labels, idx_bytes(np.array([0, 1, 2, 3, 4], dtype=np.uint8)))
    stat = labels.stat()
    os.utime(labels, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    with pytest.raises(DataCorruptError, match="SHA-256 mismatch"):
        load_idx_dataset("mnist", "test", fake_data)
    assert len(calls) == 3


def test_count_mismatch(fake_data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(fake_data / "mnist" / f"{LABELS}.gz", idx_bytes(np.array([1, 2], dtype=np.uint8)))
    with pytest.raises(DataCorruptError, match=r"5 images.*2 labels"):
        load_idx_dataset("mnist", "test", fake_data, verify=False)


def test_wrong_image_shape(fake_data: Path) -> None:
    write(fake_data / "mnist" / f"{IMAGES}.gz", idx_bytes(np.zeros((5, 8, 8), dtype=np.uint8)))
    with pytest.raises(DataCorruptError, match=IMAGES):
        load_idx_dataset("mnist", "test", fake_data, verify=False)


def test_missing_file_message(fake_data: Path) -> None:
    with pytest.raises(DataNotFoundError) as info:
        load_fashion_mnist("test", fake_data)
    message = str(info.value)
    assert isinstance(info.value, FileNotFoundError)
    assert str(fake_data / "fashion-mnist" / IMAGES) in message
    assert "SPIKEFORGE_DATA" in message
    assert "zalandoresearch/fashion-mnist" in message


def test_missing_data_dir_message(tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError) as info:
        load_mnist("test", tmp_path / "no-such-dir")
    assert str(tmp_path / "no-such-dir") in str(info.value)
    assert "SPIKEFORGE_DATA" in str(info.value)


def test_unknown_name_or_split(fake_data: Path) -> None:
    with pytest.raises(ValueError, match="mnist, fashion-mnist"):
        load_idx_dataset("cifar10", "test", fake_data)
    with pytest.raises(ValueError, match="train, test"):
        load_idx_dataset("mnist", "validation", fake_data)


def test_pinned_checksums() -> None:
    table = idx_module.SHA256_CHECKSUMS
    assert len(table) == 8
    assert table["mnist/t10k-labels-idx1-ubyte"] == (
        "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"
    )
    with pytest.raises(TypeError):
        table["mnist/t10k-labels-idx1-ubyte"] = "x"  # type: ignore[index]


# --- to_unit_float on IDX-shaped arrays ----------------------------------------------------


def test_to_unit_float_uint8() -> None:
    images = np.array([[[0, 255], [51, 102]]], dtype=np.uint8)
    images.flags.writeable = False
    tensor = to_unit_float(images)
    assert tensor.shape == (1, 1, 2, 2)
    assert tensor.dtype == torch.float64
    torch.testing.assert_close(tensor[0, 0], torch.tensor([[0.0, 1.0], [0.2, 0.4]]).double())
    assert to_unit_float(images, dtype=torch.float32).dtype == torch.float32


def test_to_unit_float_does_not_alias_input() -> None:
    images = np.full((2, 1, 3, 3), 255.0)
    tensor = to_unit_float(images)
    tensor.zero_()
    assert images.max() == 255.0


def test_to_unit_float_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="shape"):
        to_unit_float(np.zeros((2, 3), dtype=np.uint8))
    with pytest.raises(ValueError, match="outside"):
        to_unit_float(np.full((1, 2, 2), 17, dtype=np.uint8), max_value=16)
    with pytest.raises(ValueError, match="floating-point"):
        to_unit_float(np.zeros((1, 2, 2), dtype=np.uint8), dtype=torch.int64)


# --- the real data sets --------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_data_dir() -> Path:
    try:
        return resolve_data_dir()
    except DataNotFoundError as exc:
        pytest.skip(f"real MNIST data not available (set {DATA_ENV_VAR}): {exc}")


def test_real_mnist_and_fashion_mnist_test_splits(real_data_dir: Path) -> None:
    for name in ("mnist", "fashion-mnist"):
        if not (real_data_dir / name).is_dir():
            pytest.skip(f"{real_data_dir / name} absent; see the DataNotFoundError help text")
    images, labels = load_mnist("test", real_data_dir)
    assert images.shape == (10000, 28, 28)
    assert images.dtype == np.uint8
    assert labels.dtype == np.int64
    assert np.bincount(labels).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]

    images, labels = load_fashion_mnist("test", real_data_dir)
    assert images.shape == (10000, 28, 28)
    assert images.dtype == np.uint8
    assert np.bincount(labels).tolist() == [1000] * 10
