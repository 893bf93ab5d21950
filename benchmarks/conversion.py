"""Inference cost of a QCFS network, its PASCAL SNN and its plain IF-SNN, in the same run.

One QCFS network (``spikeforge.convert.to_qcfs`` of the reproduction's vgg-small or
resnet-small, trained briefly here on MNIST, or loaded from a ``spikeforge reproduce
conversion`` report folder with ``--report``) is converted to

* PASCAL (``to_pascal``): ``snn(x)``, the closed-form fast path, equal to the QCFS network; also
  ``snn.simulate(x)``, the step-by-step reference, on ``--simulate-samples`` images;
* a plain IF-SNN (``to_if``), run for ``T*`` steps, where ``T*`` is the first ``T <= --max-steps``
  at which its accuracy on the timed images reaches PASCAL's, or, when it never does, the ``T``
  of its best accuracy (found in an untimed run first).

The QCFS ANN, PASCAL's fast path and the IF-SNN at ``T*`` are timed on the same images (batches
of ``--batch-size``, ``torch.inference_mode()``, one warm-up pass, then ``--repeats``
measurements interleaved A B C, A B C with a rotating start; the median; a contender whose pass
takes under 2 s is measured over as many passes as make 2 s, up to 50). Printed and written
with ``--json``: time per image, the ratios (PASCAL / ANN, IF / ANN, IF / PASCAL), accuracies,
PASCAL's agreement with the ANN, ``T*`` and PASCAL's ``T_eff`` and latency, the CPU model, thread
count and the load average before and after (helpers shared with ``ttfs_inference.py``).

Run: ``python benchmarks/conversion.py [--arch vgg-small] [--report
reports/conversion-mnist-vgg-small] [--threads 2] [--json out.json]``
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor, nn

from allocator import tune_malloc  # benchmarks/allocator.py, beside this script
from spikeforge.convert import set_levels, to_if, to_pascal, to_qcfs
from spikeforge.data import load_dataset
from spikeforge.experiments.conversion.networks import ARCHITECTURES, build
from spikeforge.experiments.conversion.runs import curve_indices
from spikeforge.io import load_torch, write_json
from spikeforge.training import TrainConfig, train_classifier
from ttfs_inference import add_run_options, cpu_info, load_average, run_record

CONTENDERS = ("qcfs-ann", "pascal", "if-snn")
MIN_SECONDS = 2.0  # shortest measurement: fast contenders repeat their pass up to this long


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", choices=["mnist", "fashion-mnist"], default="mnist")
    p.add_argument("--data-dir", default=None, help="data directory (default: $SPIKEFORGE_DATA)")
    p.add_argument("--arch", choices=sorted(ARCHITECTURES), default="vgg-small")
    p.add_argument("--width", type=int, default=None, help="default: the reproduction's")
    p.add_argument("--levels", type=int, default=4, help="uniform QCFS levels when training here")
    p.add_argument(
        "--report",
        type=Path,
        default=None,
        help="load the trained QCFS network from this 'reproduce conversion' folder instead",
    )
    p.add_argument("--network", default="L4", help="with --report: which QCFS network (L4, L8, AL)")
    p.add_argument("--train-steps", type=int, default=400, help="QCFS training steps (batch 128)")
    p.add_argument(
        "--samples", type=int, default=2000, help="timed test images, spread over the test set"
    )
    p.add_argument("--batch-size", type=int, default=500)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--max-steps", type=int, default=64, help="largest IF-SNN T searched")
    p.add_argument("--simulate-samples", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    add_run_options(p)
    args = p.parse_args(argv)
    if min(args.samples, args.batch_size, args.repeats, args.max_steps) < 1:
        p.error("--samples, --batch-size, --repeats and --max-steps must be >= 1")
    if args.train_steps < 0 or args.simulate_samples < 0:
        p.error("--train-steps and --simulate-samples must be >= 0")
    return args


def qcfs_network(args: argparse.Namespace, x: Tensor, y: Tensor) -> tuple[nn.Module, dict]:
    """The QCFS network (eval mode) and where it came from."""
    if args.report is not None:
        settings = json.loads((args.report / "parts" / "settings.json").read_text())
        torch.manual_seed(settings["seed"])
        model = build(settings["arch"], width=settings["width"])
        name = args.network
        if name == "AL":
            al = json.loads((args.report / "parts" / "al-levels.json").read_text())
            levels: int | list[int] = al["levels"]
        else:
            levels = int(name.removeprefix("L"))
        qnet = to_qcfs(model, levels=levels, init_lambda=settings["init_lambda"])
        set_levels(qnet, levels)
        qnet.load_state_dict(load_torch(args.report / f"qcfs-{name}.pt")["model"])
        source = {"report": str(args.report), "network": name, "arch": settings["arch"]}
        return qnet.eval(), source
    torch.manual_seed(args.seed)
    qnet = to_qcfs(build(args.arch, width=args.width), levels=args.levels, init_lambda=1.0)
    n = min(x.shape[0], args.train_steps * 128)
    start = time.perf_counter()
    if n:
        cfg = TrainConfig(epochs=1, batch_size=128, lr=2e-3, seed=args.seed, progress=False)
        train_classifier(qnet, x[:n], y[:n], cfg)
    source = {
        "trained_here": {"images": n, "steps": args.train_steps, "levels": args.levels},
        "arch": args.arch,
        "train_seconds": round(time.perf_counter() - start, 1),
    }
    return qnet.eval(), source


def timed_pass(fn: Callable[[Tensor], Tensor], batches: list[Tensor], passes: int = 1) -> float:
    """Wall time in seconds of one pass over all batches (the mean of ``passes`` passes)."""
    start = time.perf_counter()
    for _ in range(passes):
        for b in batches:
            fn(b)
    return (time.perf_counter() - start) / passes


def if_accuracy_curve(
    ifnet: nn.Module, batches: list[Tensor], y: Tensor, steps: int
) -> list[float]:
    """Accuracy at every ``T = 1..steps`` (the IF network's running-mean read-out)."""
    correct = torch.zeros(steps, dtype=torch.float64)
    start = 0
    for b in batches:
        out = ifnet.run(b, steps)
        labels = y[start : start + b.shape[0]]
        correct += (out.argmax(-1) == labels).sum(1).double()
        start += b.shape[0]
    return (correct / y.shape[0]).tolist()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    t0 = time.perf_counter()
    load_before = load_average()
    allocator = "default allocator" if args.default_malloc else tune_malloc()
    threads = args.threads or [torch.get_num_threads()]
    torch.set_num_threads(threads[-1])
    print(f"torch {torch.__version__}, threads = {threads}, {allocator}")
    print(
        f"CPU: {cpu_info()} ({platform.machine()}, {os.cpu_count()} logical CPUs), python "
        f"{platform.python_version()}; {load_before}"
    )
    data = load_dataset(args.dataset, args.data_dir)
    qnet, source = qcfs_network(args, data.x_train, data.y_train)
    idx = curve_indices(data.x_test.shape[0], args.samples)  # spread over the test set
    x, y = data.x_test[idx], data.y_test[idx]
    batches = list(x.split(args.batch_size))
    pascal = to_pascal(qnet)
    ifnet = to_if(qnet)
    with torch.inference_mode():
        ann_logits = torch.cat([qnet(b) for b in batches])
        pas_logits = torch.cat([pascal(b) for b in batches])
        ann_acc = float((ann_logits.argmax(1) == y).double().mean())
        pas_acc = float((pas_logits.argmax(1) == y).double().mean())
        agreement = float((pas_logits.argmax(1) == ann_logits.argmax(1)).double().mean())
        curve = if_accuracy_curve(ifnet, batches, y, args.max_steps)
    reached = [t for t, a in enumerate(curve, start=1) if a >= pas_acc]
    best = max(curve)
    t_star = reached[0] if reached else curve.index(best) + 1
    print(
        f"{args.dataset} {source['arch']}: QCFS ANN {ann_acc:.4f}, PASCAL {pas_acc:.4f} "
        f"(agreement {agreement:.4f}, T_eff {pascal.t_eff.mean:.2f}, latency "
        f"{pascal.latency.pipelined}); IF-SNN "
        + (
            f"reaches PASCAL's accuracy at T* = {t_star}"
            if reached
            else f"never reaches it within {args.max_steps}; best {best:.4f} at T* = {t_star}"
        )
    )
    contenders: dict[str, Callable[[Tensor], Tensor]] = {
        "qcfs-ann": qnet,
        "pascal": pascal,
        "if-snn": lambda b: ifnet.run(b, t_star),
    }
    rows = []
    for n_threads in threads:
        torch.set_num_threads(n_threads)
        times: dict[str, list[float]] = {name: [] for name in CONTENDERS}
        passes: dict[str, int] = {}
        with torch.inference_mode():
            for name, fn in contenders.items():  # warm-up; short contenders repeat their pass
                once = timed_pass(fn, batches)  # so that one measurement lasts >= MIN_SECONDS
                passes[name] = max(1, min(50, math.ceil(MIN_SECONDS / max(once, 1e-6))))
            for r in range(args.repeats):
                for i in range(len(CONTENDERS)):
                    name = CONTENDERS[(r + i) % len(CONTENDERS)]
                    times[name].append(timed_pass(contenders[name], batches, passes[name]))
            sim_s = None
            if args.simulate_samples:
                xs = x[: args.simulate_samples]
                pascal.simulate(xs[:8])
                start = time.perf_counter()
                pascal.simulate(xs)
                sim_s = time.perf_counter() - start
        per_image = {k: statistics.median(v) / x.shape[0] * 1e3 for k, v in times.items()}
        row = {
            "threads": n_threads,
            "passes_per_measurement": passes,
            "ms_per_image": per_image,
            "all_seconds": times,
            "ratio": {
                "pascal/qcfs-ann": per_image["pascal"] / per_image["qcfs-ann"],
                "if-snn/qcfs-ann": per_image["if-snn"] / per_image["qcfs-ann"],
                "if-snn/pascal": per_image["if-snn"] / per_image["pascal"],
            },
            "pascal_simulate_ms_per_image": None
            if sim_s is None
            else sim_s / min(args.simulate_samples, x.shape[0]) * 1e3,
        }
        rows.append(row)
        print(f"\n{n_threads} threads, ms per image (median of {args.repeats} measurements):")
        for name in CONTENDERS:
            extra = f" (T* = {t_star})" if name == "if-snn" else ""
            print(f"  {name:<9} {per_image[name]:8.4f}{extra}")
        if row["pascal_simulate_ms_per_image"] is not None:
            print(f"  pascal step-by-step reference: {row['pascal_simulate_ms_per_image']:.4f}")
        print("  ratios: " + ", ".join(f"{k} {v:.2f}x" for k, v in row["ratio"].items()))
    load_after = load_average()
    print(f"\n{load_after}; total {time.perf_counter() - t0:.0f} s")
    if args.json:
        record = run_record("conversion", args, threads, allocator, load_before, load_after)
        record |= {
            "source": source,
            "samples": int(x.shape[0]),
            "qcfs_accuracy": ann_acc,
            "pascal_accuracy": pas_acc,
            "pascal_agreement": agreement,
            "pascal_levels": [layer.levels for layer in pascal.layers],
            "pascal_t_eff": pascal.t_eff.mean,
            "pascal_latency": {
                "pipelined": pascal.latency.pipelined,
                "sequential": pascal.latency.sequential,
            },
            "if_accuracy": curve,
            "if_steps": t_star,
            "if_reaches_pascal": bool(reached),
            "timing": rows,
            "seconds": round(time.perf_counter() - t0, 1),
        }
        write_json(args.json, record)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
