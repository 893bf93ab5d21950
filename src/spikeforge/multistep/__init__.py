"""Reproductions of the multi-step papers: IMP, LTS, TET.

Offline experiments of spec ``multistep.md`` §4 and §9 on the multi-step engine
(:mod:`spikeforge.core`) and losses (:mod:`spikeforge.losses`); all tensors are time-first
``[T, B, ...]``:

* :mod:`~spikeforge.multistep.patterns`: the pattern-mapping count of one IF neuron with and
  without an initial membrane potential (IMP; spec §4.4-4.6);
* :mod:`~spikeforge.multistep.nets`: IF MLPs and the small convolutional SNN, driven by a static
  input repeated over ``T`` steps, with or without a learnable IMP;
* :mod:`~spikeforge.multistep.train`: the SDT / LTS / TET / TET-S objectives, a minibatch BPTT
  loop and per-time-step accuracy;
* :mod:`~spikeforge.multistep.imp`: the experiments (pattern counts, per-step accuracy on sklearn
  digits, LTS convergence on random data, Fashion-MNIST conv SNN) and
  :func:`~spikeforge.multistep.imp.run_imp_reproduction`, behind ``spikeforge reproduce imp``;
* :mod:`~spikeforge.multistep.report`: Markdown tables and plots of those results.
"""
