"""Time-to-first-spike (TTFS) networks after Stanojevic et al.

* :func:`from_relu` maps a trained ReLU network to an exactly equivalent TTFS network
  (neuron models ``"b1"`` and ``"alpha1"``);
* :class:`TTFSNetwork` computes closed-form spike times (``forward`` / ``run``) and runs the
  independent event-driven simulator (``simulate``, :mod:`spikeforge.ttfs.events`).
"""

from spikeforge.ttfs.errors import InputRangeError, UnsupportedLayerError
from spikeforge.ttfs.mapping import from_relu
from spikeforge.ttfs.network import MappingInfo, TTFSNetwork, TTFSOutput
from spikeforge.ttfs.windows import LayerWindow, Windows

__all__ = [
    "InputRangeError",
    "LayerWindow",
    "MappingInfo",
    "TTFSNetwork",
    "TTFSOutput",
    "UnsupportedLayerError",
    "Windows",
    "from_relu",
]
