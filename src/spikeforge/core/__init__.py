"""Discrete-time spiking neurons over time-first ``[T, B, ...]`` tensors.

* :mod:`~spikeforge.core.surrogate`: Heaviside spikes (``H >= threshold`` by default) with
  surrogate gradients (atan, sigmoid, fast_sigmoid, triangle, rectangle).
* :mod:`~spikeforge.core.functional`: pure multi-step IF / LIF / decay-factor LIF functions, the
  plain-torch reference path: ``spikes, v_final = lif_multistep(x_seq, v0, ...)``.
* :mod:`~spikeforge.core.neurons`: ``IF``, ``LIF``, ``DecayLIF`` modules without hidden state,
  learnable initial membrane potential, :func:`~spikeforge.core.neurons.param_groups`, and the
  ``MultiStep`` wrapper for stateless layers.
* :mod:`~spikeforge.core.fused`: the compiled whole-sequence CPU path of the neurons;
  :mod:`~spikeforge.core.fused_triton`: the same on CUDA tensors, as Triton kernels;
  :mod:`~spikeforge.core.spike_saving`: layers fed by its spikes keep no copy of them for BPTT.
* :mod:`~spikeforge.core.spike_linear`: ``SpikeLinear``, an event-driven ``nn.Linear`` for spike
  inputs (adds the weights of the inputs that spiked).
"""

from spikeforge.core.functional import decay_lif_multistep, if_multistep, lif_multistep
from spikeforge.core.neurons import IF, LIF, DecayLIF, MultiStep, param_groups
from spikeforge.core.spike_linear import SpikeLinear
from spikeforge.core.surrogate import SURROGATES, heaviside, spike

__all__ = [
    "IF",
    "LIF",
    "SURROGATES",
    "DecayLIF",
    "MultiStep",
    "SpikeLinear",
    "decay_lif_multistep",
    "heaviside",
    "if_multistep",
    "lif_multistep",
    "param_groups",
    "spike",
]
