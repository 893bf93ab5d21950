"""The debfiles reproduction (spec ``file-classification.md`` §3.12-3.13, §4.8): :func:`run_files`.

One *unit* = (feature set, test fold, model): train on the other four package-grouped folds,
test on the held-out one. Each finished unit is written to ``units/<features>-fold<k>-<model>.json``
in the report folder and skipped when the folder already holds it with the same settings, so an
interrupted run resumes where it stopped. Models:

- ``snn``: :class:`~spikeforge.files.SNNClassifier` (supervised BPTT on the van Rossum
  distance, early stopping on a package-grouped validation split, balanced class weights);
- ``snn-memristive``: the same, every weight update through differential pairs of memristive
  devices (:class:`~spikeforge.files.MemristiveSynapse`, 32 levels, in-situ);
- ``stdp``: :class:`~spikeforge.files.STDPClassifier` (unsupervised STDP, logistic readout on the
  output spike counts);
- ``logistic``, ``linear_svm``, ``rbf_svm``: :func:`~spikeforge.files.baselines.fit_baseline`
  on one-hot / multi-hot / standardised features of the same records (``C`` by inner grouped CV;
  the RBF SVM on a 10,000-row subsample);
- ``raster_logistic`` (diagnostic, not in the default list): the same logistic regression on the
  flattened input spike raster the spiking models see.

Every spiking model sees the records through the same :class:`~spikeforge.encoding.KeyValueEncoder`
(T = 64, M = 16, tile bins fitted on the training folds only).
"""

from __future__ import annotations

import json
import multiprocessing
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, recall_score

from spikeforge.encoding import KeyValueEncoder
from spikeforge.experiments.report import ReportFolder
from spikeforge.files.baselines import BASELINES, SpikeRasterVectorizer, fit_baseline
from spikeforge.files.debfiles import CLASSES, FEATURE_SETS, Debfiles
from spikeforge.files.memristive import MemristiveSynapse
from spikeforge.files.stdp import STDPClassifier
from spikeforge.files.supervised import SNNClassifier

__all__ = [
    "DIAGNOSTICS",
    "MODELS",
    "SPIKING",
    "Settings",
    "make_classifier",
    "pending_units",
    "run_files",
    "run_unit",
    "unit_name",
]

SPIKING = ("snn", "snn-memristive", "stdp")
DIAGNOSTICS = ("raster_logistic",)
"""Not run by default: ``raster_logistic`` = logistic regression on the flattened input spike
raster (:class:`~spikeforge.files.baselines.SpikeRasterVectorizer`), how much of the label the
spike encoding itself keeps."""
MODELS = (*SPIKING, *BASELINES, *DIAGNOSTICS)


@dataclass(frozen=True)
class Settings:
    """What :func:`run_files` runs. ``max_train`` / ``max_test`` subsample (uniformly, seeded)
    the training and test rows of every unit (``None``: all of them)."""

    features: tuple[str, ...] = ("meta", "full")
    folds: tuple[int, ...] = (0, 1, 2, 3, 4)
    models: tuple[str, ...] = (*SPIKING, *BASELINES)
    n_steps: int = 64
    snn_epochs: int = 20
    snn_lr: float = 3e-3
    snn_patience: int = 4
    stdp_epochs: int = 1
    stdp_train_records: int | None = 10_000
    rbf_rows: int = 10_000
    grid_rows: int = 6_000
    max_train: int | None = None
    max_test: int | None = None
    memristive_features: tuple[str, ...] = ("full",)
    spike_count_records: int = 2000
    seed: int = 0

    def __post_init__(self) -> None:
        unknown = [m for m in self.models if m not in MODELS]
        if unknown:
            raise ValueError(f"unknown model(s) {unknown}; choose from {', '.join(MODELS)}")
        bad = [f for f in self.features if f not in FEATURE_SETS]
        if bad:
            raise ValueError(f"unknown feature set(s) {bad}; choose from {list(FEATURE_SETS)}")
        if not self.folds or any(not 0 <= k < 5 for k in self.folds):
            raise ValueError(f"folds must be in 0..4, got {self.folds}")


def unit_name(features: str, fold: int, model: str) -> str:
    """``<features>-fold<k>-<model>``, the unit's file stem."""
    return f"{features}-fold{fold}-{model}"


def _subsample(index: np.ndarray, limit: int | None, rng: np.random.Generator) -> np.ndarray:
    if limit is None or index.size <= limit:
        return index
    return np.sort(rng.choice(index, size=limit, replace=False))


def make_classifier(
    model: str,
    schema: dict[str, str],
    *,
    epochs: int | None = None,
    lr: float = 3e-3,
    patience: int = 4,
    n_steps: int = 64,
    stdp_train_records: int | None = None,
    seed: int = 0,
) -> SNNClassifier | STDPClassifier:
    """The spiking classifier ``model`` (one of :data:`SPIKING`) on records of ``schema``:
    ``snn`` (balanced class weights, ``epochs`` at most, default 15), ``snn-memristive`` (the
    same through differential pairs of 32-level devices, mixed-precision programming: in-situ
    rounding of Adam's small steps would leave the devices unprogrammed) or ``stdp`` (logistic
    readout, ``epochs`` default 1, trained on at most ``stdp_train_records`` records). ``lr``
    (Adam) and ``patience`` (early stopping) apply to the supervised SNNs."""
    if model not in SPIKING:
        raise ValueError(f"unknown spiking model {model!r}; choose one of {', '.join(SPIKING)}")
    encoder = KeyValueEncoder(schema, n_steps=n_steps, nan="missing")
    if model == "stdp":
        return STDPClassifier(
            encoder=encoder,
            epochs=epochs or 1,
            readout="logistic",
            max_train_records=stdp_train_records,
            random_state=seed,
        )
    synapse = (
        MemristiveSynapse(n_levels=32, w_scale=0.5, mode="mixed_precision")
        if model == "snn-memristive"
        else None
    )
    return SNNClassifier(
        encoder=encoder,
        max_epochs=epochs or 20,
        lr=lr,
        patience=patience,
        class_weight="balanced",
        synapse=synapse,
        random_state=seed,
    )


def _metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, Any]:
    labels = list(range(len(CLASSES)))
    present = sorted(set(y_true.tolist()))
    recall = recall_score(y_true, y_pred, labels=present, average=None, zero_division=0)
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, labels=present, average="macro")),
        "recall": {CLASSES[c]: float(r) for c, r in zip(present, recall, strict=True)},
        "confusion": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
        "majority_accuracy": float(np.bincount(y_true).max() / y_true.size),
    }


def run_unit(
    data: Debfiles, features: str, fold: int, model: str, settings: Settings
) -> dict[str, Any]:
    """Train ``model`` on every fold but ``fold`` and test on ``fold``; metrics and timings."""
    rng = np.random.default_rng(settings.seed + fold)
    train_idx, test_idx = data.split(fold)
    train_idx = _subsample(train_idx, settings.max_train, rng)
    test_idx = _subsample(test_idx, settings.max_test, rng)
    y = data.y
    train = data.records(features, index=train_idx)
    test = data.records(features, index=test_idx)
    groups = data.package[train_idx]
    schema = data.schema(features)
    extra: dict[str, Any] = {}
    start = time.perf_counter()
    if model in BASELINES or model in DIAGNOSTICS:
        raster = model == "raster_logistic"
        vectorizer = (
            SpikeRasterVectorizer(KeyValueEncoder(schema, n_steps=settings.n_steps, nan="missing"))
            if raster
            else None
        )
        fit = fit_baseline(
            "logistic" if raster else model,
            train,
            y[train_idx],
            groups,
            schema,
            max_rows=settings.rbf_rows if model == "rbf_svm" else None,
            grid_rows=settings.grid_rows,
            random_state=settings.seed,
            vectorizer=vectorizer,
        )
        estimator: Any = fit.model
        extra = {"C": fit.C, "cv_macro_f1": {str(c): s for c, s in fit.cv_scores.items()}}
        extra["train_rows_used"] = fit.rows
    else:
        estimator = make_classifier(
            model,
            schema,
            epochs=settings.stdp_epochs if model == "stdp" else settings.snn_epochs,
            lr=settings.snn_lr,
            patience=settings.snn_patience,
            n_steps=settings.n_steps,
            stdp_train_records=settings.stdp_train_records,
            seed=settings.seed,
        )
        if model == "stdp":
            estimator.fit(train, y[train_idx])
            extra = {"train_spikes_per_record": estimator.train_spikes_per_record_}
        else:
            estimator.fit(train, y[train_idx], groups=groups)
            extra = {"epochs": estimator.n_epochs_, "best_epoch": estimator.best_epoch_}
    train_s = time.perf_counter() - start
    start = time.perf_counter()
    pred = np.asarray(estimator.predict(test))
    predict_s = time.perf_counter() - start
    if isinstance(estimator, SNNClassifier):
        extra["spikes_per_record"] = estimator.spike_counts(test[: settings.spike_count_records])
    return {
        "features": features,
        "fold": fold,
        "model": model,
        "n_train": int(train_idx.size),
        "n_test": int(test_idx.size),
        "train_s": train_s,
        "predict_us_per_record": 1e6 * predict_s / max(test_idx.size, 1),
        **_metrics(y[test_idx], pred),
        **extra,
    }


def _worker_unit(
    data: Debfiles, features: str, fold: int, model: str, settings: Settings
) -> dict[str, Any]:
    """One unit in a worker process, with one torch thread."""
    torch.set_num_threads(1)
    torch.manual_seed(settings.seed)
    return run_unit(data, features, fold, model, settings)


def pending_units(settings: Settings) -> list[tuple[str, int, str]]:
    """``(features, fold, model)`` of every unit ``settings`` asks for, in run order (the
    memristive SNN only on :attr:`Settings.memristive_features`)."""
    return [
        (features, fold, model)
        for features in settings.features
        for fold in settings.folds
        for model in settings.models
        if model != "snn-memristive" or features in settings.memristive_features
    ]


def run_files(
    data: Debfiles,
    settings: Settings,
    out: str | Path,
    log: Callable[[str], None] = print,
    jobs: int = 1,
) -> list[dict[str, Any]]:
    """Every unit of ``settings`` (resuming from ``out``); returns the unit results in the
    order of :func:`pending_units`. ``jobs > 1`` runs units in that many worker processes with
    one torch thread each (the baselines are single-threaded: two workers use two cores where
    one process with two threads leaves one idle for half the run)."""
    folder = ReportFolder(out)
    units_dir = Path(out) / "units"
    config = json.loads(json.dumps(_unit_settings(asdict(settings))))  # tuples -> lists
    results: dict[str, dict[str, Any]] = {}
    todo = []
    for unit in pending_units(settings):
        name = unit_name(*unit)
        path = units_dir / f"{name}.json"
        if path.is_file():
            saved = json.loads(path.read_text())
            if saved.get("settings") == config:
                results[name] = saved
                log(f"{name}: done before (macro-F1 {saved['macro_f1']:.3f})")
                continue
        todo.append(unit)

    def finish(unit: tuple[str, int, str], result: dict[str, Any]) -> None:
        name = unit_name(*unit)
        result = json.loads(json.dumps({**result, "settings": config}))  # as resumed later
        folder.write_json(f"units/{name}.json", result)
        results[name] = result
        log(
            f"{name}: accuracy {result['accuracy']:.3f}, macro-F1 {result['macro_f1']:.3f}, "
            f"train {result['train_s']:.1f} s"
        )

    if jobs > 1 and len(todo) > 1:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(jobs, mp_context=context) as pool:
            futures = {pool.submit(_worker_unit, data, *unit, settings): unit for unit in todo}
            for future in as_completed(futures):
                finish(futures[future], future.result())
    else:
        for unit in todo:
            torch.manual_seed(settings.seed)
            finish(unit, run_unit(data, *unit, settings))
    return [results[unit_name(*unit)] for unit in pending_units(settings)]


def _unit_settings(config: dict[str, Any]) -> dict[str, Any]:
    """The settings that change a unit's result (not which units run)."""
    return {k: v for k, v in config.items() if k not in ("features", "folds", "models")}
