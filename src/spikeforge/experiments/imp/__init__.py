"""``spikeforge reproduce imp``: the multi-step papers' experiments (IMP, LTS, TET).

Offline experiments of spec ``multistep.md`` §4 and §9 on the multi-step engine
(:mod:`spikeforge.core`) and losses (:mod:`spikeforge.losses`); all tensors are time-first
``[T, B, ...]``:

* :mod:`.patterns`: the pattern-mapping count of one IF neuron with and without an initial
  membrane potential (IMP; spec §4.4-4.6);
* :mod:`.nets`: IF MLPs and the small convolutional SNN, driven by a static input repeated over
  ``T`` steps, with or without a learnable IMP;
* :mod:`.objectives`: the SDT / LTS / TET / TET-S objectives, a minibatch BPTT loop and
  per-time-step accuracy;
* :mod:`.experiments`: the experiments (pattern counts, per-step accuracy on sklearn digits, LTS
  convergence on random data, Fashion-MNIST conv SNN) and
  :func:`~spikeforge.experiments.imp.experiments.run_imp_reproduction`;
* :mod:`.report`: Markdown tables and plots of those results;
* :mod:`.command`: the ``spikeforge reproduce imp`` subcommand.
"""

from spikeforge.experiments.imp.command import COMMANDS

__all__ = ["COMMANDS"]
