"""Discrete-time spiking neurons over time-first ``[T, B, ...]`` tensors.

* :mod:`~spikeforge.core.surrogate`: Heaviside spikes with surrogate gradients.
* :mod:`~spikeforge.core.functional`: pure multi-step IF / LIF functions (plain-torch reference).
* :mod:`~spikeforge.core.neurons`: ``IF``, ``LIF``, ``DecayLIF`` modules, learnable initial
  membrane potential, :func:`~spikeforge.core.neurons.param_groups`, the ``MultiStep`` wrapper.
"""
