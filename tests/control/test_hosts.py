"""Spec §6.1: SNN host policies (shapes, determinism, save/load, a fast behaviour-cloning run)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

from spikeforge.control import (
    HostPolicy,
    behaviour_clone,
    load_host,
    make_host,
    rollout,
    save_host,
)
from spikeforge.control.arena import MAX_OMEGA, MAX_V, ObstacleArenaEnv, potential_field_expert
from spikeforge.core.neurons import LIF, DecayLIF, MultiStep


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize(
    ("task", "d", "a"), [("cartpole", 4, 2), ("pendulum", 3, 1), ("arena", 12, 2)]
)
def test_shapes_and_structure(task: str, d: int, a: int) -> None:
    host = make_host(task, seed=0)  # type: ignore[arg-type]
    assert host.config.steps == 5 and host.config.hidden == (64, 64)
    obs = torch.randn(7, d)
    x = host.encode(obs)
    assert x.shape == (5, 7, d)
    assert torch.equal(x[0], x[4])  # constant current at every SNN step
    assert host(x).shape == (5, 7, a)
    assert host.decision(obs).shape == (7, a)
    act = host.act(obs).detach()
    if task == "cartpole":
        assert act.shape == (7,) and act.dtype == torch.int64
    elif task == "arena":  # (v, ω) within the arena's action box
        assert act.shape == (7, 2)
        assert float(act[:, 0].min()) >= 0.0 and float(act[:, 0].max()) <= MAX_V
        assert float(act[:, 1].abs().max()) <= MAX_OMEGA
    else:
        assert act.shape == (7, 1) and float(act.detach().abs().max()) <= 2.0
    # layers DWAM attaches to: MultiStep(Linear) followed by a spikeforge neuron
    children = dict(host.named_children())
    assert isinstance(children["fc1"], MultiStep) and isinstance(
        children["fc1"].layer, torch.nn.Linear
    )
    assert isinstance(children["lif1"], LIF) and isinstance(children["lif2"], LIF)
    names = list(children)
    assert names.index("fc1") < names.index("lif1") < names.index("fc2") < names.index("lif2")


def test_policy_adapter_with_rollout() -> None:
    cart = rollout(gym.make("CartPole-v1"), HostPolicy(make_host("cartpole", 0)), seed=0)
    assert cart.length >= 1
    pol = HostPolicy(make_host("pendulum", 0))
    u = pol(np.zeros(3))
    assert isinstance(u, np.ndarray) and u.shape == (1,) and u.dtype == np.float32
    pend = rollout(gym.make("Pendulum-v1"), pol, seed=0)
    assert pend.length == 200


def test_make_host_is_seeded() -> None:
    a, b, c = make_host("cartpole", 3), make_host("cartpole", 3), make_host("cartpole", 4)
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(va, vb), k
    assert not torch.equal(a.fc1.layer.weight, c.fc1.layer.weight)


def test_custom_neuron_factory() -> None:
    host = make_host("pendulum", 0, neuron=lambda: DecayLIF(decay=0.5), neuron_name="decay")
    assert isinstance(host.lif1, DecayLIF) and host.config.neuron == "decay"
    assert host(host.encode(torch.zeros(2, 3))).shape == (5, 2, 1)


_SMALL = dict(
    expert_episodes=2,
    noisy_episodes=2,
    dagger_iters=1,
    dagger_episodes=1,
    epochs=2,
    dagger_epochs=1,
    max_episode_steps=50,
)


@pytest.mark.parametrize("task", ["cartpole", "pendulum", "arena"])
def test_behaviour_clone_is_deterministic(task: str) -> None:
    a = behaviour_clone(task, seed=1, **_SMALL)  # type: ignore[arg-type]
    b = behaviour_clone(task, seed=1, **_SMALL)  # type: ignore[arg-type]
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(va, vb), k
    obs = torch.randn(16, a.config.obs_dim, generator=torch.Generator().manual_seed(0))
    assert torch.equal(a.decision(obs), b.decision(obs))


@pytest.mark.parametrize("task", ["cartpole", "pendulum", "arena"])
def test_save_load_predicts_identically(task: str, tmp_path: Path) -> None:
    host = make_host(task, seed=2)  # type: ignore[arg-type]
    path = save_host(host, tmp_path / "sub" / "host.pt")
    assert path.exists() and not list(path.parent.glob(".*.tmp"))
    payload = torch.load(path, weights_only=True)
    assert set(payload) == {"config", "state_dict"} and payload["config"]["task"] == task
    loaded = load_host(path)
    assert loaded.config == host.config
    obs = torch.randn(32, host.config.obs_dim, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(host.decision(obs), loaded.decision(obs))


def test_load_custom_neuron_needs_factory(tmp_path: Path) -> None:
    host = make_host("cartpole", 0, neuron=lambda: DecayLIF(), neuron_name="decay")
    path = save_host(host, tmp_path / "h.pt")
    with pytest.raises(ValueError, match="factory"):
        load_host(path)
    assert isinstance(load_host(path, neuron=lambda: DecayLIF()).lif2, DecayLIF)


def test_fast_cartpole_clone_beats_trivial_policies() -> None:
    host = behaviour_clone(
        "cartpole",
        seed=0,
        expert_episodes=4,
        noisy_episodes=4,
        dagger_iters=1,
        dagger_episodes=2,
        epochs=20,
        dagger_epochs=5,
        batch_size=64,
        lr=1e-2,
        max_episode_steps=200,
    )
    env = gym.make("CartPole-v1")
    seeds = range(500, 505)
    snn = np.mean([rollout(env, HostPolicy(host), seed=s).episode_return for s in seeds])
    always = max(
        np.mean([rollout(env, lambda _o, a=a: a, seed=s).episode_return for s in seeds])
        for a in (0, 1)
    )
    assert always < 15
    assert snn > 5 * always


def test_fast_arena_clone_reaches_goals_like_its_expert() -> None:
    """A host cloned from the potential-field expert on a few static-arena episodes reaches the
    goal in at least as many of 10 held-out episodes as the expert, less one, and more often
    than driving straight at full speed (which mostly collides)."""
    host = behaviour_clone("arena", seed=0, expert_episodes=20, noisy_episodes=20, epochs=15)
    env = ObstacleArenaEnv()
    seeds = range(1000, 1010)

    def successes(policy: object) -> int:
        return sum(bool(rollout(env, policy, seed=s).info["success"]) for s in seeds)

    snn = successes(HostPolicy(host))
    expert = successes(potential_field_expert)
    straight = successes(lambda obs: np.array([MAX_V, 0.0], dtype=np.float32))
    assert snn >= expert - 1 and snn > straight, (snn, expert, straight)
