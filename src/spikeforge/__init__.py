"""spikeforge: spiking neural networks in PyTorch.

Library packages, one per method: :mod:`spikeforge.core` (the multi-step IF / LIF engine),
:mod:`spikeforge.ttfs` (exact time-to-first-spike networks). Shared by all methods:
:mod:`spikeforge.data` (offline data loaders), :mod:`spikeforge.training`,
:mod:`spikeforge.losses`, :mod:`spikeforge.metrics`, :mod:`spikeforge.io`, :mod:`spikeforge.viz`,
:mod:`spikeforge.models`, :mod:`spikeforge.tables`. The reproductions and the command line's jobs
are in the ``experiments`` subpackage (which no library package imports).
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
