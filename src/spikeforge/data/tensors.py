"""Turning numpy image arrays into torch tensors.

Layout convention at the data edge: tensors are batch-first, ``[N, C, H, W]`` (batch, channel,
row, column), with a single channel for the grey-scale data sets of :mod:`spikeforge.data`.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["to_unit_float"]


def to_unit_float(
    images: np.ndarray, max_value: float = 255.0, dtype: torch.dtype = torch.float64
) -> torch.Tensor:
    """Scale images to ``[0, 1]`` and return a batch-first ``[N, 1, H, W]`` tensor.

    Args:
        images: ``[N, H, W]`` (a channel axis is added) or ``[N, 1, H, W]`` array, typically
            ``uint8`` with values in ``0..max_value``. The input is never modified.
        max_value: the value that maps to 1.0 (255 for MNIST, 16 for the digits data set).
        dtype: a floating-point torch dtype for the result.

    Returns:
        A new contiguous tensor of shape ``[N, 1, H, W]`` and dtype ``dtype``.

    Raises:
        ValueError: bad shape, non-positive ``max_value``, non-float ``dtype``, or values
            outside ``[0, max_value]``.
    """
    arr = np.asarray(images)
    if arr.ndim == 3:
        arr = arr[:, np.newaxis, :, :]
    elif arr.ndim != 4 or arr.shape[1] != 1:
        raise ValueError(f"expected images [N, H, W] or [N, 1, H, W], got shape {arr.shape}")
    if not max_value > 0:
        raise ValueError(f"max_value must be positive, got {max_value}")
    if not dtype.is_floating_point:
        raise ValueError(f"dtype must be a floating-point torch dtype, got {dtype}")
    if arr.size and (arr.min() < 0 or arr.max() > max_value):
        raise ValueError(f"image values span [{arr.min()}, {arr.max()}], outside [0, {max_value}]")
    # np.array copies, so the tensor never aliases (or warns about) a read-only input.
    tensor = torch.from_numpy(np.array(arr, copy=True)).to(dtype)
    return (tensor / max_value).contiguous()
