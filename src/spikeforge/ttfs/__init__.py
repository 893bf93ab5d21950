"""Time-to-first-spike (TTFS) networks after Stanojevic et al.

* :func:`from_relu` maps a trained ReLU network to an exactly equivalent TTFS network
  (neuron models ``"b1"`` and ``"alpha1"``); :func:`b1_from_scratch` builds a B1 network to
  train from scratch;
* :class:`TTFSNetwork` computes closed-form spike times (``forward`` / ``run``) and runs the
  independent event-driven simulators (``simulate``: the compiled engine
  :mod:`spikeforge.ttfs.engine`, or the Python reference :mod:`spikeforge.ttfs.events`);
* :func:`counts`: spikes, synaptic operations and an energy estimate per layer and sample, next
  to the ReLU network's MACs (:mod:`spikeforge.ttfs.counts`);
* :func:`train_b1` trains B1 networks with P2's recipe (their trajectory is the ReLU network's);
* :class:`Hardware` (noise, time / weight quantisation, saturating clamp) with
  :func:`quantile_windows`, :func:`evaluate_hardware` and :func:`finetune_hardware`;
* :meth:`TTFSNetwork.save` writes a network to a file, :func:`load` reads it back
  (:mod:`spikeforge.ttfs.saving`).
"""

from spikeforge.ttfs.counts import EnergyModel, OperationCounts, counts
from spikeforge.ttfs.errors import InputRangeError, UnsupportedLayerError
from spikeforge.ttfs.finetune import evaluate_hardware, finetune_hardware, quantile_windows
from spikeforge.ttfs.hardware import Hardware
from spikeforge.ttfs.mapping import b1_from_scratch, from_relu
from spikeforge.ttfs.network import MappingInfo, TTFSNetwork, TTFSOutput
from spikeforge.ttfs.saving import load
from spikeforge.ttfs.train import grow_windows, train_b1
from spikeforge.ttfs.windows import LayerWindow, Windows

__all__ = [
    "EnergyModel",
    "Hardware",
    "InputRangeError",
    "LayerWindow",
    "MappingInfo",
    "OperationCounts",
    "TTFSNetwork",
    "TTFSOutput",
    "UnsupportedLayerError",
    "Windows",
    "b1_from_scratch",
    "counts",
    "evaluate_hardware",
    "finetune_hardware",
    "from_relu",
    "grow_windows",
    "load",
    "quantile_windows",
    "train_b1",
]
