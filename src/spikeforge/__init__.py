"""spikeforge: spiking neural networks in PyTorch.

Subpackages: :mod:`spikeforge.ttfs` (exact time-to-first-spike networks),
:mod:`spikeforge.data` (offline data loaders), :mod:`spikeforge.metrics`.
"""

__version__ = "0.1.0"
