"""Reproductions and other command-line jobs: one module (or small package) per experiment.

Each declares its subcommands in a ``COMMANDS`` tuple (:mod:`.registry`), which
:mod:`spikeforge.cli` collects, and writes its results through :mod:`.report` (JSON written
atomically with the environment and code version, plots, tables, resume). Library packages never
import this package.

* :mod:`.ttfs_mapping`: ``spikeforge demo`` and ``spikeforge reproduce ttfs-mapping``;
* :mod:`.ttfs_train`: ``spikeforge reproduce ttfs-train`` (B1 from scratch, fine-tuning);
* :mod:`.ttfs_gradients`: ``spikeforge reproduce ttfs-gradients`` (ReLU / B1 / alpha1
  trajectories);
* :mod:`.ttfs_hardware`: ``spikeforge reproduce ttfs-hardware`` (noise, bits, latency sweeps);
* :mod:`.imp`: ``spikeforge reproduce imp`` (IMP / LTS / TET);
* :mod:`.data_verify`: ``spikeforge data verify``.
"""

__all__: list[str] = []
