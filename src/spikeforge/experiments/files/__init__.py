"""File classification from metadata (spec ``file-classification.md``): the debfiles
reproduction (``spikeforge reproduce files``) and the ``spikeforge files`` tools."""

from spikeforge.experiments.files.command import COMMANDS as _REPRODUCE

COMMANDS = (*_REPRODUCE,)

__all__ = ["COMMANDS"]
