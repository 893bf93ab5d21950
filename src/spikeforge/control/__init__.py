"""Control tasks for the DWAM protocol (spec ``dwam.md`` §6): environments, experts, degradations.

* :mod:`~spikeforge.control.experts`: CartPole-v1 and Pendulum-v1 expert policies and
  :func:`rollout`.
* :mod:`~spikeforge.control.arena`: the continuous obstacle arena (static and dynamic), its
  potential-field expert and :func:`register_envs` (id ``spikeforge/ObstacleArena-v0``).
* :mod:`~spikeforge.control.degradations`: observation noise, weight scaling / weight noise on
  copies of a network, obstacle speed factor.
* :mod:`~spikeforge.control.batch`: :func:`rollout_batch`, many episodes in lockstep with one
  batched policy call per step.
* :mod:`~spikeforge.control.hosts`: the SNN host policies (spec §6.1), :func:`behaviour_clone`,
  :class:`HostPolicy` for :func:`rollout`, :func:`save_host` / :func:`load_host`.

Nothing is registered with gymnasium at import time; call :func:`register_envs` before
``gymnasium.make(ARENA_ENV_ID)`` (or construct :class:`ObstacleArenaEnv` directly).
"""

from spikeforge.control.arena import (
    ARENA_ENV_ID,
    EXPERT_STATIC_SUCCESS,
    ArenaLayout,
    ObstacleArenaEnv,
    decode_beams,
    potential_field_expert,
    register_envs,
)
from spikeforge.control.batch import BatchResult, rollout_batch
from spikeforge.control.degradations import (
    OBSERVATION_NOISE_LEVELS,
    OBSTACLE_SPEED_LEVELS,
    WEIGHT_NOISE_LEVELS,
    WEIGHT_SCALE_LEVELS,
    Degradation,
    ObservationNoise,
    add_weight_noise,
    scale_weights,
    set_obstacle_speed_factor,
)
from spikeforge.control.experts import (
    PENDULUM_UPRIGHT_ENERGY,
    RolloutResult,
    cartpole_expert,
    pendulum_expert,
    rollout,
)
from spikeforge.control.hosts import (
    CARTPOLE_OBS_SCALE,
    PENDULUM_OBS_SCALE,
    Host,
    HostConfig,
    HostPolicy,
    behaviour_clone,
    host_config,
    load_host,
    make_host,
    save_host,
)

__all__ = [
    "ARENA_ENV_ID",
    "CARTPOLE_OBS_SCALE",
    "EXPERT_STATIC_SUCCESS",
    "OBSERVATION_NOISE_LEVELS",
    "OBSTACLE_SPEED_LEVELS",
    "PENDULUM_OBS_SCALE",
    "PENDULUM_UPRIGHT_ENERGY",
    "WEIGHT_NOISE_LEVELS",
    "WEIGHT_SCALE_LEVELS",
    "ArenaLayout",
    "BatchResult",
    "Degradation",
    "Host",
    "HostConfig",
    "HostPolicy",
    "ObservationNoise",
    "ObstacleArenaEnv",
    "RolloutResult",
    "add_weight_noise",
    "behaviour_clone",
    "cartpole_expert",
    "decode_beams",
    "host_config",
    "load_host",
    "make_host",
    "pendulum_expert",
    "potential_field_expert",
    "register_envs",
    "rollout",
    "rollout_batch",
    "save_host",
    "scale_weights",
    "set_obstacle_speed_factor",
]
