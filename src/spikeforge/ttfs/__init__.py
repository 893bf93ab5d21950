"""Time-to-first-spike (TTFS) networks after Stanojevic et al.

* :func:`from_relu` maps a trained ReLU network to an exactly equivalent TTFS network
  (neuron models ``"b1"`` and ``"alpha1"``); :func:`b1_from_scratch` builds a B1 network to
  train from scratch;
* :class:`TTFSNetwork` computes closed-form spike times (``forward`` / ``run``) and runs the
  independent event-driven simulator (``simulate``, :mod:`spikeforge.ttfs.events`);
* :func:`train_b1` trains B1 networks with P2's recipe (their trajectory is the ReLU network's);
* :class:`Hardware` (noise, time / weight quantisation, saturating clamp) with
  :func:`quantile_windows`, :func:`evaluate_hardware` and :func:`finetune_hardware`;
* :meth:`TTFSNetwork.save` writes a network to a file, :func:`load` reads it back
  (:mod:`spikeforge.ttfs.saving`).
"""

from spikeforge.ttfs.errors import InputRangeError, UnsupportedLayerError
from spikeforge.ttfs.finetune import evaluate_hardware, finetune_hardware, quantile_windows
from spikeforge.ttfs.hardware import Hardware
from spikeforge.ttfs.mapping import b1_from_scratch, from_relu
from spikeforge.ttfs.network import MappingInfo, TTFSNetwork, TTFSOutput
from spikeforge.ttfs.saving import load
from spikeforge.ttfs.train import grow_windows, train_b1
from spikeforge.ttfs.windows import LayerWindow, Windows

__all__ = [
    "Hardware",
    "InputRangeError",
    "LayerWindow",
    "MappingInfo",
    "TTFSNetwork",
    "TTFSOutput",
    "UnsupportedLayerError",
    "Windows",
    "b1_from_scratch",
    "evaluate_hardware",
    "finetune_hardware",
    "from_relu",
    "grow_windows",
    "load",
    "quantile_windows",
    "train_b1",
]
