"""The ``spikeforge reproduce files`` subcommand."""

from __future__ import annotations

import argparse
import time
from dataclasses import asdict, replace
from pathlib import Path

from spikeforge.experiments.arguments import add_jobs_arg, comma_list, positive_int
from spikeforge.experiments.files.report import format_summary, plot_confusion, summarise
from spikeforge.experiments.files.runs import MODELS, Settings, run_files
from spikeforge.experiments.registry import Command
from spikeforge.experiments.report import ReportFolder
from spikeforge.files.debfiles import FEATURE_SETS, load_debfiles

__all__ = ["COMMANDS", "QUICK", "reproduce_files", "settings_from_args"]

QUICK = {"folds": (0,), "max_train": 2000, "max_test": 1000, "snn_epochs": 3, "rbf_rows": 2000}
"""``--quick``: a smoke run of a minute or two (not a result)."""


def _folds(text: str) -> tuple[int, ...]:
    try:
        folds = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected folds like 0,1,2, got {text!r}") from None
    if not folds or len(set(folds)) != len(folds) or any(not 0 <= k < 5 for k in folds):
        raise argparse.ArgumentTypeError(f"expected distinct folds in 0..4, got {text!r}")
    return folds


def _arguments(parser: argparse.ArgumentParser) -> None:
    default = Settings()
    parser.add_argument("--data", default=None, help="debfiles.csv.gz (default: the data dir's)")
    parser.add_argument("--out", default="reports/files", help="report folder (reports/files)")
    parser.add_argument("--features", type=comma_list(list(FEATURE_SETS)), default=None)
    parser.add_argument("--folds", type=_folds, default=None, help="test folds (0,1,2,3,4)")
    parser.add_argument("--models", type=comma_list(MODELS), default=None, help=",".join(MODELS))
    parser.add_argument(
        "--snn-epochs", type=positive_int, default=None, help=f"({default.snn_epochs})"
    )
    parser.add_argument("--max-train", type=positive_int, default=None, help="rows per unit")
    parser.add_argument("--max-test", type=positive_int, default=None, help="rows per unit")
    parser.add_argument("--seed", type=int, default=0)
    add_jobs_arg(parser)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="tiny settings for a smoke run: "
        + ", ".join(f"{k.replace('_', '-')} {v}" for k, v in QUICK.items()),
    )


def settings_from_args(args: argparse.Namespace) -> Settings:
    """The :class:`Settings` an argument namespace asks for (``--quick`` first, explicit
    options over it)."""
    settings = replace(Settings(), **QUICK) if args.quick else Settings()
    explicit = {
        "features": tuple(args.features) if args.features else None,
        "folds": args.folds,
        "models": tuple(args.models) if args.models else None,
        "snn_epochs": args.snn_epochs,
        "max_train": args.max_train,
        "max_test": args.max_test,
    }
    return replace(settings, seed=args.seed, **{k: v for k, v in explicit.items() if v})


def reproduce_files(
    settings: Settings, out: str | Path, data_path: str | None = None, jobs: int = 1
) -> str:
    """Run (or resume) every unit, then write ``files.json`` (settings, environment, units,
    summary), ``tables.md`` and ``confusion.png``; returns the tables."""
    data = load_debfiles(data_path)
    start = time.perf_counter()
    units = run_files(data, settings, out, jobs=jobs)
    summary = summarise(units)
    folder = ReportFolder(out)
    tables = format_summary(summary)
    folder.write_json(
        "files.json",
        {
            "settings": asdict(settings),
            "environment": folder.environment(jobs=jobs),
            "session_seconds": time.perf_counter() - start,
            "summary": summary,
            "units": units,
        },
    )
    folder.write_text("tables.md", tables + "\n")
    features = "full" if "full" in summary else next(iter(summary))
    shown = [m for m in ("snn", "stdp") if m in summary[features]["models"]]
    if "best_baseline" in summary[features]:
        shown.append(summary[features]["best_baseline"])
    if shown:
        folder.write_png("confusion.png", plot_confusion(summary, features, shown))
    return tables


def _run_command(args: argparse.Namespace) -> int:
    try:
        settings = settings_from_args(args)
    except ValueError as exc:
        print(f"spikeforge: error: {exc}")
        return 2
    print(reproduce_files(settings, args.out, args.data, jobs=args.jobs))
    print(f"report written to {args.out}/ (files.json, tables.md, confusion.png, units/)")
    return 0


COMMANDS = (
    Command(
        "files",
        "file kinds from metadata (debfiles): spiking classifiers against logistic regression "
        "and SVMs, 5 package-grouped folds",
        _arguments,
        _run_command,
        group="reproduce",
        runtime="about 24 min with --jobs 2 (measured 1,417 s, shared machine)",
    ),
)
