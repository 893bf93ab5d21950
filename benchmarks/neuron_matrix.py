"""The settings matrix of ``benchmarks/neurons.py --matrix`` (issue 10): a benchmark that cannot be
tuned to.

Factors: the surrogate gradient (all five), the readout (linear, or a LIF layer on the output),
T in {4, 16, 32}, batch in {32, 128, 256}, input spike density in {5, 20, 50} %, 1 and 2 threads;
for the MLP in training and in inference (no surrogate there) and for a conv network with
BatchNorm in training (:class:`neurons.Workload`). A full product is 540 cells per network;
the matrix is a **pairwise covering array** instead: every value of every factor meets every value
of every other factor in at least one cell (greedy construction over the shuffled product, fixed
seed, so the same cells every run). Each cell times every contender interleaved, as
:func:`neurons.time_workload` does, with as many repeats as fit the cell's time budget (at least
3), after checking that every spiking contender fires the same spikes.

Reported per cell: median ms of each contender, its ratio to ``relu-T`` (the ReLU network run
on all T·B samples), spikeforge's speed-up over the fastest peer and ``sf-fused`` (SpikeLinear
wherever a Linear is fed by spikes, ``path="auto"``) against ``sf-fused-dense``. Summary, for
training and inference separately: the **worst** and the median of each figure over the cells,
the targets and the cells that miss them.
"""

from __future__ import annotations

import itertools
import random
import statistics
from collections.abc import Callable, Iterable
from typing import Any

import torch

from spikeforge.core import fused

SURROGATES = tuple(fused._SURROGATES)
#: factor -> values (the surrogate only in training)
FACTORS: dict[str, tuple[Any, ...]] = {
    "surrogate": SURROGATES,
    "readout": ("linear", "lif"),
    "steps": (4, 16, 32),
    "batch": (32, 128, 256),
    "density": (0.05, 0.2, 0.5),
    "threads": (1, 2),
}
#: (arch, train) of the matrix's networks
NETWORKS = (("mlp", True), ("mlp", False), ("conv-bn", True))
#: worst ratio to relu-T allowed (training, inference) and the speed-up over the fastest peer
TARGET_TRAIN, TARGET_INFER, TARGET_PEER = 1.2, 1.1, 1.3
#: conv cells with more samples (T·B) are skipped: six contenders' conv activations at
#: T·B = 4096 / 8192 (up to 3 GiB each, held together in one process whose allocator keeps its
#: heap) exceed the 24 GiB of the machine this was written on
CONV_MAX_SAMPLES = 2048
#: sf-fused (path="auto") may be at most this much slower than sf-fused-dense
TARGET_AUTO = 1.03
RECOMMENDED, DENSE, BOUND = "sf-fused", "sf-fused-dense", "relu-T"


def _pairs(row: dict[str, Any]) -> set[tuple[tuple[str, Any], tuple[str, Any]]]:
    items = sorted(row.items())
    return set(itertools.combinations(items, 2))


def covering_array(factors: dict[str, tuple[Any, ...]], seed: int = 0) -> list[dict[str, Any]]:
    """Rows (factor -> value) in which every pair of values of two factors occurs at least once;
    greedy: each row is the candidate of the shuffled full product covering most new pairs."""
    candidates = [dict(zip(factors, v, strict=True)) for v in itertools.product(*factors.values())]
    random.Random(seed).shuffle(candidates)
    uncovered = set().union(*(_pairs(c) for c in candidates))
    rows = []
    while uncovered:
        best = max(candidates, key=lambda c: len(_pairs(c) & uncovered))
        rows.append(best)
        uncovered -= _pairs(best)
    return rows


def cells(networks: Iterable[tuple[str, bool]] = NETWORKS) -> list[tuple[Any, int]]:
    """``(Workload, threads)`` of every cell of the matrix, network by network (the conv cells
    above :data:`CONV_MAX_SAMPLES` included: :func:`too_big` names them)."""
    from neurons import Workload  # beside this script

    out = []
    for arch, train in networks:
        factors = dict(FACTORS) if train else {k: v for k, v in FACTORS.items() if k != "surrogate"}
        for row in covering_array(factors):
            threads = row.pop("threads")
            out.append((Workload(arch=arch, train=train, **row), threads))
    return out


def too_big(workload: Any) -> bool:
    """Whether a cell is skipped for memory (:data:`CONV_MAX_SAMPLES`)."""
    return workload.arch != "mlp" and workload.steps * workload.batch > CONV_MAX_SAMPLES


def run_cell(
    workload: Any, threads: int, names: list[str], budget_s: float, max_repeats: int
) -> dict[str, Any]:
    """Spike check, warm-up, then interleaved repeats of every contender within ``budget_s``."""
    import neurons  # beside this script

    torch.set_num_threads(threads)
    load_before = neurons.load_average()
    spikes = neurons.spike_check(workload, names)
    torch.manual_seed(0)
    steps = {name: neurons.CONTENDERS[name](workload) for name in names}
    warm = neurons.interleaved(steps, 1)  # the first call also measures SpikeLinear's paths
    per_round = sum(t[0] for t in warm.values()) / 1e3
    repeats = max(3, min(max_repeats, int(budget_s / max(per_round, 1e-9))))
    times = neurons.interleaved(steps, repeats)
    med = {n: statistics.median(t) for n, t in times.items()}
    peers = [n for n in names if n in neurons.PEERS]
    cell: dict[str, Any] = {
        "workload": {**vars(workload), "label": workload.label()},
        "threads": threads,
        "repeats": repeats,
        "median_ms": med,
        "ratio_to_bound": {n: med[n] / med[BOUND] for n in names},
        "spikes": spikes,
        "load": [load_before, neurons.load_average()],
    }
    if peers:
        fastest = min(peers, key=med.__getitem__)
        cell["fastest_peer"] = fastest
        cell["speedup_over_fastest_peer"] = med[fastest] / med[RECOMMENDED]
    if DENSE in med:
        cell["auto_vs_dense"] = med[RECOMMENDED] / med[DENSE]
    return cell


def _stats(values: list[float], worst: Callable[[list[float]], float]) -> dict[str, float]:
    return {"worst": worst(values), "median": statistics.median(values), "cells": len(values)}


def summarise(results: list[dict[str, Any]], names: list[str]) -> dict[str, Any]:
    """Worst and median of every figure, training and inference apart, and the misses."""
    summary: dict[str, Any] = {}
    for mode, target in (("train", TARGET_TRAIN), ("infer", TARGET_INFER)):
        rows = [r for r in results if r["workload"]["train"] == (mode == "train")]
        if not rows:
            continue
        part: dict[str, Any] = {
            "target_ratio_to_bound": target,
            "ratio_to_bound": {
                n: _stats([r["ratio_to_bound"][n] for r in rows], max) for n in names if n != BOUND
            },
        }
        with_peers = [r for r in rows if "speedup_over_fastest_peer" in r]
        if with_peers:
            part["speedup_over_fastest_peer"] = _stats(
                [r["speedup_over_fastest_peer"] for r in with_peers], min
            )
        if all("auto_vs_dense" in r for r in rows):
            part["auto_vs_dense"] = _stats([r["auto_vs_dense"] for r in rows], max)
        part["misses"] = [
            {
                "cell": f"{r['workload']['label']} {r['threads']}t",
                "ratio_to_bound": r["ratio_to_bound"][RECOMMENDED],
                "speedup_over_fastest_peer": r.get("speedup_over_fastest_peer"),
                # the most any contender can gain over that peer without beating relu-T
                "fastest_peer_to_bound": (
                    r["ratio_to_bound"][r["fastest_peer"]] if "fastest_peer" in r else None
                ),
                "auto_vs_dense": r.get("auto_vs_dense"),
            }
            for r in rows
            if r["ratio_to_bound"][RECOMMENDED] > target
            or r.get("speedup_over_fastest_peer", TARGET_PEER) < TARGET_PEER
            or r.get("auto_vs_dense", 1.0) > TARGET_AUTO
        ]
        summary[mode] = part
    return summary


def print_summary(summary: dict[str, Any]) -> None:
    for mode, part in summary.items():
        cells_n = next(iter(part["ratio_to_bound"].values()))["cells"]
        print(f"\n{mode}: worst (median) over {cells_n} cells, {len(part['misses'])} miss a target")
        for name, s in part["ratio_to_bound"].items():
            print(f"  {name:15s} x{s['worst']:5.2f} ({s['median']:4.2f}) of {BOUND}")
        if "speedup_over_fastest_peer" in part:
            s = part["speedup_over_fastest_peer"]
            print(f"  {RECOMMENDED} over the fastest peer: {s['worst']:.2f}x ({s['median']:.2f}x)")
        if "auto_vs_dense" in part:
            s = part["auto_vs_dense"]
            print(f"  {RECOMMENDED} / {DENSE}: {s['worst']:.3f} ({s['median']:.3f})")
        for miss in part["misses"]:
            print(f"    miss: {miss['cell']}")


def cell_id(workload: Any, threads: int) -> str:
    return f"{workload.label()} {threads}t"


def run_matrix(
    names: list[str],
    report: dict[str, Any],
    json_path: Any,
    *,
    budget_s: float,
    max_repeats: int,
    networks: Iterable[tuple[str, bool]] = NETWORKS,
    limit: int | None = None,
) -> dict[str, Any]:
    """Runs the cells (the first ``limit`` of them), writing ``report`` to ``json_path`` after
    each one; a report already there from the same code and contenders is resumed (its cells
    are kept, not measured again)."""
    import json

    from spikeforge.io import write_json

    done: dict[str, dict[str, Any]] = {}
    if json_path is not None and json_path.is_file():
        try:
            old = json.loads(json_path.read_text())
            if old.get("code_version") == report["code_version"] and old.get("names") == names:
                done = {c["id"]: c for c in old.get("cells", [])}
                print(f"resuming {json_path}: {len(done)} cells already measured")
        except (OSError, ValueError):
            pass
    report.update(
        names=names,
        design={"factors": {k: list(v) for k, v in FACTORS.items()}, "networks": list(networks)},
        cells=[],
        skipped=[],
    )
    todo = cells(networks)[:limit]
    for i, (workload, threads) in enumerate(todo):
        key = cell_id(workload, threads)
        if too_big(workload):
            report["skipped"].append({"id": key, "why": f"T*B > {CONV_MAX_SAMPLES} (memory)"})
            print(f"[{i + 1}/{len(todo)}] {key}: skipped (T*B > {CONV_MAX_SAMPLES}, memory)")
            continue
        cell = done.get(key)
        if cell is None:
            cell = {"id": key, **run_cell(workload, threads, names, budget_s, max_repeats)}
        report["cells"].append(cell)
        ratio = cell["ratio_to_bound"][RECOMMENDED]
        extra = ""
        if "speedup_over_fastest_peer" in cell:
            extra = f", {cell['speedup_over_fastest_peer']:.2f}x the fastest peer"
        print(f"[{i + 1}/{len(todo)}] {key}: x{ratio:.2f} of {BOUND}{extra}", flush=True)
        report["summary"] = summarise(report["cells"], names)
        if json_path is not None:
            write_json(json_path, report)
    print_summary(report["summary"])
    return report


def resummarise(path: Any) -> None:
    """Recomputes the summary of a matrix JSON (e.g. after a change of this summary), recording
    the code version that did (the cells keep the one that measured them)."""
    import json
    from pathlib import Path

    from spikeforge.io import code_version, write_json

    report = json.loads(Path(path).read_text())
    report["summary"] = summarise(report["cells"], report["names"])
    report["summary_code_version"] = code_version()
    write_json(path, report)
    print_summary(report["summary"])


if __name__ == "__main__":
    import sys

    resummarise(sys.argv[1])
