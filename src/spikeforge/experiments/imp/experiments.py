"""The IMP / LTS / TET reproductions of spec ``multistep.md`` §4.6 and §9, on real data.

Four experiments, each writing ``imp-<name>.json`` (atomically) and its plot into the report
folder; :func:`run_imp_reproduction` runs a selection and writes ``imp-tables.md``:

``patterns`` (spec §4.4-4.6)
    pairs / mappings of one IF neuron over all 16 binary inputs of length 4, with ``IMP = 0`` and
    on the IMP grid, for the reference setting (``>=``, soft reset) and the hard-reset and ``>``
    rows (:mod:`spikeforge.experiments.imp.patterns`).
``digits`` (spec §9.2)
    sklearn digits (1797 8x8 images, pixels / 16), one seeded split 1400 train / 397 test; MLP
    64-128-128-10 with IF neurons (soft reset, ATan), ``T = 4`` (static input repeated), Adam
    lr 2e-3, batch 64, 30 epochs; SDT, LTS, TET (λ = 1e-3, φ = 1) and TET-S (ε = 0.01), each
    with and without a learnable IMP, over several seeds. Test accuracy of ``argmax O[t]`` at
    every step and of each loss's own readout (mean over T, or O[T] for LTS), mean and std over
    seeds, and the issue's acceptance check (:func:`digits_acceptance`).
``convergence`` (spec §9.3, the IMP repository's ``etc/convergence speed/plot_bp_static.py``)
    1024 random inputs ``U(0, 1)^16`` with 16 random labels; IF MLP 16-W-W-W-16 without biases,
    ``T = 4``, full-batch Adam lr 1e-3; SDT, TET (its CE part, λ = 0, as the toy) and LTS from
    the same initialisation; training accuracy (each loss's readout) after every epoch.
``fashion``
    Fashion-MNIST conv SNN (:func:`~spikeforge.experiments.imp.nets.conv_snn`), ``T = 4``, trained
    with :func:`spikeforge.training.train_classifier` (Adam, per-epoch resumable checkpoints)
    without IMP + SDT and with IMP + LTS (optionally the other two combinations); test
    accuracy at every step on the test set.

Seeds: for seed ``s`` every arm of an experiment starts from the same weights (``IMP`` values are
drawn after the weights, :mod:`spikeforge.experiments.imp.nets`) and sees the same batches, so the
comparisons are paired. Nothing is tuned to the test sets: the settings are the spec's.
"""

from __future__ import annotations

import copy
import json
import os
import statistics
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

from spikeforge.core import fused
from spikeforge.experiments.imp.nets import conv_snn, if_mlp, imp_parameters
from spikeforge.experiments.imp.objectives import (
    LABELS,
    OBJECTIVE_NAMES,
    Objective,
    make_objective,
    per_step_accuracy,
    train_objective,
)
from spikeforge.experiments.imp.patterns import run_patterns
from spikeforge.experiments.report import ReportFolder
from spikeforge.io import write_json

__all__ = [
    "ALL_FASHION_ARMS",
    "EXPERIMENTS",
    "FASHION_ARMS",
    "digits_acceptance",
    "load_digits_data",
    "parse_arms",
    "run_convergence_experiment",
    "run_digits_experiment",
    "run_fashion_experiment",
    "run_imp_reproduction",
    "run_patterns_experiment",
]

EXPERIMENTS = ("patterns", "digits", "convergence", "fashion")
FASHION_ARMS = ("sdt", "imp+lts")
"""Default Fashion-MNIST arms: (a) no IMP + SDT, (b) IMP + LTS."""
ALL_FASHION_ARMS = ("sdt", "imp+sdt", "lts", "imp+lts")

DIGITS_SAMPLES = 1797


def environment(out_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """The report folder's environment (versions, code versions, threads) and the neuron
    backend, recorded in every report."""
    return ReportFolder(out_dir).environment(
        fused_kernel=fused.is_available(), omp_num_threads=os.environ.get("OMP_NUM_THREADS")
    )


def _r(v: float, digits: int = 6) -> float:
    return float(f"{float(v):.{digits}g}")


def _stats(values: Sequence[float]) -> dict[str, Any]:
    """Mean, sample standard deviation (ddof = 1; 0 for one value), min and max."""
    vals = [float(v) for v in values]
    std = statistics.stdev(vals) if len(vals) > 1 else 0.0
    return {
        "mean": _r(statistics.fmean(vals)),
        "std": _r(std),
        "min": _r(min(vals)),
        "max": _r(max(vals)),
        "n": len(vals),
    }


def _imp_stats(model: torch.nn.Module) -> list[dict[str, float]]:
    """Mean, std, min and max of every learnable initial potential of ``model``."""
    out = []
    for p in imp_parameters(model):
        v = p.detach().double().flatten()
        out.append(
            {
                "mean": _r(v.mean()),
                "std": _r(v.std() if v.numel() > 1 else 0.0),
                "min": _r(v.min()),
                "max": _r(v.max()),
            }
        )
    return out


def _check_positive(**values: int | float | None) -> None:
    for name, v in values.items():
        if v is not None and not v > 0:
            raise ValueError(f"{name} must be > 0, got {v}")


def _bar(total: int, desc: str, progress: bool) -> tqdm:
    return tqdm(
        total=total, disable=not progress, file=sys.stderr, desc=desc, unit="run", leave=False
    )


def _arm_key(imp: bool, loss: str) -> str:
    return f"imp+{loss}" if imp else loss


def _arm_label(imp: bool, loss: str) -> str:
    return f"{LABELS[loss]} + IMP" if imp else LABELS[loss]


def parse_arms(arms: Iterable[str]) -> list[tuple[bool, str]]:
    """``"sdt"``, ``"imp+lts"``, ... -> ``[(imp, loss), ...]``; raises on unknown names."""
    out: list[tuple[bool, str]] = []
    for arm in arms:
        imp, _, loss = arm.rpartition("+")
        if imp not in ("", "imp") or loss not in OBJECTIVE_NAMES:
            raise ValueError(
                f"unknown arm {arm!r}: use a loss ({', '.join(OBJECTIVE_NAMES)}), optionally "
                "prefixed by 'imp+' (e.g. 'sdt', 'imp+lts')"
            )
        key = (imp == "imp", loss)
        if key in out:
            raise ValueError(f"arm {arm!r} given twice")
        out.append(key)
    if not out:
        raise ValueError("no arms given")
    return out


# ---------------------------------------------------------------------------------------------
# patterns
# ---------------------------------------------------------------------------------------------


def run_patterns_experiment(out_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """Spec §4.6 pattern-mapping counts (three 9-point-grid rows); writes ``imp-patterns.json``."""
    start = time.perf_counter()
    results = run_patterns()
    results["seconds"] = round(time.perf_counter() - start, 2)
    results["environment"] = environment(out_dir)
    write_json(Path(out_dir) / "imp-patterns.json", results)
    return results


# ---------------------------------------------------------------------------------------------
# digits: per-time-step accuracy
# ---------------------------------------------------------------------------------------------


def load_digits_data(
    train_size: int = 1400, split_seed: int = 0
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """sklearn digits as ``(x_train [N, 64], y_train [N], x_test [M, 64], y_test [M])``, float32
    pixels / 16 in [0, 1]; a permutation from ``numpy.random.default_rng(split_seed)``, the first
    ``train_size`` samples for training, the rest (397 by default) for testing."""
    from sklearn.datasets import load_digits

    if not 0 < train_size < DIGITS_SAMPLES:
        raise ValueError(f"train_size must be in 1..{DIGITS_SAMPLES - 1}, got {train_size}")
    bunch = load_digits()
    x = torch.from_numpy(np.asarray(bunch.data, dtype=np.float32) / 16.0)
    y = torch.from_numpy(np.asarray(bunch.target, dtype=np.int64))
    perm = torch.from_numpy(np.random.default_rng(split_seed).permutation(x.shape[0]))
    tr, te = perm[:train_size], perm[train_size:]
    return x[tr], y[tr], x[te], y[te]


def digits_acceptance(
    summary: dict[str, Any], tolerance: float = 0.03, margin: float = 0.05
) -> dict[str, Any]:
    """The issue's acceptance check on :func:`run_digits_experiment`'s ``summary``.

    1. **within**: for every loss trained with IMP, the mean (over seeds) test accuracy of
       ``O[1]`` is within ``tolerance`` (3 points) of the mean accuracy of the loss's own
       readout (the final prediction: mean over T, or O[T] for LTS);
    2. **clearly above**: for every loss with IMP and each no-IMP baseline SDT and LTS, the mean
       ``O[1]`` accuracy exceeds the baseline's by at least ``margin`` (5 points) **and** every
       seed's ``O[1]`` accuracy with IMP exceeds every seed's of the baseline.

    Returns the individual checks and ``passed`` (all of them; ``None`` when there is nothing to
    check).
    """
    within = []
    above = []
    baselines = [loss for loss in ("sdt", "lts") if loss in summary]
    for key, row in summary.items():
        if not row["imp"]:
            continue
        first, final = row["per_step"][0]["mean"], row["readout_accuracy"]["mean"]
        within.append(
            {
                "arm": key,
                "first_step": first,
                "final": final,
                "gap": _r(final - first),
                "passed": abs(final - first) <= tolerance,
            }
        )
        for base in baselines:
            b = summary[base]["per_step"][0]
            diff = first - b["mean"]
            separated = row["per_step"][0]["min"] > b["max"]
            above.append(
                {
                    "arm": key,
                    "baseline": base,
                    "first_step": first,
                    "baseline_first_step": b["mean"],
                    "difference": _r(diff),
                    "seeds_separated": separated,
                    "passed": diff >= margin and separated,
                }
            )
    checks = within + above
    return {
        "tolerance": tolerance,
        "margin": margin,
        "definition": (
            f"with IMP: |mean acc(readout) - mean acc(O[1])| <= {tolerance} for every loss, and "
            f"mean acc(O[1]) >= no-IMP SDT / LTS mean acc(O[1]) + {margin} with every IMP seed "
            "above every baseline seed"
        ),
        "within": within,
        "clearly_above": above,
        "passed": all(c["passed"] for c in checks) if checks else None,
    }


def run_digits_experiment(
    out_dir: str | os.PathLike[str],
    *,
    seeds: int | Sequence[int] = 5,
    losses: Sequence[str] = OBJECTIVE_NAMES,
    epochs: int = 30,
    batch_size: int = 64,
    lr: float = 2e-3,
    time_steps: int = 4,
    hidden: Sequence[int] = (128, 128),
    train_size: int = 1400,
    split_seed: int = 0,
    tet_lamb: float = 1e-3,
    tet_phi: float = 1.0,
    tet_s_epsilon: float = 0.01,
    tolerance: float = 0.03,
    margin: float = 0.05,
    progress: bool = True,
) -> dict[str, Any]:
    """Per-time-step test accuracy on sklearn digits (module docstring), every loss in
    ``losses`` with and without IMP, for ``seeds`` (a count: ``0..n-1``, or a list). Writes
    ``imp-digits.json`` and returns it: ``config``, ``runs`` (per seed and arm: ``per_step``
    accuracies of ``O[1..T]``, ``mean_readout``, ``readout_accuracy`` of the loss's own readout,
    training ``losses``, learned ``imp`` statistics), ``summary`` (per arm: mean / std / min /
    max over seeds) and ``acceptance`` (:func:`digits_acceptance`)."""
    seed_list = list(range(seeds)) if isinstance(seeds, int) else [int(s) for s in seeds]
    _check_positive(
        seeds=len(seed_list), epochs=epochs, batch_size=batch_size, lr=lr, time_steps=time_steps
    )
    if not hidden:
        raise ValueError("hidden must list at least one width")
    objectives = {
        name: make_objective(name, tet_lamb=tet_lamb, tet_phi=tet_phi, tet_s_epsilon=tet_s_epsilon)
        for name in losses
    }
    if not objectives:
        raise ValueError("no losses given")
    x_tr, y_tr, x_te, y_te = load_digits_data(train_size, split_seed)
    sizes = [x_tr.shape[1], *hidden, 10]
    arms = [(imp, loss) for imp in (False, True) for loss in objectives]
    config = {
        "data": "sklearn digits, pixels / 16, static input repeated T times",
        "train_samples": int(x_tr.shape[0]),
        "test_samples": int(x_te.shape[0]),
        "split_seed": split_seed,
        "sizes": sizes,
        "neuron": "IF, soft reset, threshold 1, fires at H >= 1, ATan surrogate (alpha 2)",
        "imp_init": "U(0.4, 0.6) per neuron, drawn after the weights",
        "readout": "non-spiking Linear per step",
        "time_steps": time_steps,
        "optimizer": f"Adam lr {lr}, no weight decay",
        "epochs": epochs,
        "batch_size": batch_size,
        "losses": list(objectives),
        "tet_lamb": tet_lamb,
        "tet_phi": tet_phi,
        "tet_s_epsilon": tet_s_epsilon,
        "seeds": seed_list,
        "std": "sample standard deviation over seeds (ddof = 1)",
    }
    start = time.perf_counter()
    runs: dict[str, dict[str, Any]] = {}
    bar = _bar(len(seed_list) * len(arms), "digits", progress)
    try:
        for seed in seed_list:
            per_seed: dict[str, Any] = {}
            for imp, loss in arms:
                torch.manual_seed(seed)
                model = if_mlp(sizes, time_steps=time_steps, imp=imp)
                obj = objectives[loss]
                t0 = time.perf_counter()
                train_losses = train_objective(
                    model, x_tr, y_tr, obj, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed
                )
                acc = per_step_accuracy(model, x_te, y_te)
                per_seed[_arm_key(imp, loss)] = {
                    "per_step": [_r(a) for a in acc.per_step],
                    "mean_readout": _r(acc.mean),
                    "readout": obj.readout,
                    "readout_accuracy": _r(acc.of(obj.readout)),
                    "final_train_loss": _r(train_losses[-1]),
                    "imp": _imp_stats(model),
                    "seconds": round(time.perf_counter() - t0, 2),
                }
                bar.update(1)
            runs[str(seed)] = per_seed
    finally:
        bar.close()
    summary: dict[str, Any] = {}
    for imp, loss in arms:
        key = _arm_key(imp, loss)
        rows = [runs[str(s)][key] for s in seed_list]
        summary[key] = {
            "label": _arm_label(imp, loss),
            "imp": imp,
            "loss": loss,
            "readout": objectives[loss].readout,
            "per_step": [_stats([r["per_step"][t] for r in rows]) for t in range(time_steps)],
            "mean_readout": _stats([r["mean_readout"] for r in rows]),
            "readout_accuracy": _stats([r["readout_accuracy"] for r in rows]),
        }
    results = {
        "config": config,
        "environment": environment(out_dir),
        "seconds": round(time.perf_counter() - start, 2),
        "summary": summary,
        "acceptance": digits_acceptance(summary, tolerance, margin),
        "runs": runs,
    }
    from spikeforge.experiments.imp.report import plot_digits

    results["plots"] = [plot_digits(results, Path(out_dir) / "imp-digits.png").name]
    write_json(Path(out_dir) / "imp-digits.json", results)
    return results


# ---------------------------------------------------------------------------------------------
# convergence: LTS on random data
# ---------------------------------------------------------------------------------------------


def _first_epoch_at(curve: Sequence[float], level: float) -> int | None:
    return next((e for e, a in enumerate(curve) if a >= level), None)


def _accuracy_curve(
    model: torch.nn.Module,
    x: Tensor,
    y: Tensor,
    obj: Objective,
    *,
    epochs: int,
    lr: float,
    seed: int,
) -> tuple[list[float], list[float]]:
    """Full-batch training of ``model`` (``x [N, ...] -> [T, N, C]``); returns the training
    accuracy of ``obj``'s readout at initialisation and after every epoch, and the losses."""
    curve = [per_step_accuracy(model, x, y, batch_size=x.shape[0]).of(obj.readout)]

    def record(_epoch: int, _loss: float) -> None:
        curve.append(per_step_accuracy(model, x, y, batch_size=x.shape[0]).of(obj.readout))

    losses = train_objective(
        model, x, y, obj, epochs=epochs, batch_size=None, lr=lr, seed=seed, after_epoch=record
    )
    return curve, losses


def run_convergence_experiment(
    out_dir: str | os.PathLike[str],
    *,
    width: int = 256,
    epochs: int = 300,
    seeds: int | Sequence[int] = 3,
    losses: Sequence[str] = ("sdt", "tet", "lts"),
    samples: int = 1024,
    features: int = 16,
    classes: int = 16,
    time_steps: int = 4,
    lr: float = 1e-3,
    tet_lamb: float = 0.0,
    report_epoch: int = 100,
    progress: bool = True,
) -> dict[str, Any]:
    """Training-accuracy curves on random data (module docstring) for every loss in ``losses``,
    each seed's losses from the same initialisation (a deep copy) on the same data. Writes
    ``imp-convergence.json``: ``config``, per seed and loss the ``accuracy`` (index ``e`` =
    after ``e`` epochs, 0 = initialisation) and ``loss`` curves, and a ``summary`` (accuracy at
    ``report_epoch`` and at the end, first epoch reaching 90 % / 99 %, mean / std over seeds) with
    the spec's check ``acc_LTS(report_epoch) > acc_SDT(report_epoch)``."""
    seed_list = list(range(seeds)) if isinstance(seeds, int) else [int(s) for s in seeds]
    _check_positive(
        width=width,
        epochs=epochs,
        seeds=len(seed_list),
        samples=samples,
        features=features,
        time_steps=time_steps,
        lr=lr,
    )
    if classes < 2:
        raise ValueError(f"classes must be >= 2, got {classes}")
    objectives = {name: make_objective(name, tet_lamb=tet_lamb) for name in losses}
    if not objectives:
        raise ValueError("no losses given")
    report_at = min(report_epoch, epochs)
    sizes = [features, width, width, width, classes]
    config = {
        "data": f"{samples} inputs U(0, 1)^{features}, labels uniform in 0..{classes - 1}",
        "sizes": sizes,
        "bias": False,
        "neuron": "IF, soft reset, threshold 1, fires at H >= 1, ATan surrogate (alpha 2)",
        "time_steps": time_steps,
        "optimizer": f"Adam lr {lr}, full batch",
        "epochs": epochs,
        "losses": list(objectives),
        "tet_lamb": tet_lamb,
        "accuracy": "training accuracy of each loss's readout (SDT/TET mean, LTS last step), "
        "after every epoch",
        "seeds": seed_list,
        "report_epoch": report_at,
    }
    start = time.perf_counter()
    runs: dict[str, dict[str, Any]] = {}
    bar = _bar(len(seed_list) * len(objectives), "convergence", progress)
    try:
        for seed in seed_list:
            gen = torch.Generator().manual_seed(seed)
            x = torch.rand(samples, features, generator=gen)
            y = torch.randint(0, classes, (samples,), generator=gen)
            torch.manual_seed(seed)
            base = if_mlp(sizes, time_steps=time_steps, bias=False)
            per_seed: dict[str, Any] = {}
            for name, obj in objectives.items():
                t0 = time.perf_counter()
                curve, train_losses = _accuracy_curve(
                    copy.deepcopy(base), x, y, obj, epochs=epochs, lr=lr, seed=seed
                )
                per_seed[name] = {
                    "accuracy": [_r(a, 4) for a in curve],
                    "loss": [_r(v, 4) for v in train_losses],
                    "seconds": round(time.perf_counter() - t0, 2),
                }
                bar.update(1)
            runs[str(seed)] = per_seed
    finally:
        bar.close()
    summary: dict[str, Any] = {}
    for name in objectives:
        curves = [runs[str(s)][name]["accuracy"] for s in seed_list]
        reach = {
            f"epochs_to_{int(level * 100)}": [_first_epoch_at(c, level) for c in curves]
            for level in (0.9, 0.99)
        }
        summary[name] = {
            "label": LABELS[name],
            "at_report_epoch": _stats([c[report_at] for c in curves]),
            "final": _stats([c[-1] for c in curves]),
            **reach,
        }
    check = None
    if "lts" in summary and "sdt" in summary:
        lts, sdt = summary["lts"]["at_report_epoch"], summary["sdt"]["at_report_epoch"]
        per_seed_ok = [
            runs[str(s)]["lts"]["accuracy"][report_at] > runs[str(s)]["sdt"]["accuracy"][report_at]
            for s in seed_list
        ]
        check = {
            "definition": f"mean acc_LTS(epoch {report_at}) > mean acc_SDT(epoch {report_at})",
            "lts": lts["mean"],
            "sdt": sdt["mean"],
            "seeds_with_lts_ahead": sum(per_seed_ok),
            "passed": lts["mean"] > sdt["mean"],
        }
    results = {
        "config": config,
        "environment": environment(out_dir),
        "seconds": round(time.perf_counter() - start, 2),
        "summary": summary,
        "check": check,
        "runs": runs,
    }
    from spikeforge.experiments.imp.report import plot_convergence

    results["plots"] = [plot_convergence(results, Path(out_dir) / "imp-convergence.png").name]
    write_json(Path(out_dir) / "imp-convergence.json", results)
    return results


# ---------------------------------------------------------------------------------------------
# Fashion-MNIST conv SNN
# ---------------------------------------------------------------------------------------------


def run_fashion_experiment(
    out_dir: str | os.PathLike[str],
    *,
    arms: Sequence[str] = FASHION_ARMS,
    data_dir: str | os.PathLike[str] | None = None,
    train_samples: int | None = None,
    test_samples: int | None = None,
    epochs: int = 2,
    batch_size: int = 128,
    lr: float = 1e-3,
    time_steps: int = 4,
    neuron: str = "if",
    seed: int = 0,
    checkpoints: bool = True,
    progress: bool = True,
) -> dict[str, Any]:
    """Fashion-MNIST conv SNN (module docstring) for every arm in ``arms`` (``"sdt"``,
    ``"imp+lts"``, ``"imp+sdt"``, ``"lts"``), trained on the first ``train_samples`` training
    images (``None``: all 60,000) by :func:`spikeforge.training.train_classifier` (Adam,
    constant ``lr``, no weight decay; the IMP exists before the optimiser is built) on the loss's
    readout (``CE(mean_t O[t])`` for SDT, ``CE(O[T])`` for LTS), then evaluated at every time
    step on the first ``test_samples`` test images (``None``: all 10,000). With
    ``checkpoints``, each arm's training state is saved after every epoch under
    ``out_dir/checkpoints/`` and a rerun resumes; ``train_seconds`` then adds up the training
    time of every run (kept in a ``.seconds.json`` beside the checkpoint). Writes
    ``imp-fashion.json``."""
    from spikeforge.data import load_dataset
    from spikeforge.training import TrainConfig, train_classifier

    parsed = parse_arms(arms)
    for _imp, loss in parsed:
        if loss not in ("sdt", "lts"):
            raise ValueError(
                f"the Fashion-MNIST arms are SDT and LTS, with or without IMP: not {loss!r}"
            )
    if neuron not in ("if", "lif"):
        raise ValueError(f"neuron must be 'if' or 'lif', got {neuron!r}")
    _check_positive(
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        time_steps=time_steps,
        train_samples=train_samples,
        test_samples=test_samples,
    )
    out = ReportFolder(out_dir).path  # records the code version before resuming
    data = load_dataset("fashion-mnist", data_dir).subset(train_samples, test_samples)
    n_train, n_test = int(data.x_train.shape[0]), int(data.x_test.shape[0])
    config = {
        "data": "Fashion-MNIST, pixels / 255, static image repeated T times",
        "train_samples": n_train,
        "test_samples": n_test,
        "architecture": "Conv(1->32, 3x3, pad 1), neuron, Conv(32->64, 3x3, stride 2, pad 1), "
        "neuron, Flatten, Linear(12544 -> 10) per step",
        "neuron": f"{neuron.upper()}, soft reset, threshold 1, fires at H >= 1, ATan (alpha 2)"
        + (", tau 2, decay_input" if neuron == "lif" else ""),
        "imp_init": "U(0.4, 0.6) per neuron, drawn after the weights",
        "time_steps": time_steps,
        "optimizer": f"Adam lr {lr}, constant, no weight decay",
        "epochs": epochs,
        "batch_size": batch_size,
        "seed": seed,
        "arms": [_arm_key(imp, loss) for imp, loss in parsed],
    }
    start = time.perf_counter()
    results_arms: dict[str, Any] = {}
    for imp, loss in parsed:
        key = _arm_key(imp, loss)
        objective = make_objective(loss)
        mode = objective.readout
        torch.manual_seed(seed)
        model = conv_snn(
            in_shape=tuple(data.x_train.shape[1:]),  # type: ignore[arg-type]
            time_steps=time_steps,
            imp=imp,
            neuron=neuron,  # type: ignore[arg-type]
        )
        cfg = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, progress=progress)
        ckpt = None
        if checkpoints:
            name = f"fashion-{key.replace('+', '-')}-{neuron}-n{n_train}-T{time_steps}.pt"
            ckpt = out / "checkpoints" / name

        earlier = 0.0  # training seconds of earlier runs that this one resumes
        timing = None if ckpt is None else ckpt.with_suffix(".seconds.json")
        if ckpt is not None and timing is not None and ckpt.exists() and timing.exists():
            earlier = float(json.loads(timing.read_text())["train_seconds"])
        t0 = time.perf_counter()
        log = train_classifier(
            model,
            data.x_train,
            data.y_train,
            cfg,
            ckpt,
            loss=objective.loss,
            desc=f"fashion-mnist {_arm_label(imp, loss)}",
        )
        train_s = earlier + time.perf_counter() - t0
        if timing is not None:
            write_json(timing, {"train_seconds": round(train_s, 1)})
        t0 = time.perf_counter()
        acc = per_step_accuracy(model, data.x_test, data.y_test, batch_size=500)
        results_arms[key] = {
            "label": _arm_label(imp, loss),
            "imp": imp,
            "loss": loss,
            "readout": mode,
            "per_step": [_r(a) for a in acc.per_step],
            "mean_readout": _r(acc.mean),
            "readout_accuracy": _r(acc.of(mode)),  # type: ignore[arg-type]
            "epoch_losses": [_r(v) for v in log.losses],
            "imp_stats": _imp_stats(model),
            "train_seconds": round(train_s, 1),
            "eval_seconds": round(time.perf_counter() - t0, 1),
        }
    results = {
        "config": config,
        "environment": environment(out_dir),
        "seconds": round(time.perf_counter() - start, 1),
        "arms": results_arms,
    }
    from spikeforge.experiments.imp.report import plot_fashion

    results["plots"] = [plot_fashion(results, out / "imp-fashion.png").name]
    write_json(out / "imp-fashion.json", results)
    return results


# ---------------------------------------------------------------------------------------------
# all of them
# ---------------------------------------------------------------------------------------------


def run_imp_reproduction(
    out_dir: str | os.PathLike[str],
    experiments: Sequence[str] = EXPERIMENTS,
    *,
    digits: dict[str, Any] | None = None,
    convergence: dict[str, Any] | None = None,
    fashion: dict[str, Any] | None = None,
    threads: int | None = None,
    progress: bool = True,
) -> dict[str, dict[str, Any]]:
    """Run the selected ``experiments`` (names from :data:`EXPERIMENTS`, in that order) with the
    keyword arguments ``digits`` / ``convergence`` / ``fashion`` for their ``run_*_experiment``
    functions, write ``imp-tables.md`` and return the results of this run by name.
    ``imp-tables.md`` holds the tables of this run's experiments and of every other
    ``imp-<name>.json`` already in ``out_dir`` (the last run of each experiment there), so a
    run of one experiment does not drop the others' tables.
    ``threads``: torch intra-op threads during the run (restored afterwards; ``None``: leave
    them)."""
    from spikeforge.experiments.imp.report import format_imp_tables

    unknown = [e for e in experiments if e not in EXPERIMENTS]
    if unknown or not experiments:
        raise ValueError(
            f"unknown experiments {unknown}; choose from {list(EXPERIMENTS)}"
            if unknown
            else "no experiments selected"
        )
    if threads is not None and threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    folder = ReportFolder(out_dir)  # records the code version before resuming
    out = folder.path
    out.mkdir(parents=True, exist_ok=True)
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    results: dict[str, dict[str, Any]] = {}
    try:
        for name in EXPERIMENTS:
            if name not in experiments:
                continue
            if name == "patterns":
                results[name] = run_patterns_experiment(out)
            elif name == "digits":
                results[name] = run_digits_experiment(out, progress=progress, **(digits or {}))
            elif name == "convergence":
                results[name] = run_convergence_experiment(
                    out, progress=progress, **(convergence or {})
                )
            else:
                results[name] = run_fashion_experiment(out, progress=progress, **(fashion or {}))
    finally:
        torch.set_num_threads(before)
    tables = dict(results)
    for name in EXPERIMENTS:
        saved = out / f"imp-{name}.json"
        if name not in tables and saved.exists():
            tables[name] = json.loads(saved.read_text())
    text = format_imp_tables({n: tables[n] for n in EXPERIMENTS if n in tables}) + "\n"
    folder.write_text("imp-tables.md", text)
    return results
