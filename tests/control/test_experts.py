"""Spec §6.1: the experts' measured returns with gymnasium 1.4.0."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from spikeforge.control import (
    ObservationNoise,
    cartpole_expert,
    pendulum_expert,
    rollout,
)


def test_cartpole_expert_scores_500_on_seeds_0_to_19() -> None:
    env = gym.make("CartPole-v1")
    results = [rollout(env, cartpole_expert, seed=s) for s in range(20)]
    assert [r.episode_return for r in results] == [500.0] * 20
    assert all(r.length == 500 and not r.terminated for r in results)


@pytest.mark.parametrize(("sigma", "expected"), [(0.05, 500.0), (0.1, 210.1), (0.2, 68.45)])
def test_cartpole_expert_under_observation_noise(sigma: float, expected: float) -> None:
    # spec convention: one generator (seed 0) shared by the 20 consecutive episodes
    env = ObservationNoise(gym.make("CartPole-v1"), sigma=sigma, seed=0)
    returns = [rollout(env, cartpole_expert, seed=s).episode_return for s in range(100, 120)]
    assert np.mean(returns) == pytest.approx(expected, abs=1e-9)


def test_cartpole_expert_noise_hurts_monotonically() -> None:
    means = []
    for sigma in (0.0, 0.1, 0.2):
        env = ObservationNoise(gym.make("CartPole-v1"), sigma=sigma, seed=1)
        means.append(
            np.mean([rollout(env, cartpole_expert, seed=s).episode_return for s in range(100, 110)])
        )
    assert means[0] == 500.0
    assert means[0] > means[1] > means[2]


def test_pendulum_expert_mean_return_seeds_0_to_49() -> None:
    env = gym.make("Pendulum-v1")
    returns = np.array([rollout(env, pendulum_expert, seed=s).episode_return for s in range(50)])
    assert returns.mean() == pytest.approx(-139.6, abs=0.05)
    assert returns.min() == pytest.approx(-364.7, abs=0.05)
    assert returns.max() == pytest.approx(0.0, abs=0.05)


def test_pendulum_expert_gain_insensitivity() -> None:
    env = gym.make("Pendulum-v1")
    for kp, kd in ((20.0, 4.0), (15.0, 3.0)):
        mean = np.mean(
            [
                rollout(
                    env, lambda o, kp=kp, kd=kd: pendulum_expert(o, kp=kp, kd=kd), seed=s
                ).episode_return
                for s in range(50)
            ]
        )
        assert -152.5 <= mean <= -139.0


def test_rollout_is_deterministic_given_seed() -> None:
    env = gym.make("Pendulum-v1")
    a = rollout(env, pendulum_expert, seed=7)
    b = rollout(env, pendulum_expert, seed=7)
    assert a.episode_return == b.episode_return and a.length == b.length == 200


def test_expert_shape_errors() -> None:
    with pytest.raises(ValueError, match="shape"):
        cartpole_expert(np.zeros(3))
    with pytest.raises(ValueError, match="shape"):
        pendulum_expert(np.zeros(4))
    with pytest.raises(ValueError, match="max_steps"):
        rollout(gym.make("CartPole-v1"), cartpole_expert, seed=0, max_steps=0)
