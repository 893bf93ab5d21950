"""The scikit-learn 8x8 digits data set (bundled with scikit-learn, no download needed)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.datasets import load_digits

__all__ = ["DIGITS_MAX_VALUE", "DigitsSplit", "load_digits_split"]

DIGITS_MAX_VALUE = 16
"""Largest pixel value in the raw digits images (pixels are integers 0..16)."""


@dataclass(frozen=True)
class DigitsSplit:
    """A train/test split of the digits data set.

    Attributes:
        x_train, x_test: ``float64`` images of shape ``[N, 1, 8, 8]`` (batch, channel, row,
            column) with values in ``[0, 1]`` (raw value / 16).
        y_train, y_test: ``int64`` labels of shape ``[N]`` with values in ``0..9``.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def load_digits_split(test_fraction: float = 0.25, seed: int = 0) -> DigitsSplit:
    """Load the 1797 digits and split them deterministically, stratified per class.

    For each class, ``round(test_fraction * class size)`` examples (at least one, and at least
    one left for training) go to the test set, chosen with ``numpy.random.default_rng(seed)``.
    Both sets are then shuffled with the same generator, so the result depends only on
    ``test_fraction`` and ``seed``.

    Raises:
        ValueError: ``test_fraction`` not strictly between 0 and 1.
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be strictly between 0 and 1, got {test_fraction}")
    bunch = load_digits()
    images = np.asarray(bunch.images, dtype=np.float64) / DIGITS_MAX_VALUE
    labels = np.asarray(bunch.target, dtype=np.int64)

    rng = np.random.default_rng(seed)
    train_parts: list[np.ndarray] = []
    test_parts: list[np.ndarray] = []
    for cls in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == cls))
        n_test = min(max(round(test_fraction * members.size), 1), members.size - 1)
        test_parts.append(members[:n_test])
        train_parts.append(members[n_test:])
    train_idx = rng.permutation(np.concatenate(train_parts))
    test_idx = rng.permutation(np.concatenate(test_parts))

    x = images[:, np.newaxis, :, :]
    return DigitsSplit(
        x_train=x[train_idx],
        y_train=labels[train_idx],
        x_test=x[test_idx],
        y_test=labels[test_idx],
    )
