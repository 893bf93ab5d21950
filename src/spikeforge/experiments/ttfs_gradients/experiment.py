"""The gradient experiment: ReLU, B1 and alpha1 MLPs trained side by side (see the package
docstring), one depth at a time, written to ``gradients.json`` with plots."""

from __future__ import annotations

import copy
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

from spikeforge.data import Dataset
from spikeforge.experiments.report import ReportFolder
from spikeforge.experiments.ttfs_gradients.networks import (
    effective_parameters,
    glorot_mlp,
    naive_alpha1,
    parameter_distance,
    relative_l2,
    relu_parameters,
    round_sig,
    scaled_parameters,
    weight_sum_factors,
)
from spikeforge.experiments.ttfs_gradients.report import (
    plot_accuracy,
    plot_gradient_norms,
    plot_parameter_distance,
)
from spikeforge.experiments.ttfs_gradients.runs import (
    ADAM_EPS,
    DECAY_RATE,
    DECAY_STEPS,
    DISTANCE_RUNS,
    FLOOR,
    RUNS,
    SNN_RUNS,
    Run,
    _effective_check,
    _slope_stats,
)
from spikeforge.experiments.ttfs_mapping import calibration_batches
from spikeforge.ttfs.mapping import b1_from_scratch, from_relu

# ---------------------------------------------------------------------------------------------
# the experiment
# ---------------------------------------------------------------------------------------------


def _batch_order(n: int, steps: int, batch_size: int, generator: torch.Generator) -> Tensor:
    """``[steps, batch_size]`` sample indices: shuffled epochs, concatenated."""
    epochs = -(-steps * batch_size // n)
    order = torch.cat([torch.randperm(n, generator=generator) for _ in range(epochs)])
    return order[: steps * batch_size].reshape(steps, batch_size)


def _distance_summary(param: dict[str, list], func: list) -> dict[str, float | None]:
    """Final and largest parameter distance and final logit distance of one series."""
    return {
        "final_param_max_abs": param["max_abs"][-1],
        "final_param_rel_l2": param["rel_l2"][-1],
        "max_param_max_abs": max((v for v in param["max_abs"] if v is not None), default=None),
        "max_param_rel_l2": max((v for v in param["rel_l2"] if v is not None), default=None),
        "final_function_rel_l2": func[-1],
    }


def _run_depth(
    data: Dataset,
    depth: int,
    *,
    width: int,
    steps: int,
    batch_size: int,
    lr: float,
    seed: int,
    eval_every: int,
    probe_samples: int,
    grad_samples: int,
    zeta: float,
    b1_windows: str,
    floor_perturbation: float | None,
    bar: Any,
    save_dir: Path,
) -> dict:
    x_train, y_train = data.x_train, data.y_train
    x_test, y_test = data.x_test, data.y_test
    in_features = int(np.prod(x_train.shape[1:]))
    classes = int(max(int(y_train.max()), int(y_test.max())) + 1)
    relu = glorot_mlp(in_features, width, depth, classes, torch.Generator().manual_seed(seed))
    calibration = calibration_batches(x_train)
    factors = weight_sum_factors(relu)
    x_probe = x_test[:probe_samples]
    x_grad, y_grad = x_train[:grad_samples], y_train[:grad_samples]

    if b1_windows == "scratch":
        b1 = b1_from_scratch(copy.deepcopy(relu), tuple(x_train.shape[1:]), zeta=zeta)
    else:
        b1 = from_relu(copy.deepcopy(relu), calibration, neuron="b1", zeta=zeta)
    smart = from_relu(copy.deepcopy(relu), calibration, neuron="alpha1", zeta=zeta)
    runs = {
        "relu": Run("relu", relu, lr),
        "b1": Run("b1", b1, lr),
        "alpha1_smart": Run("alpha1_smart", smart, lr),
    }
    report: dict[str, Any] = {"depth": depth, "init": {}}
    try:
        naive = naive_alpha1(copy.deepcopy(relu), calibration, zeta=zeta)
        runs["alpha1_naive"] = Run("alpha1_naive", naive, lr)
    except ValueError as exc:
        report["init"]["alpha1_naive_error"] = str(exc)
    if floor_perturbation:
        perturbed = copy.deepcopy(relu)
        gen = torch.Generator().manual_seed(seed + 2)
        with torch.no_grad():
            for p in perturbed.parameters():
                noise = torch.randn(p.shape, generator=gen, dtype=p.dtype)
                p.mul_(1.0 + floor_perturbation * noise)
        runs[FLOOR] = Run(FLOOR, perturbed, lr)

    relu_params = relu_parameters(relu)
    ref_smart = scaled_parameters(relu_params, factors)
    report["init"]["weight_sum_scaled_neurons"] = [int((f != 1).sum()) for f in factors]
    report["init"]["effective_check"] = {
        name: _effective_check(
            runs[name].model, x_probe, ref_smart if name == "alpha1_smart" else None
        )
        for name in ("alpha1_smart", "alpha1_naive")
        if name in runs
    }
    report["init"]["windows"] = {
        name: [round_sig(w) for w in run.model.windows.widths.tolist()]
        for name, run in runs.items()
        if run.is_snn
    }

    param_dist: dict[str, dict[str, list]] = {
        n: {"max_abs": [], "rel_l2": []} for n in DISTANCE_RUNS
    }
    func_dist: dict[str, list] = {n: [] for n in DISTANCE_RUNS}
    evals: dict[str, Any] = {
        "steps": [],
        "accuracy": {n: [] for n in RUNS},
        "grad_norms": {n: [] for n in RUNS},
        "slopes": {n: [] for n in ("alpha1_smart", "alpha1_naive")},
    }

    def record_distances() -> None:
        relu_now = relu_parameters(relu)
        with torch.no_grad():
            relu_logits = relu(x_probe)
        refs = {
            "b1": relu_now,
            "alpha1_smart": scaled_parameters(relu_now, factors),
            "alpha1_naive": relu_now,
            FLOOR: relu_now,
        }
        for name in DISTANCE_RUNS:
            run = runs.get(name)
            if run is None or not run.alive:
                param_dist[name]["max_abs"].append(None)
                param_dist[name]["rel_l2"].append(None)
                func_dist[name].append(None)
                continue
            params = effective_parameters(run.model) if run.is_snn else relu_parameters(run.model)
            max_abs, rel = parameter_distance(params, refs[name])
            with torch.no_grad():
                logits = run.model(x_probe)
            if not bool(torch.isfinite(logits).all()):
                run.fail(len(func_dist[name]), "non-finite logits on the probe batch")
            param_dist[name]["max_abs"].append(round_sig(max_abs, 4))
            param_dist[name]["rel_l2"].append(round_sig(rel, 4))
            func_dist[name].append(round_sig(relative_l2(logits, relu_logits), 4))

    def record_eval(step: int) -> None:
        evals["steps"].append(step)
        for name in RUNS:
            run = runs.get(name)
            alive = run is not None and run.alive
            evals["accuracy"][name].append(
                round_sig(run.accuracy(x_test, y_test)) if alive else None
            )
            evals["grad_norms"][name].append(
                [round_sig(v, 4) for v in run.grad_norms(x_grad, y_grad)] if alive else None
            )
            if name in evals["slopes"]:
                evals["slopes"][name].append(_slope_stats(run.model) if alive else None)

    order = _batch_order(
        x_train.shape[0], steps, batch_size, torch.Generator().manual_seed(seed + 1)
    )
    start = time.perf_counter()
    record_distances()
    record_eval(0)
    for step in range(1, steps + 1):
        idx = order[step - 1]
        xb, yb = x_train[idx], y_train[idx]
        for run in runs.values():
            run.step(step, xb, yb)
        record_distances()
        if step % eval_every == 0 or step == steps:
            record_eval(step)
        bar.update(1)

    def ratio(norms: list[float] | None) -> float | None:
        if not norms or norms[0] == 0:
            return None
        return round_sig(norms[-1] / norms[0], 4)

    def last_alive(series: list) -> Any:
        return next((v for v in reversed(series) if v is not None), None)

    summary: dict[str, dict[str, Any]] = {}
    for name in RUNS:
        run = runs.get(name)
        norms = evals["grad_norms"][name]
        summary[name] = {
            "final_accuracy": evals["accuracy"][name][-1],
            "last_accuracy": last_alive(evals["accuracy"][name]),
            "final_loss": round_sig(last_alive(run.losses)) if run else None,
            "grad_ratio_init": ratio(norms[0]),
            "grad_ratio_final": ratio(last_alive(norms)),
            "window_violations": sum(v for v in run.violations if v) if run else None,
            "steps_with_violations": sum(1 for v in run.violations if v) if run else None,
            "diverged_at": run.diverged_at if run else 0,
            "divergence": run.divergence if run else report["init"].get("alpha1_naive_error"),
        }
        if name in SNN_RUNS:
            summary[name] |= _distance_summary(param_dist[name], func_dist[name])
    summary[FLOOR] = _distance_summary(param_dist[FLOOR], func_dist[FLOOR])
    report |= {
        "seconds": round(time.perf_counter() - start, 2),
        "summary": summary,
        "loss": {n: [round_sig(v) for v in runs[n].losses] if n in runs else None for n in RUNS},
        "parameter_distance": param_dist,
        "function_distance": func_dist,
        "window_violations": {n: runs[n].violations if n in runs else None for n in SNN_RUNS},
        "eval": evals,
        "final_windows": {
            name: [round_sig(w) for w in run.model.windows.widths.tolist()]
            for name, run in runs.items()
            if run.is_snn
        },
        "networks": {  # the trained SNNs that did not diverge (spikeforge.ttfs.load)
            name: run.model.save(save_dir / f"snn-depth{depth}-{name}.pt").name
            for name, run in runs.items()
            if run.is_snn and run.alive
        },
    }
    return report


def run_gradient_experiment(
    dataset: Dataset,
    out_dir: str | os.PathLike[str],
    *,
    depths: Sequence[int] = (2, 4, 8),
    width: int = 128,
    steps: int = 1000,
    batch_size: int = 32,
    lr: float = 5e-4,
    train_samples: int | None = 10_000,
    test_samples: int | None = 2_000,
    seed: int = 0,
    progress: bool = True,
    eval_every: int = 50,
    probe_samples: int = 256,
    grad_samples: int = 256,
    zeta: float = 0.5,
    b1_windows: Literal["scratch", "calibrated"] = "calibrated",
    threads: int | None = 1,
    floor_perturbation: float | None = 1e-15,
) -> dict:
    """Train ReLU, B1, alpha1 (smart init) and alpha1 (naive init) MLPs side by side (module
    docstring) for each depth in ``depths`` and write ``out_dir/gradients.json`` and the plots
    ``parameter_distance.png``, ``gradient_norms.png``, ``accuracy.png``.

    Args:
        dataset: images ``[N, *in_shape]`` in [0, 1] and labels ``[N]``; the first
            ``train_samples`` / ``test_samples`` are used (``None``: all), in float64.
        depths: numbers of hidden layers.
        width: hidden layer width.
        steps: optimiser steps per run; all runs see the same batches (shuffled epochs drawn from
            a generator seeded with ``seed + 1``; the initialisation uses ``seed``).
        batch_size, lr: Adam (epsilon 1e-7) with P2's exponential decay
            ``lr * 0.9 ** (step / 5000)``.
        eval_every: test accuracy, per-layer gradient norms (on the first ``grad_samples``
            training samples) and alpha1 slope statistics every ``eval_every`` steps, at step 0
            and at the last step.
        probe_samples: first test images on which the logits' relative L2 distance to the ReLU
            run (function distance) is measured after every step.
        zeta: window margin of the mappings (``B_n = (1 + zeta) X_n``).
        b1_windows: ``"calibrated"`` (``from_relu`` of the initialisation on the training
            subset, ``B_n = (1 + zeta) X_n``) or ``"scratch"`` (P2 from scratch: ``X_n = 1000``,
            windows of 1500); windows grow after every step either way. With ``"scratch"`` the
            absolute spike times reach ~1e4 at depth 8 and rounding (spec risk 2) makes the B1
            parameters drift from the ReLU run's by ~1e-11 after a few hundred steps, against
            ~1e-13 with ``"calibrated"``.
        threads: torch intra-op threads during the run (restored afterwards); the matrices are
            small, so one thread is fastest on a shared machine. ``None`` leaves the setting.
        floor_perturbation: also train a copy of the ReLU network whose initial parameters are
            multiplied by ``1 + floor_perturbation * N(0, 1)`` and record its distance to the
            ReLU run (``relu_perturbed``): how much the training dynamics amplify a rounding-
            sized difference, the float64 noise floor for B1's distance. ``None`` or 0: skip.

    Returns the report written to ``gradients.json``: ``config``, ``environment``, and per depth
    (key ``str(depth)``) per-step ``loss``, ``parameter_distance`` (``max_abs`` and ``rel_l2``
    per SNN run; index k = after k steps), ``function_distance``, ``window_violations`` (per
    step, in the training batch), ``eval`` (``steps``, ``accuracy``, ``grad_norms`` per layer,
    alpha1 ``slopes``), ``init`` checks and a ``summary``. A run whose loss, parameters or
    probe logits become non-finite is stopped and its ``diverged_at`` step recorded; its later
    entries are ``null``.
    """
    if b1_windows not in ("scratch", "calibrated"):
        raise ValueError(f"b1_windows must be 'scratch' or 'calibrated', got {b1_windows!r}")
    if steps < 1 or batch_size < 1 or eval_every < 1:
        raise ValueError("steps, batch_size and eval_every must be >= 1")
    if not depths:
        raise ValueError("no depths given")
    folder = ReportFolder(out_dir)
    out = folder.path
    sub = dataset.subset(train_samples, test_samples)
    data = Dataset(
        sub.name,
        sub.x_train.to(torch.float64),
        sub.y_train.long(),
        sub.x_test.to(torch.float64),
        sub.y_test.long(),
    )
    config = {
        "dataset": dataset.name,
        "depths": [int(d) for d in depths],
        "width": width,
        "steps": steps,
        "batch_size": batch_size,
        "lr": lr,
        "optimizer": f"Adam(eps={ADAM_EPS}), lr * {DECAY_RATE} ** (step / {DECAY_STEPS})",
        "train_samples": int(data.x_train.shape[0]),
        "test_samples": int(data.x_test.shape[0]),
        "seed": seed,
        "eval_every": eval_every,
        "probe_samples": int(min(probe_samples, data.x_test.shape[0])),
        "grad_samples": int(min(grad_samples, data.x_train.shape[0])),
        "zeta": zeta,
        "b1_windows": b1_windows,
        "floor_perturbation": floor_perturbation,
        "init": "glorot_uniform weights, zero biases",
        "dtype": "float64",
    }
    results: dict[str, Any] = {
        "config": config,
        "environment": folder.environment(),
        "depths": {},
    }
    start = time.perf_counter()
    threads_before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    results["environment"]["threads"] = torch.get_num_threads()
    bar = tqdm(
        total=steps * len(depths),
        disable=not progress,
        file=sys.stderr,
        desc="gradient experiment",
        unit="step",
        leave=False,
    )
    try:
        for depth in depths:
            bar.set_postfix(depth=depth)
            results["depths"][str(depth)] = _run_depth(
                data,
                int(depth),
                width=width,
                steps=steps,
                batch_size=batch_size,
                lr=lr,
                seed=seed,
                eval_every=eval_every,
                probe_samples=probe_samples,
                grad_samples=grad_samples,
                zeta=zeta,
                b1_windows=b1_windows,
                floor_perturbation=floor_perturbation,
                bar=bar,
                save_dir=out,
            )
    finally:
        bar.close()
        torch.set_num_threads(threads_before)
    results["seconds"] = round(time.perf_counter() - start, 2)
    results["plots"] = [
        plot_parameter_distance(results, out / "parameter_distance.png").name,
        plot_gradient_norms(results, out / "gradient_norms.png").name,
        plot_accuracy(results, out / "accuracy.png").name,
    ]
    folder.write_json("gradients.json", results)
    return results
