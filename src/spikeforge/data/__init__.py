"""Offline data loaders for spikeforge (nothing is ever downloaded).

Layouts: IDX loaders return ``uint8`` images ``[N, 28, 28]`` and ``int64`` labels ``[N]``;
:func:`load_digits_split` returns ``float64`` images ``[N, 1, 8, 8]`` in ``[0, 1]``;
:func:`to_unit_float` produces batch-first ``[N, 1, H, W]`` tensors in ``[0, 1]``;
:func:`load_dataset` gives a :class:`Dataset` of such tensors by name.
"""

from spikeforge.data.datasets import Dataset, load_dataset
from spikeforge.data.digits import DIGITS_MAX_VALUE, DigitsSplit, load_digits_split
from spikeforge.data.errors import DataCorruptError, DataNotFoundError
from spikeforge.data.idx import (
    DATASET_NAMES,
    SHA256_CHECKSUMS,
    SPLITS,
    load_fashion_mnist,
    load_idx_dataset,
    load_mnist,
    read_idx,
)
from spikeforge.data.paths import DATA_ENV_VAR, resolve_data_dir
from spikeforge.data.tensors import to_unit_float

__all__ = [
    "DATASET_NAMES",
    "DATA_ENV_VAR",
    "DIGITS_MAX_VALUE",
    "SHA256_CHECKSUMS",
    "SPLITS",
    "DataCorruptError",
    "DataNotFoundError",
    "Dataset",
    "DigitsSplit",
    "load_dataset",
    "load_digits_split",
    "load_fashion_mnist",
    "load_idx_dataset",
    "load_mnist",
    "read_idx",
    "resolve_data_dir",
    "to_unit_float",
]
