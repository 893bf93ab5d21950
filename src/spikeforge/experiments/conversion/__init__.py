"""``spikeforge reproduce conversion``: ANN -> SNN conversion with QCFS, plain IF conversion and
PASCAL, against SpikingJelly's converter (issue 11; spec ``conversion.md``).

One line (``--dataset mnist|fashion-mnist --arch vgg-small|resnet-small``) trains a ReLU network
and QCFS networks (``L = 4``, ``8`` and AL levels) of the same architecture, converts every QCFS
network to PASCAL (exactly equal to it: agreement on the whole test set) and the uniform ones to
IF-SNNs (accuracy at ``T = 1..64``), converts the ReLU network with SpikingJelly 2.0's
``ann2snn.Converter`` (max-norm and 99.9 % modes), and compares the time steps every method needs
for PASCAL's accuracy.

Modules: :mod:`.networks` (vgg-small, resnet-small), :mod:`.training`, :mod:`.curves` (accuracy
at every ``T``, steps to reach an accuracy), :mod:`.counting` (spikes and synaptic operations by
hooks), :mod:`.spikingjelly_baseline` (SpikingJelly's converter and a max-norm IF conversion),
:mod:`.runs` (:func:`~spikeforge.experiments.conversion.runs.run_conversion`, resumable parts),
:mod:`.report` (tables, step comparison, plot), :mod:`.command` (the subcommand).
"""

from spikeforge.experiments.conversion.command import COMMANDS
from spikeforge.experiments.conversion.runs import Settings, run_conversion

__all__ = ["COMMANDS", "Settings", "run_conversion"]
