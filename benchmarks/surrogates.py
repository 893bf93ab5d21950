"""Cost of each surrogate gradient in the fused neuron's training step, against atan's.

One training step of a LIF layer alone (``lif_multistep`` forward on ``x [T, B, N]`` with
``requires_grad``, then ``backward`` of the spikes against a fixed random gradient), on the fused
path, for every surrogate, over a matrix of shapes (T, B, N), dtypes and thread counts. The
surrogates of one setting are interleaved in every repeat (median over ``--repeats``) so that
load changes hit them alike. The issue's target: every surrogate at most 1.05x atan's time.
Prints one row per setting and the worst ratio; ``--json`` writes the results.

Run: ``python benchmarks/surrogates.py [--threads 1,2] [--json out.json]``
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch

from spikeforge.core import fused
from spikeforge.core.functional import lif_multistep
from spikeforge.io import write_json
from ttfs_inference import cpu_info, load_average, thread_counts  # beside this script

SURROGATES = tuple(fused._SURROGATES)
SHAPES = ((4, 128, 4096), (16, 32, 16384), (32, 256, 1024))  # (T, B, N)
TARGET_RATIO = 1.05


def time_step(x: torch.Tensor, grad: torch.Tensor, surrogate: str) -> float:
    """Seconds of one forward + backward of the LIF layer on the fused path."""
    start = time.perf_counter()
    spikes, _ = lif_multistep(x, tau=2.0, surrogate=surrogate, backend="fused")
    spikes.backward(grad)
    return time.perf_counter() - start


def bench_setting(shape: tuple[int, int, int], dtype: torch.dtype, repeats: int) -> dict:
    g = torch.Generator().manual_seed(0)
    x = (torch.randn(shape, generator=g, dtype=dtype) * 0.8 + 0.6).requires_grad_()
    grad = torch.randn(shape, generator=g, dtype=dtype)
    times: dict[str, list[float]] = {s: [] for s in SURROGATES}
    for s in SURROGATES:  # warm-up
        time_step(x, grad, s)
    for r in range(repeats):
        order = SURROGATES if r % 2 == 0 else SURROGATES[::-1]
        for s in order:
            x.grad = None
            times[s].append(time_step(x, grad, s))
    median = {s: statistics.median(t) for s, t in times.items()}
    return {
        "shape": list(shape),
        "dtype": str(dtype).removeprefix("torch."),
        "ms": {s: 1e3 * v for s, v in median.items()},
        "ratio_to_atan": {s: v / median["atan"] for s, v in median.items()},
        "repeats_ms": {s: [1e3 * v for v in t] for s, t in times.items()},
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=thread_counts, default=None, help="e.g. 1,2")
    p.add_argument("--repeats", type=int, default=11)
    p.add_argument("--dtype", choices=["float32", "float64", "both"], default="both")
    p.add_argument("--json", default=None, help="write the results as JSON here")
    args = p.parse_args(argv)
    if not fused.is_available():
        print(f"fused kernels unavailable: {fused.unavailable_reason()}", file=sys.stderr)
        return 1
    dtypes = (
        [torch.float32, torch.float64] if args.dtype == "both" else [getattr(torch, args.dtype)]
    )
    threads = args.threads or [torch.get_num_threads()]
    load_before = load_average()
    print(f"CPU: {cpu_info()}; torch {torch.__version__}; {load_before}")
    rows = []
    for n_threads in threads:
        torch.set_num_threads(n_threads)
        for dtype in dtypes:
            for shape in SHAPES:
                row = bench_setting(shape, dtype, args.repeats) | {"threads": n_threads}
                rows.append(row)
                ratios = "  ".join(f"{s} {r:.2f}x" for s, r in row["ratio_to_atan"].items())
                print(
                    f"T,B,N={shape} {row['dtype']} {n_threads} thr: atan "
                    f"{row['ms']['atan']:.1f} ms; {ratios}"
                )
    worst = max(
        ((r["ratio_to_atan"][s], s, r) for r in rows for s in SURROGATES if s != "atan"),
        key=lambda w: w[0],
    )
    ratio, surrogate, row = worst
    print(
        f"worst: {surrogate} {ratio:.2f}x atan (T,B,N={row['shape']} {row['dtype']}, "
        f"{row['threads']} threads); target <= {TARGET_RATIO}x"
    )
    if args.json:
        from spikeforge.io import code_version

        write_json(
            args.json,
            {
                "benchmark": "surrogates",
                "code_version": code_version(),
                "cpu": cpu_info(),
                "torch": torch.__version__,
                "load_before": load_before,
                "load_after": load_average(),
                "target_ratio": TARGET_RATIO,
                "rows": rows,
                "worst": {
                    "ratio": ratio,
                    "surrogate": surrogate,
                    "shape": row["shape"],
                    "dtype": row["dtype"],
                    "threads": row["threads"],
                },
            },
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
