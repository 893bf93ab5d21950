"""Extended (tile) encoding of numeric values (spec §3.4), fitted on training data only.

``x -> g(x)`` (``"log1p"`` for sizes, ``"identity"`` for small integers, ``"quantile"``: the
empirical CDF of the training values, in [0, 1]), then the bin
``b = clip(floor((g(x) - lo) / delta), 0, B - 1)`` with ``lo``, ``delta`` fixed by :meth:`fit`
(``lo = min g``, ``delta = (max g - lo) / B``, or 1 when all training values are equal; so the
training maximum falls in bin ``B - 1``). Neuron ``j`` has offset ``o_j = j mod w`` and cell
``c_j(b) = floor((b + o_j) / w)``; its spike time is drawn from ``PCG64(seed(k, "num", j, c_j))``.
Bins ``b`` and ``b'`` share the cells (hence the spike times) of exactly a fraction
``max(0, 1 - |b - b'| / w)`` of the neurons when ``M`` is a multiple of ``w``. Values outside the
training range are clipped to bin 0 or ``B - 1``; NaN, infinities and non-numbers raise.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from numbers import Real
from typing import Any

import numpy as np

from .categorical import Events, is_missing
from .errors import EncodingError, NotFittedError
from .hashing import SALT, check_key, draw_times, rng_for

__all__ = ["TRANSFORMS", "TileEncoder", "to_float"]

TRANSFORMS = ("log1p", "identity", "quantile")
_N_QUANTILES = 1001  # quantile knots kept from the training values

_EMPTY: Events = (np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64))


def to_float(key: str, value: object) -> float:
    """``value`` as a finite float (numbers or numeric strings); raises :class:`EncodingError`."""
    if isinstance(value, bool) or not isinstance(value, (Real, str)):
        raise EncodingError(
            f"key {key!r}: numeric value must be a number, got {value!r} ({type(value).__name__})"
        )
    try:
        x = float(value)
    except ValueError:
        raise EncodingError(f"key {key!r}: cannot parse numeric value {value!r}") from None
    if not math.isfinite(x):
        raise EncodingError(
            f"key {key!r}: numeric value {value!r} is not finite (use None or '' for missing)"
        )
    return x


class TileEncoder:
    """One numeric key's group of ``n_neurons`` neurons with tile coding.

    Parameters follow spec §3.4: ``n_bins`` B (default 64), tile ``width`` w (default 8),
    ``n_neurons`` M (default 16, a multiple of w), ``n_steps`` T (default 64).
    """

    kind = "num"

    def __init__(
        self,
        key: str,
        transform: str = "quantile",
        n_neurons: int = 16,
        n_steps: int = 64,
        n_bins: int = 64,
        width: int = 8,
        n_spikes: int = 1,
        salt: bytes = SALT,
    ) -> None:
        self.key = check_key(key)
        if transform not in TRANSFORMS:
            raise EncodingError(f"key {key!r}: transform must be one of {TRANSFORMS}")
        if width < 1 or n_neurons % width or n_bins < 1 or n_steps < 1:
            raise EncodingError(
                f"key {key!r}: need width >= 1, n_neurons a multiple of width, n_bins >= 1"
            )
        if not 1 <= n_spikes <= n_steps:
            raise EncodingError(f"key {key!r}: need 1 <= n_spikes <= n_steps")
        self.transform_name = transform
        self.n_neurons = n_neurons
        self.n_steps = n_steps
        self.n_bins = n_bins
        self.width = width
        self.n_spikes = n_spikes
        self.salt = salt
        self.lo_: float | None = None
        self.delta_: float | None = None
        self.quantiles_: np.ndarray | None = None
        self._cache: dict[tuple[int, int], np.ndarray] = {}
        self._bin_cache: dict[int, Events] = {}

    # fitting -----------------------------------------------------------------------------
    def g(self, x: np.ndarray) -> np.ndarray:
        """The transform ``g`` of float values ``x`` (any shape); ``"quantile"`` needs a fit."""
        if self.transform_name == "log1p":
            if np.any(x <= -1):
                raise EncodingError(f"key {self.key!r}: log1p needs values > -1")
            return np.log1p(x)
        if self.transform_name == "identity":
            return x
        if self.quantiles_ is None:
            raise NotFittedError(f"key {self.key!r}: TileEncoder is not fitted; call fit first")
        q, ranks = self.quantiles_, self._ranks
        # ties: average of the leftmost and rightmost rank of equal knots
        left = np.interp(x, q, ranks, left=0.0, right=1.0)
        right = -np.interp(-x, self._neg_q, self._neg_ranks, left=-1.0, right=0.0)
        return (left + right) / 2

    def fit(self, values: Iterable[Any]) -> TileEncoder:
        """Fix ``lo``, ``delta`` (and the quantile knots) from training values (missing skipped)."""
        xs = np.array([to_float(self.key, v) for v in values if not is_missing(v)], dtype=float)
        if xs.size == 0:
            raise EncodingError(f"key {self.key!r}: no non-missing training values to fit")
        if self.transform_name == "quantile":
            self._set_quantiles(np.quantile(xs, np.linspace(0.0, 1.0, min(_N_QUANTILES, xs.size))))
        g = self.g(xs)
        lo, hi = float(g.min()), float(g.max())
        self.lo_ = lo
        self.delta_ = (hi - lo) / self.n_bins if hi > lo else 1.0
        return self

    def _set_quantiles(self, knots: np.ndarray) -> None:
        self.quantiles_ = knots
        self._ranks = np.linspace(0.0, 1.0, knots.size)
        self._neg_q = -knots[::-1]
        self._neg_ranks = -self._ranks[::-1]

    def fitted_state(self) -> dict[str, Any]:
        """What :meth:`fit` learned: ``lo``, ``delta`` and the quantile knots (a list of floats, or
        None), plain Python values for saving."""
        if self.lo_ is None or self.delta_ is None:
            raise NotFittedError(f"key {self.key!r}: TileEncoder is not fitted; call fit first")
        knots = None if self.quantiles_ is None else self.quantiles_.tolist()
        return {"lo": self.lo_, "delta": self.delta_, "quantiles": knots}

    def load_fitted_state(self, state: dict[str, Any]) -> TileEncoder:
        """Restore :meth:`fitted_state` (the encoder then encodes exactly as after its fit)."""
        lo, delta, knots = float(state["lo"]), float(state["delta"]), state.get("quantiles")
        if not (math.isfinite(lo) and math.isfinite(delta) and delta > 0):
            raise EncodingError(f"key {self.key!r}: bad fitted state lo={lo}, delta={delta}")
        if (knots is None) != (self.transform_name != "quantile"):
            raise EncodingError(f"key {self.key!r}: quantile knots do not match the transform")
        if knots is not None:
            arr = np.asarray(knots, dtype=float)
            if arr.ndim != 1 or arr.size == 0 or np.any(np.diff(arr) < 0):
                raise EncodingError(f"key {self.key!r}: quantile knots must be sorted floats")
            self._set_quantiles(arr)
        self.lo_, self.delta_ = lo, delta
        self._bin_cache.clear()
        return self

    @property
    def fitted(self) -> bool:
        return self.lo_ is not None

    # encoding ----------------------------------------------------------------------------
    def bin(self, value: object) -> int:
        """The bin ``b`` in ``{0, ..., n_bins - 1}`` of a non-missing value (clipped)."""
        if self.lo_ is None or self.delta_ is None:
            raise NotFittedError(f"key {self.key!r}: TileEncoder is not fitted; call fit first")
        g = float(self.g(np.array([to_float(self.key, value)]))[0])
        return min(max(math.floor((g - self.lo_) / self.delta_), 0), self.n_bins - 1)

    def cells(self, b: int) -> np.ndarray:
        """Cells ``c_j(b) = floor((b + j mod w) / w)`` of all neurons, ``[n_neurons]`` int64."""
        j = np.arange(self.n_neurons, dtype=np.int64)
        return (b + j % self.width) // self.width

    def events(self, value: object) -> Events:
        """``(neurons, times)`` of ``value``; empty when missing."""
        if is_missing(value):
            return _EMPTY
        b = self.bin(value)
        hit = self._bin_cache.get(b)
        if hit is not None:
            return hit
        times = []
        for j, c in enumerate(self.cells(b).tolist()):
            t = self._cache.get((j, c))
            if t is None:
                rng = rng_for(self.key, self.kind, j, c, salt=self.salt)
                t = self._cache[(j, c)] = draw_times(rng, self.n_steps, self.n_spikes)
            times.append(t)
        neurons = np.repeat(np.arange(self.n_neurons, dtype=np.int64), self.n_spikes)
        hit = self._bin_cache[b] = (neurons, np.concatenate(times))
        return hit
