"""Hand-written expert policies for the control tasks of the DWAM protocol (spec §6.1).

Every policy is a plain function ``observation -> action`` with no state, so a rollout is fully
determined by the environment's reset seed (and, for noisy observations, by the wrapper's seed).

Measured with gymnasium 1.4.0 (see ``tests/control/test_experts.py``):

* :func:`cartpole_expert` scores 500 (the maximum) on CartPole-v1 for reset seeds 0..19; under
  :class:`~spikeforge.control.degradations.ObservationNoise` with ``seed=0`` (one generator shared
  by the 20 consecutive episodes, reset seeds 100..119) the mean return is 500.0 (σ = 0.05),
  210.1 (σ = 0.1) and 68.45 (σ = 0.2).
* :func:`pendulum_expert` has mean return -139.63 on Pendulum-v1 over reset seeds 0..49
  (min -364.67, max -0.003).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

__all__ = [
    "PENDULUM_UPRIGHT_ENERGY",
    "RolloutResult",
    "cartpole_expert",
    "pendulum_expert",
    "rollout",
]

#: E* = ½·0² + (3g/2l)·cos 0 with g = 10, l = 1: the energy of the upright rest state in the
#: units of Pendulum-v1's dynamics θ̈ = (3g/2l)·sin θ + 3u/(ml²).
PENDULUM_UPRIGHT_ENERGY = 15.0

_CARTPOLE_GAINS = np.array([0.1, 0.5, 1.0, 0.5])


def cartpole_expert(observation: np.ndarray) -> int:
    """CartPole-v1 expert: push right (1) iff 0.1·x + 0.5·ẋ + 1.0·θ + 0.5·θ̇ > 0, else left (0).

    Args:
        observation: ``[x, x_dot, theta, theta_dot]`` (any float dtype, shape ``(4,)``).

    Returns:
        The discrete action, 0 or 1.
    """
    obs = np.asarray(observation, dtype=np.float64)
    if obs.shape != (4,):
        raise ValueError(f"cartpole_expert expects an observation of shape (4,), got {obs.shape}")
    return int(float(_CARTPOLE_GAINS @ obs) > 0.0)


def pendulum_expert(
    observation: np.ndarray,
    kp: float = 10.0,
    kd: float = 2.0,
    k_energy: float = 1.0,
    band: float = 0.5,
    max_torque: float = 2.0,
) -> np.ndarray:
    """Pendulum-v1 expert: energy-shaping swing-up plus PD balance near the top.

    With θ = atan2(sin θ, cos θ) (θ = 0 upright) and E = ½θ̇² + 15·cos θ:
    if cos θ > cos(band), u = −kp·θ − kd·θ̇; otherwise u = k_energy·(E* − E)·sign(θ̇)
    with sign(0) := 1 and E* = 15. The torque is clipped to ``[-max_torque, max_torque]``.

    Args:
        observation: ``[cos θ, sin θ, θ̇]``, shape ``(3,)``.
        kp, kd: PD gains of the balance controller.
        k_energy: gain of the energy-shaping swing-up.
        band: half-width in radians of the region where the PD controller is used.
        max_torque: torque limit (the environment's own limit is 2).

    Returns:
        The action, a float32 array of shape ``(1,)``.
    """
    obs = np.asarray(observation, dtype=np.float64)
    if obs.shape != (3,):
        raise ValueError(f"pendulum_expert expects an observation of shape (3,), got {obs.shape}")
    cos_th, sin_th, theta_dot = (float(v) for v in obs)
    theta = math.atan2(sin_th, cos_th)
    if cos_th > math.cos(band):
        u = -kp * theta - kd * theta_dot
    else:
        energy = 0.5 * theta_dot**2 + PENDULUM_UPRIGHT_ENERGY * cos_th
        sign = 1.0 if theta_dot >= 0.0 else -1.0
        u = k_energy * (PENDULUM_UPRIGHT_ENERGY - energy) * sign
    u = min(max(u, -max_torque), max_torque)
    return np.array([u], dtype=np.float32)


@dataclass(frozen=True)
class RolloutResult:
    """Outcome of one episode.

    Attributes:
        episode_return: sum of the rewards.
        length: number of environment steps taken.
        terminated: True if the episode ended by termination (not truncation).
        info: the ``info`` dict of the last step.
    """

    episode_return: float
    length: int
    terminated: bool
    info: dict[str, Any]


def rollout(
    env: gym.Env,
    policy: Callable[[Any], Any],
    seed: int | None,
    max_steps: int | None = None,
    options: dict[str, Any] | None = None,
) -> RolloutResult:
    """Run one episode of ``policy`` in ``env`` from ``env.reset(seed=seed)``.

    Deterministic given ``seed`` for deterministic policies (and, with wrappers that draw noise,
    given the wrappers' own generator state).

    Args:
        env: a gymnasium environment (wrapped or not).
        policy: maps an observation to an action.
        seed: reset seed; ``None`` continues the environment's generator.
        max_steps: optional cap on the number of steps on top of the environment's own time limit.
        options: passed to ``env.reset``.

    Returns:
        A :class:`RolloutResult`.
    """
    if max_steps is not None and max_steps < 1:
        raise ValueError(f"max_steps must be >= 1, got {max_steps}")
    obs, info = env.reset(seed=seed, options=options)
    total = 0.0
    length = 0
    terminated = False
    while True:
        obs, reward, terminated, truncated, info = env.step(policy(obs))
        total += float(reward)
        length += 1
        if terminated or truncated or (max_steps is not None and length >= max_steps):
            break
    return RolloutResult(
        episode_return=total, length=length, terminated=bool(terminated), info=dict(info)
    )
