"""``spikeforge reproduce universal`` end to end on tiny SNN settings: the report's table is
verified (counts equal formulas, no mismatches), the circuit reaches the Bayes accuracy, the
SNN units resume."""

from __future__ import annotations

import json

import pytest

from spikeforge.cli import main
from spikeforge.experiments.universal import command, markov
from spikeforge.experiments.universal.markov import MarkovSettings


def test_reproduce_universal_writes_a_verified_report_and_resumes(tmp_path, monkeypatch) -> None:
    out = tmp_path / "universal"
    settings = MarkovSettings(steps=20, eval_every=10, seeds=(0,), length=6)
    report = command.reproduce_universal(out, settings, log=lambda _: None)
    saved = json.loads((out / "universal.json").read_text())
    assert saved["constructions"] == json.loads(json.dumps(report["constructions"]))
    assert (out / "universal-neurons.png").read_bytes().startswith(b"\x89PNG")
    assert "| parity of 4 steps DNF | 1 | 3 |" in (out / "tables.md").read_text()
    for row in saved["constructions"]:
        assert row["counts_match_formula"], row["name"]
        assert row["check"]["mismatches"] == 0 and row["check"]["compared"] > 0
        assert row["check"]["module_mismatches"] == 0
    for kind in saved["random_tables"].values():
        assert kind["mismatches"] == 0 and kind["counts_match_formula"] == kind["tables"]
        assert kind["module_mismatches"] == 0
    by_name = {r["name"]: r["measured"] for r in saved["constructions"]}
    assert by_name["majority (>= 3 of 5) DNF"] == {"neurons": 21, "synapses": 100, "biases": 16}
    for r in saved["markov"]:
        assert r["circuit"]["corrected"]["accuracy"] == pytest.approx(r["bayes_accuracy"])
        assert r["circuit"]["corrected"]["decisions_differing_from_bayes"] == 0
        assert r["snn"][0]["spiking_neurons"] >= r["circuit"]["corrected"]["neurons"]
        assert 0.0 <= r["snn"][0]["best_accuracy"] <= r["bayes_accuracy"] + 1e-9
    for row in saved["scaling"]:
        assert row["parity_thresh"]["neurons"] == 2 * row["window"]
        assert row["parity_dnf"]["neurons"] == row["parity_dnf"]["formula_neurons"]

    def no_training(*args, **kwargs):
        raise AssertionError("finished units must be resumed, not retrained")

    monkeypatch.setattr(command, "train_snn", no_training)
    # the table and the plot were checked above; the rerun only needs to show the resume
    rows, scaling = command.construction_rows, command.scaling
    monkeypatch.setattr(command, "construction_rows", lambda: rows()[:1])
    monkeypatch.setattr(command, "random_tables", lambda: saved["random_tables"])
    monkeypatch.setattr(command, "scaling", lambda: scaling(max_window=3))
    again = command.reproduce_universal(out, settings, log=lambda _: None)
    assert again["markov"][0]["snn"] == saved["markov"][0]["snn"]
    assert markov.train_snn is not no_training


def test_reproduce_universal_rejects_a_too_long_length(capsys) -> None:
    assert main(["reproduce", "universal", "--length", "30", "--out", "unused"]) == 2
    assert "--length 30" in capsys.readouterr().out
