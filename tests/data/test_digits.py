"""Tests for spikeforge.data.digits (scikit-learn's bundled 8x8 digits)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_digits

from spikeforge.data import DIGITS_MAX_VALUE, DigitsSplit, load_digits_split, to_unit_float


@pytest.fixture(scope="module")
def split() -> DigitsSplit:
    return load_digits_split()


def test_shapes_dtypes_and_range(split: DigitsSplit) -> None:
    assert split.x_train.shape == (1347, 1, 8, 8)
    assert split.x_test.shape == (450, 1, 8, 8)
    assert split.y_train.shape == (1347,)
    assert split.y_test.shape == (450,)
    assert split.x_train.dtype == np.float64
    assert split.y_train.dtype == np.int64
    both = np.concatenate([split.x_train, split.x_test])
    assert both.min() == 0.0
    assert both.max() == 1.0


def test_split_is_a_partition_of_the_data_set(split: DigitsSplit) -> None:
    raw = load_digits()
    full = np.column_stack([raw.images.reshape(len(raw.images), -1) / 16, raw.target])
    parts = np.concatenate(
        [
            np.column_stack([split.x_train.reshape(len(split.x_train), -1), split.y_train]),
            np.column_stack([split.x_test.reshape(len(split.x_test), -1), split.y_test]),
        ]
    )

    def sort_rows(a: np.ndarray) -> np.ndarray:
        return a[np.lexsort(a.T[::-1])]

    np.testing.assert_array_equal(sort_rows(parts), sort_rows(full))


def test_stratified(split: DigitsSplit) -> None:
    train_counts = np.bincount(split.y_train, minlength=10)
    test_counts = np.bincount(split.y_test, minlength=10)
    fraction = test_counts / (train_counts + test_counts)
    assert np.all(np.abs(fraction - 0.25) < 0.01)


def test_deterministic_and_seed_dependent(split: DigitsSplit) -> None:
    again = load_digits_split()
    np.testing.assert_array_equal(again.x_train, split.x_train)
    np.testing.assert_array_equal(again.y_test, split.y_test)
    other = load_digits_split(seed=1)
    assert not np.array_equal(other.y_train, split.y_train)


def test_test_fraction() -> None:
    small = load_digits_split(test_fraction=0.1)
    assert 170 <= len(small.y_test) <= 190
    with pytest.raises(ValueError, match="test_fraction"):
        load_digits_split(test_fraction=0.0)
    with pytest.raises(ValueError, match="test_fraction"):
        load_digits_split(test_fraction=1.0)


def test_frozen(split: DigitsSplit) -> None:
    with pytest.raises(AttributeError):
        split.x_train = split.x_test  # type: ignore[misc]


def test_to_unit_float_on_raw_digits() -> None:
    raw = load_digits().images  # float64 [N, 8, 8], values 0..16
    tensor = to_unit_float(raw, max_value=DIGITS_MAX_VALUE)
    assert tensor.shape == (len(raw), 1, 8, 8)
    np.testing.assert_allclose(tensor[:, 0].numpy(), raw / 16)
