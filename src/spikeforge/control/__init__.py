"""Control tasks for the DWAM protocol (spec ``dwam.md`` §6): environments, experts, degradations.

* :mod:`~spikeforge.control.experts`: CartPole-v1 and Pendulum-v1 expert policies and
  :func:`rollout`.
* :mod:`~spikeforge.control.degradations`: observation noise, weight scaling / weight noise on
  copies of a network, obstacle speed factor.

Nothing is registered with gymnasium at import time.
"""

from spikeforge.control.degradations import (
    OBSERVATION_NOISE_LEVELS,
    OBSTACLE_SPEED_LEVELS,
    WEIGHT_NOISE_LEVELS,
    WEIGHT_SCALE_LEVELS,
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

__all__ = [
    "OBSERVATION_NOISE_LEVELS",
    "OBSTACLE_SPEED_LEVELS",
    "PENDULUM_UPRIGHT_ENERGY",
    "WEIGHT_NOISE_LEVELS",
    "WEIGHT_SCALE_LEVELS",
    "ObservationNoise",
    "RolloutResult",
    "add_weight_noise",
    "cartpole_expert",
    "pendulum_expert",
    "rollout",
    "scale_weights",
    "set_obstacle_speed_factor",
]
