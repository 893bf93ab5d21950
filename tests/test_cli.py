"""The command line: demo and reproduction end to end on small settings, and clear errors."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from spikeforge import cli
from spikeforge.cli import build_parser, main
from spikeforge.data import load_dataset, resolve_data_dir
from spikeforge.experiments.registry import GROUPS, Command, collect_commands
from spikeforge.io import code_version
from spikeforge.metrics import accuracy
from spikeforge.ttfs import load


def test_demo_writes_a_report(tmp_path, capsys) -> None:
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--epochs", "3", "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "b1" in printed and "alpha1" in printed and "SNN acc" in printed
    report = json.loads((out / "metrics.json").read_text())
    for neuron in ("b1", "alpha1"):
        m = report["neurons"][neuron]
        assert m["agreement"] == 1.0 and m["event_agreement"] == 1.0
        assert m["snn_accuracy"] == m["ann_accuracy"] == m["event_accuracy"]
        assert m["max_error"] < 1e-9 and m["event_max_error"] < 1e-9
        assert m["window_violations"] == 0 and m["early_spikes"] == 0
        assert 0 < m["spikes_per_neuron"] < 1
    for name in report["plots"]:
        assert (out / name).read_bytes().startswith(b"\x89PNG")
    # the mapped networks are saved: loaded, they reproduce the reported accuracy
    digits = load_dataset("digits")
    for neuron in ("b1", "alpha1"):
        net = load(out / report["neurons"][neuron]["network"])
        assert net.neuron == neuron
        logits = net(digits.x_test.double())
        assert accuracy(logits, digits.y_test) == report["neurons"][neuron]["snn_accuracy"]
    assert report["environment"]["code_versions"] == [code_version()]
    # a second run resumes from the finished checkpoint instead of training again
    assert main(["demo", "--out", str(out), "--epochs", "3", "--quiet", "--no-event"]) == 0


def test_reproduce_on_a_small_mnist_subset(tmp_path) -> None:
    try:
        resolve_data_dir()
    except FileNotFoundError as exc:
        pytest.skip(f"MNIST not available: {exc}")
    out = tmp_path / "mnist"
    args = [
        "reproduce",
        "ttfs-mapping",
        "--dataset",
        "mnist",
        "--arch",
        "lenet5",
        "--epochs",
        "1",
        "--train-samples",
        "512",
        "--test-samples",
        "64",
        "--out",
        str(out),
        "--quiet",
    ]
    assert main(args) == 0
    report = json.loads((out / "metrics.json").read_text())
    assert report["neurons"]["b1"]["agreement"] == 1.0
    assert report["neurons"]["alpha1"]["event_agreement"] == 1.0


def test_missing_data_gives_a_clear_error(tmp_path, capsys) -> None:
    args = ["reproduce", "ttfs-mapping", "--data-dir", str(tmp_path / "nowhere"), "--quiet"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "nowhere" in err and "SPIKEFORGE_DATA" in err


def test_reproduce_ttfs_train_and_gradients_end_to_end(tmp_path, capsys) -> None:
    try:
        resolve_data_dir()
    except FileNotFoundError as exc:
        pytest.skip(f"MNIST not available: {exc}")
    out = tmp_path / "train"
    args = ["reproduce", "ttfs-train", "--arch", "fc2", "--mode", "both", "--epochs", "1"]
    args += ["--relu-epochs", "1", "--train-samples", "256", "--test-samples", "64"]
    args += ["--event-samples", "16", "--batch-size", "32", "--out", str(out), "--quiet"]
    assert main(args) == 0
    assert "finetune" in capsys.readouterr().out
    scratch = json.loads((out / "scratch.json").read_text())
    assert scratch["snn"]["snn_accuracy"] == scratch["relu"]["accuracy"]
    finetuned = json.loads((out / "finetune.json").read_text())["finetuned"]
    assert finetuned["event_agreement"] == 1.0
    mnist = load_dataset("mnist").subset(256, 64)
    for name, acc in (
        (scratch["network"], scratch["snn"]["snn_accuracy"]),
        (finetuned["network"], finetuned["snn_accuracy"]),
    ):
        assert accuracy(load(out / name)(mnist.x_test.double()), mnist.y_test) == acc
    grads = tmp_path / "gradients"
    args = ["reproduce", "ttfs-gradients", "--dataset", "digits", "--depths", "2", "--width", "16"]
    args += ["--steps", "10", "--train-samples", "200", "--test-samples", "50"]
    assert main([*args, "--out", str(grads), "--quiet"]) == 0
    assert "alpha1" in capsys.readouterr().out
    depth = json.loads((grads / "gradients.json").read_text())["depths"]["2"]
    trained = {n for n in ("b1", "alpha1_smart", "alpha1_naive") if n in depth["summary"]}
    alive = {n for n in trained if depth["summary"][n]["diverged_at"] is None}
    assert set(depth["networks"]) == alive and "b1" in alive  # diverged runs are not saved
    saved = depth["networks"]
    assert load(grads / saved["b1"]).neuron == "b1"


def test_ttfs_hardware_rejects_a_bad_bit_width(tmp_path, capsys) -> None:
    try:
        resolve_data_dir()
    except FileNotFoundError as exc:
        pytest.skip(f"MNIST not available: {exc}")
    with pytest.raises(ValueError, match="bits"):
        main(["reproduce", "ttfs-hardware", "--time-bits", "0", "--out", str(tmp_path), "--quiet"])


# --- the command registry -----------------------------------------------------------------------

REFERENCE = Path(__file__).with_name("cli_reference.json")


def _parser_table(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> dict:
    """Every command path of ``parser`` with its options (as in ``cli_reference.json``)."""
    table: dict[str, list[dict]] = {" ".join(path): []}
    for a in parser._actions:
        if isinstance(a, argparse._SubParsersAction):
            for name, sub in a.choices.items():
                table |= _parser_table(sub, (*path, name))
        elif not isinstance(a, argparse._HelpAction):
            table[" ".join(path)].append(
                {
                    "options": list(a.option_strings),
                    "dest": a.dest,
                    "default": a.default,
                    "nargs": a.nargs,
                    "choices": list(a.choices) if a.choices else None,
                    "required": a.required,
                    "help": a.help,
                    "metavar": list(a.metavar) if isinstance(a.metavar, tuple) else a.metavar,
                    "type": a.type.__name__.lstrip("_") if a.type else None,
                    "action": type(a).__name__,
                }
            )
    return table


def test_every_command_and_flag_of_the_reference_is_kept() -> None:
    """``cli_reference.json`` is the parser as it was before the registry (every command, flag,
    default, choice and help text); the registry may only add ``--list`` to the groups."""
    reference = json.loads(REFERENCE.read_text())
    now = _parser_table(build_parser())
    assert set(reference) <= set(now)  # commands added since (e.g. reproduce conversion) are fine
    for path, options in reference.items():
        added = [o for o in now[path] if o not in options]
        assert all(o in now[path] for o in options), path
        assert [o["options"] for o in added] == ([["--list"]] if path in GROUPS else []), path


def test_cli_module_only_collects() -> None:
    source = Path(cli.__file__).read_text()
    assert len(source.splitlines()) < 150
    for name in ("ttfs", "reproduce imp", "multistep", "--epochs"):  # no command of its own
        assert name not in source


def test_reproduce_list_prints_every_reproduction_with_its_run_time(capsys) -> None:
    assert main(["reproduce", "--list"]) == 0
    printed = capsys.readouterr().out
    reproductions = [c for c in collect_commands() if c.group == "reproduce"]
    assert {c.name for c in reproductions} >= {
        "ttfs-mapping",
        "ttfs-train",
        "ttfs-gradients",
        "ttfs-hardware",
        "imp",
    }
    for c in reproductions:
        assert c.runtime and c.name in printed and c.runtime in printed


def test_a_group_without_a_command_is_an_error(capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["reproduce"])
    assert exc.value.code == 2
    assert "--list" in capsys.readouterr().err


def test_a_declared_command_becomes_a_subcommand_without_cli_changes(capsys) -> None:
    seen = []

    def add(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--size", type=int, default=3)

    def run(args: argparse.Namespace) -> int:
        seen.append(args.size)
        return 0

    extra = Command("toy", "a toy reproduction", add, run, group="reproduce", runtime="1 s")
    args = build_parser([*collect_commands(), extra]).parse_args(
        ["reproduce", "toy", "--size", "5"]
    )
    assert args.run(args) == 0 and seen == [5]
    with pytest.raises(ValueError, match="unknown group"):
        Command("x", "x", add, run, group="nope")


def test_two_experiments_cannot_declare_the_same_command(monkeypatch) -> None:
    import spikeforge.experiments.ttfs_hardware as hardware

    clash = (*hardware.COMMANDS, hardware.COMMANDS[0])
    monkeypatch.setattr(hardware, "COMMANDS", clash)
    with pytest.raises(ValueError, match="reproduce ttfs-hardware"):
        collect_commands()
