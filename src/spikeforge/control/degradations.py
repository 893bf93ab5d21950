"""Degraded conditions of the DWAM evaluation protocol (spec §6.3) as reusable pieces.

* :class:`ObservationNoise`: additive Gaussian noise on every observation dimension, from one
  seeded generator owned by the wrapper.
* :func:`scale_weights` and :func:`add_weight_noise`: degraded *copies* of a torch module (the
  original is never modified), with the layers to degrade chosen by name.
* :func:`set_obstacle_speed_factor`: the dynamic-environment degradation of the obstacle arena.
* :class:`Degradation`: one condition, alone or combined (``"weight-scale=0.6,obs-noise=0.1"``),
  applied to an environment (:meth:`Degradation.wrap`) and to weight tensors per episode
  (:meth:`Degradation.episode_weights`).

Levels from the spec are exported as ``OBSERVATION_NOISE_LEVELS``, ``WEIGHT_SCALE_LEVELS``,
``WEIGHT_NOISE_LEVELS`` and ``OBSTACLE_SPEED_LEVELS``.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor, nn

from spikeforge.control.arena import ObstacleArenaEnv

__all__ = [
    "OBSERVATION_NOISE_LEVELS",
    "OBSTACLE_SPEED_LEVELS",
    "WEIGHT_NOISE_LEVELS",
    "WEIGHT_SCALE_LEVELS",
    "Degradation",
    "ObservationNoise",
    "add_weight_noise",
    "scale_weights",
    "set_obstacle_speed_factor",
]

OBSERVATION_NOISE_LEVELS: tuple[float, ...] = (0.0, 0.05, 0.1, 0.2)
WEIGHT_SCALE_LEVELS: tuple[float, ...] = (0.5, 0.6, 0.7, 0.8, 1.0, 1.2, 1.5)
WEIGHT_NOISE_LEVELS: tuple[float, ...] = (0.0, 0.1, 0.2, 0.5)
OBSTACLE_SPEED_LEVELS: tuple[float, ...] = (1.0, 2.0, 3.0)


class ObservationNoise(gym.ObservationWrapper):
    """Add N(0, σ²) to every observation dimension (in the observation's own units).

    The wrapper owns one ``numpy.random.Generator`` created from ``seed`` at construction. It is
    **not** re-seeded by ``env.reset(seed=...)``: consecutive episodes continue the same noise
    stream, so a sequence of episodes is reproducible given ``seed`` and the reset seeds. This is
    the convention behind the spec's CartPole numbers (σ = 0.1 → mean 210.1 over reset seeds
    100..119 with ``seed=0``). Call :meth:`reseed` to restart the stream.

    One draw of shape ``observation.shape`` is made from the main stream for every observation a
    policy can act on (after ``reset`` and after every non-final ``step``). The final observation
    of an episode (``terminated or truncated``) is noised from a separate auxiliary generator, so
    it does not shift the main stream: the main stream then matches a hand-written loop that adds
    noise only to the observations it feeds to the policy, which is how the spec's numbers were
    measured (drawing from the main stream for final observations too gives 203.75 / 54.35 for
    σ = 0.1 / 0.2 instead). Noisy observations are returned as float64 and are not clipped (the
    observation space is widened to unbounded float64 accordingly).

    Args:
        env: the environment to wrap (Box observation space).
        sigma: noise standard deviation, >= 0.
        seed: seed of the wrapper's generator.
    """

    def __init__(self, env: gym.Env, sigma: float, seed: int = 0) -> None:
        super().__init__(env)
        if not isinstance(env.observation_space, gym.spaces.Box):
            raise TypeError(
                "ObservationNoise needs a Box observation space, got "
                f"{type(env.observation_space).__name__}"
            )
        if not np.isfinite(sigma) or sigma < 0:
            raise ValueError(f"sigma must be a finite number >= 0, got {sigma}")
        self.sigma = float(sigma)
        self.seed = int(seed)
        self._rng = np.random.default_rng(self.seed)
        self._final_rng = np.random.default_rng([self.seed, 1])
        shape = env.observation_space.shape
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, shape=shape, dtype=np.float64)

    def reseed(self, seed: int | None = None) -> None:
        """Restart the noise stream from ``seed`` (default: the construction seed)."""
        if seed is not None:
            self.seed = int(seed)
        self._rng = np.random.default_rng(self.seed)
        self._final_rng = np.random.default_rng([self.seed, 1])

    def step(self, action: Any) -> tuple[np.ndarray, Any, bool, bool, dict[str, Any]]:
        """Step the environment; noise the observation (final ones from the auxiliary stream)."""
        obs, reward, terminated, truncated, info = self.env.step(action)
        rng = self._final_rng if (terminated or truncated) else self._rng
        return self._noisy(obs, rng), reward, terminated, truncated, info

    def observation(self, observation: Any) -> np.ndarray:
        """Return ``observation + noise`` (float64) from the main stream."""
        return self._noisy(observation, self._rng)

    def _noisy(self, observation: Any, rng: np.random.Generator) -> np.ndarray:
        obs = np.asarray(observation, dtype=np.float64)
        return obs + rng.normal(0.0, self.sigma, size=obs.shape)


def _select_weights(module: nn.Module, layers: Sequence[str] | None) -> list[str]:
    """Names of the parameters to degrade: ``<layer>.weight`` for each named layer.

    ``layers=None`` selects every parameter called ``weight`` (at any depth) with at least two
    dimensions (linear and convolution kernels; biases and per-neuron vectors are left alone).
    """
    params = dict(module.named_parameters())
    if layers is None:
        names = [n for n, p in params.items() if n.rsplit(".", 1)[-1] == "weight" and p.ndim >= 2]
        if not names:
            raise ValueError("the module has no weight matrices to degrade")
        return names
    if isinstance(layers, str):
        raise TypeError("layers must be a sequence of layer names, not a single string")
    submodules = dict(module.named_modules())
    names = []
    for layer in layers:
        if layer not in submodules:
            raise KeyError(f"no layer named {layer!r}; available: {sorted(k for k in submodules)}")
        name = f"{layer}.weight" if layer else "weight"
        if name not in params:
            raise ValueError(f"layer {layer!r} has no parameter 'weight'")
        names.append(name)
    return names


def scale_weights(
    module: nn.Module, factor: float, layers: Sequence[str] | None = None
) -> nn.Module:
    """Return a deep copy of ``module`` whose chosen weights are multiplied by ``factor``.

    Args:
        module: the trained network (left untouched).
        factor: the scale s (spec levels: ``WEIGHT_SCALE_LEVELS``), finite.
        layers: names of the submodules (as in ``module.named_modules()``) whose ``weight`` is
            scaled; ``None`` scales every weight matrix (ndim >= 2).

    Returns:
        The degraded copy.
    """
    if not np.isfinite(factor):
        raise ValueError(f"factor must be finite, got {factor}")
    names = _select_weights(module, layers)
    degraded = copy.deepcopy(module)
    params = dict(degraded.named_parameters())
    with torch.no_grad():
        for name in names:
            params[name].mul_(float(factor))
    return degraded


def add_weight_noise(
    module: nn.Module, sigma_w: float, seed: int, layers: Sequence[str] | None = None
) -> nn.Module:
    """Return a deep copy of ``module`` with W_l + N(0, (σ_w·std(W_l))²) on the chosen layers.

    The noise is drawn once per call from a CPU ``torch.Generator`` seeded with ``seed`` (layers in
    the order given, or in ``named_parameters`` order for ``layers=None``), so the same call gives
    the same degraded copy; draw a new copy per episode with a new seed. ``std(W_l)`` is the
    population standard deviation of all entries of the layer's weight.

    Args:
        module: the trained network (left untouched).
        sigma_w: relative noise level σ_w >= 0 (spec levels: ``WEIGHT_NOISE_LEVELS``).
        seed: seed of the noise draw.
        layers: as in :func:`scale_weights`.

    Returns:
        The degraded copy.
    """
    if not np.isfinite(sigma_w) or sigma_w < 0:
        raise ValueError(f"sigma_w must be a finite number >= 0, got {sigma_w}")
    names = _select_weights(module, layers)
    degraded = copy.deepcopy(module)
    params = dict(degraded.named_parameters())
    gen = torch.Generator(device="cpu").manual_seed(int(seed))
    with torch.no_grad():
        for name in names:
            params[name].copy_(_noisy(params[name].detach(), sigma_w, gen))
    return degraded


def _noisy(w: Tensor, sigma_w: float, gen: torch.Generator) -> Tensor:
    """``w + N(0, (σ_w·std(w))²)`` (population std; the draw in float64 from ``gen``)."""
    std = w.double().std(correction=0).item() if w.numel() > 1 else 0.0
    noise = torch.randn(w.shape, generator=gen, dtype=torch.float64)
    return w + (noise * (sigma_w * std)).to(dtype=w.dtype, device=w.device)


def set_obstacle_speed_factor(env: gym.Env, factor: float) -> None:
    """Multiply the obstacle speeds of an obstacle arena (wrapped or not) by ``factor``.

    Takes effect at the next ``reset``; the layout and the obstacles' directions for a given reset
    seed are unchanged, only the drawn speeds U(0, 0.3) m/s are multiplied (paired comparisons).
    Has no visible effect on the static variant.

    Raises:
        TypeError: if ``env.unwrapped`` is not an ``ObstacleArenaEnv``.
    """
    arena = env.unwrapped
    if not isinstance(arena, ObstacleArenaEnv):
        raise TypeError(f"expected an ObstacleArenaEnv, got {type(arena).__name__}")
    arena.set_speed_factor(factor)


_KEYS = {
    "obs-noise": "obs_noise",
    "weight-scale": "weight_scale",
    "weight-noise": "weight_noise",
    "obstacle-speed": "obstacle_speed",
}


@dataclass(frozen=True)
class Degradation:
    """One degraded condition of spec §6.3, alone or combined.

    Attributes:
        obs_noise: σ of the additive observation noise (raw units), ``0`` for none.
        weight_scale: factor ``s`` on the degraded weight matrices, ``1`` for none.
        weight_noise: relative σ_w of the weight noise drawn per episode, ``0`` for none.
        obstacle_speed: obstacle speed factor (obstacle arena only), ``1`` for none.

    The text form is ``"nominal"`` or comma-separated ``key=value`` with the keys
    ``obs-noise``, ``weight-scale``, ``weight-noise``, ``obstacle-speed``
    (:meth:`parse`, :attr:`label`).
    """

    obs_noise: float = 0.0
    weight_scale: float = 1.0
    weight_noise: float = 0.0
    obstacle_speed: float = 1.0

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not np.isfinite(value) or value < 0:
                raise ValueError(f"{f.name} must be a finite number >= 0, got {value}")
        if self.obstacle_speed == 0:
            raise ValueError("obstacle_speed must be > 0")

    @classmethod
    def parse(cls, text: str) -> Degradation:
        """``"nominal"`` or ``"weight-scale=0.6,obs-noise=0.1"`` -> :class:`Degradation`."""
        text = text.strip()
        if text in ("", "nominal", "none"):
            return cls()
        values: dict[str, float] = {}
        for part in text.split(","):
            key, sep, value = part.strip().partition("=")
            if not sep or key not in _KEYS:
                raise ValueError(
                    f"bad degradation {part!r}: expected key=value with key one of "
                    f"{sorted(_KEYS)} (e.g. weight-scale=0.6), or 'nominal'"
                )
            if _KEYS[key] in values:
                raise ValueError(f"degradation {key!r} given twice in {text!r}")
            try:
                values[_KEYS[key]] = float(value)
            except ValueError:
                raise ValueError(f"bad number {value!r} for {key!r} in {text!r}") from None
        return cls(**values)

    @property
    def label(self) -> str:
        """The canonical text form (keys in a fixed order, defaults omitted)."""
        default = Degradation()
        parts = [
            f"{key}={getattr(self, name):g}"
            for key, name in _KEYS.items()
            if getattr(self, name) != getattr(default, name)
        ]
        return ",".join(parts) or "nominal"

    @property
    def changes_weights(self) -> bool:
        return self.weight_scale != 1.0 or self.weight_noise > 0

    def wrap(self, env: gym.Env, seed: int) -> gym.Env:
        """``env`` with this condition's environment part: observation noise (a wrapper seeded
        with ``seed``) and the obstacle speed factor (obstacle arena only)."""
        if self.obstacle_speed != 1.0:
            set_obstacle_speed_factor(env, self.obstacle_speed)
        return ObservationNoise(env, self.obs_noise, seed=seed) if self.obs_noise > 0 else env

    def episode_weights(self, weights: Mapping[str, Tensor], seed: int) -> dict[str, Tensor]:
        """Degraded copies of ``weights`` ``{layer: [N_out, N_in]}`` for one episode: scaled by
        ``weight_scale``, then ``W + N(0, (σ_w·std(W))²)`` drawn from ``seed`` (layers in the
        given order), as :func:`scale_weights` then :func:`add_weight_noise` do to a module."""
        gen = torch.Generator(device="cpu").manual_seed(int(seed))
        out = {}
        for name, w in weights.items():
            w = w.detach() * self.weight_scale
            out[name] = _noisy(w, self.weight_noise, gen) if self.weight_noise > 0 else w
        return out
