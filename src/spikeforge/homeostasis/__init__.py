"""Homeostasis for trained SNNs at inference time (spec ``dwam.md``).

* :class:`~spikeforge.homeostasis.dwam.DWAM`: BCM-based dynamic weight adaptation (Zhou et al.,
  AAAI 2026; spec §4): attaches to chosen ``nn.Linear`` layers of a trained multi-step network,
  estimates pre- and post-synaptic rates from the spikes, gates the BCM rule by the rates'
  coefficient of variation and adapts working copies of the weights towards the nominal rates.
* :class:`~spikeforge.homeostasis.adaptive_threshold.AdaptiveLIF` /
  :func:`~spikeforge.homeostasis.adaptive_threshold.adaptive_lif_multistep`: the neuron-level
  family, a per-neuron threshold raised by each spike and relaxing to its rest value (spec §6.1).

Tensors are time-first ``[T, B, ...]``. Depends only on :mod:`spikeforge.core` and torch.
"""

from spikeforge.homeostasis.adaptive_threshold import AdaptiveLIF, adaptive_lif_multistep
from spikeforge.homeostasis.dwam import DWAM, UnsupportedLayerError

__all__ = ["DWAM", "AdaptiveLIF", "UnsupportedLayerError", "adaptive_lif_multistep"]
