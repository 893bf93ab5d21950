"""`spikeforge reproduce dwam --quick` and `spikeforge control train | run` on tiny settings."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from spikeforge.cli import main
from spikeforge.experiments.dwam.command import QUICK
from spikeforge.experiments.dwam.report import _smooth, bootstrap_ci, verdict
from spikeforge.experiments.dwam.runs import Settings, run_dwam


@pytest.fixture(scope="module")
def quick_report(tmp_path_factory, torch_one_thread) -> Path:
    out = tmp_path_factory.mktemp("dwam")
    assert main(["reproduce", "dwam", "--quick", "--jobs", "1", "--out", str(out)]) == 0
    return out


def test_quick_reproduction_writes_a_report_and_resumes(quick_report: Path) -> None:
    report = json.loads((quick_report / "dwam.json").read_text())
    rows = report["summary"]["pendulum"]["lif"]
    assert set(rows) == {"nominal", "weight-scale=0.6"}
    for row in rows.values():
        assert row["episodes"] == QUICK["episodes"] and row["hosts"] == 1
        lo, hi = row["difference_ci"]
        assert lo <= row["difference"] <= hi
        assert row["verdict"] in ("helps", "hurts", "none", "no detectable effect")
        for arm in ("control", "dwam"):
            assert {"fc1", "fc2", "return", "return_ci"} <= set(row[arm])
            assert 0.0 <= row[arm]["fc1"]["silent"] <= 1.0
        assert row["control"]["fc1"]["drift"] == 0.0  # the control arm never adapts
    assert report["chosen"]["pendulum"]["eta"] == QUICK["grid"][0][0]
    assert (quick_report / "tables.md").read_text().startswith("### pendulum, lif hosts")
    assert (quick_report / "transient-pendulum.png").stat().st_size > 0
    logs: list[str] = []
    settings = replace(Settings(), **QUICK)
    again = run_dwam(settings, quick_report, log=logs.append)
    assert all(("before" in line or "frozen" in line) for line in logs[:2])
    assert not any("return control" in line for line in logs)  # nothing re-evaluated
    assert set(again["units"]) == {
        "pendulum-lif-s0-nominal",
        "pendulum-lif-s0-weight-scale=0.6",
    }


def test_control_run_and_render(quick_report: Path, tmp_path: Path, capsys) -> None:
    host = quick_report / "hosts" / "pendulum-lif-s0.pt"
    gif = tmp_path / "episode.gif"
    args = ["control", "run", "--env", "pendulum", "--host", str(host), "--episodes", "2"]
    assert (
        main([*args, "--degrade", "weight-scale=0.6", "--window", "5", "--render", str(gif)]) == 0
    )
    printed = capsys.readouterr().out
    assert "no DWAM" in printed and "DWAM" in printed and "written to" in printed
    with Image.open(gif) as im:
        assert im.n_frames == 201  # the reset state and 200 steps
    assert main([*args, "--render", str(tmp_path / "x.avi")]) == 2
    assert "choose a .gif or .mp4" in capsys.readouterr().out
    assert main(["control", "run", "--env", "cartpole", "--host", str(host)]) == 2
    assert "is a pendulum host" in capsys.readouterr().out
    assert main(["control", "run", "--env", "pendulum", "--host", str(tmp_path / "no.pt")]) == 2
    assert "spikeforge control train" in capsys.readouterr().out
    assert main([*args, "--eta", "0"]) == 2
    assert "eta must be" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main([*args, "--degrade", "weight-scale=oops"])


def test_settings_refuse_tuning_on_a_test_condition() -> None:
    with pytest.raises(ValueError, match="leaks"):
        Settings(validation="weight-scale=0.6")
    with pytest.raises(ValueError, match="unknown task"):
        Settings(tasks=("mountaincar",))


def test_bootstrap_and_verdicts() -> None:
    rng = np.random.default_rng(0)
    up = rng.normal(5.0, 1.0, 60)
    lo, hi = bootstrap_ci(up)
    assert lo < up.mean() < hi and lo > 4.0 and hi < 6.0
    assert verdict(up, (lo, hi)) == "helps"
    assert verdict(-up, bootstrap_ci(-up)) == "hurts"
    mixed = rng.normal(0.0, 1.0, 60)
    assert verdict(mixed, bootstrap_ci(mixed)) == "no detectable effect"
    assert verdict(np.zeros(10), (0.0, 0.0)) == "none"
    np.testing.assert_allclose(_smooth([1, 2, 3, 4, 5, 6], 3), [1, 1.5, 2, 3, 4, 5])
