"""Exhaustive verification: every input sequence of a length, the function evaluated directly on
its windows, and the circuit's output compared at the latency (spec ``universal.md`` §6).

The reference does not use the compiler's truth table: it slides a ``[d, m + 1]`` window over
each zero-padded sequence and calls ``fn`` on every distinct window it meets.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor

from spikeforge.universal.circuit import Circuit

__all__ = ["all_sequences", "check_exhaustive", "reference_outputs", "sliding_windows"]

MAX_SEQUENCE_BITS = 22


def all_sequences(length: int, inputs: int, dtype: torch.dtype = torch.float64) -> Tensor:
    """Every 0/1 input sequence ``[length, 2**(inputs * length), inputs]``."""
    bits = length * inputs
    if length < 1 or inputs < 1:
        raise ValueError(f"length and inputs must be >= 1, got {length}, {inputs}")
    if bits > MAX_SEQUENCE_BITS:
        raise ValueError(f"2**{bits} sequences are too many (at most 2**{MAX_SEQUENCE_BITS})")
    idx = torch.arange(2**bits)
    shifts = torch.arange(bits - 1, -1, -1)
    flat = (idx[:, None] >> shifts[None, :]) & 1  # [B, length * inputs]
    return flat.reshape(-1, length, inputs).permute(1, 0, 2).to(dtype).contiguous()


def sliding_windows(x: np.ndarray, memory: int) -> np.ndarray:
    """Windows ``[n, B, d, m + 1]`` of ``x [n, B, d]`` (zero padding, lag 0 last)."""
    n, batch, d = x.shape
    padded = np.concatenate([np.zeros((memory, batch, d), dtype=x.dtype), x])
    return np.stack([padded[j : j + n] for j in range(memory + 1)], axis=-1)


def reference_outputs(
    fn: Callable[..., Any], x: Tensor | np.ndarray, memory: int, period: int | None = None
) -> np.ndarray:
    """``f(X)[t]`` for ``t = 1..n`` as ``[n, B]`` int8: ``fn(window)`` (``fn(window, t mod P)``)
    on the window at each step of every sequence ``x [n, B, d]``."""
    xs = np.asarray(x.cpu().numpy() if isinstance(x, Tensor) else x).astype(np.int8)
    n, batch, d = xs.shape
    windows = sliding_windows(xs, memory).reshape(n * batch, d * (memory + 1))
    phase = np.repeat(np.arange(1, n + 1) % (period or 1), batch)
    # distinct (window, phase) pairs, found through an integer key (used only to deduplicate)
    weights = 2 ** np.arange(windows.shape[1], dtype=np.int64)
    keys = (windows.astype(np.int64) @ weights) * (period or 1) + phase
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    values = np.empty(first.shape[0], dtype=np.int8)
    for i, row in enumerate(first):
        w = windows[row].reshape(d, memory + 1).copy()
        values[i] = int(fn(w) if period is None else fn(w, int(phase[row])))
    return values[inverse.reshape(-1)].reshape(n, batch)


def check_exhaustive(
    circuit: Circuit,
    fn: Callable[..., Any],
    length: int,
    memory: int,
    period: int | None = None,
    dtype: torch.dtype = torch.float64,
) -> dict[str, int]:
    """Run ``circuit`` on every sequence of ``length`` steps and compare ``S_o[t + D]`` with
    ``f(X)[t]`` for ``t = 1..length - D``; also run ``circuit.to_module()`` and count the spikes
    (every neuron, every step) where it differs from the simulator. Returns ``{"sequences",
    "compared", "mismatches", "module_mismatches"}``."""
    if circuit.latency is None:
        raise ValueError(f"{circuit.construction!r} has no fixed latency to check against")
    x = all_sequences(length, circuit.inputs, dtype)
    spikes, _ = circuit.simulate(x)
    module_spikes = circuit.to_module()(x, return_all=True)
    out = spikes[:, :, circuit.output].to(torch.int8).numpy()
    ref = reference_outputs(fn, x, memory, period)
    lat = circuit.latency
    got = out[lat:]  # rows lat.. = steps lat+1..length = f at t = 1..length-lat
    want = ref[: length - lat]
    return {
        "sequences": int(x.shape[1]),
        "compared": int(want.size),
        "mismatches": int((got != want).sum()),
        "module_mismatches": int((module_spikes != spikes).sum()),
    }
