"""Correlative temporal encoding of categorical and boolean values (spec §3.3).

Key ``k`` owns ``n_neurons`` (M, default 16) input neurons. For value ``v`` neuron ``j`` fires
``n_spikes`` (default 1) spikes at times drawn from ``PCG64(seed(k, "cat", v, j))`` uniform in
``{0, ..., T - 1}``. Equal values give identical sub-patterns, different values independent ones
(a neuron coincides by chance with probability 1/T); unseen values need no vocabulary.
"""

from __future__ import annotations

import math
from numbers import Integral, Real

import numpy as np

from .errors import EncodingError
from .hashing import SALT, check_key, draw_times, rng_for

__all__ = ["BooleanEncoder", "CategoricalEncoder", "Events", "is_missing"]

Events = tuple[np.ndarray, np.ndarray]
"""``(neurons, times)``: two int64 arrays of equal length ``E``, neuron index within the group
and spike time, one entry per spike."""

_EMPTY: Events = (np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64))


def is_missing(value: object) -> bool:
    """``None`` and the empty string are missing (the group stays silent)."""
    return value is None or (isinstance(value, str) and value == "")


class CategoricalEncoder:
    """One categorical key's group of ``n_neurons`` neurons.

    Values may be ``str`` or integers (``3`` and ``"3"`` encode alike); integral floats are taken
    as integers, other types raise :class:`EncodingError`. Patterns are cached per value.
    """

    kind = "cat"

    def __init__(
        self,
        key: str,
        n_neurons: int = 16,
        n_steps: int = 64,
        n_spikes: int = 1,
        salt: bytes = SALT,
    ) -> None:
        self.key = check_key(key)
        if n_neurons < 1 or n_steps < 1 or not 1 <= n_spikes <= n_steps:
            raise EncodingError(
                f"{key!r}: need n_neurons >= 1, n_steps >= 1, 1 <= n_spikes <= n_steps"
            )
        self.n_neurons = n_neurons
        self.n_steps = n_steps
        self.n_spikes = n_spikes
        self.salt = salt
        self._cache: dict[str, Events] = {}

    def normalise(self, value: object) -> str:
        """The canonical string of ``value`` (raises :class:`EncodingError` for bad types)."""
        if isinstance(value, str):
            return value
        if isinstance(value, (bool, np.bool_)):
            return "1" if value else "0"
        if isinstance(value, Integral):
            return str(int(value))
        if isinstance(value, Real) and math.isfinite(float(value)) and float(value).is_integer():
            return str(int(value))
        raise EncodingError(
            f"key {self.key!r}: categorical value must be str or int, got {value!r} "
            f"({type(value).__name__})"
        )

    def spike_times(self, value: object) -> np.ndarray:
        """Spike times ``[n_neurons, n_spikes]`` int64 of a (non-missing) value."""
        neurons, times = self.events(value)
        if neurons.size == 0:
            raise EncodingError(f"key {self.key!r}: value {value!r} is missing")
        return times.reshape(self.n_neurons, self.n_spikes)

    def events(self, value: object) -> Events:
        """``(neurons, times)`` of ``value``; empty when missing."""
        if is_missing(value):
            return _EMPTY
        v = self.normalise(value)
        hit = self._cache.get(v)
        if hit is None:
            times = np.concatenate(
                [
                    draw_times(
                        rng_for(self.key, self.kind, v, j, salt=self.salt),
                        self.n_steps,
                        self.n_spikes,
                    )
                    for j in range(self.n_neurons)
                ]
            )
            neurons = np.repeat(np.arange(self.n_neurons, dtype=np.int64), self.n_spikes)
            hit = self._cache[v] = (neurons, times)
        return hit


class BooleanEncoder(CategoricalEncoder):
    """A boolean key: correlative encoding of the values ``"0"`` / ``"1"`` (spec §3.2).

    Accepts ``bool``, the integers 0/1 and the strings ``"0"``/``"1"``/``"true"``/``"false"``/
    ``"yes"``/``"no"`` (case-insensitive); anything else raises :class:`EncodingError`.
    """

    _TRUE = frozenset({"1", "true", "yes"})
    _FALSE = frozenset({"0", "false", "no"})

    def normalise(self, value: object) -> str:
        if isinstance(value, str):
            low = value.strip().lower()
            if low in self._TRUE:
                return "1"
            if low in self._FALSE:
                return "0"
        elif isinstance(value, (bool, np.bool_, Integral, Real)) and value in (0, 1):
            return "1" if value == 1 else "0"
        raise EncodingError(
            f"key {self.key!r}: boolean value must be 0/1, True/False or '0'/'1', got {value!r}"
        )
