"""``spikeforge control train`` and ``spikeforge control run``: a host, DWAM and a degradation
from the command line, with an optional GIF / MP4 of one episode."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import gymnasium as gym
import numpy as np

from spikeforge.control import Degradation, save_host
from spikeforge.experiments.arguments import positive_int
from spikeforge.experiments.dwam.evaluate import (
    PLASTIC,
    DWAMParams,
    nominal_reference,
    run_condition,
)
from spikeforge.experiments.dwam.render import FPS, StateRecorder, draw_frame, write_animation
from spikeforge.experiments.dwam.runs import (
    FAMILIES,
    REFERENCE_SEED,
    TEST_SEED,
    load_trained_host,
    train_host,
)
from spikeforge.experiments.registry import Command

__all__ = ["COMMANDS"]

ENVS = {"cartpole": "cartpole", "pendulum": "pendulum"}


def _degradation(text: str) -> Degradation:
    try:
        return Degradation.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _train_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--env", choices=list(ENVS), required=True)
    parser.add_argument("--family", choices=FAMILIES, default="lif", help="host neurons (lif)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True, help="where to save the host (.pt)")


def _train(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    host = train_host(args.env, args.family, args.seed)
    save_host(host, args.out)
    print(f"host trained in {time.perf_counter() - start:.0f} s, saved to {args.out}")
    return 0


def _run_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = DWAMParams()
    parser.add_argument("--env", choices=list(ENVS), required=True)
    parser.add_argument("--host", required=True, help="a saved host (spikeforge control train)")
    parser.add_argument("--dwam", choices=["on", "off", "both"], default="both")
    parser.add_argument(
        "--degrade",
        type=_degradation,
        default=Degradation(),
        help="e.g. weight-scale=0.6 or obs-noise=0.1,weight-noise=0.2 (nominal)",
    )
    parser.add_argument("--episodes", type=positive_int, default=5)
    parser.add_argument("--seed", type=int, default=TEST_SEED, help="first reset seed")
    parser.add_argument("--eta", type=float, default=defaults.eta)
    parser.add_argument("--window", type=positive_int, default=defaults.window)
    parser.add_argument("--tau-theta", type=float, default=defaults.tau_theta)
    parser.add_argument("--tau-c", type=float, default=defaults.tau_c)
    parser.add_argument("--zeta", type=float, default=defaults.zeta)
    parser.add_argument("--render", default=None, help="write the first episode to a .gif/.mp4")


def _run(args: argparse.Namespace) -> int:
    path = Path(args.host)
    if not path.is_file():
        print(
            f"spikeforge: error: no host at {path}; train one with `spikeforge control train "
            f"--env {args.env} --out {path}` (or use reports/dwam/hosts/ from "
            "`spikeforge reproduce dwam`)"
        )
        return 2
    try:
        host = load_trained_host(path)
        params = DWAMParams(
            eta=args.eta,
            window=args.window,
            tau_theta=args.tau_theta,
            tau_c=args.tau_c,
            zeta=args.zeta,
        )
        params.build(host, None, adapt=False)  # validates the parameters
    except (ValueError, KeyError, RuntimeError, OSError) as exc:
        print(f"spikeforge: error: {exc}")
        return 2
    if host.config.task != args.env:
        print(f"spikeforge: error: {path} is a {host.config.task} host, not {args.env}")
        return 2
    c_ref = nominal_reference(host, list(range(REFERENCE_SEED, REFERENCE_SEED + 5)))
    seeds = list(range(args.seed, args.seed + args.episodes))
    arms = (
        ["control", "dwam"] if args.dwam == "both" else ["dwam" if args.dwam == "on" else "control"]
    )
    print(f"{args.env}, host {path.name}, {args.degrade.label}, {args.episodes} episodes")
    for arm in arms:
        r = run_condition(host, args.degrade, seeds, params, c_ref, adapt=arm == "dwam")
        rates = ", ".join(f"{p} {np.mean(r[p]['rate']):.3f}" for p in PLASTIC)
        nominal = ", ".join(f"{p} {float(c_ref[p].mean()):.3f}" for p in PLASTIC)
        print(
            f"  {'DWAM' if arm == 'dwam' else 'no DWAM':8s} return {np.mean(r['returns']):8.1f} "
            f"(per episode {', '.join(f'{v:.1f}' for v in r['returns'])}); rates {rates} "
            f"(nominal {nominal}); {r['seconds_per_step'] * 1e3:.2f} ms per step"
        )
    if args.render:
        arm = arms[-1]
        recorders: list[StateRecorder] = []

        def record(env: gym.Env) -> gym.Env:
            recorders.append(StateRecorder(env))
            return recorders[-1]

        run_condition(
            host, args.degrade, seeds[:1], params, c_ref, adapt=arm == "dwam", wrap=record
        )
        rec = recorders[0]
        total, frames = 0.0, []
        for t, state in enumerate(rec.states):
            total += rec.rewards[t - 1] if t else 0.0
            caption = (
                f"{args.env}  {args.degrade.label}  DWAM {'on' if arm == 'dwam' else 'off'}  "
                f"step {t}  return {total:.1f}"
            )
            frames.append(draw_frame(args.env, state, caption))
        try:
            out = write_animation(frames, args.render, FPS[args.env])
        except (RuntimeError, ValueError) as exc:
            print(f"spikeforge: error: {exc}")
            return 2
        print(f"episode {seeds[0]} ({len(frames) - 1} steps) written to {out}")
    return 0


COMMANDS = (
    Command(
        "train",
        "behaviour-clone an SNN host (spec dwam.md 6.1) and save it",
        _train_arguments,
        _train,
        group="control",
    ),
    Command(
        "run",
        "run a saved host with or without DWAM under a degradation; optional GIF/MP4",
        _run_arguments,
        _run,
        group="control",
    ),
)
