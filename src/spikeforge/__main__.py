"""``python -m spikeforge``: the command-line interface."""

import sys

from spikeforge.cli import main

sys.exit(main())
