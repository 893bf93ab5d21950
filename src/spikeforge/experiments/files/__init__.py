"""File classification from metadata (spec ``file-classification.md``): the debfiles
reproduction (``spikeforge reproduce files``) and the ``spikeforge files`` tools."""

from spikeforge.experiments.files.command import COMMANDS as _REPRODUCE
from spikeforge.experiments.files.tools import COMMANDS as _TOOLS

COMMANDS = (*_REPRODUCE, *_TOOLS)

__all__ = ["COMMANDS"]
