"""``SpikeLinear(path="auto")`` against ``nn.Linear`` on the same layer, over a settings matrix.

Issue 10's promise for the recommended path: a ``SpikeLinear`` that decides between its event
and dense paths (measured once per layer shape and machine,
:mod:`spikeforge.core.spike_linear_paths`) is never more than 3 % slower than the ``nn.Linear``
it replaces. In a whole network the
layer is one part of a step and the network's run-to-run noise is larger than 3 %
(``neuron_matrix.py``), so this script times the layer alone: the same weights, Bernoulli input
spikes ``[rows, in]`` (float32), training (forward and backward to the input, the weight and the
bias, as in a network whose spikes come from a neuron) or inference (``no_grad``).

Factors: layer shape (in, out), rows (the T·B samples of a multi-step layer), input density
(2-50 %), training / inference, 1 and 2 threads; a pairwise covering array over them (every
value of every factor meets every value of every other factor in some cell, fixed seed; the same
construction as ``neuron_matrix.py``). Per cell: a warm-up call (which also measures the layer's
path decision), then ``--repeats`` interleaved rounds of auto, dense and the dense layer again
("control", sharing the weight tensors), each timing enough calls to last at least ``--min-ms``;
the cell's figure is the median of the paired ratios auto / dense, with the path ``auto`` took
and the control's ratio (the noise floor of the measurement). Prints the worst and the median
over the cells and the cells above 1.03x.

Run: ``python benchmarks/spike_linear_auto.py [--repeats 15] [--json out.json]``
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from neuron_matrix import covering_array  # beside this script
from spikeforge.core import spike_linear as sl
from spikeforge.io import code_version, write_json
from ttfs_inference import cpu_info, load_average  # beside this script

FACTORS: dict[str, tuple[Any, ...]] = {
    "layer": ((784, 512), (512, 512), (512, 256), (1024, 1024), (256, 2048)),
    "rows": (128, 512, 2048, 8192),
    "density": (0.02, 0.05, 0.1, 0.2, 0.3, 0.5),
    "train": (True, False),
    "threads": (1, 2),
}
TARGET = 1.03


def _call(layer: nn.Module, x: torch.Tensor, grad: torch.Tensor, train: bool) -> Callable[[], None]:
    """One training step of the layer (forward, backward of ``grad``) or one inference call."""
    if train:

        def step() -> None:
            layer.zero_grad(set_to_none=True)
            x.grad = None
            layer(x).backward(grad)

        return step

    def infer() -> None:
        with torch.no_grad():
            layer(x)

    return infer


def _seconds_per_call(run: Callable[[], None], calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        run()
    return (time.perf_counter() - start) / calls


def _path_taken(layer: sl.SpikeLinear, x: torch.Tensor, train: bool) -> str:
    """Which path ``auto`` takes for ``x`` (the decision is cached by the warm-up call)."""
    if not sl._eligible(x, layer.weight):
        return "dense (not eligible)"
    limit = min(layer.max_density, sl._event_limit(x.shape[0], layer.weight, train))
    density = float(x.mean())
    return "event" if density <= limit else f"dense (limit {limit:.3f})"


def run_cell(cell: dict[str, Any], repeats: int, min_seconds: float) -> dict[str, Any]:
    torch.set_num_threads(cell["threads"])
    (width, out), rows, train = cell["layer"], cell["rows"], cell["train"]
    gen = torch.Generator().manual_seed(0)
    dense = nn.Linear(width, out)
    auto = sl.SpikeLinear(width, out, path="auto")
    auto.weight, auto.bias = dense.weight, dense.bias  # the same tensors: same memory placement
    x = (torch.rand(rows, width, generator=gen) < cell["density"]).float().requires_grad_(train)
    grad = torch.randn(rows, out, generator=gen)
    # "control" is the dense layer timed a second time: its ratio to "dense" is the noise floor
    runs = {
        "auto": _call(auto, x, grad, train),
        "dense": _call(dense, x, grad, train),
        "control": _call(dense, x, grad, train),
    }
    for run in runs.values():  # warm-up; auto's first call measures its path decision
        run()
    once = min(_seconds_per_call(r, 1) for r in runs.values())
    calls = max(1, int(min_seconds / max(once, 1e-7)))
    ratios, controls, ms = [], [], {name: [] for name in runs}
    for r in range(repeats):
        order = tuple(runs) if r % 2 == 0 else tuple(reversed(runs))
        t = {name: _seconds_per_call(runs[name], calls) for name in order}
        ratios.append(t["auto"] / t["dense"])
        controls.append(t["control"] / t["dense"])
        for name in t:
            ms[name].append(1e3 * t[name])
    return {
        "layer": list(cell["layer"]),
        "rows": rows,
        "density": cell["density"],
        "mode": "train" if train else "infer",
        "threads": cell["threads"],
        "path": _path_taken(auto, x.detach(), train),
        "calls_per_timing": calls,
        "ms": {name: statistics.median(v) for name, v in ms.items()},
        "ratio": statistics.median(ratios),
        "ratios": ratios,
        "control_ratio": statistics.median(controls),
    }


def cell_id(c: dict[str, Any]) -> str:
    return (
        f"{c['layer'][0]}x{c['layer'][1]} rows={c['rows']} p={c['density']} "
        f"{c['mode']} {c['threads']}t"
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=15, help="interleaved rounds per cell")
    p.add_argument("--min-ms", type=float, default=20.0, help="each timing lasts at least this")
    p.add_argument("--max-cells", type=int, default=None, help="only the first N cells")
    p.add_argument("--json", default=None, help="write the results as JSON here")
    args = p.parse_args(argv)
    if not sl.is_available():
        print("the event kernels cannot be built here: nothing to compare", file=sys.stderr)
        return 1
    load_before = load_average()
    print(f"CPU: {cpu_info()}; torch {torch.__version__}; {load_before}")
    cells = covering_array(FACTORS)[: args.max_cells]
    results = []
    for cell in cells:
        res = run_cell(cell, args.repeats, args.min_ms / 1e3)
        results.append(res)
        print(
            f"{cell_id(res):42s} auto {res['ms']['auto']:8.3f} ms  dense {res['ms']['dense']:8.3f}"
            f" ms  auto/dense {res['ratio']:.3f}  ({res['path']}; dense/dense "
            f"{res['control_ratio']:.3f})",
            flush=True,
        )
    ratios = [r["ratio"] for r in results]
    event = [r["ratio"] for r in results if r["path"] == "event"]
    summary = {
        "cells": len(results),
        "worst": max(ratios),
        "median": statistics.median(ratios),
        "event_cells": len(event),
        "event_best": min(event) if event else None,
        "target": TARGET,
        "noise_floor": max(abs(r["control_ratio"] - 1.0) for r in results),
        "misses": [
            {"cell": cell_id(r), "ratio": r["ratio"], "path": r["path"]}
            for r in results
            if r["ratio"] > TARGET
        ],
    }
    print(
        f"auto / dense over {summary['cells']} cells: worst {summary['worst']:.3f}, median "
        f"{summary['median']:.3f}; event path in {len(event)} cells"
        + (f" (best {summary['event_best']:.3f})" if event else "")
        + f"; cells above {TARGET}: {len(summary['misses'])}; noise floor (the dense layer against "
        f"itself): +-{summary['noise_floor']:.3f}"
    )
    if args.json:
        write_json(
            args.json,
            {
                "code_version": code_version(),
                "cpu": cpu_info(),
                "torch": torch.__version__,
                "load_before": load_before,
                "load_after": load_average(),
                "repeats": args.repeats,
                "min_ms": args.min_ms,
                "factors": {
                    k: [list(v) if isinstance(v, tuple) else v for v in vs]
                    for k, vs in FACTORS.items()
                },
                "results": results,
                "summary": summary,
            },
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
