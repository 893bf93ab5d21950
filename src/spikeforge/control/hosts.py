"""SNN host policies for CartPole-v1, Pendulum-v1 (spec §6.1) and the obstacle arena (§6.2),
trained by behaviour cloning.

A host is a plain multi-step network of :mod:`spikeforge.core` layers::

    fc1 = MultiStep(Linear(D, 64)) -> lif1 -> fc2 = MultiStep(Linear(64, 64)) -> lif2
        -> readout = MultiStep(Linear(64, A))          (non-spiking readout)

so ``DWAM(host, layers=["fc1", "fc2"])`` finds each layer's neuron as its next sibling.

Layouts: an observation batch ``[B, D]`` is scaled per dimension (fixed scales, see
:data:`CARTPOLE_OBS_SCALE`, :data:`PENDULUM_OBS_SCALE`) and repeated as a constant input current
``[T, B, D]`` (:meth:`Host.encode`); :meth:`Host.forward` maps ``[T, B, D]`` to the readout
potential ``[T, B, A]`` (the linear readout of the second layer's spikes at every step, i.e. a
non-leaky, non-spiking readout whose mean over the ``T`` steps is the decision variable).

Actions: CartPole: ``argmax`` of the mean readout over ``T`` (the non-spiking readout was chosen
over output spike counts because counts over ``T = 5`` steps tie often and train less reliably);
Pendulum: ``u = 2·tanh(mean readout)``; arena (12-64-64-2, the static variant of
:class:`~spikeforge.control.arena.ObstacleArenaEnv`): ``v = (1 + tanh(r_0))/2`` m/s and
``ω = 1.5·tanh(r_1)`` rad/s, the range of the arena's continuous actions.

Training (:func:`behaviour_clone`): expert rollouts plus perturbed-expert rollouts (random actions
/ torque noise executed, clean expert labels) and DAgger iterations (the host acts, the expert
labels), BPTT with surrogate gradients, cross-entropy (CartPole), MSE on the torque (Pendulum)
or on ``(v, ω/1.5)`` (arena, the potential-field expert). Deterministic for a given seed on a
given machine (CPU, one thread recommended).
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from spikeforge.control.arena import (
    MAX_OMEGA,
    MAX_STEPS,
    MAX_V,
    ObstacleArenaEnv,
    potential_field_expert,
)
from spikeforge.control.experts import cartpole_expert, pendulum_expert
from spikeforge.core.neurons import LIF, MultiStep
from spikeforge.io import atomic_write

__all__ = [
    "CARTPOLE_OBS_SCALE",
    "PENDULUM_OBS_SCALE",
    "Host",
    "HostConfig",
    "HostPolicy",
    "behaviour_clone",
    "host_config",
    "load_host",
    "make_host",
    "save_host",
]

Task = Literal["cartpole", "pendulum", "arena"]
NeuronFactory = Callable[[], nn.Module]

#: Fixed per-dimension scale of ``[x, ẋ, θ, θ̇]`` (about 1 / typical range).
CARTPOLE_OBS_SCALE: tuple[float, ...] = (1 / 2.4, 1 / 2.0, 1 / 0.21, 1 / 2.0)
#: Fixed per-dimension scale of ``[cos θ, sin θ, θ̇]`` (θ̇ ∈ [−8, 8]).
PENDULUM_OBS_SCALE: tuple[float, ...] = (1.0, 1.0, 1 / 8.0)

_ENV_IDS = {"cartpole": "CartPole-v1", "pendulum": "Pendulum-v1"}
_MAX_TORQUE = 2.0
_ARENA_SCALE = (MAX_V, MAX_OMEGA)  # the arena actions' ranges (the loss compares a / scale)


@dataclass(frozen=True)
class HostConfig:
    """Hyper-parameters of a host (all plain values, saved beside the weights).

    Attributes:
        task: ``"cartpole"``, ``"pendulum"`` or ``"arena"``.
        obs_dim, n_out: input and readout sizes (4, 2 for CartPole; 3, 1 for Pendulum; 12, 2 for
            the arena).
        hidden: sizes of the two spiking layers.
        steps: ``T``, SNN steps per environment step.
        obs_scale: per-dimension input scale.
        tau: LIF time constant of the default neurons.
        neuron: ``"lif"`` for the default LIF, otherwise a free label of a custom factory.
    """

    task: Task
    obs_dim: int
    n_out: int
    hidden: tuple[int, int] = (64, 64)
    steps: int = 5
    obs_scale: tuple[float, ...] = field(default=())
    tau: float = 2.0
    neuron: str = "lif"


def host_config(task: Task, **overrides: Any) -> HostConfig:
    """The configuration of ``task``: spec §6.1 (CartPole 4-64-64-2, Pendulum 3-64-64-1) or the
    arena's 12-64-64-2 (its observations are already in [-1, 1]: scale 1); T = 5."""
    if task == "cartpole":
        base: dict[str, Any] = {"obs_dim": 4, "n_out": 2, "obs_scale": CARTPOLE_OBS_SCALE}
    elif task == "pendulum":
        base = {"obs_dim": 3, "n_out": 1, "obs_scale": PENDULUM_OBS_SCALE}
    elif task == "arena":
        base = {"obs_dim": 12, "n_out": 2, "obs_scale": (1.0,) * 12}
    else:
        raise ValueError(f"unknown task {task!r}; choose 'cartpole', 'pendulum' or 'arena'")
    base.update(overrides)
    return HostConfig(task=task, **base)


class Host(nn.Module):
    """The SNN host: ``fc1 -> lif1 -> fc2 -> lif2 -> readout`` on ``[T, B, ...]`` (module doc).

    Args:
        config: a :class:`HostConfig`.
        neuron: factory of the spiking neurons (called twice); default
            ``LIF(tau=config.tau, backend="reference")``. Any module mapping ``[T, B, N]``
            currents to ``[T, B, N]`` spikes works (e.g. an adaptive-threshold neuron built by
            the experiment layer).
    """

    def __init__(self, config: HostConfig, neuron: NeuronFactory | None = None) -> None:
        super().__init__()
        if len(config.obs_scale) != config.obs_dim:
            raise ValueError(
                f"obs_scale has {len(config.obs_scale)} entries for obs_dim {config.obs_dim}"
            )
        if config.steps < 1:
            raise ValueError(f"steps must be >= 1, got {config.steps}")
        self.config = config
        make = neuron or (lambda: LIF(tau=config.tau, backend="reference"))
        h1, h2 = config.hidden
        self.fc1 = MultiStep(nn.Linear(config.obs_dim, h1))
        self.lif1 = make()
        self.fc2 = MultiStep(nn.Linear(h1, h2))
        self.lif2 = make()
        self.readout = MultiStep(nn.Linear(h2, config.n_out))
        self.register_buffer(
            "obs_scale", torch.tensor(config.obs_scale, dtype=torch.float32), persistent=False
        )

    def encode(self, obs: Tensor) -> Tensor:
        """Observations ``[B, D]`` -> constant scaled input current ``[T, B, D]``."""
        x = obs.to(self.obs_scale.dtype) * self.obs_scale
        return x.unsqueeze(0).expand(self.config.steps, *x.shape)

    def forward(self, x_seq: Tensor) -> Tensor:
        """Input current ``[T, B, D]`` -> readout potential ``[T, B, A]``."""
        s1 = self.lif1(self.fc1(x_seq))
        s2 = self.lif2(self.fc2(s1))
        return self.readout(s2)

    def decision(self, obs: Tensor) -> Tensor:
        """Observations ``[B, D]`` -> mean readout over ``T``, ``[B, A]`` (logits / pre-tanh)."""
        return self(self.encode(obs)).mean(0)

    def act(self, obs: Tensor) -> Tensor:
        """Observations ``[B, D]`` -> actions: ``[B]`` int64 (CartPole), ``[B, 1]`` torques
        (Pendulum) or ``[B, 2]`` ``(v, ω)`` (arena)."""
        return self.to_action(self.decision(obs))

    def to_action(self, decision: Tensor) -> Tensor:
        """Mean readout ``[B, A]`` -> actions (argmax for CartPole, ``2·tanh`` torques, the
        arena's ``(v, ω)``: see the module docstring)."""
        if self.config.task == "cartpole":
            return decision.argmax(-1)
        if self.config.task == "arena":
            v = (1.0 + torch.tanh(decision[:, 0])) * (0.5 * MAX_V)
            return torch.stack([v, MAX_OMEGA * torch.tanh(decision[:, 1])], dim=1)
        return _MAX_TORQUE * torch.tanh(decision)


def make_host(
    task: Task, seed: int = 0, neuron: NeuronFactory | None = None, neuron_name: str = "custom"
) -> Host:
    """A freshly initialised spec host for ``task``; the initial weights depend only on ``seed``.

    ``neuron_name`` labels a custom ``neuron`` factory in the saved config (ignored without one).
    """
    config = host_config(task, neuron="lif" if neuron is None else neuron_name)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return Host(config, neuron=neuron)


class HostPolicy:
    """Adapter ``numpy observation -> action`` for :func:`~spikeforge.control.rollout`.

    Returns an ``int`` (CartPole) or a float32 array of shape ``(1,)`` (Pendulum) or ``(2,)``
    (arena). Runs the host
    without gradients; each call starts from the neurons' initial state (no state across
    environment steps).
    """

    def __init__(self, host: Host) -> None:
        self.host = host

    def __call__(self, observation: Any) -> Any:
        obs = torch.as_tensor(np.asarray(observation, dtype=np.float32)).unsqueeze(0)
        with torch.no_grad():
            a = self.host.act(obs)[0]
        if self.host.config.task == "cartpole":
            return int(a.item())
        return a.numpy().astype(np.float32)


# -- behaviour cloning ---------------------------------------------------------------------


def _expert(task: Task) -> Callable[[np.ndarray], Any]:
    return {
        "cartpole": cartpole_expert,
        "pendulum": pendulum_expert,
        "arena": potential_field_expert,
    }[task]


def _label(task: Task, obs: np.ndarray) -> Any:
    """The expert's action as a training label: a float (CartPole, Pendulum) or ``(v, ω)``."""
    a = _expert(task)(obs)
    if task == "arena":
        return np.asarray(a, dtype=np.float32)
    return float(a) if task == "cartpole" else float(np.asarray(a)[0])


def _make_env(task: Task, max_episode_steps: int | None) -> gym.Env:
    if task == "arena":  # the static variant, where the expert is calibrated
        return ObstacleArenaEnv(max_steps=max_episode_steps or MAX_STEPS)
    return gym.make(_ENV_IDS[task], max_episode_steps=max_episode_steps)


def _collect(
    task: Task,
    env: gym.Env,
    act: Callable[[np.ndarray], Any],
    seeds: list[int],
) -> tuple[list[np.ndarray], list[Any]]:
    """Run ``act`` from each reset seed; record every observation with its expert label."""
    xs: list[np.ndarray] = []
    ys: list[Any] = []
    for s in seeds:
        obs, _ = env.reset(seed=s)
        while True:
            xs.append(np.asarray(obs, dtype=np.float32))
            ys.append(_label(task, obs))
            obs, _, terminated, truncated, _ = env.step(act(obs))
            if terminated or truncated:
                break
    return xs, ys


def _fit(
    host: Host,
    x: Tensor,
    y: Tensor,
    epochs: int,
    batch_size: int,
    opt: torch.optim.Optimizer,
    gen: torch.Generator,
) -> float:
    """BPTT on ``x [N, D]``, labels ``y [N]`` (arena: ``[N, 2]``); returns the last epoch's mean
    loss."""
    host.train()
    last = float("nan")
    for _ in range(epochs):
        perm = torch.randperm(x.shape[0], generator=gen)
        total, n = 0.0, 0
        for i in range(0, x.shape[0], batch_size):
            idx = perm[i : i + batch_size]
            out = host.decision(x[idx])
            if host.config.task == "cartpole":
                loss = F.cross_entropy(out, y[idx].long())
            elif host.config.task == "arena":
                scale = out.new_tensor(_ARENA_SCALE)
                loss = F.mse_loss(host.to_action(out) / scale, y[idx] / scale)
            else:
                loss = F.mse_loss(_MAX_TORQUE * torch.tanh(out[:, 0]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * idx.numel()
            n += idx.numel()
        last = total / max(n, 1)
    host.eval()
    return last


def behaviour_clone(
    task: Task,
    seed: int,
    *,
    expert_episodes: int = 50,
    noisy_episodes: int = 50,
    dagger_iters: int = 4,
    dagger_episodes: int = 10,
    epochs: int = 15,
    dagger_epochs: int = 5,
    batch_size: int = 256,
    lr: float = 2e-3,
    max_episode_steps: int | None = None,
    neuron: NeuronFactory | None = None,
    verbose: bool = False,
) -> Host:
    """Train a host for ``task`` by behaviour cloning of the expert (spec §6.1).

    Data: ``expert_episodes`` expert rollouts, ``noisy_episodes`` rollouts of a perturbed expert
    (CartPole: a random action with probability 0.25; Pendulum: torque noise N(0, 1), clipped;
    arena: noise N(0, 0.2²) on v and N(0, 0.5²) on ω, clipped),
    then ``dagger_iters`` DAgger iterations of ``dagger_episodes`` host rollouts each (the host
    acts; the expert labels every visited state; the data set is aggregated and training
    continues for ``dagger_epochs``). Every observation is labelled with the clean expert action.
    Reset seeds are ``seed·100000 + k``, so different host seeds see different episodes.

    Deterministic given ``seed`` (weights, data order, perturbations, reset seeds).

    Args:
        task: ``"cartpole"``, ``"pendulum"`` or ``"arena"`` (the static arena).
        seed: host seed.
        max_episode_steps: optional shorter time limit for the collected episodes (fast tests).
        neuron: neuron factory passed to :class:`Host`.
        verbose: print the loss after each phase.

    Returns:
        The trained :class:`Host`, in eval mode.
    """
    host = make_host(task, seed, neuron=neuron)
    env = _make_env(task, max_episode_steps)
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    expert = _expert(task)
    base = seed * 100_000
    counter = iter(range(10**9))

    def seeds(n: int) -> list[int]:
        return [base + next(counter) for _ in range(n)]

    def perturbed(obs: np.ndarray) -> Any:
        if task == "cartpole":
            return int(rng.integers(2)) if rng.random() < 0.25 else expert(obs)
        if task == "arena":
            a = np.asarray(expert(obs), dtype=np.float64) + rng.normal(0.0, (0.2, 0.5))
            low, high = (0.0, -MAX_OMEGA), (MAX_V, MAX_OMEGA)
            return np.clip(a, low, high).astype(np.float32)
        u = float(np.asarray(expert(obs))[0]) + float(rng.normal(0.0, 1.0))
        return np.array([min(max(u, -_MAX_TORQUE), _MAX_TORQUE)], dtype=np.float32)

    xs, ys = _collect(task, env, expert, seeds(expert_episodes))
    if noisy_episodes:
        x2, y2 = _collect(task, env, perturbed, seeds(noisy_episodes))
        xs += x2
        ys += y2
    opt = torch.optim.Adam(host.parameters(), lr=lr)

    def tensors() -> tuple[Tensor, Tensor]:  # labels [N] (arena: [N, 2])
        return torch.from_numpy(np.stack(xs)), torch.from_numpy(np.asarray(ys, np.float32))

    loss = _fit(host, *tensors(), epochs, batch_size, opt, gen)
    if verbose:
        print(f"[{task} seed {seed}] BC: {len(xs)} samples, loss {loss:.4f}")
    policy = HostPolicy(host)
    for it in range(dagger_iters):
        x2, y2 = _collect(task, env, policy, seeds(dagger_episodes))
        xs += x2
        ys += y2
        loss = _fit(host, *tensors(), dagger_epochs, batch_size, opt, gen)
        if verbose:
            print(f"[{task} seed {seed}] DAgger {it + 1}: {len(xs)} samples, loss {loss:.4f}")
    env.close()
    return host


# -- save / load ---------------------------------------------------------------------------


def save_host(host: Host, path: str | os.PathLike[str]) -> Path:
    """Write ``{"config": dict, "state_dict": ...}`` with :func:`torch.save`, atomically."""
    cfg = asdict(host.config)
    cfg["hidden"] = list(cfg["hidden"])
    cfg["obs_scale"] = list(cfg["obs_scale"])
    payload = {
        "config": cfg,
        "state_dict": {k: v.detach().cpu().clone() for k, v in host.state_dict().items()},
    }
    buf = io.BytesIO()
    torch.save(payload, buf)
    return atomic_write(path, lambda fh: fh.write(buf.getvalue()))


def load_host(path: str | os.PathLike[str], neuron: NeuronFactory | None = None) -> Host:
    """Load a host written by :func:`save_host` (``weights_only=True``); returned in eval mode.

    A host trained with a custom neuron factory needs the same factory here.
    """
    payload = torch.load(path, map_location="cpu", weights_only=True)
    cfg = dict(payload["config"])
    cfg["hidden"] = tuple(cfg["hidden"])
    cfg["obs_scale"] = tuple(float(v) for v in cfg["obs_scale"])
    config = HostConfig(**cfg)
    if config.neuron != "lif" and neuron is None:
        raise ValueError(f"host was saved with neuron {config.neuron!r}; pass its factory")
    host = Host(config, neuron=neuron)
    host.load_state_dict(payload["state_dict"])
    host.eval()
    return host
