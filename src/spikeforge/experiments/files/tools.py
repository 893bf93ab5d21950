"""``spikeforge files scan | train | predict``: scan a tree, train a spiking file classifier on a
metadata table, apply a saved one to a directory."""

from __future__ import annotations

import argparse
import csv
import io
import itertools
import sys
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch

from spikeforge.experiments.arguments import comma_list, positive_int
from spikeforge.experiments.files.runs import SPIKING, make_classifier
from spikeforge.experiments.registry import Command
from spikeforge.files.debfiles import KEY_TYPE_OF
from spikeforge.files.kinds import MERGED
from spikeforge.files.persist import ModelFileError, load_model, save_model
from spikeforge.files.scan import compare_throughput, iter_scan, scan
from spikeforge.files.supervised import SNNClassifier
from spikeforge.files.table import (
    SCAN_FEATURES,
    TableError,
    iter_rows,
    labels_from_rows,
    records_from_rows,
    scan_schema,
)
from spikeforge.io import atomic_write

__all__ = ["COMMANDS"]

_BATCH = 4096  # records predicted at a time (bounded memory on any tree)


# -- scan ---------------------------------------------------------------------------------


def _scan_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("root", help="directory tree to scan (symlinks are never followed)")
    parser.add_argument("--out", required=True, help="output table (.csv.gz)")
    parser.add_argument("--max-entries", type=positive_int, default=None)
    parser.add_argument(
        "--compare",
        action="store_true",
        help="also time a plain os.walk + lstat pass over the tree and print both rates",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def _scan(args: argparse.Namespace) -> int:
    if not Path(args.root).is_dir():
        print(f"spikeforge: error: {args.root} is not a directory")
        return 2
    result = scan(args.root, args.out, progress=not args.quiet, max_entries=args.max_entries)
    print(result.summary())
    print(f"entries by type: {dict(sorted(result.types.items()))}")
    print(f"written to {result.out}")
    if args.compare:
        rates = compare_throughput(args.root, max_entries=args.max_entries)
        print(
            f"throughput: scan {rates['scan_files_per_s']:,.0f} files/s, os.walk + lstat "
            f"{rates['walk_lstat_files_per_s']:,.0f} files/s (ratio {rates['ratio']:.1f}x)"
        )
    return 0


# -- train --------------------------------------------------------------------------------


def _train_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("table", help="a `spikeforge files scan` output or debfiles.csv.gz")
    parser.add_argument("--out", required=True, help="model file to write")
    parser.add_argument("--model", choices=SPIKING, default="snn")
    parser.add_argument(
        "--features",
        type=comma_list(list(KEY_TYPE_OF)),
        default=None,
        help=f"feature keys (default: {','.join(SCAN_FEATURES)})",
    )
    parser.add_argument("--epochs", type=positive_int, default=None)
    parser.add_argument("--max-rows", type=positive_int, default=None, help="random subsample")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=positive_int, default=None, help="torch threads")


def _train(args: argparse.Namespace) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    features = tuple(args.features or SCAN_FEATURES)
    rows = list(iter_rows(args.table, required=(*features, "kind")))
    if args.max_rows and len(rows) > args.max_rows:
        keep = np.random.default_rng(args.seed).choice(len(rows), args.max_rows, replace=False)
        rows = [rows[i] for i in np.sort(keep)]
    if not rows:
        print(f"spikeforge: error: {args.table} holds no regular-file rows")
        return 2
    records, y = records_from_rows(rows, features), labels_from_rows(rows)
    groups = [r["package"] for r in rows] if "package" in rows[0] else None
    model = make_classifier(args.model, scan_schema(features), epochs=args.epochs, seed=args.seed)
    start = time.perf_counter()
    if isinstance(model, SNNClassifier):
        model.fit(records, y, groups=groups)
    else:
        model.fit(records, y)
    seconds = time.perf_counter() - start
    save_model(model, args.out)
    print(f"{args.model}: {len(rows)} files, {len(model.classes_)} kinds, fit {seconds:.1f} s")
    if isinstance(model, SNNClassifier) and model.history_ and "val_accuracy" in model.history_[0]:
        best = model.history_[model.best_epoch_ - 1]
        print(
            f"held-out validation (grouped when the table has packages): accuracy "
            f"{best['val_accuracy']:.3f}, macro-F1 {best['val_f1_macro']:.3f} "
            f"(epoch {model.best_epoch_} of {model.n_epochs_})"
        )
    print(f"model written to {args.out}")
    return 0


# -- predict ------------------------------------------------------------------------------


def _predict_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="model file written by `spikeforge files train`")
    parser.add_argument("target", help="a directory to scan, or a metadata table (.csv/.csv.gz)")
    parser.add_argument("--out", default=None, help="write path,predicted,kind rows here (CSV)")
    parser.add_argument("--max-entries", type=positive_int, default=None)


def _file_rows(target: str, max_entries: int | None) -> Iterator[dict[str, Any]]:
    if Path(target).is_dir():
        rows: Iterable[dict[str, Any]] = (
            r for r in iter_scan(target, max_entries=max_entries) if r["type"] == "file"
        )
    else:
        rows = itertools.islice(iter_rows(target), max_entries)
    yield from rows


def _write_predictions(model: Any, rows: Iterator[dict[str, Any]], text: IO[str]) -> Counter[str]:
    """Predict ``rows`` batch by batch, writing ``path,predicted,kind`` CSV lines to ``text``;
    returns the counts of predicted kinds plus ``"<agree>"`` and ``"<total>"``."""
    features = list(model.encoder_.schema)
    writer = csv.writer(text)
    writer.writerow(["path", "predicted", "kind"])
    counts: Counter[str] = Counter()
    while batch := list(itertools.islice(rows, _BATCH)):
        pred = model.predict(records_from_rows(batch, features))
        for row, p in zip(batch, pred, strict=True):
            kind = MERGED.get(str(row["kind"]), str(row["kind"]))
            writer.writerow([row["path"], p, kind])
            counts[str(p)] += 1
            counts["<agree>"] += int(str(p) == kind)
            counts["<total>"] += 1
    return counts


def _predict(args: argparse.Namespace) -> int:
    try:
        model = load_model(args.model)
    except (FileNotFoundError, ModelFileError) as exc:
        print(f"spikeforge: error: {exc}")
        return 2
    if not (Path(args.target).is_dir() or Path(args.target).is_file()):
        print(f"spikeforge: error: {args.target} is neither a directory nor a table file")
        return 2
    rows = _file_rows(args.target, args.max_entries)
    counts: Counter[str] = Counter()

    def write(fh: IO[bytes]) -> None:
        text = io.TextIOWrapper(fh, encoding="utf-8", errors="replace", newline="")
        counts.update(_write_predictions(model, rows, text))
        text.flush()
        text.detach()

    if args.out:
        atomic_write(args.out, write)
        print(f"predictions written to {args.out}")
    else:
        counts.update(_write_predictions(model, rows, sys.stdout))
    total, agree = counts.pop("<total>", 0), counts.pop("<agree>", 0)
    if total:
        print(
            f"{total} files: predicted kinds {dict(counts.most_common())}; agreement with "
            f"the magic-byte kind {agree / total:.3f}"
        )
    else:
        print("no regular files found")
    return 0


def _guard(run: Any) -> Any:
    def guarded(args: argparse.Namespace) -> int:
        try:
            return int(run(args))
        except TableError as exc:
            print(f"spikeforge: error: {exc}")
            return 2

    return guarded


COMMANDS = (
    Command(
        "scan",
        "scan a directory tree: metadata and magic-byte kind of every entry, to CSV.gz",
        _scan_arguments,
        _guard(_scan),
        group="files",
        runtime="about 20k files/s on a warm cache",
    ),
    Command(
        "train",
        "train a spiking file classifier on a scan output or debfiles, save it",
        _train_arguments,
        _guard(_train),
        group="files",
        runtime="1-2 min on debfiles (snn)",
    ),
    Command(
        "predict",
        "apply a saved file classifier to a directory (or table); agreement with magic bytes",
        _predict_arguments,
        _guard(_predict),
        group="files",
        runtime="seconds per 10k files",
    ),
)
