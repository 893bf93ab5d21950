"""The ``spikeforge reproduce universal`` subcommand: the verified table of constructions, the
Markov classification (constructed circuit against a trained LIF SNN) and the scaling plot.

Writes ``universal.json``, ``tables.md`` and ``universal-neurons.png`` to ``--out``; finished
SNN trainings are kept in ``units/`` and resumed (:class:`~spikeforge.experiments.report.
ReportFolder` records the code versions behind them)."""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from spikeforge.experiments.arguments import positive_int
from spikeforge.experiments.registry import Command
from spikeforge.experiments.report import ReportFolder
from spikeforge.experiments.universal.constructions import (
    construction_rows,
    measure_row,
    random_tables,
)
from spikeforge.experiments.universal.markov import (
    MarkovSettings,
    make_task,
    run_circuit,
    settings_dict,
    train_snn,
)
from spikeforge.experiments.universal.scaling import plot_scaling, scaling
from spikeforge.universal.bounds import size_lower_bound, worst_case_size

__all__ = ["COMMANDS", "QUICK", "format_tables", "reproduce_universal"]

QUICK = {"steps": 200, "seeds": (0,), "length": 10}
"""``--quick``: a smoke run of seconds (not a result)."""
MEMORIES = (1, 2, 3)


def _markov(folder: ReportFolder, settings: MarkovSettings, log: Any) -> list[dict[str, Any]]:
    results = []
    for m in MEMORIES:
        task = make_task(m, settings.length, settings.source_seed)
        circuit = run_circuit(task)
        hidden = settings.hidden_factor * circuit["corrected"]["neurons"]
        snn = []
        for seed in settings.seeds:
            unit = folder.path / "units" / f"markov-m{m}-seed{seed}.json"
            key = settings_dict(settings) | {"memory": m, "seed": seed}
            if unit.exists():
                stored = json.loads(unit.read_text())
                if stored.get("settings") == key:
                    snn.append(stored["result"])
                    continue
            result = train_snn(task, hidden, settings, seed)
            folder.write_json(f"units/{unit.name}", {"settings": key, "result": result})
            log(
                f"m={m} seed {seed}: SNN best {result['best_accuracy']:.4f}, Bayes "
                f"{task.bayes_accuracy:.4f}, within 1 point at "
                f"{result['steps_to_within_1_point'] or 'never'} ({result['train_seconds']:.0f} s)"
            )
            snn.append(result)
        results.append(
            {
                "memory": m,
                "sources": {
                    "p_one_0": task.source0.p_one.tolist(),
                    "p_one_1": task.source1.p_one.tolist(),
                },
                "length": settings.length,
                "bayes_accuracy": task.bayes_accuracy,
                "circuit": circuit,
                "snn_hidden_per_layer": hidden,
                "snn": snn,
            }
        )
    return results


def _bounds() -> list[dict[str, int]]:
    return [
        {
            "window_bits": n_w,
            "lower_bound_size": size_lower_bound(n_w, 1),
            "worst_case_construction_size": worst_case_size(1, n_w - 1),
        }
        for n_w in (4, 8, 12, 16, 20, 24)
    ]


def format_tables(report: dict[str, Any]) -> str:
    """The constructions and classification tables as Markdown."""
    lines = [
        "| construction | d | m | P | n_w | D | neurons | synapses | biases | formula N/W/b | "
        "exhaustive: length, mismatches, module != simulator | size bound (worst case) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in report["constructions"]:
        m, f = r["measured"], r["formula"]
        lines.append(
            f"| {r['name']} | {r['inputs']} | {r['memory']} | {r['period'] or '-'} | "
            f"{r['window_bits']} | {r['latency']} | {m['neurons']} | {m['synapses']} | "
            f"{m['biases']} | {f['neurons']}/{f['synapses']}/{f['biases']} | "
            f"{r['check']['length']}, {r['check']['mismatches']}, "
            f"{r['check']['module_mismatches']} | "
            f"{r['lower_bound_size_worst_case']} |"
        )
    rt = report["random_tables"]
    lines.append("")
    for kind, s in rt.items():
        lines.append(
            f"* {kind}: {s['tables']} tables, {s['counts_match_formula']}/{s['tables']} counts "
            f"equal the formulas, {s['mismatches']} mismatches in {s['compared']:,} outputs, "
            f"module != simulator in {s['module_mismatches']} spikes"
        )
    lines += [
        "",
        "| n_w | counting lower bound on N + W (worst case) | DNF / complement N + W (worst "
        "case) |",
        "|---|---|---|",
    ]
    for b in report["counting_bound"]:
        lines.append(
            f"| {b['window_bits']} | {b['lower_bound_size']:,} | "
            f"{b['worst_case_construction_size']:,} |"
        )
    lines += [
        "",
        "| m | circuit N | Bayes acc. | circuit acc. | no v0 fix acc. | SNN neurons | "
        "SNN best / final acc. (per seed) | steps to within 1 point (per seed) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in report["markov"]:
        c = r["circuit"]
        best = ", ".join(f"{s['best_accuracy']:.4f} / {s['final_accuracy']:.4f}" for s in r["snn"])
        steps = ", ".join(str(s["steps_to_within_1_point"] or "never") for s in r["snn"])
        lines.append(
            f"| {r['memory']} | {c['corrected']['neurons']} | {r['bayes_accuracy']:.4f} | "
            f"{c['corrected']['accuracy']:.4f} | {c['uncorrected']['accuracy']:.4f} | "
            f"{r['snn'][0]['spiking_neurons']} | {best} | {steps} |"
        )
    return "\n".join(lines)


def reproduce_universal(
    out: str | Path, settings: MarkovSettings, log: Any = print
) -> dict[str, Any]:
    """Run every part and write the report; returns it."""
    torch.set_num_threads(1)
    start = time.perf_counter()
    folder = ReportFolder(out)
    rows = [measure_row(r) for r in construction_rows()]
    log(f"constructions: {len(rows)} rows verified ({time.perf_counter() - start:.0f} s)")
    tables = random_tables()
    scale = scaling()
    markov = _markov(folder, settings, log)
    report = {
        "settings": settings_dict(settings),
        "environment": folder.environment(),
        "semantics": (
            "spikeforge's synchronous LIF circuits (spec universal.md §1): unit synaptic delay, "
            "fire at H >= theta, hard reset to 0, zero padding; constructions and counts are "
            "spikeforge's own, not the theorems of Hundrieser et al."
        ),
        "constructions": rows,
        "random_tables": {
            k: {kk: vv for kk, vv in v.items() if kk != "items"} for k, v in tables.items()
        },
        "counting_bound": _bounds(),
        "scaling": scale,
        "markov": markov,
        "session_seconds": time.perf_counter() - start,
    }
    folder.write_json("universal.json", report)
    folder.write_text("tables.md", format_tables(report) + "\n")
    folder.write_png("universal-neurons.png", plot_scaling(scale))
    return report


def _arguments(parser: argparse.ArgumentParser) -> None:
    default = MarkovSettings()
    parser.add_argument("--out", default="reports/universal", help="report folder")
    parser.add_argument("--steps", type=positive_int, default=None, help=f"({default.steps})")
    parser.add_argument("--length", type=positive_int, default=None, help=f"({default.length})")
    parser.add_argument("--seeds", type=positive_int, default=None, help="SNN seeds (3)")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="tiny SNN settings for a smoke run: steps 200, one seed, length 10",
    )


def settings_from_args(args: argparse.Namespace) -> MarkovSettings:
    """``--quick`` first, explicit options over it."""
    settings = replace(MarkovSettings(), **QUICK) if args.quick else MarkovSettings()
    if args.steps:
        settings = replace(settings, steps=args.steps)
    if args.length:
        if args.length > 18:
            raise ValueError(f"--length {args.length}: at most 18 (2**length sequences)")
        settings = replace(settings, length=args.length)
    if args.seeds:
        settings = replace(settings, seeds=tuple(range(args.seeds)))
    return settings


def _run_command(args: argparse.Namespace) -> int:
    try:
        settings = settings_from_args(args)
    except ValueError as exc:
        print(f"spikeforge: error: {exc}")
        return 2
    report = reproduce_universal(args.out, settings)
    print(format_tables(report))
    print(f"report written to {args.out}/ (universal.json, tables.md, universal-neurons.png)")
    return 0


COMMANDS = (
    Command(
        "universal",
        "spike-train functions as synchronous LIF circuits: verified constructions with exact "
        "counts, Markov classification against a trained LIF SNN, neurons vs window size",
        _arguments,
        _run_command,
        group="reproduce",
        runtime="about 3 min (2 cores, shared machine)",
    ),
)
