"""One host under one condition, with or without DWAM: a batch of paired episodes (spec §6.4).

Both arms run through the same per-sample :class:`~spikeforge.homeostasis.DWAM` (the control
arm with ``adapt=False``), so they share the weight substitution, the per-episode degraded
weights and the rate bookkeeping, and differ only in the weight update. Episodes run in lockstep
(:func:`~spikeforge.control.rollout_batch`); each is its own DWAM stream.

Reset seeds, observation-noise seeds and weight-noise seeds are functions of the episode seed
alone, so every arm, family and host sees the same draws (paired comparisons, spec §6.5).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor

from spikeforge.control import Degradation, Host, rollout_batch
from spikeforge.homeostasis import DWAM

__all__ = [
    "ENV_IDS",
    "NEURONS",
    "PLASTIC",
    "RATE_FLOOR",
    "DWAMParams",
    "make_envs",
    "nominal_reference",
    "run_condition",
]

ENV_IDS = {"cartpole": "CartPole-v1", "pendulum": "Pendulum-v1"}
PLASTIC = ("fc1", "fc2")
"""The host's plastic (and degraded) layers: its two hidden synaptic layers."""
NEURONS = {"fc1": "lif1", "fc2": "lif2"}
OBS_NOISE_SEED = 50_000  # + episode seed
WEIGHT_NOISE_SEED = 90_000  # + episode seed
RATE_FLOOR = 1e-3  # nominal rates below this count as this in relative deviations (as c_ref)
SATURATED = 0.9  # rate (spikes per SNN step) above which a neuron counts as saturated (§6.4)


@dataclass(frozen=True)
class DWAMParams:
    """DWAM hyper-parameters of the study (spec §4.2 names)."""

    eta: float = 0.01
    tau_theta: float = 10.0
    zeta: float = 2.0
    window: int = 200
    tau_c: float = 1.0

    def build(self, host: Host, c_ref: dict[str, Tensor] | None, adapt: bool) -> DWAM:
        """A per-sample DWAM on the host's hidden layers (raises on invalid parameters)."""
        return DWAM(host, list(PLASTIC), c_ref=c_ref, per_sample=True, adapt=adapt, **asdict(self))


def make_envs(
    task: str,
    condition: Degradation,
    seeds: list[int],
    wrap: Callable[[gym.Env], gym.Env] | None = None,
) -> list[gym.Env]:
    """One environment per episode with the condition's environment part (and ``wrap``
    applied to the bare environment first, e.g. a state recorder)."""
    envs = [gym.make(ENV_IDS[task]) for _ in seeds]
    if wrap is not None:
        envs = [wrap(e) for e in envs]
    return [condition.wrap(e, seed=OBS_NOISE_SEED + s) for e, s in zip(envs, seeds, strict=True)]


@torch.no_grad()
def nominal_reference(host: Host, seeds: list[int]) -> dict[str, Tensor]:
    """``c_ref`` per neuron: the host's mean rates on nominal episodes (trained weights, no
    adaptation), over every step of every episode."""
    observations: list[np.ndarray] = []

    def policy(obs: np.ndarray, alive: np.ndarray) -> Any:
        observations.append(obs[alive].copy())
        return host.act(torch.from_numpy(obs)).numpy()

    rollout_batch(make_envs(host.config.task, Degradation(), seeds), policy, seeds)
    probe = DWAM(host, list(PLASTIC))
    chunks = np.concatenate(observations)
    inputs = [host.encode(torch.from_numpy(c)) for c in np.array_split(chunks, 8)]
    return probe.record_reference(inputs)


@torch.no_grad()
def run_condition(
    host: Host,
    condition: Degradation,
    seeds: list[int],
    params: DWAMParams,
    c_ref: dict[str, Tensor],
    adapt: bool,
    wrap: Callable[[gym.Env], gym.Env] | None = None,
) -> dict[str, Any]:
    """Episodes ``seeds`` of ``host`` under ``condition``; per-episode metrics (spec §6.4).

    Returns a dict of per-episode lists: ``returns``, ``lengths``, and per plastic layer
    ``rate`` (mean rate over the episode's steps and the layer's neurons), ``silent`` /
    ``saturated`` (fractions of neurons with rate 0 / > 0.9 over the episode), ``fluctuation``
    (std over steps of the layer's mean rate), ``drift`` (``‖W − W_0‖/‖W_0‖`` at the episode's
    last step); the per-step ``trace`` (mean over live episodes of each layer's rate and of the
    reward, and the number of live episodes); and ``seconds_per_step`` (wall time per batched
    environment step, policy and environments together). ``wrap`` is applied to every bare
    environment (:func:`make_envs`).
    """
    task = host.config.task
    envs = make_envs(task, condition, seeds, wrap)
    dwam = params.build(host, c_ref, adapt)
    trained = {p: getattr(host, p).layer.weight for p in PLASTIC}
    draws = [condition.episode_weights(trained, seed=WEIGHT_NOISE_SEED + s) for s in seeds]
    dwam.reset(weights={p: torch.stack([d[p] for d in draws]) for p in PLASTIC})
    n = len(seeds)
    rate_sum = {p: torch.zeros(n, host.config.hidden[i]) for i, p in enumerate(PLASTIC)}
    mean_sum = {p: torch.zeros(n, dtype=torch.float64) for p in PLASTIC}
    mean_sq = {p: torch.zeros(n, dtype=torch.float64) for p in PLASTIC}
    drift = {p: torch.zeros(n, dtype=torch.float64) for p in PLASTIC}
    trace: dict[str, list[float]] = {p: [] for p in PLASTIC} | {"reward": [], "alive": []}
    steps = torch.zeros(n)

    def policy(obs: np.ndarray, alive: np.ndarray) -> Any:
        y = dwam(host.encode(torch.from_numpy(obs))).mean(0)
        live = torch.from_numpy(alive)
        steps.add_(live.float())
        for p, r in dwam.rates().items():
            masked = r * live.unsqueeze(1)
            rate_sum[p] += masked
            layer = r.mean(1).double()
            mean_sum[p] += layer * live
            mean_sq[p] += layer * layer * live
            trace[p].append(float(layer[live].mean()))
        for p, change in dwam.weight_change().items():
            drift[p] = torch.where(live, change.double(), drift[p])
        return host.to_action(y).numpy()

    def on_step(t: int, rewards: np.ndarray, was_alive: np.ndarray) -> None:
        trace["reward"].append(float(rewards[was_alive].mean()))
        trace["alive"].append(int(was_alive.sum()))

    start = time.perf_counter()
    result = rollout_batch(envs, policy, seeds, on_step=on_step)
    elapsed = time.perf_counter() - start
    per_neuron = {p: rate_sum[p] / steps.unsqueeze(1) for p in PLASTIC}
    out: dict[str, Any] = {
        "returns": result.returns.tolist(),
        "lengths": result.lengths.tolist(),
        "seconds_per_step": elapsed / len(trace["alive"]),
        "trace": trace,
    }
    for p in PLASTIC:
        mean = mean_sum[p] / steps.double()
        var = (mean_sq[p] / steps.double() - mean * mean).clamp_min(0.0)
        out[p] = {
            "rate": per_neuron[p].mean(1).tolist(),
            "silent": (per_neuron[p] == 0).float().mean(1).tolist(),
            "saturated": (per_neuron[p] > SATURATED).float().mean(1).tolist(),
            "fluctuation": var.sqrt().tolist(),
            "drift": drift[p].tolist(),
        }
    return out
