"""Exceptions raised by :mod:`spikeforge.data`, plus the shared "how to get the data" text."""

from __future__ import annotations

__all__ = ["OBTAIN_DATA_HELP", "DataCorruptError", "DataNotFoundError"]

OBTAIN_DATA_HELP = (
    "How to obtain the data (spikeforge never downloads anything):\n"
    "  - MNIST: 'The MNIST database of handwritten digits' by Yann LeCun, Corinna Cortes and\n"
    "    Christopher J. C. Burges; use the original IDX files\n"
    "    (train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz,\n"
    "    t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz).\n"
    "  - Fashion-MNIST: Zalando Research, GitHub repository zalandoresearch/fashion-mnist\n"
    "    (same four IDX file names, under data/fashion/).\n"
    "Put the gzipped IDX files in <data dir>/mnist/ and <data dir>/fashion-mnist/, then pass\n"
    "--data-dir <data dir> or set the SPIKEFORGE_DATA environment variable to <data dir>."
)


class DataNotFoundError(FileNotFoundError):
    """A data directory or data file could not be found; the message says where we looked."""


class DataCorruptError(ValueError):
    """A data file exists but is malformed, truncated or fails its checksum.

    The message always names the offending file.
    """
