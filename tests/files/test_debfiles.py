"""The debfiles loader (spec file-classification.md §4, §5.7): schema, dtypes, classes, folds,
checksums, error messages and the records / schema handed to KeyValueEncoder."""

from __future__ import annotations

import gzip
import hashlib
import shutil
import zlib
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from spikeforge.data import DataCorruptError, DataNotFoundError, resolve_data_dir
from spikeforge.encoding import KEY_TYPES, KeyValueEncoder
from spikeforge.files import debfiles as dbf
from spikeforge.files.debfiles import (
    CLASSES,
    COLUMNS,
    FEATURE_SETS,
    INT_COLUMNS,
    MISSING_INT,
    SHA256,
    Debfiles,
    load_debfiles,
    schema,
)

README_COUNTS = {
    "text": 12534,
    "c_source": 7003,
    "compressed": 6528,
    "gettext_catalog": 3274,
    "python_source": 2191,
    "image": 2101,
    "binary_other": 2056,
    "elf_shared_lib": 1356,
    "elf_executable": 908,
    "markup": 758,
    "archive": 380,
    "shell_script": 376,
    "other_script": 283,
    "json": 143,
    "empty": 103,
    "terminfo": 42,
}


def _fixture_path() -> Path:
    try:
        path = resolve_data_dir(None) / "debfiles" / "debfiles.csv.gz"
    except DataNotFoundError:
        pytest.skip("no spikeforge data directory")
    if not path.is_file():
        pytest.skip(f"{path} not present")
    return path


@pytest.fixture(scope="module")
def fixture_path() -> Path:
    return _fixture_path()


@pytest.fixture(scope="module")
def data(fixture_path: Path) -> Debfiles:
    return load_debfiles(fixture_path)


@pytest.fixture(scope="module")
def lines(fixture_path: Path) -> list[str]:
    """The first 60 lines of the fixture CSV (header + 59 rows)."""
    return gzip.decompress(fixture_path.read_bytes()).decode().split("\n")[:60]


def _write(tmp_path: Path, lines: list[str], name: str = "debfiles.csv.gz") -> Path:
    path = tmp_path / name
    path.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode(), mtime=0))
    return path


def _edit(lines: list[str], row: int, column: str, value: str) -> list[str]:
    out = list(lines)
    fields = out[row + 1].split(",")
    fields[COLUMNS.index(column)] = value
    out[row + 1] = ",".join(fields)
    return out


# --- constants -----------------------------------------------------------------------------


def test_columns_and_feature_sets_follow_the_spec() -> None:
    assert len(COLUMNS) == 28 and len(set(COLUMNS)) == 28
    assert COLUMNS[:4] == ("path", "dir", "name", "ext") and COLUMNS[-2:] == ("fold", "kind")
    meta = (
        "size mode exec setid uid gid nlink mtime depth top2 section priority arch multi_arch "
        "essential installed_size_kb conffile has_md5"
    ).split()
    assert FEATURE_SETS["meta"] == tuple(meta)
    assert FEATURE_SETS["full"] == (*meta, "ext", "n_dots", "name_len", "dir", "name")
    for never in ("path", "package", "version", "fold", "kind"):
        assert never not in FEATURE_SETS["full"]
    assert len(CLASSES) == 16 and set(CLASSES) == set(README_COUNTS)


def test_schema_types_follow_spec_3_2() -> None:
    full = schema("full")
    assert list(full) == list(FEATURE_SETS["full"])
    assert set(full.values()) <= set(KEY_TYPES)
    assert full["dir"] == full["name"] == "tokens"
    assert {k for k, t in full.items() if t == "boolean"} == {
        "exec",
        "setid",
        "essential",
        "conffile",
        "has_md5",
    }
    assert {k for k, t in full.items() if t == "numeric"} == {
        "size",
        "installed_size_kb",
        "depth",
        "name_len",
        "n_dots",
        "nlink",
        "mtime",
    }
    assert schema(["ext", "size"]) == {"ext": "categorical", "size": "numeric"}
    with pytest.raises(ValueError, match="unknown feature set"):
        schema("nope")
    with pytest.raises(ValueError, match="not feature keys"):
        schema(["path"])


# --- the canonical fixture -----------------------------------------------------------------


def test_fixture_sha256(fixture_path: Path) -> None:
    raw = gzip.decompress(fixture_path.read_bytes())
    assert hashlib.sha256(raw).hexdigest() == SHA256
    sums = fixture_path.parent / "SHA256SUMS.uncompressed"
    assert sums.read_text().split()[:2] == [SHA256, "debfiles.csv"]


def test_shape_and_dtypes(data: Debfiles) -> None:
    assert len(data) == 40036
    assert list(data.columns) == list(COLUMNS)
    for name, arr in data.columns.items():
        assert arr.shape == (40036,)
        if name in INT_COLUMNS:
            assert arr.dtype == np.int64, name
            assert (arr >= 0).all(), name  # the canonical file has no empty integer field
        else:
            assert arr.dtype == object, name
            assert all(type(v) is str for v in arr[:200]), name
    assert {c for c in COLUMNS if (data[c] == "").any()} == {"ext", "multi_arch"}
    assert list(data["path"]) == sorted(data["path"])


def test_classes_match_readme_counts(data: Debfiles) -> None:
    assert dict(Counter(data.kind.tolist())) == README_COUNTS
    y = data.y
    assert y.dtype == np.int64 and y.min() == 0 and y.max() == 15
    assert (np.asarray(CLASSES, dtype=object)[y] == data.kind).all()
    np.testing.assert_array_equal(data.labels(), y)


def test_folds_are_grouped_by_package(data: Debfiles) -> None:
    assert np.bincount(data.fold).tolist() == [7382, 7744, 7526, 10593, 6791]
    assert len(np.unique(data.package)) == 692
    for package, fold in set(zip(data.package.tolist(), data.fold.tolist(), strict=True)):
        assert fold == zlib.crc32(package.encode()) % 5
    seen: dict[str, set[int]] = {}
    for p, f in zip(data.package.tolist(), data.fold.tolist(), strict=True):
        seen.setdefault(p, set()).add(f)
    assert all(len(f) == 1 for f in seen.values())
    for k in range(5):
        train, test = data.split(k)
        assert train.dtype == test.dtype == np.int64
        assert len(train) + len(test) == len(data)
        assert not set(data.package[train]) & set(data.package[test])
        assert (data.fold[test] == k).all()
    with pytest.raises(ValueError):
        data.split(5)


def test_subset(data: Debfiles) -> None:
    sub = data.subset(np.arange(10, 20))
    assert len(sub) == 10 and sub["path"][0] == data["path"][10]
    assert sub["size"].dtype == np.int64 and sub["kind"].dtype == object
    mask = data.kind == "json"
    assert len(data.subset(mask)) == 143


def test_records_encode_with_keyvalue_encoder(data: Debfiles) -> None:
    rows = np.arange(0, len(data), 137)[:300]
    for features in ("meta", "full"):
        records = data.records(features, index=rows)
        assert len(records) == len(rows)
        assert all(list(r) == list(FEATURE_SETS[features]) for r in records)
        encoder = KeyValueEncoder(data.schema(features)).fit(records)
        spikes = encoder.transform(records)
        assert tuple(spikes.shape) == (64, len(rows), encoder.n_inputs)
        assert float(spikes.sum()) > 0
    first = data.records("full", index=[0])[0]
    assert first["dir"] == ["bin"] and first["name"] == ["bash"] and first["ext"] is None
    assert isinstance(first["size"], int) and first["mode"] == "0o755"
    # a missing value leaves its group silent
    encoder = KeyValueEncoder(schema("full")).fit(data.records("full", index=rows))
    layout = encoder.layout
    raster = encoder.transform([first])
    assert float(raster[:, 0, layout["ext"]].sum()) == 0
    assert float(raster[:, 0, layout["dir"]].sum()) > 0


# --- errors on damaged or missing files ----------------------------------------------------


def test_missing_file_says_where_and_how(tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError) as info:
        load_debfiles(tmp_path / "nope.csv.gz")
    assert str(tmp_path / "nope.csv.gz") in str(info.value)
    assert "build-debfiles" in str(info.value)


def test_missing_data_dir_and_default_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fixture_path: Path
) -> None:
    monkeypatch.setenv("SPIKEFORGE_DATA", str(tmp_path / "absent"))
    with pytest.raises(DataNotFoundError, match="build-debfiles"):
        load_debfiles()
    monkeypatch.setenv("SPIKEFORGE_DATA", str(tmp_path))
    with pytest.raises(DataNotFoundError, match=r"debfiles\.csv\.gz"):
        load_debfiles()
    (tmp_path / "debfiles").mkdir()
    shutil.copy(fixture_path, tmp_path / "debfiles" / "debfiles.csv.gz")
    assert len(load_debfiles()) == 40036


def test_changed_content_fails_the_checksum(tmp_path: Path, fixture_path: Path) -> None:
    raw = gzip.decompress(fixture_path.read_bytes()).replace(b"/bin/bash,", b"/bin/bask,", 1)
    path = tmp_path / "debfiles.csv.gz"
    path.write_bytes(gzip.compress(raw))
    with pytest.raises(DataCorruptError) as info:
        load_debfiles(path)
    message = str(info.value)
    assert str(path) in message and SHA256 in message
    assert hashlib.sha256(raw).hexdigest() in message
    assert len(load_debfiles(path, verify=False)) == 40036


def test_truncated_gzip(tmp_path: Path, fixture_path: Path) -> None:
    path = tmp_path / "debfiles.csv.gz"
    path.write_bytes(fixture_path.read_bytes()[:50_000])
    with pytest.raises(DataCorruptError, match="truncated"):
        load_debfiles(path)


def test_stale_sums_file(tmp_path: Path, fixture_path: Path) -> None:
    shutil.copy(fixture_path, tmp_path / "debfiles.csv.gz")
    (tmp_path / "SHA256SUMS.uncompressed").write_text("0" * 64 + "  debfiles.csv\n")
    with pytest.raises(DataCorruptError, match="SHA256SUMS"):
        load_debfiles(tmp_path / "debfiles.csv.gz")


@pytest.mark.parametrize(
    ("row", "column", "value", "match"),
    [
        (3, "size", "12a", "line 5 .*'size'.*non-negative integer"),
        (0, "mtime", "-5", "line 2 .*'mtime'"),
        (7, "exec", "2", "line 9 .*'exec'.*0 or 1"),
        (1, "fold", "5", "'fold'.*0..4"),
        (2, "kind", "elf_object", "'kind'.*expected one of"),
        (4, "mode", "644", "'mode'.*octal"),
        (5, "package", "", "'package'.*empty"),
    ],
)
def test_bad_values_name_row_and_column(
    tmp_path: Path, lines: list[str], row: int, column: str, value: str, match: str
) -> None:
    path = _write(tmp_path, _edit(lines, row, column, value))
    with pytest.raises(DataCorruptError, match=match):
        load_debfiles(path, verify=False)


def test_bad_header_and_field_count(tmp_path: Path, lines: list[str]) -> None:
    swapped = [lines[0].replace("path,dir", "dir,path"), *lines[1:]]
    with pytest.raises(DataCorruptError, match="bad header"):
        load_debfiles(_write(tmp_path, swapped), verify=False)
    short = [*lines[:3], lines[3].rsplit(",", 1)[0], *lines[4:]]
    with pytest.raises(DataCorruptError, match=r"line 4 .*27 fields"):
        load_debfiles(_write(tmp_path, short, "b.csv.gz"), verify=False)
    (tmp_path / "empty.csv").write_bytes(b"")
    with pytest.raises(DataCorruptError, match="empty"):
        load_debfiles(tmp_path / "empty.csv", verify=False)


def test_empty_fields(tmp_path: Path, lines: list[str]) -> None:
    edited = _edit(_edit(lines, 0, "installed_size_kb", ""), 0, "section", "")
    data = load_debfiles(_write(tmp_path, edited), verify=False)
    assert len(data) == 59
    assert data["installed_size_kb"][0] == MISSING_INT and data["section"][0] == ""
    record = data.records("meta", index=[0])[0]
    assert record["installed_size_kb"] is None and record["section"] is None
    assert record["multi_arch"] == "foreign"


def test_plain_csv_is_read(tmp_path: Path, lines: list[str]) -> None:
    path = tmp_path / "small.csv"
    path.write_text("\n".join(lines) + "\n")
    assert len(load_debfiles(path, verify=False)) == 59
    assert dbf.default_debfiles_path(tmp_path) == tmp_path / "debfiles" / "debfiles.csv.gz"


def test_data_verify_checks_debfiles(
    tmp_path: Path, fixture_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from spikeforge.cli import main

    (tmp_path / "debfiles").mkdir()
    shutil.copy(fixture_path, tmp_path / "debfiles" / "debfiles.csv.gz")
    assert main(["data", "verify", "--data-dir", str(tmp_path)]) == 2  # no MNIST here
    printed = capsys.readouterr().out
    assert "mnist" in printed and "FAILED" in printed
    assert "40036 rows    checksum OK" in printed
