"""Image classification data sets as tensors: sklearn digits (bundled), MNIST, Fashion-MNIST."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from spikeforge.data.digits import load_digits_split
from spikeforge.data.idx import load_idx_dataset
from spikeforge.data.tensors import to_unit_float

__all__ = ["Dataset", "load_dataset"]


@dataclass
class Dataset:
    """Images ``[N, 1, H, W]`` float32 in [0, 1] and int64 labels ``[N]``."""

    name: str
    x_train: Tensor
    y_train: Tensor
    x_test: Tensor
    y_test: Tensor

    def subset(self, train: int | None = None, test: int | None = None) -> Dataset:
        """The first ``train`` training and ``test`` test samples (``None``: all)."""
        return Dataset(
            self.name,
            self.x_train[:train],
            self.y_train[:train],
            self.x_test[:test],
            self.y_test[:test],
        )


def load_dataset(name: str, data_dir: str | Path | None = None) -> Dataset:
    """``"digits"`` (sklearn, bundled), ``"mnist"`` or ``"fashion-mnist"`` (IDX files from the
    data directory, checksums verified)."""
    if name == "digits":
        split = load_digits_split()
        return Dataset(
            name,
            torch.from_numpy(split.x_train).float(),
            torch.from_numpy(split.y_train),
            torch.from_numpy(split.x_test).float(),
            torch.from_numpy(split.y_test),
        )
    parts = {}
    for part in ("train", "test"):
        images, labels = load_idx_dataset(name, part, data_dir)
        parts[part] = (to_unit_float(images, 255.0, torch.float32), torch.from_numpy(labels))
    return Dataset(name, *parts["train"], *parts["test"])
