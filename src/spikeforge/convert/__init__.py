"""Rate-coded ANN -> SNN conversion: QCFS training, plain IF conversion and PASCAL.

* :func:`to_qcfs` replaces the ReLUs of a network by :class:`QCFS` activations (learnable
  per-layer clip level ``lambda``, ``L`` levels) and MaxPool by AvgPool; train it with any loop;
* :func:`to_if` converts a QCFS network to integrate-and-fire neurons (Bu et al. 2022): a
  multi-step network whose output ``[T, B, ...]`` gives the prediction at every ``T``;
* :func:`to_pascal` converts it to PASCAL's spike-accumulation neurons (Ramesh & Srinivasan
  2025): ``snn(x)`` (fast path) and ``snn.simulate(x)`` (step-by-step reference) both return the
  QCFS network's logits; per-layer levels, latency, ``T_eff``, spike and operation counts;
* AL levels (:func:`al_metrics`, :func:`levels_from_al`), :func:`set_levels`, latency and
  ``T_eff`` formulas (:mod:`spikeforge.convert.levels`).

Unsupported layers raise :class:`UnsupportedLayerError` naming the layer's path and type.
The user guide is ``docs/conversion.md``.
"""

from spikeforge.convert.errors import UnsupportedLayerError
from spikeforge.convert.if_conversion import IFNetwork, IFOutput, to_if
from spikeforge.convert.levels import (
    Latency,
    TEff,
    al_max,
    al_metric,
    al_metrics,
    chain_latency,
    levels_from_al,
    t_eff,
)
from spikeforge.convert.pascal import PascalLayer, PascalNetwork, PascalOutput, to_pascal
from spikeforge.convert.pascal_neuron import pascal_levels, pascal_neuron_steps
from spikeforge.convert.qcfs import QCFS, qcfs, qcfs_sites, set_levels
from spikeforge.convert.replace import to_qcfs

__all__ = [
    "QCFS",
    "IFNetwork",
    "IFOutput",
    "Latency",
    "PascalLayer",
    "PascalNetwork",
    "PascalOutput",
    "TEff",
    "UnsupportedLayerError",
    "al_max",
    "al_metric",
    "al_metrics",
    "chain_latency",
    "levels_from_al",
    "pascal_levels",
    "pascal_neuron_steps",
    "qcfs",
    "qcfs_sites",
    "set_levels",
    "t_eff",
    "to_if",
    "to_pascal",
    "to_qcfs",
]
