"""DWAM (spec ``dwam.md``): the reproduction ``spikeforge reproduce dwam`` and the
``spikeforge control`` tools (train a host, run it with DWAM under a degradation, render)."""

from spikeforge.experiments.dwam.command import COMMANDS as _REPRODUCE
from spikeforge.experiments.dwam.tools import COMMANDS as _TOOLS

COMMANDS = (*_REPRODUCE, *_TOOLS)

__all__ = ["COMMANDS"]
