"""``spikeforge reproduce imp`` end to end on tiny settings, and its argument errors."""

from __future__ import annotations

import json

import pytest

from spikeforge.cli import build_parser, main
from spikeforge.data import resolve_data_dir
from spikeforge.experiments.imp.experiments import ALL_FASHION_ARMS, EXPERIMENTS, FASHION_ARMS
from spikeforge.experiments.imp.objectives import OBJECTIVE_NAMES


def test_cli_defaults_are_the_package_names() -> None:
    args = build_parser().parse_args(["reproduce", "imp"])
    assert args.experiments == list(EXPERIMENTS)
    assert args.losses == list(OBJECTIVE_NAMES)
    assert args.fashion_arms == list(FASHION_ARMS)
    assert set(FASHION_ARMS) <= set(ALL_FASHION_ARMS)


def test_reproduce_imp_tiny(tmp_path, capsys) -> None:
    experiments = "patterns,digits,convergence"
    try:
        resolve_data_dir()
        experiments += ",fashion"
    except FileNotFoundError:
        pass  # the other three need no data files
    out = tmp_path / "imp"
    args = ["reproduce", "imp", "--out", str(out), "--experiments", experiments, "--quiet"]
    args += ["--seeds", "1", "--losses", "sdt,lts", "--digits-epochs", "1", "--threads", "1"]
    args += ["--convergence-width", "16", "--convergence-epochs", "3"]
    args += ["--convergence-seeds", "1", "--convergence-samples", "64"]
    args += ["--fashion-train-samples", "64", "--fashion-test-samples", "32"]
    args += ["--fashion-epochs", "1", "--fashion-arms", "sdt,imp+lts"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "53 / 6" in printed and "108 / 21" in printed
    assert "Acceptance" in printed and "O[1]" in printed
    for name in experiments.split(","):
        report = json.loads((out / f"imp-{name}.json").read_text())
        assert "environment" in report
        for plot in report.get("plots", []):
            assert (out / plot).read_bytes().startswith(b"\x89PNG")
    digits = json.loads((out / "imp-digits.json").read_text())
    assert digits["config"]["epochs"] == 1 and digits["config"]["seeds"] == [0]
    assert list(digits["summary"]) == ["sdt", "lts", "imp+sdt", "imp+lts"]
    assert (out / "imp-tables.md").read_text().startswith("## Pattern mappings")


@pytest.mark.parametrize(
    "bad",
    [
        ["--experiments", "patterns,cifar"],
        ["--experiments", ""],
        ["--losses", "sdt,sdt"],
        ["--fashion-arms", "imp+tet"],
        ["--seeds", "0"],
        ["--fashion-neuron", "alif"],
    ],
)
def test_reproduce_imp_rejects_bad_arguments(bad: list[str], capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["reproduce", "imp", *bad])
    assert exc.value.code == 2
    assert "error" in capsys.readouterr().err
