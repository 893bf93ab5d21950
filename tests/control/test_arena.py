"""Spec §6.2 obstacle arena: layouts, beams, termination, determinism, registration, expert."""

from __future__ import annotations

import math
import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest

from spikeforge.control import (
    ARENA_ENV_ID,
    ArenaLayout,
    ObstacleArenaEnv,
    decode_beams,
    potential_field_expert,
    register_envs,
    rollout,
)
from spikeforge.control.arena import ARENA_SIZE, BEAM_ANGLES, ROBOT_RADIUS


def _reset(env: ObstacleArenaEnv, start, goal, obstacles, velocities=()) -> np.ndarray:
    layout = ArenaLayout(start=start, goal=goal, obstacles=obstacles, velocities=velocities)
    obs, _ = env.reset(options={"layout": layout})
    return obs


def _drive(env: ObstacleArenaEnv, action, limit: int):
    """Repeat ``action`` until the episode ends; (steps, summed reward, last step's outputs)."""
    total, n = 0.0, 0
    while n < limit:
        out = env.step(action)
        n += 1
        total += out[1]
        if out[2] or out[3]:
            break
    return n, total, out


def test_observation_space_and_layout_constraints() -> None:
    env = ObstacleArenaEnv()
    for seed in range(30):
        obs, info = env.reset(seed=seed)
        assert obs.shape == (12,) and obs.dtype == np.float32
        assert env.observation_space.contains(obs)
        lay = env.layout
        assert np.linalg.norm(lay.goal - lay.start[:2]) >= 5.0
        assert lay.obstacles.shape == (8, 3)
        r = lay.obstacles[:, 2]
        assert np.all((r >= 0.3) & (r <= 0.8))
        xy = lay.obstacles[:, :2]
        assert np.all(xy >= r[:, None]) and np.all(xy <= ARENA_SIZE - r[:, None])
        for point in (lay.start[:2], lay.goal):
            assert np.all(np.linalg.norm(xy - point, axis=1) - r > ROBOT_RADIUS)
        assert np.all(lay.velocities == 0.0)
        assert info["min_clearance"] > 0 and not info["collision"]


def test_reset_is_deterministic_and_seed_dependent() -> None:
    a, b = ObstacleArenaEnv(), ObstacleArenaEnv()
    oa, _ = a.reset(seed=3)
    ob, _ = b.reset(seed=3)
    np.testing.assert_array_equal(oa, ob)
    np.testing.assert_array_equal(a.layout.obstacles, b.layout.obstacles)
    a.reset(seed=4)
    assert not np.array_equal(a.layout.obstacles, b.layout.obstacles)


def test_rollout_deterministic_static_and_dynamic() -> None:
    for dynamic in (False, True):
        env = ObstacleArenaEnv(dynamic=dynamic)
        r1 = rollout(env, potential_field_expert, seed=11)
        final1 = env.robot_pose
        r2 = rollout(ObstacleArenaEnv(dynamic=dynamic), potential_field_expert, seed=11)
        assert r1.episode_return == r2.episode_return and r1.length == r2.length
        env.reset(seed=11)
        rollout(env, potential_field_expert, seed=11)
        np.testing.assert_array_equal(env.robot_pose, final1)


def test_dynamic_variant_shares_the_static_layout_and_scales_speeds() -> None:
    static, dyn, fast = (
        ObstacleArenaEnv(),
        ObstacleArenaEnv(dynamic=True),
        ObstacleArenaEnv(dynamic=True, speed_factor=3.0),
    )
    for env in (static, dyn, fast):
        env.reset(seed=5)
    np.testing.assert_array_equal(static.layout.obstacles, dyn.layout.obstacles)
    np.testing.assert_array_equal(static.layout.start, fast.layout.start)
    speed = np.linalg.norm(dyn.layout.velocities, axis=1)
    assert np.all(speed <= 0.3) and np.any(speed > 0)
    np.testing.assert_allclose(fast.layout.velocities, 3.0 * dyn.layout.velocities)


def test_dynamic_obstacles_move_and_reflect_at_walls() -> None:
    env = ObstacleArenaEnv(dynamic=True)
    # robot parked in a corner, obstacle heading right into the east wall at 0.3 m/s
    _reset(env, (1.0, 1.0, 0.0), (1.0, 8.0), [(9.0, 5.0, 0.5)], [(0.3, 0.0)])
    xs = []
    for _ in range(40):
        env.step(np.array([0.0, 0.0]))
        xs.append(env.obstacles[0, 0])
    assert max(xs) <= ARENA_SIZE - 0.5 + 1e-12
    assert xs[0] == pytest.approx(9.03)
    assert xs[-1] < xs[20]  # came back after touching the wall at x = 9.5


def test_beam_geometry_on_a_hand_built_layout() -> None:
    env = ObstacleArenaEnv()
    obs = _reset(env, (5.0, 5.0, 0.0), (5.0, 8.0), [(7.0, 5.0, 1.0)])
    d = decode_beams(obs)
    assert BEAM_ANGLES[4] == 0.0
    assert d[4] == pytest.approx(1.0)  # 7 - 1 - 5
    assert obs[4] == pytest.approx(1.0 - 1.0 / 3.0)
    # beams at +-pi/8 (inside the 30 degree half-angle the disc subtends): by hand
    a = BEAM_ANGLES[5]
    b = -2.0 * math.cos(a)
    t = -b - math.sqrt(b * b - (4.0 - 1.0))
    assert d[5] == pytest.approx(t) and d[3] == pytest.approx(t)
    # beams at +-pi/4 miss the disc (45 > 30 degrees) and see nothing within 3 m
    assert obs[2] == 0.0 and obs[6] == 0.0
    # +-pi/2 beams: walls 5 m away, beyond the 3 m range -> encoded 0
    assert obs[0] == 0.0 and obs[8] == 0.0
    # goal straight to the left: distance 3 / diagonal, bearing +pi/2
    assert obs[9] == pytest.approx(3.0 / (10.0 * math.sqrt(2.0)))
    assert obs[10] == pytest.approx(1.0) and obs[11] == pytest.approx(0.0, abs=1e-7)
    # walls: robot facing west at x = 1 -> central beam 1 m
    obs = _reset(env, (1.0, 5.0, math.pi), (8.0, 5.0), np.zeros((0, 3)))
    assert decode_beams(obs)[4] == pytest.approx(1.0, abs=1e-6)
    assert obs[11] == pytest.approx(-1.0)


def test_goal_termination_and_rewards() -> None:
    env = ObstacleArenaEnv()
    _reset(env, (5.0, 5.0, 0.0), (6.05, 5.0), np.zeros((0, 3)))
    step, total, (_, _, term, trunc, info) = _drive(env, np.array([1.0, 0.0]), 20)
    assert term and step == 8 and info["success"] and not info["collision"] and not trunc
    assert total == pytest.approx(10.0 * (1.05 - 0.25) - 0.08 + 10.0)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.array([1.0, 0.0]))


def test_obstacle_collision_terminates_with_penalty() -> None:
    env = ObstacleArenaEnv()
    _reset(env, (5.0, 5.0, 0.0), (5.0, 9.0), [(6.05, 5.0, 0.3)])
    step, _, (_, r, term, _, info) = _drive(env, np.array([1.0, 0.0]), 20)
    assert term
    # contact once x > 6.05 - 0.3 - 0.2 = 5.55, i.e. at x = 5.6 after 6 steps
    assert step == 6 and info["collision"] and not info["success"]
    expected_progress = 10.0 * (math.hypot(0.5, 4.0) - math.hypot(0.6, 4.0))  # moving away
    assert r == pytest.approx(expected_progress - 0.01 - 10.0)


def test_wall_collision_and_truncation() -> None:
    env = ObstacleArenaEnv()
    _reset(env, (0.45, 5.0, math.pi), (8.0, 5.0), np.zeros((0, 3)))
    for _ in range(2):
        _, _, term, _, info = env.step(np.array([1.0, 0.0]))
        assert not term
    _, _, term, _, info = env.step(np.array([1.0, 0.0]))
    assert term and info["collision"]  # x = 0.15 < robot radius
    env = ObstacleArenaEnv(max_steps=300)
    _reset(env, (5.0, 5.0, 0.0), (8.0, 8.0), np.zeros((0, 3)))
    step, _, (_, _, term, trunc, _) = _drive(env, np.array([0.0, 1.5]), 1000)
    assert step == 300 and trunc and not term


def test_action_validation_and_discrete_actions() -> None:
    env = ObstacleArenaEnv()
    env.reset(seed=0)
    with pytest.raises(ValueError, match="action"):
        env.step(np.array([1.0]))
    with pytest.raises(ValueError, match="outside the arena"):
        ArenaLayout(start=(11.0, 5.0, 0.0), goal=(5.0, 5.0), obstacles=np.zeros((0, 3)))
    with pytest.raises(ValueError, match="velocities"):
        ArenaLayout(start=(1, 1, 0), goal=(5, 5), obstacles=[(3, 3, 0.5)], velocities=[(0, 0)] * 2)
    with pytest.raises(TypeError, match="ArenaLayout"):
        env.reset(options={"layout": "nope"})
    env = ObstacleArenaEnv(discrete=True)
    _reset(env, (5.0, 5.0, 0.0), (9.0, 9.0), np.zeros((0, 3)))
    env.step(0)
    np.testing.assert_allclose(env.robot_pose, [5.1, 5.0, 0.0])


def test_register_envs_is_idempotent_and_not_done_at_import() -> None:
    code = (
        "import gymnasium as gym, spikeforge.control as c; "
        "assert c.ARENA_ENV_ID not in gym.registry; c.register_envs(); c.register_envs(); "
        "assert c.ARENA_ENV_ID in gym.registry"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    register_envs()
    register_envs()
    env = gym.make(ARENA_ENV_ID, dynamic=True, speed_factor=2.0)
    assert env.unwrapped.dynamic and env.unwrapped.speed_factor == 2.0
    obs, _ = env.reset(seed=0)
    assert obs.shape == (12,)


def test_potential_field_expert_success_rate_static() -> None:
    env = ObstacleArenaEnv()
    results = [rollout(env, potential_field_expert, seed=s) for s in range(200)]
    success = np.mean([r.info["success"] for r in results])
    collisions = sum(r.info["collision"] for r in results)
    assert success == pytest.approx(0.935)  # docs/control.md, EXPERT_STATIC_SUCCESS
    assert success >= 0.9 and collisions == 0
