"""Discrete-time spiking neurons over time-first ``[T, B, ...]`` tensors.

* :mod:`~spikeforge.core.surrogate`: Heaviside spikes (``H >= threshold`` by default) with
  surrogate gradients (atan, sigmoid, fast_sigmoid, triangle, rectangle).
* :mod:`~spikeforge.core.functional`: pure multi-step IF / LIF / decay-factor LIF functions, the
  plain-torch reference path: ``spikes, v_final = lif_multistep(x_seq, v0, ...)``.
* :mod:`~spikeforge.core.neurons`: ``IF``, ``LIF``, ``DecayLIF`` modules without hidden state,
  learnable initial membrane potential, :func:`~spikeforge.core.neurons.param_groups`, and the
  ``MultiStep`` wrapper for stateless layers.
"""

from spikeforge.core.functional import decay_lif_multistep, if_multistep, lif_multistep
from spikeforge.core.neurons import IF, LIF, DecayLIF, MultiStep, param_groups
from spikeforge.core.surrogate import SURROGATES, heaviside, spike

__all__ = [
    "IF",
    "LIF",
    "SURROGATES",
    "DecayLIF",
    "MultiStep",
    "decay_lif_multistep",
    "heaviside",
    "if_multistep",
    "lif_multistep",
    "param_groups",
    "spike",
]
