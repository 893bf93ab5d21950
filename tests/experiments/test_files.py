"""`spikeforge reproduce files` and `spikeforge files scan | train | predict` on small settings."""

from __future__ import annotations

import csv
import gzip
import json
from pathlib import Path

import numpy as np
import pytest

from spikeforge.cli import main
from spikeforge.data import DataNotFoundError
from spikeforge.experiments.files.report import format_summary, summarise
from spikeforge.experiments.files.runs import Settings, run_files, unit_name
from spikeforge.files.debfiles import CLASSES, load_debfiles
from spikeforge.files.persist import load_model
from spikeforge.files.table import SCAN_FEATURES, TableError, iter_rows, records_from_rows


@pytest.fixture(scope="module")
def debfiles():
    try:
        return load_debfiles()
    except DataNotFoundError as exc:
        pytest.skip(str(exc))


def _tree(root: Path) -> Path:
    (root / "src").mkdir(parents=True)
    (root / "src" / "a.py").write_text("import os\n\ndef f():\n    return 1\n")
    (root / "src" / "b.c").write_text("#include <stdio.h>\nint main(void) { return 0; }\n")
    (root / "doc.txt").write_text("words and more words\n")
    (root / "z.gz").write_bytes(gzip.compress(b"x" * 100))
    (root / "link").symlink_to("src")
    return root


def test_reproduction_units_resume_and_summary(debfiles, tmp_path: Path) -> None:
    settings = Settings(
        features=("meta",),
        folds=(2,),
        models=("snn", "linear_svm"),
        snn_epochs=1,
        max_train=600,
        max_test=300,
        grid_rows=300,
    )
    lines: list[str] = []
    units = run_files(debfiles, settings, tmp_path, log=lines.append)
    assert [u["model"] for u in units] == ["snn", "linear_svm"]
    for u in units:
        assert u["n_train"] == 600 and u["n_test"] == 300 and u["fold"] == 2
        assert 0 <= u["macro_f1"] <= 1 and 0 <= u["accuracy"] <= 1
        assert np.asarray(u["confusion"]).shape == (len(CLASSES), len(CLASSES))
        assert np.asarray(u["confusion"]).sum() == 300
        assert (tmp_path / "units" / f"{unit_name('meta', 2, u['model'])}.json").is_file()
    # the linear SVM learns something on 600 rows: above the majority class
    svm = units[1]
    assert svm["accuracy"] > svm["majority_accuracy"]
    # a second run resumes every unit instead of training again
    again = run_files(debfiles, settings, tmp_path, log=lines.append)
    assert again == units and sum("done before" in line for line in lines) == 2
    summary = summarise(units)
    assert summary["meta"]["best_baseline"] == "linear_svm"
    assert "snn_gap_macro_f1" in summary["meta"]
    table = format_summary(summary)
    assert "feature set meta" in table and "linear SVM" in table


def test_parallel_units_equal_serial_ones(debfiles, tmp_path: Path) -> None:
    settings = Settings(
        features=("meta",),
        folds=(1, 3),
        models=("linear_svm",),
        max_train=400,
        max_test=200,
        grid_rows=200,
    )
    serial = run_files(debfiles, settings, tmp_path / "serial", log=lambda _: None)
    parallel = run_files(debfiles, settings, tmp_path / "parallel", log=lambda _: None, jobs=2)
    drop = ("train_s", "predict_us_per_record")
    strip = [[{k: v for k, v in u.items() if k not in drop} for u in r] for r in (serial, parallel)]
    assert strip[0] == strip[1]
    assert [u["fold"] for u in parallel] == [1, 3]


def test_settings_refuse_unknown_names() -> None:
    with pytest.raises(ValueError, match="unknown model"):
        Settings(models=("snn", "forest"))
    with pytest.raises(ValueError, match="feature set"):
        Settings(features=("everything",))
    with pytest.raises(ValueError, match="folds"):
        Settings(folds=(5,))


def test_scan_train_predict_round_trip(debfiles, tmp_path: Path, capsys) -> None:
    tree = _tree(tmp_path / "tree")
    table = tmp_path / "scan.csv.gz"
    assert main(["files", "scan", str(tree), "--out", str(table), "--quiet"]) == 0
    rows = list(iter_rows(table))
    assert sorted(Path(r["path"]).name for r in rows) == ["a.py", "b.c", "doc.txt", "z.gz"]
    records = records_from_rows(rows)
    assert set(records[0]) == set(SCAN_FEATURES)

    model_path = tmp_path / "model.pt"
    code = main(
        [
            "files",
            "train",
            str(debfiles.source),
            "--out",
            str(model_path),
            "--max-rows",
            "800",
            "--epochs",
            "1",
        ]
    )
    assert code == 0 and model_path.is_file()
    model = load_model(model_path)
    assert list(model.encoder_.schema) == list(SCAN_FEATURES)

    predictions = tmp_path / "pred.csv"
    assert main(["files", "predict", str(model_path), str(tree), "--out", str(predictions)]) == 0
    with predictions.open(newline="") as fh:
        written = list(csv.DictReader(fh))
    assert len(written) == 4
    assert {r["kind"] for r in written} == {"python_source", "c_source", "text", "compressed"}
    # the command's predictions are the reloaded model's on the same records
    by_path = {r["path"]: r["predicted"] for r in written}
    direct = model.predict(records)
    assert [by_path[r["path"]] for r in rows] == [str(p) for p in direct]
    out = capsys.readouterr().out
    assert "agreement with the magic-byte kind" in out


def test_tools_report_bad_input(tmp_path: Path, capsys) -> None:
    assert main(["files", "scan", str(tmp_path / "nope"), "--out", str(tmp_path / "x")]) == 2
    bad = tmp_path / "bad.csv"
    bad.write_text("path,size\n/a,1\n")
    assert main(["files", "train", str(bad), "--out", str(tmp_path / "m.pt")]) == 2
    assert "lacks the column" in capsys.readouterr().out
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a model")
    assert main(["files", "predict", str(junk), str(tmp_path)]) == 2
    assert "not a readable spikeforge model" in capsys.readouterr().out
    with pytest.raises(TableError, match="cannot read"):
        list(iter_rows(tmp_path / "missing.csv.gz"))
    corrupt = tmp_path / "c.csv.gz"
    corrupt.write_bytes(gzip.compress(b"path,kind\n/a,text\n")[:-12])
    with pytest.raises(TableError, match="corrupt"):
        list(iter_rows(corrupt))


def test_reproduce_files_command_quick_help() -> None:
    with pytest.raises(SystemExit):
        main(["reproduce", "files", "--models", "snn,forest"])
    assert json.dumps(Settings().__dict__, default=list)  # settings are JSON-ready
