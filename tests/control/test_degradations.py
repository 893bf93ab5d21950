"""Spec §6.3 degradations: observation noise, weight scaling / noise, obstacle speed."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch import nn

from spikeforge.control import (
    ARENA_ENV_ID,
    ObservationNoise,
    ObstacleArenaEnv,
    add_weight_noise,
    register_envs,
    scale_weights,
    set_obstacle_speed_factor,
)


def _net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(4, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 2)
    )


def _snapshot(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _assert_same(module: nn.Module, snap: dict[str, torch.Tensor]) -> None:
    for k, v in module.state_dict().items():
        assert torch.equal(v, snap[k]), k


def _first_obs(env: gym.Env, n: int) -> list[np.ndarray]:
    out = []
    env.reset(seed=0)
    for _ in range(n):
        obs, _, term, trunc, _ = env.step(0)
        out.append(obs)
        if term or trunc:
            env.reset(seed=0)
    return out


def test_observation_noise_is_seeded_and_has_the_right_scale() -> None:
    a = ObservationNoise(gym.make("CartPole-v1"), sigma=0.1, seed=3)
    b = ObservationNoise(gym.make("CartPole-v1"), sigma=0.1, seed=3)
    c = ObservationNoise(gym.make("CartPole-v1"), sigma=0.1, seed=4)
    xa, xb, xc = (_first_obs(e, 5) for e in (a, b, c))
    np.testing.assert_array_equal(np.array(xa), np.array(xb))
    assert not np.array_equal(np.array(xa), np.array(xc))
    # noise statistics against the clean observations of the same trajectory
    clean_env = gym.make("CartPole-v1")
    noisy_env = ObservationNoise(gym.make("CartPole-v1"), sigma=0.2, seed=0)
    clean, _ = clean_env.reset(seed=1)
    noisy, _ = noisy_env.reset(seed=1)
    diffs = [noisy - clean]
    for _ in range(8):
        clean = clean_env.step(0)[0]
        noisy = noisy_env.step(0)[0]
        diffs.append(noisy - clean)
    d = np.array(diffs)
    assert d.dtype == np.float64 and 0.1 < d.std() < 0.3


def test_observation_noise_reseed_and_zero_sigma() -> None:
    env = ObservationNoise(gym.make("CartPole-v1"), sigma=0.1, seed=7)
    first = _first_obs(env, 3)
    second = _first_obs(env, 3)
    assert not np.array_equal(np.array(first), np.array(second))  # stream continues
    env.reseed()
    np.testing.assert_array_equal(np.array(first), np.array(_first_obs(env, 3)))
    clean = gym.make("CartPole-v1")
    zero = ObservationNoise(gym.make("CartPole-v1"), sigma=0.0, seed=0)
    np.testing.assert_array_equal(clean.reset(seed=2)[0], zero.reset(seed=2)[0])


def test_observation_noise_validation() -> None:
    with pytest.raises(ValueError, match="sigma"):
        ObservationNoise(gym.make("CartPole-v1"), sigma=-0.1)
    with pytest.raises(TypeError, match="Box"):
        ObservationNoise(gym.make("FrozenLake-v1"), sigma=0.1)


def test_scale_weights_copies_and_scales_only_chosen_layers() -> None:
    net = _net()
    snap = _snapshot(net)
    scaled = scale_weights(net, 0.6, layers=["0", "2"])
    _assert_same(net, snap)
    assert torch.allclose(scaled[0].weight, 0.6 * snap["0.weight"])
    assert torch.allclose(scaled[2].weight, 0.6 * snap["2.weight"])
    assert torch.equal(scaled[4].weight, snap["4.weight"])
    assert torch.equal(scaled[0].bias, snap["0.bias"])
    all_scaled = scale_weights(net, 1.5)
    for i in (0, 2, 4):
        assert torch.allclose(all_scaled[i].weight, 1.5 * snap[f"{i}.weight"])
    _assert_same(net, snap)


def test_add_weight_noise_is_seeded_scaled_and_leaves_the_original() -> None:
    net = _net()
    snap = _snapshot(net)
    a = add_weight_noise(net, 0.5, seed=1, layers=["2"])
    b = add_weight_noise(net, 0.5, seed=1, layers=["2"])
    c = add_weight_noise(net, 0.5, seed=2, layers=["2"])
    _assert_same(net, snap)
    assert torch.equal(a[2].weight, b[2].weight)
    assert not torch.equal(a[2].weight, c[2].weight)
    assert torch.equal(a[0].weight, snap["0.weight"]) and torch.equal(a[2].bias, snap["2.bias"])
    delta = (a[2].weight - snap["2.weight"]).double()
    expected = 0.5 * snap["2.weight"].double().std(correction=0).item()
    assert delta.std().item() == pytest.approx(expected, rel=0.1)
    zero = add_weight_noise(net, 0.0, seed=1)
    _assert_same(zero, snap)


def test_weight_degradation_validation() -> None:
    net = _net()
    with pytest.raises(KeyError, match="no layer"):
        scale_weights(net, 0.5, layers=["9"])
    with pytest.raises(ValueError, match="no parameter 'weight'"):
        scale_weights(net, 0.5, layers=["1"])
    with pytest.raises(TypeError, match="sequence"):
        scale_weights(net, 0.5, layers="0")
    with pytest.raises(ValueError, match="sigma_w"):
        add_weight_noise(net, -1.0, seed=0)
    with pytest.raises(ValueError, match="finite"):
        scale_weights(net, float("nan"))


def test_obstacle_speed_factor_through_a_wrapped_env() -> None:
    register_envs()
    env = gym.make(ARENA_ENV_ID, dynamic=True)
    env.reset(seed=9)
    base = env.unwrapped.layout.velocities.copy()
    set_obstacle_speed_factor(env, 2.0)
    env.reset(seed=9)
    np.testing.assert_allclose(env.unwrapped.layout.velocities, 2.0 * base)
    with pytest.raises(ValueError, match="speed factor"):
        set_obstacle_speed_factor(env, -1.0)
    with pytest.raises(TypeError, match="ObstacleArenaEnv"):
        set_obstacle_speed_factor(gym.make("CartPole-v1"), 2.0)
    assert isinstance(env.unwrapped, ObstacleArenaEnv)


# the spec fixes the action ranges; the checker only recommends normalised ones
@pytest.mark.filterwarnings("ignore:.*symmetric and normalized space")
def test_arena_passes_the_gymnasium_env_checker() -> None:
    from gymnasium.utils.env_checker import check_env

    check_env(ObstacleArenaEnv(dynamic=True), skip_render_check=True)


def test_degradation_parse_label_and_errors():
    from spikeforge.control import Degradation

    d = Degradation.parse("weight-scale=0.6, obs-noise=0.1")
    assert d == Degradation(obs_noise=0.1, weight_scale=0.6)
    assert d.label == "obs-noise=0.1,weight-scale=0.6"
    assert Degradation.parse(d.label) == d
    assert Degradation.parse("nominal").label == "nominal"
    assert not Degradation().changes_weights and d.changes_weights
    for bad, msg in [
        ("weight-scale", "key=value"),
        ("speed=2", "key=value"),
        ("weight-scale=x", "bad number"),
        ("obs-noise=0.1,obs-noise=0.2", "twice"),
        ("obs-noise=-1", ">= 0"),
        ("weight-noise=nan", "finite"),
    ]:
        with pytest.raises(ValueError, match=msg):
            Degradation.parse(bad)


def test_episode_weights_equal_the_module_degradations():
    from torch import nn

    from spikeforge.control import Degradation, add_weight_noise, scale_weights

    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 6), nn.Linear(6, 3))
    d = Degradation(weight_scale=0.7, weight_noise=0.2)
    got = d.episode_weights({"0": net[0].weight, "1": net[1].weight}, seed=5)
    ref = add_weight_noise(scale_weights(net, 0.7, ["0", "1"]), 0.2, seed=5, layers=["0", "1"])
    assert torch.equal(got["0"], ref[0].weight) and torch.equal(got["1"], ref[1].weight)
    other = d.episode_weights({"0": net[0].weight, "1": net[1].weight}, seed=6)
    assert not torch.equal(other["0"], got["0"])  # a new draw per episode seed
    plain = Degradation().episode_weights({"0": net[0].weight}, seed=5)
    assert torch.equal(plain["0"], net[0].weight)
