"""Many episodes in lockstep with one batched policy call per environment step.

A batched SNN host costs about the same per call for 1 or 20 observations, so running the
episodes of an evaluation side by side (one environment each, stepped one after the other in
Python) is what makes a protocol of thousands of episodes affordable (spec ``dwam.md`` §6.5).

Layout: the policy receives the observations ``[B, D]`` (float32; a finished episode keeps
passing its last observation, so the batch never changes shape) and the mask ``alive [B]``, and
returns ``B`` actions (anything indexable: ``[B]`` ints, ``[B, 1]`` torques).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

__all__ = ["BatchResult", "rollout_batch"]

BatchPolicy = Callable[[np.ndarray, np.ndarray], Any]
StepCallback = Callable[[int, np.ndarray, np.ndarray], None]


@dataclass(frozen=True)
class BatchResult:
    """Outcome of ``B`` episodes.

    Attributes:
        returns: ``[B]`` sum of rewards.
        lengths: ``[B]`` environment steps taken.
        terminated: ``[B]`` True where the episode ended by termination (not truncation).
        infos: the ``info`` dict of each episode's last step.
    """

    returns: np.ndarray
    lengths: np.ndarray
    terminated: np.ndarray
    infos: list[dict[str, Any]]


def rollout_batch(
    envs: Sequence[gym.Env],
    policy: BatchPolicy,
    seeds: Sequence[int | None],
    max_steps: int | None = None,
    on_step: StepCallback | None = None,
) -> BatchResult:
    """Run one episode in each of ``envs`` (reset with ``seeds``) in lockstep.

    Every step calls ``policy(obs [B, D], alive [B])`` once and steps each live environment with
    its action; finished episodes are not stepped again. ``on_step(t, rewards [B], alive [B])``
    (``alive`` as it was before the step) is called after every step. Each episode equals what
    :func:`~spikeforge.control.rollout` gives for a policy that treats the batch row by row
    (observations are passed as float32).

    Args:
        envs: one environment per episode (wrapped or not; never shared).
        policy: the batched policy.
        seeds: reset seed per environment.
        max_steps: optional cap on the steps of every episode.
        on_step: optional per-step callback.
    """
    if len(envs) == 0 or len(envs) != len(seeds):
        raise ValueError(f"need one seed per environment, got {len(envs)} envs, {len(seeds)} seeds")
    if len({id(e) for e in envs}) != len(envs):
        raise ValueError("every episode needs its own environment instance")
    if max_steps is not None and max_steps < 1:
        raise ValueError(f"max_steps must be >= 1, got {max_steps}")
    n = len(envs)
    first = [env.reset(seed=seed)[0] for env, seed in zip(envs, seeds, strict=True)]
    obs = np.stack([np.asarray(o, dtype=np.float32) for o in first])
    alive = np.ones(n, dtype=bool)
    returns = np.zeros(n)
    lengths = np.zeros(n, dtype=np.int64)
    terminated = np.zeros(n, dtype=bool)
    infos: list[dict[str, Any]] = [{} for _ in range(n)]
    t = 0
    while alive.any():
        actions = policy(obs, alive.copy())
        rewards = np.zeros(n)
        was_alive = alive.copy()
        for i in np.flatnonzero(alive):
            o, r, term, trunc, info = envs[i].step(actions[i])
            obs[i] = np.asarray(o, dtype=np.float32)
            rewards[i] = float(r)
            lengths[i] += 1
            if term or trunc or (max_steps is not None and lengths[i] >= max_steps):
                alive[i] = False
                terminated[i] = bool(term)
                infos[i] = dict(info)
        returns += rewards
        if on_step is not None:
            on_step(t, rewards, was_alive)
        t += 1
    return BatchResult(returns, lengths, terminated, infos)
