"""Inference cost of TTFS networks against the ReLU networks they are mapped from.

For each architecture (FC2, LeNet5) the ReLU network is trained briefly on an MNIST training
subset, mapped to B1 and alpha1 TTFS networks with :func:`spikeforge.ttfs.from_relu`, and timed
on the full MNIST test set (10,000 images, batches of ``--batch-size``) under
``torch.inference_mode()``:

* the ReLU network and the TTFS closed form ``net(x)`` (B1 and alpha1), same dtype, same
  batching, interleaved in every repeat after one warm-up pass; the median over ``--repeats``;
* the prediction agreement of each TTFS network with its ReLU network (1.0 expected in float64);
* the throughput of the exact event-driven simulators (float64), each after a warm-up call on
  8 images, with their largest deviation from the closed form (logits, absolute spike times,
  and window-relative spike times ``t_max - t`` as both compute them; ``engine_vs_closed`` is
  the larger of the logits' and the window-relative figure): the compiled event engine
  (:mod:`spikeforge.ttfs.engine`) on ``--engine-samples`` test images (default: all), timed
  against the float64 closed form on the same images in the same process (targets:
  ENGINE_TARGETS samples/s), and the Python reference simulator on ``--sim-samples`` images.

The acceptance target is a closed form costing at most 1.5x the ReLU network's time; every row
prints PASS or FAIL against it (the exit status does not depend on it).

``--threads 1,2`` runs the timings and the simulator once per thread count in the same process
(same trained and mapped networks) and records each row with its thread count; ``--json`` writes
every repeat, the CPU model, the load average before and after, and the worst ratio per thread
count and overall.

Run: ``SPIKEFORGE_DATA=/path/to/data python benchmarks/ttfs_inference.py [--threads 1,2]
[--json out.json]``
"""

from __future__ import annotations

import argparse
import copy
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn

from allocator import tune_malloc  # benchmarks/allocator.py, beside this script
from spikeforge.data import load_mnist, to_unit_float
from spikeforge.io import code_version, write_json
from spikeforge.metrics import max_abs_difference
from spikeforge.models import fc2, lenet5
from spikeforge.training import TrainConfig, train_classifier
from spikeforge.ttfs import TTFSNetwork, from_relu
from spikeforge.ttfs import engine as ttfs_engine
from spikeforge.ttfs.evaluate import window_relative_times
from spikeforge.ttfs.events import simulate

TARGET_RATIO = 1.5
#: event-engine throughput targets (samples/s, on 2 threads), issue 15
ENGINE_TARGETS = {"fc2": 10_000.0, "lenet5": 2_000.0}
NEURONS = ("b1", "alpha1")
ARCHS: dict[str, Callable[[], nn.Sequential]] = {"fc2": fc2, "lenet5": lenet5}
DTYPES = {"float64": torch.float64, "float32": torch.float32}
TRAIN_BATCH = 128
NOISY_SPREAD = 1.25  # max / min of a contender's repeats above this: warn about noisy timings


@dataclass
class TimingRow:
    arch: str
    dtype: str
    threads: int
    relu_ms: float
    ttfs_ms: dict[str, float]
    ratio: dict[str, float]
    agreement: dict[str, float]
    relu_accuracy: float
    all_ms: dict[str, list[float]] = field(default_factory=dict)

    def passed(self, neuron: str) -> bool:
        return self.ratio[neuron] <= TARGET_RATIO

    def spread(self) -> float:
        """Largest max / min over the repeats of any contender (1.0: perfectly steady)."""
        return max(max(v) / min(v) for v in self.all_ms.values())


@dataclass
class SimRow:
    arch: str
    neuron: str
    threads: int
    samples: int
    seconds: float
    samples_per_s: float
    max_abs_diff: float
    agreement: float
    engine: str = "python"
    closed_samples_per_s: float = 0.0
    max_abs_diff_hidden: float = 0.0
    early_spikes: int = 0
    target_samples_per_s: float | None = None
    #: largest difference of the hidden layers' window-relative times ``t_max - t`` as the
    #: simulator and the closed form compute them (the Python simulator's from its absolute
    #: times); ``max_abs_diff_hidden`` is over absolute times
    max_abs_diff_hidden_window_relative: float = 0.0
    #: max(max_abs_diff, max_abs_diff_hidden_window_relative): the exactness figure (<= 1e-12)
    engine_vs_closed: float = 0.0


def cpu_info() -> str:
    """The CPU model line of /proc/cpuinfo (Linux), else what :mod:`platform` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load_average() -> str:
    try:
        return "load average " + " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "load average n/a"


def start_run(args: argparse.Namespace) -> tuple[float, str, str, list[int], list[str], list[str]]:
    """The start of a TTFS benchmark run: start time, load average, allocator set-up (glibc
    tuned unless ``--default-malloc``), and the thread counts, architectures and dtypes asked
    for (``--threads``, ``--arch``, ``--dtype``)."""
    t0 = time.perf_counter()
    load_before = load_average()
    allocator = "default allocator" if args.default_malloc else tune_malloc()
    threads = args.threads or [torch.get_num_threads()]
    archs = list(ARCHS) if args.arch == "all" else [args.arch]
    dtypes = list(DTYPES) if args.dtype == "both" else [args.dtype]
    return t0, load_before, allocator, threads, archs, dtypes


def run_record(
    benchmark: str,
    args: argparse.Namespace,
    threads: list[int],
    allocator: str,
    load_before: str,
    load_after: str,
) -> dict:
    """What every benchmark JSON starts with: the benchmark, code version, machine (CPU model,
    cores, allocator), versions, thread counts, load before and after, and the arguments."""
    return {
        "benchmark": benchmark,
        "code_version": code_version(),
        "torch": torch.__version__,
        "threads": threads,
        "cpu": cpu_info(),
        "cpu_count": os.cpu_count(),
        "allocator": allocator,
        "python": platform.python_version(),
        "load_before": load_before,
        "load_after": load_after,
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
    }


def thread_counts(text: str) -> list[int]:
    """``--threads`` value: one count (``2``) or a comma-separated matrix (``1,2``)."""
    try:
        counts = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a thread count or list: {text!r}") from None
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError(f"thread counts must be >= 1: {text!r}")
    return list(dict.fromkeys(counts))


def worst_ratios(rows: list[dict], ratio_keys: list[str]) -> dict:
    """The largest ratio per thread count and overall, with the setting it was measured at.

    ``rows`` are JSON rows carrying ``threads``, ``arch``, ``dtype`` and a ``ratio`` (a float,
    or a dict per neuron model)."""
    by_threads: dict[str, dict] = {}
    overall: dict | None = None
    for row in rows:
        ratios = row["ratio"] if isinstance(row["ratio"], dict) else {ratio_keys[0]: row["ratio"]}
        for key, value in ratios.items():
            entry = {"ratio": value, "arch": row["arch"], "dtype": row["dtype"], "model": key}
            entry["threads"] = row["threads"]
            current = by_threads.get(str(row["threads"]))
            if current is None or value > current["ratio"]:
                by_threads[str(row["threads"])] = entry
            if overall is None or value > overall["ratio"]:
                overall = entry
    return {"per_threads": by_threads, "overall": overall}


def add_run_options(p: argparse.ArgumentParser) -> None:
    """``--threads``, ``--default-malloc`` and ``--json``, shared by the TTFS benchmarks."""
    p.add_argument(
        "--threads",
        type=thread_counts,
        default=None,
        help="torch threads: one count or a comma-separated matrix such as 1,2, timed one after "
        "the other in this process (default: torch's)",
    )
    p.add_argument(
        "--default-malloc",
        action="store_true",
        help="keep glibc's default allocation behaviour (noisier timings; see tune_malloc)",
    )
    p.add_argument("--json", type=Path, default=None, help="write the results as JSON here")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default=None, help="data directory (default: $SPIKEFORGE_DATA)")
    p.add_argument("--arch", choices=[*ARCHS, "all"], default="all")
    p.add_argument("--batch-size", type=int, default=256, help="inference batch size")
    p.add_argument("--repeats", type=int, default=5, help="timed passes per contender")
    p.add_argument("--dtype", choices=[*DTYPES, "both"], default="both")
    p.add_argument(
        "--train-steps",
        type=int,
        default=80,
        help=f"optimizer steps (batches of {TRAIN_BATCH}, one epoch over the first "
        f"steps*{TRAIN_BATCH} training images) to train the ReLU network; 0: untrained",
    )
    p.add_argument(
        "--calib-samples", type=int, default=4096, help="training images used for calibration"
    )
    p.add_argument(
        "--sim-samples", type=int, default=256, help="images for the Python event simulator"
    )
    p.add_argument(
        "--engine-samples",
        type=int,
        default=10_000,
        help="images for the compiled event engine and its closed-form comparison (0: skip)",
    )
    p.add_argument("--seed", type=int, default=0)
    add_run_options(p)
    args = p.parse_args(argv)
    if args.batch_size < 1 or args.repeats < 1 or args.train_steps < 0:
        p.error("--batch-size and --repeats must be >= 1, --train-steps >= 0")
    if args.calib_samples < 1 or args.sim_samples < 0 or args.engine_samples < 0:
        p.error("--calib-samples must be >= 1, --sim-samples and --engine-samples >= 0")
    return args


def train_relu(
    arch: str, x: Tensor, y: Tensor, steps: int, seed: int
) -> tuple[nn.Sequential, float]:
    """A briefly trained float32 ReLU network (eval mode) and the training time in seconds."""
    torch.manual_seed(seed)
    model = ARCHS[arch]()
    start = time.perf_counter()
    if steps > 0:
        n = min(x.shape[0], steps * TRAIN_BATCH)
        cfg = TrainConfig(epochs=1, batch_size=TRAIN_BATCH, lr=1e-3, seed=seed, progress=False)
        train_classifier(model, x[:n], y[:n], cfg)
    model.eval()
    return model, time.perf_counter() - start


def run_all(fn: Callable[[Tensor], Tensor], batches: list[Tensor]) -> Tensor:
    """Logits of ``fn`` over all batches (used for the untimed warm-up / agreement pass)."""
    return torch.cat([fn(b) for b in batches])


def timed_pass(fn: Callable[[Tensor], Tensor], batches: list[Tensor]) -> float:
    """Wall time in ms of one pass over all batches."""
    start = time.perf_counter()
    for b in batches:
        fn(b)
    return (time.perf_counter() - start) * 1e3


def bench_dtype(
    arch: str,
    dtype_name: str,
    threads: int,
    relu: nn.Module,
    nets: dict[str, TTFSNetwork],
    x_test: Tensor,
    y_test: Tensor,
    batch_size: int,
    repeats: int,
) -> TimingRow:
    dtype = DTYPES[dtype_name]
    batches = list(x_test.to(dtype).split(batch_size))
    contenders: dict[str, Callable[[Tensor], Tensor]] = {"relu": relu}
    contenders.update(nets)
    names = list(contenders)
    times: dict[str, list[float]] = {name: [] for name in names}
    with torch.inference_mode():
        # Warm-up pass, which also gives the predictions for the agreement check.
        preds = {name: run_all(fn, batches).argmax(1) for name, fn in contenders.items()}
        for r in range(repeats):
            # Interleave the contenders (A B C A B C ...), rotating the start so that no
            # contender always runs right after the same other one.
            for i in range(len(names)):
                name = names[(r + i) % len(names)]
                times[name].append(timed_pass(contenders[name], batches))
    med = {name: statistics.median(v) for name, v in times.items()}
    return TimingRow(
        arch=arch,
        dtype=dtype_name,
        threads=threads,
        relu_ms=med["relu"],
        ttfs_ms={n: med[n] for n in nets},
        ratio={n: med[n] / med["relu"] for n in nets},
        agreement={n: float((preds[n] == preds["relu"]).double().mean()) for n in nets},
        relu_accuracy=float((preds["relu"] == y_test).double().mean()),
        all_ms=times,
    )


def bench_simulator(
    arch: str, neuron: str, threads: int, net: TTFSNetwork, x: Tensor, engine: str = "python"
) -> SimRow:
    """Event-driven simulator (float64) throughput, its deviation from the closed form and, for
    the compiled engine, the closed form's throughput on the same images right after."""
    x = x.to(torch.float64)
    with torch.inference_mode():
        closed = net.run(x)
        if engine == "compiled":
            ttfs_engine.simulate(net, x[:8])  # warm-up (and the kernel build, if needed)
            start = time.perf_counter()
            sim = ttfs_engine.simulate(net, x)
            seconds = time.perf_counter() - start
            start = time.perf_counter()
            net(x)
            closed_seconds = time.perf_counter() - start
        else:
            net.simulate(x[:8], engine="python")
            start = time.perf_counter()
            sim = simulate(net, x)
            seconds = time.perf_counter() - start
            closed_seconds = 0.0
    logits, early = sim.logits, sum(sim.early_spikes)
    hidden_diff = max_abs_difference(sim.hidden_times, closed.hidden_times)
    relative_diff = max_abs_difference(
        window_relative_times(net, sim), window_relative_times(net, closed)
    )
    logits_diff = max_abs_difference(logits, closed.logits)
    return SimRow(
        arch=arch,
        neuron=neuron,
        threads=threads,
        samples=x.shape[0],
        seconds=seconds,
        samples_per_s=x.shape[0] / seconds if seconds > 0 else float("inf"),
        max_abs_diff=logits_diff,
        agreement=float((logits.argmax(1) == closed.logits.argmax(1)).double().mean()),
        engine=engine,
        closed_samples_per_s=x.shape[0] / closed_seconds if closed_seconds > 0 else 0.0,
        max_abs_diff_hidden=hidden_diff,
        early_spikes=early,
        target_samples_per_s=ENGINE_TARGETS.get(arch) if engine == "compiled" else None,
        max_abs_diff_hidden_window_relative=relative_diff,
        engine_vs_closed=max(logits_diff, relative_diff),
    )


def verdict(ratio: float) -> str:
    return "PASS" if ratio <= TARGET_RATIO else "FAIL"


def print_timing_table(rows: list[TimingRow], n_test: int) -> None:
    head = (
        f"{'arch':<7} {'dtype':<8} {'thr':>3} {'relu ms':>9} {'ttfs-b1 ms':>11} {'ratio':>7} "
        f"{'ttfs-alpha1 ms':>15} {'ratio':>7}  {'agree b1/alpha1':>16}  target<={TARGET_RATIO}x"
    )
    print(f"\nClosed-form inference time per {n_test} test images (median of repeats)")
    print(head)
    print("-" * len(head))
    for r in rows:
        ok = "PASS" if all(r.passed(n) for n in NEURONS) else "FAIL"
        print(
            f"{r.arch:<7} {r.dtype:<8} {r.threads:3d} {r.relu_ms:9.1f} {r.ttfs_ms['b1']:11.1f} "
            f"{r.ratio['b1']:6.2f}x {r.ttfs_ms['alpha1']:15.1f} {r.ratio['alpha1']:6.2f}x  "
            f"{r.agreement['b1']:7.4f}/{r.agreement['alpha1']:<8.4f}  {ok}"
        )
    print()
    for r in rows:
        for n in NEURONS:
            print(
                f"{r.arch} {r.dtype} {r.threads} thr {n}: ttfs/relu = {r.ratio[n]:.2f}x  "
                f"{verdict(r.ratio[n])} (target <= {TARGET_RATIO}x); "
                f"agreement with ReLU = {r.agreement[n]:.4f}; "
                f"ReLU test accuracy = {r.relu_accuracy:.4f}"
            )


def print_sim_table(rows: list[SimRow]) -> None:
    if not rows:
        return
    head = (
        f"{'arch':<7} {'neuron':<7} {'engine':<8} {'thr':>3} {'samples':>7} {'seconds':>8} "
        f"{'samples/s':>10} {'closed/s':>9} {'max|logits|':>11} {'max|times|':>10} "
        f"{'max|t_max-t|':>12} {'agree':>6} target"
    )
    print("\nEvent-driven simulators (float64) vs closed form")
    print(head)
    print("-" * len(head))
    for r in rows:
        target = ""
        if r.target_samples_per_s is not None:
            ok = "PASS" if r.samples_per_s >= r.target_samples_per_s else "FAIL"
            target = f">= {r.target_samples_per_s:.0f}/s {ok}"
        closed = f"{r.closed_samples_per_s:9.0f}" if r.closed_samples_per_s else f"{'-':>9}"
        print(
            f"{r.arch:<7} {r.neuron:<7} {r.engine:<8} {r.threads:3d} {r.samples:7d} "
            f"{r.seconds:8.2f} {r.samples_per_s:10.1f} {closed} {r.max_abs_diff:11.2e} "
            f"{r.max_abs_diff_hidden:10.2e} {r.max_abs_diff_hidden_window_relative:12.2e} "
            f"{r.agreement:6.4f} {target}"
        )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    t0, load_before, allocator, threads, archs, dtypes = start_run(args)

    print(f"torch {torch.__version__}, threads = {threads}, {allocator}")
    print(
        f"CPU: {cpu_info()} ({platform.machine()}, {os.cpu_count()} logical CPUs), python "
        f"{platform.python_version()}; {load_before}"
    )

    train_images, train_labels = load_mnist("train", args.data_dir)
    test_images, test_labels = load_mnist("test", args.data_dir)
    x_train = to_unit_float(train_images, 255.0, torch.float32)
    y_train = torch.as_tensor(train_labels)
    x_test = to_unit_float(test_images, 255.0, torch.float64)
    y_test = torch.as_tensor(test_labels)
    calibration = to_unit_float(train_images[: args.calib_samples], 255.0, torch.float64)
    n_train = min(x_train.shape[0], args.train_steps * TRAIN_BATCH)
    print(
        f"MNIST: test {x_test.shape[0]} images, batch {args.batch_size}, repeats {args.repeats}; "
        f"ReLU trained {args.train_steps} steps on {n_train} images; "
        f"calibration {calibration.shape[0]} images"
    )

    timing: list[TimingRow] = []
    sims: list[SimRow] = []
    for arch in archs:
        torch.set_num_threads(threads[-1])
        relu32, train_s = train_relu(arch, x_train, y_train, args.train_steps, args.seed)
        relu64 = copy.deepcopy(relu32).to(torch.float64).eval()
        start = time.perf_counter()
        nets64 = {n: from_relu(relu64, calibration, neuron=n).eval() for n in NEURONS}
        map_s = time.perf_counter() - start
        print(f"[{arch}] trained in {train_s:.1f} s, mapped (b1 + alpha1) in {map_s:.2f} s")
        for n_threads in threads:
            torch.set_num_threads(n_threads)
            for dtype_name in dtypes:
                dtype = DTYPES[dtype_name]
                relu = relu64 if dtype == torch.float64 else relu32
                nets = {n: copy.deepcopy(net).to(dtype).eval() for n, net in nets64.items()}
                row = bench_dtype(
                    arch,
                    dtype_name,
                    n_threads,
                    relu,
                    nets,
                    x_test,
                    y_test,
                    args.batch_size,
                    args.repeats,
                )
                timing.append(row)
                print(
                    f"[{arch}] {dtype_name}, {n_threads} threads: relu {row.relu_ms:.1f} ms, "
                    + ", ".join(f"{n} {row.ttfs_ms[n]:.1f} ms" for n in NEURONS)
                )
            for n, net in nets64.items():
                if args.engine_samples > 0:
                    row_e = bench_simulator(
                        arch, n, n_threads, net, x_test[: args.engine_samples], "compiled"
                    )
                    sims.append(row_e)
                    print(
                        f"[{arch}] {n} event engine, {n_threads} threads: "
                        f"{row_e.samples_per_s:.0f} samples/s (closed form "
                        f"{row_e.closed_samples_per_s:.0f}), max |diff| {row_e.max_abs_diff:.1e}"
                    )
                if args.sim_samples > 0:
                    sims.append(
                        bench_simulator(arch, n, n_threads, net, x_test[: args.sim_samples])
                    )

    print_timing_table(timing, x_test.shape[0])
    print_sim_table(sims)
    noisy = [
        f"{r.arch}/{r.dtype}/{r.threads} threads ({r.spread():.2f}x)"
        for r in timing
        if r.spread() > NOISY_SPREAD
    ]
    if noisy:
        print(
            f"\nWARNING: noisy timings, max/min over repeats > {NOISY_SPREAD} for "
            f"{', '.join(noisy)}: other processes competing for the CPU (which stalls "
            "multi-threaded kernels) or page faults of the allocator (--default-malloc); rerun "
            "on an idle machine, or with --threads 1, before trusting the ratios"
        )
    rows = [asdict(r) for r in timing]
    worst = worst_ratios(rows, list(NEURONS))
    if worst["overall"] is not None:
        w = worst["overall"]
        print(
            f"\nworst ratio: {w['ratio']:.2f}x ({w['arch']} {w['dtype']} {w['model']}, "
            f"{w['threads']} threads) {verdict(w['ratio'])} (target <= {TARGET_RATIO}x)"
        )
    total_s = time.perf_counter() - t0
    load_after = load_average()
    print(f"total benchmark time: {total_s:.1f} s; {load_after}")

    if args.json is not None:
        record = run_record("ttfs-inference", args, threads, allocator, load_before, load_after)
        payload = record | {
            "test_samples": x_test.shape[0],
            "target_ratio": TARGET_RATIO,
            "noisy_spread": NOISY_SPREAD,
            "noisy": noisy,
            "timing": rows,
            "worst_ratio": worst,
            "simulator": [asdict(r) for r in sims],
            "engine_targets": ENGINE_TARGETS,
            "engine_kernel": str(ttfs_engine.LIBRARY.path),
            "total_seconds": total_s,
        }
        print(f"wrote {write_json(args.json, payload)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
