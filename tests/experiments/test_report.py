"""The shared report folder: atomic writes and the code versions behind resumed results."""

from __future__ import annotations

import json

import pytest

from spikeforge import io
from spikeforge.experiments import report as report_module
from spikeforge.experiments.report import PROVENANCE_FILE, ReportFolder


def test_code_version_names_the_commit_of_this_checkout() -> None:
    version = io.code_version()
    assert version.startswith(("git:", "spikeforge "))
    if version.startswith("git:"):
        commit = version[4:].split("+")[0]
        assert len(commit) == 40 and int(commit, 16) >= 0
    assert io.environment()["code_version"] == version


def test_a_fresh_folder_records_one_version_silently(tmp_path) -> None:
    warnings: list[str] = []
    folder = ReportFolder(tmp_path / "run", warn=warnings.append)
    assert warnings == [] and not folder.mixed
    assert folder.code_versions == [io.code_version()]
    folder.write_json("r.json", {"environment": folder.environment(extra=1)})
    saved = json.loads((tmp_path / "run" / "r.json").read_text())
    assert saved["environment"]["code_versions"] == [io.code_version()]
    assert saved["environment"]["extra"] == 1
    # reopening with the same code neither warns nor adds a version
    again = ReportFolder(tmp_path / "run", warn=warnings.append)
    assert warnings == [] and again.code_versions == [io.code_version()]


def test_resuming_with_other_code_is_warned_and_recorded(tmp_path, monkeypatch) -> None:
    ReportFolder(tmp_path).write_text("checkpoint.txt", "from version A")
    monkeypatch.setattr(report_module, "code_version", lambda: "git:" + "b" * 40)
    warnings: list[str] = []
    folder = ReportFolder(tmp_path, warn=warnings.append)
    assert folder.mixed and folder.code_versions == [io.code_version(), "git:" + "b" * 40]
    assert len(warnings) == 1 and "b" * 40 in warnings[0] and io.code_version() in warnings[0]
    record = json.loads((tmp_path / PROVENANCE_FILE).read_text())
    assert record["code_versions"] == folder.code_versions
    assert folder.environment()["code_versions"] == folder.code_versions


def test_a_folder_from_before_provenance_counts_as_unknown(tmp_path) -> None:
    (tmp_path / "relu_checkpoint.pt").write_bytes(b"old")
    warnings: list[str] = []
    folder = ReportFolder(tmp_path, warn=warnings.append)
    assert folder.code_versions[0].startswith("unknown") and folder.mixed and warnings


def test_a_corrupt_provenance_record_is_named(tmp_path) -> None:
    (tmp_path / PROVENANCE_FILE).write_text("{not json")
    with pytest.raises(ValueError, match=PROVENANCE_FILE):
        ReportFolder(tmp_path)


def test_plots_and_text_are_written_atomically(tmp_path) -> None:
    from spikeforge.viz import new_figure

    folder = ReportFolder(tmp_path)
    fig = new_figure((2.0, 2.0))
    fig.add_subplot().plot([0, 1], [1, 0])
    assert folder.write_png("p.png", fig).read_bytes().startswith(b"\x89PNG")
    assert folder.write_text("t.md", "| a |\n").read_text() == "| a |\n"
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
