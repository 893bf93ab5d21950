"""rollout_batch: lockstep episodes equal one-by-one rollouts."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from spikeforge.control import (
    Degradation,
    cartpole_expert,
    pendulum_expert,
    rollout,
    rollout_batch,
)


def _rowwise(expert):
    return lambda obs, alive: [expert(o) for o in obs]


@pytest.mark.parametrize(
    ("env_id", "expert"),
    [("CartPole-v1", cartpole_expert), ("Pendulum-v1", pendulum_expert)],
)
def test_lockstep_equals_one_by_one(env_id, expert):
    seeds = [3, 4, 5, 6]
    noise = Degradation(obs_noise=0.2)
    envs = [noise.wrap(gym.make(env_id), seed=100 + s) for s in seeds]
    steps: list[int] = []
    batch = rollout_batch(
        envs, _rowwise(expert), seeds, on_step=lambda t, r, alive: steps.append(int(alive.sum()))
    )
    for i, s in enumerate(seeds):
        as_batch = lambda o: expert(np.asarray(o, dtype=np.float32))  # noqa: E731 (float32 obs)
        one = rollout(noise.wrap(gym.make(env_id), seed=100 + s), as_batch, seed=s)
        assert batch.returns[i] == pytest.approx(one.episode_return, rel=1e-12)
        assert batch.lengths[i] == one.length and batch.terminated[i] == one.terminated
    assert len(steps) == batch.lengths.max()
    assert steps[0] == len(seeds) and steps[-1] >= 1
    if env_id == "CartPole-v1":  # σ = 0.2 breaks the expert: episodes end at different steps
        assert len(set(batch.lengths.tolist())) > 1


def test_max_steps_and_errors():
    envs = [gym.make("CartPole-v1") for _ in range(2)]
    out = rollout_batch(envs, _rowwise(cartpole_expert), [0, 1], max_steps=7)
    assert out.lengths.tolist() == [7, 7] and not out.terminated.any()
    with pytest.raises(ValueError, match="one seed per environment"):
        rollout_batch(envs, _rowwise(cartpole_expert), [0])
    with pytest.raises(ValueError, match="its own environment"):
        rollout_batch([envs[0], envs[0]], _rowwise(cartpole_expert), [0, 1])
    with pytest.raises(ValueError, match="max_steps"):
        rollout_batch(envs, _rowwise(cartpole_expert), [0, 1], max_steps=0)
    assert np.all(out.returns == 7.0)
