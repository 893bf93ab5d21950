"""Cost of DWAM per environment step, against the host alone (spec dwam.md §6.4; issue: at most
1.3x the host's time per step).

One environment step of a controller = encode the observation as ``[T, B, D]`` currents, run the
host (T = 5 SNN steps), average the readout, pick the action. The host alone does that under
``torch.no_grad()``; with DWAM the same host runs through :class:`~spikeforge.homeostasis.DWAM`
on its two hidden layers (one update per environment step, K = T). The environments themselves
are not timed, so the ratio is the controller's alone (with the environment's own step added the
ratio would only be smaller: ``ratio_with_env`` adds the measured time of stepping the B
environments, spec §6.4's "wall-clock time per environment step").

Matrix: task (CartPole 4-64-64-2, Pendulum 3-64-64-1) x host family (``lif``: the study's hosts,
LIF neurons on the plain-torch reference path; ``lif-fused``: the same hosts with the library's
default fused LIF kernels, the fastest host and so the hardest case for the ratio; ``adaptive``:
adaptive-threshold neurons) x
batch (1 episode; 20 environments sharing one adapted network; 20 lockstep episodes with one
DWAM stream each, ``per_sample``, as in ``spikeforge reproduce dwam``) x phase
(``gate-closed``: the first W updates of an episode, rates and θ_M only; ``gate-open``: full
updates, W = 20, after a warm-up) x torch threads. In every repeat the host, DWAM and
environment blocks of ``--steps`` steps run back to back (in alternating order), so load changes
hit them alike; the ratio of a setting is the median over ``--repeats`` of each repeat's
DWAM / host ratio (a burst of load on this shared machine spoils one repeat's ratio, not the
median), and the µs columns are medians over the repeats. Prints one row per setting, the worst
ratio and the CPU; ``--json`` writes everything.

Run: ``python benchmarks/dwam_cost.py [--threads 1,2] [--json out.json]``
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable

import gymnasium as gym
import numpy as np
import torch

from spikeforge.control import Host, host_config
from spikeforge.core.neurons import LIF
from spikeforge.experiments.dwam.runs import neuron_factory
from spikeforge.homeostasis import DWAM
from spikeforge.io import code_version, write_json
from ttfs_inference import cpu_info, load_average, thread_counts  # beside this script

TASKS = ("cartpole", "pendulum")
FAMILIES = ("lif", "lif-fused", "adaptive")
MODES = ((1, False), (20, False), (20, True))  # (batch, per_sample)
PHASES = {"gate-closed": 10_000, "gate-open": 20}  # CV window W in updates (closed: never full)
TARGET_RATIO = 1.3
ENV_IDS = {"cartpole": "CartPole-v1", "pendulum": "Pendulum-v1"}


def _step_fn(host: Host, run: Callable[[torch.Tensor], torch.Tensor]) -> Callable:
    def step(obs: torch.Tensor) -> torch.Tensor:
        return host.to_action(run(host.encode(obs)).mean(0))

    return step


def _env_stepper(task: str, batch: int) -> Callable[[torch.Tensor], None]:
    """Steps ``batch`` environments with random valid actions (resetting finished ones)."""
    envs = [gym.make(ENV_IDS[task]) for _ in range(batch)]
    for i, env in enumerate(envs):
        env.reset(seed=i)
    rng = np.random.default_rng(0)

    def step(_: torch.Tensor) -> None:
        for env in envs:
            if task == "cartpole":
                action: object = int(rng.integers(2))
            else:
                action = rng.uniform(-2, 2, size=1).astype(np.float32)
            _, _, term, trunc, _ = env.step(action)
            if term or trunc:
                env.reset()

    return step


def _block(step: Callable, observations: list[torch.Tensor]) -> float:
    """Seconds per environment step over one pass of ``observations``."""
    start = time.perf_counter()
    for obs in observations:
        step(obs)
    return (time.perf_counter() - start) / len(observations)


def _hidden(text: str) -> tuple[int, int]:
    """``--hidden`` value: two positive sizes, ``64,64``."""
    try:
        sizes = tuple(int(part) for part in text.split(","))
    except ValueError:
        sizes = ()
    if len(sizes) != 2 or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"expected two positive sizes like 64,64: {text!r}")
    return sizes  # type: ignore[return-value]


def _host(task: str, family: str, hidden: tuple[int, int]) -> Host:
    """The task's host of ``family`` with hidden sizes ``hidden`` (64, 64: the study's), seed 0
    (the weights :func:`~spikeforge.control.make_host` gives for the study's sizes)."""
    config = host_config(task, hidden=hidden)
    if family == "lif-fused":  # the study's LIF hosts with the default backend ("auto")
        factory: Callable[[], torch.nn.Module] | None = lambda: LIF(tau=config.tau)  # noqa: E731
    else:
        factory = neuron_factory(family)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return Host(config, neuron=factory)


@torch.no_grad()
def bench_setting(
    task: str,
    family: str,
    batch: int,
    per_sample: bool,
    phase: str,
    steps: int,
    repeats: int,
    hidden: tuple[int, int] = (64, 64),
) -> dict:
    host = _host(task, family, hidden)
    g = torch.Generator().manual_seed(1)
    observations = [torch.randn(batch, host.config.obs_dim, generator=g) for _ in range(steps)]
    dwam = DWAM(host, ["fc1", "fc2"], window=PHASES[phase], c_ref=0.1, per_sample=per_sample)
    steps_fn = {
        "host": _step_fn(host, host),
        "dwam": _step_fn(host, dwam),
        "env": _env_stepper(task, batch),
    }
    for obs in observations[:30]:  # warm-up; opens the gate when W = 20
        for fn in steps_fn.values():
            fn(obs)
    times: dict[str, list[float]] = {name: [] for name in steps_fn}
    for r in range(repeats):
        order = list(steps_fn) if r % 2 == 0 else list(steps_fn)[::-1]
        for name in order:
            times[name].append(_block(steps_fn[name], observations))
    median = {k: statistics.median(v) for k, v in times.items()}
    paired = zip(times["dwam"], times["host"], times["env"], strict=True)
    ratios = [(d / h, (d + e) / (h + e)) for d, h, e in paired]
    gates = dwam.gates()
    return {
        "task": task,
        "family": family,
        "batch": batch,
        "per_sample": per_sample,
        "phase": phase,
        "gate_mean": float(sum(float(g.mean()) for g in gates.values()) / len(gates)),
        "us_per_step": {k: 1e6 * v for k, v in median.items()},
        "ratio": statistics.median(r for r, _ in ratios),
        "ratio_with_env": statistics.median(r for _, r in ratios),
        "repeats_us": {k: [1e6 * v for v in t] for k, t in times.items()},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=thread_counts, default=[1])
    parser.add_argument("--steps", type=int, default=200, help="environment steps per block")
    parser.add_argument("--repeats", type=int, default=11)
    parser.add_argument("--tasks", default=",".join(TASKS))
    parser.add_argument("--families", default=",".join(FAMILIES))
    parser.add_argument(
        "--hidden", type=_hidden, default=(64, 64), help="the two hidden sizes (64,64: the study's)"
    )
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    tasks = [t for t in args.tasks.split(",") if t]
    hidden = args.hidden
    families = [f for f in args.families.split(",") if f]
    for f in families:
        if f not in FAMILIES:
            parser.error(f"unknown host family {f!r}; choose from {', '.join(FAMILIES)}")
    load_before = load_average()
    rows = []
    print(f"CPU: {cpu_info()}; {load_before}")
    print(
        f"{'threads':>7} {'task':9} {'family':9} {'B':>3} {'phase':12} host µs  DWAM µs  "
        "env µs  ratio  with env"
    )
    for threads in args.threads:
        torch.set_num_threads(threads)
        for task in tasks:
            for family in families:
                for batch, per_sample in MODES:
                    for phase in PHASES:
                        row = bench_setting(
                            task, family, batch, per_sample, phase, args.steps, args.repeats, hidden
                        )
                        row["threads"] = threads
                        rows.append(row)
                        us = row["us_per_step"]
                        print(
                            f"{threads:>7} {task:9} {family:9} {batch:>3}"
                            f"{'s' if per_sample else ' '} {phase:12} "
                            f"{us['host']:7.0f} {us['dwam']:8.0f} {us['env']:7.0f} "
                            f"{row['ratio']:5.2f}x {row['ratio_with_env']:6.2f}x",
                            flush=True,
                        )
    worst = max(rows, key=lambda r: r["ratio"])
    worst_env = max(r["ratio_with_env"] for r in rows)
    print(
        f"worst ratio {worst['ratio']:.2f}x (target <= {TARGET_RATIO}x) at {worst['task']}, "
        f"{worst['family']}, B={worst['batch']}, {worst['phase']}, {worst['threads']} thread(s); "
        f"with the environments' steps: {worst_env:.2f}x"
    )
    if args.json:
        write_json(
            args.json,
            {
                "cpu": cpu_info(),
                "code_version": code_version(),
                "torch": torch.__version__,
                "load_before": load_before,
                "load_after": load_average(),
                "steps": args.steps,
                "hidden": list(hidden),
                "repeats": args.repeats,
                "target_ratio": TARGET_RATIO,
                "worst": {
                    k: worst[k]
                    for k in ("task", "family", "batch", "per_sample", "phase", "threads")
                }
                | {"ratio": worst["ratio"], "ratio_with_env": worst_env},
                "rows": rows,
            },
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
