"""Window bits and truth tables of finite-memory spike-train functions (spec §2).

A **window** at time ``t`` is the ``[d, m + 1]`` array of 0/1 with ``window[k, j] = X_k[t - m + j]``
(lag 0, the current step, is the last column; zero padding before ``t = 1``). Its ``n_w = d(m+1)``
bits are flattened row by row (channel 0 oldest to newest, then channel 1, ...) and a window's
**index** is that bit string read as a binary number, most significant bit first. A truth table
is a 0/1 array of length ``2**n_w`` over these indices; a periodic one is ``[P, 2**n_w]`` with row
``r`` used at times ``t = r (mod P)``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = [
    "MAX_WINDOW_BITS",
    "all_windows",
    "is_symmetric",
    "popcounts",
    "symmetric_profile",
    "truth_table",
    "window_bits",
]

MAX_WINDOW_BITS = 20
"""Largest window (``d(m+1)`` bits) a truth table is built for (2**20 entries)."""


def window_bits(inputs: int, memory: int) -> int:
    """``n_w = d (m + 1)``; raises ``ValueError`` for ``d < 1`` or ``m < 0``."""
    if inputs < 1:
        raise ValueError(f"inputs (d) must be >= 1, got {inputs}")
    if memory < 0:
        raise ValueError(f"memory (m) must be >= 0, got {memory}")
    return inputs * (memory + 1)


def all_windows(inputs: int, memory: int) -> np.ndarray:
    """Every window ``[2**n_w, d, m + 1]`` (int8), row ``i`` the window of index ``i``."""
    n_w = window_bits(inputs, memory)
    if n_w > MAX_WINDOW_BITS:
        raise ValueError(f"a window of {n_w} bits is too large (at most {MAX_WINDOW_BITS})")
    idx = np.arange(2**n_w)
    bits = (idx[:, None] >> np.arange(n_w - 1, -1, -1)[None, :]) & 1
    return bits.astype(np.int8).reshape(-1, inputs, memory + 1)


def popcounts(inputs: int, memory: int) -> np.ndarray:
    """Number of ones of every window index, ``[2**n_w]``."""
    return all_windows(inputs, memory).reshape(2 ** window_bits(inputs, memory), -1).sum(1)


def _as_bit(value: Any, where: str) -> int:
    if isinstance(value, (bool, np.bool_)):
        return int(value)
    if isinstance(value, (int, np.integer)) and value in (0, 1):
        return int(value)
    if isinstance(value, (float, np.floating)) and value in (0.0, 1.0):
        return int(value)
    raise ValueError(f"the function must return 0 or 1; it returned {value!r} for {where}")


def truth_table(
    fn: Callable[..., Any] | Any, inputs: int, memory: int, period: int | None = None
) -> np.ndarray:
    """The truth table ``[P, 2**n_w]`` (int8; ``P = 1`` without a period) of ``fn``.

    ``fn`` is a callable ``fn(window)`` (``fn(window, phase)`` with a period; ``window`` a
    ``[d, m + 1]`` int8 array, ``phase = t mod P``) returning 0/1, or an array-like truth table of
    shape ``[2**n_w]`` (or ``[P, 2**n_w]`` with a period) indexed as in the module docstring.
    """
    n_w = window_bits(inputs, memory)
    if period is not None and period < 1:
        raise ValueError(f"period must be >= 1 or None, got {period}")
    phases = 1 if period is None else period
    if callable(fn):
        windows = all_windows(inputs, memory)
        table = np.empty((phases, 2**n_w), dtype=np.int8)
        for r in range(phases):
            for i, w in enumerate(windows):
                where = f"window {w.tolist()}" + ("" if period is None else f", phase {r}")
                value = fn(w.copy()) if period is None else fn(w.copy(), r)
                table[r, i] = _as_bit(value, where)
        return table
    table = np.asarray(fn)
    expected = (2**n_w,) if period is None else (period, 2**n_w)
    if table.shape != expected:
        raise ValueError(
            f"a truth table for d = {inputs}, m = {memory}"
            + ("" if period is None else f", period = {period}")
            + f" must have shape {list(expected)}, got {list(table.shape)}"
        )
    if not np.isin(table, (0, 1)).all():
        raise ValueError("a truth table must hold only 0 and 1")
    return table.astype(np.int8).reshape(phases, 2**n_w)


def is_symmetric(table: np.ndarray, inputs: int, memory: int) -> bool:
    """Whether a single-phase table ``[2**n_w]`` depends only on the number of ones."""
    return symmetric_profile(table, inputs, memory) is not None


def symmetric_profile(table: np.ndarray, inputs: int, memory: int) -> np.ndarray | None:
    """``g [n_w + 1]`` with ``F = g(count of ones)`` if the table is symmetric, else ``None``."""
    table = np.asarray(table).reshape(-1)
    counts = popcounts(inputs, memory)
    g = np.zeros(window_bits(inputs, memory) + 1, dtype=np.int8)
    for c in range(g.shape[0]):
        values = np.unique(table[counts == c])
        if values.shape[0] != 1:
            return None
        g[c] = values[0]
    return g
