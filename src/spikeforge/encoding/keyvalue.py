"""``KeyValueEncoder``: records (dicts key -> value) to input rasters (spec §3.1-3.5).

``schema`` maps each key to its type: ``"categorical"``, ``"boolean"``, ``"numeric"`` or
``"tokens"``. Groups are laid out in schema order; :attr:`KeyValueEncoder.layout` gives each
key's slice of the input neurons. :meth:`KeyValueEncoder.transform` returns spikes
``[T, B, N]`` float32 0/1 (time, record, input neuron). ``None`` or ``""`` (or an absent key) is
missing: the key's group stays silent. NaN is an error unless ``nan="missing"``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from .categorical import BooleanEncoder, CategoricalEncoder, Events
from .errors import EncodingError, NotFittedError
from .hashing import check_key
from .tiles import TRANSFORMS, TileEncoder
from .tokens import TokenSetEncoder

__all__ = ["DEFAULT_NUMERIC_TRANSFORMS", "KEY_TYPES", "KeyValueEncoder"]

KEY_TYPES = ("categorical", "boolean", "numeric", "tokens")

DEFAULT_NUMERIC_TRANSFORMS: dict[str, str] = {
    "size": "log1p",
    "installed_size_kb": "log1p",
    "depth": "identity",
    "name_len": "identity",
    "n_dots": "identity",
    "nlink": "identity",
}
"""Spec §3.4 for the debfiles keys; any other numeric key (e.g. ``mtime``) uses ``"quantile"``."""

_PARAMS = (
    "schema",
    "n_steps",
    "n_neurons",
    "n_token_neurons",
    "neurons_per_token",
    "n_bins",
    "tile_width",
    "n_spikes",
    "numeric_transforms",
    "strict",
    "nan",
)


class KeyValueEncoder:
    """Correlative temporal encoder of key-value records (scikit-learn style).

    Parameters (spec defaults): ``n_steps`` T = 64, ``n_neurons`` M = 16 per categorical,
    boolean and numeric key, ``n_token_neurons`` M_tok = 64 and ``neurons_per_token`` r = 2 for
    token keys (r is the number of neurons each token selects), ``n_bins`` B = 64, ``tile_width``
    w = 8, ``n_spikes`` = 1 per neuron. ``numeric_transforms`` overrides
    :data:`DEFAULT_NUMERIC_TRANSFORMS` per key. ``strict`` (default True): a record key not in
    the schema raises; otherwise it is ignored. ``nan``: ``"error"`` (default) or ``"missing"``.
    """

    def __init__(
        self,
        schema: Mapping[str, str],
        n_steps: int = 64,
        n_neurons: int = 16,
        n_token_neurons: int = 64,
        neurons_per_token: int = 2,
        n_bins: int = 64,
        tile_width: int = 8,
        n_spikes: int = 1,
        numeric_transforms: Mapping[str, str] | None = None,
        strict: bool = True,
        nan: str = "error",
    ) -> None:
        self.schema = schema
        self.n_steps = n_steps
        self.n_neurons = n_neurons
        self.n_token_neurons = n_token_neurons
        self.neurons_per_token = neurons_per_token
        self.n_bins = n_bins
        self.tile_width = tile_width
        self.n_spikes = n_spikes
        self.numeric_transforms = numeric_transforms
        self.strict = strict
        self.nan = nan

    # scikit-learn protocol ---------------------------------------------------------------
    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The constructor parameters."""
        return {name: getattr(self, name) for name in _PARAMS}

    def set_params(self, **params: Any) -> KeyValueEncoder:
        """Set constructor parameters (the encoder must be fitted again)."""
        for name, value in params.items():
            if name not in _PARAMS:
                raise EncodingError(f"unknown parameter {name!r}; valid: {', '.join(_PARAMS)}")
            setattr(self, name, value)
        self.__dict__.pop("encoders_", None)
        return self

    def _build(self) -> dict[str, Any]:
        if not isinstance(self.schema, Mapping) or not self.schema:
            raise EncodingError("schema must be a non-empty mapping key -> key type")
        if self.nan not in ("error", "missing"):
            raise EncodingError(f"nan must be 'error' or 'missing', got {self.nan!r}")
        transforms = {**DEFAULT_NUMERIC_TRANSFORMS, **(self.numeric_transforms or {})}
        encoders: dict[str, Any] = {}
        for key, kind in self.schema.items():
            check_key(key)
            common = {"n_steps": self.n_steps, "n_spikes": self.n_spikes}
            if kind == "categorical":
                encoders[key] = CategoricalEncoder(key, self.n_neurons, **common)
            elif kind == "boolean":
                encoders[key] = BooleanEncoder(key, self.n_neurons, **common)
            elif kind == "numeric":
                transform = transforms.get(key, "quantile")
                if transform not in TRANSFORMS:
                    raise EncodingError(f"key {key!r}: transform must be one of {TRANSFORMS}")
                encoders[key] = TileEncoder(
                    key,
                    transform,
                    self.n_neurons,
                    n_bins=self.n_bins,
                    width=self.tile_width,
                    **common,
                )
            elif kind == "tokens":
                encoders[key] = TokenSetEncoder(
                    key, self.n_token_neurons, r=self.neurons_per_token, **common
                )
            else:
                raise EncodingError(f"key {key!r}: type must be one of {KEY_TYPES}, got {kind!r}")
        return encoders

    def _value(self, record: Mapping[str, Any], key: str) -> Any:
        value = record.get(key)
        if isinstance(value, float) and math.isnan(value):
            if self.nan == "missing":
                return None
            raise EncodingError(
                f"key {key!r}: value is NaN (use None or '' for missing, or nan='missing')"
            )
        return value

    def _check_records(self, records: Sequence[Mapping[str, Any]]) -> None:
        if isinstance(records, Mapping) or not isinstance(records, Sequence):
            raise EncodingError("records must be a sequence (list) of dicts")
        for i, record in enumerate(records):
            if not isinstance(record, Mapping):
                raise EncodingError(f"record {i} is a {type(record).__name__}, not a dict")
            if self.strict:
                unknown = [k for k in record if k not in self.schema]
                if unknown:
                    raise EncodingError(
                        f"record {i}: unknown key(s) {unknown!r} (strict=True; schema keys: "
                        f"{list(self.schema)})"
                    )

    def fit(self, records: Sequence[Mapping[str, Any]], y: Any = None) -> KeyValueEncoder:
        """Fit the numeric keys' tile encoders on ``records`` (the training folds only)."""
        self._check_records(records)
        encoders = self._build()
        for key, enc in encoders.items():
            if isinstance(enc, TileEncoder):
                enc.fit([self._value(r, key) for r in records])
        self.encoders_ = encoders
        return self

    def fitted_state(self) -> dict[str, dict[str, Any]]:
        """What :meth:`fit` learned, per numeric key (:meth:`TileEncoder.fitted_state`), as plain
        Python values; with :meth:`get_params` it rebuilds an identical encoder."""
        return {
            key: enc.fitted_state()
            for key, enc in self._fitted().items()
            if isinstance(enc, TileEncoder)
        }

    def load_fitted_state(self, state: Mapping[str, Mapping[str, Any]]) -> KeyValueEncoder:
        """Restore :meth:`fitted_state` instead of fitting: the encoder then gives exactly the
        spikes of the encoder that was saved. Raises :class:`EncodingError` when the numeric keys
        differ from the schema's."""
        encoders = self._build()
        numeric = {k for k, enc in encoders.items() if isinstance(enc, TileEncoder)}
        if set(state) != numeric:
            raise EncodingError(
                f"fitted state has numeric keys {sorted(state)}, the schema {sorted(numeric)}"
            )
        for key in numeric:
            encoders[key].load_fitted_state(dict(state[key]))
        self.encoders_ = encoders
        return self

    def _fitted(self) -> dict[str, Any]:
        enc = self.__dict__.get("encoders_")
        if enc is None:
            raise NotFittedError("KeyValueEncoder is not fitted; call fit(training records) first")
        return enc

    @property
    def layout(self) -> dict[str, slice]:
        """Each key's slice of the input neurons, in schema order."""
        out, start = {}, 0
        for key, enc in self._fitted().items():
            out[key] = slice(start, start + enc.n_neurons)
            start += enc.n_neurons
        return out

    @property
    def n_inputs(self) -> int:
        """N, the total number of input neurons."""
        return sum(enc.n_neurons for enc in self._fitted().values())

    def events(self, record: Mapping[str, Any]) -> Events:
        """``(neurons, times)`` of one record over all N input neurons, int64 arrays."""
        layout = self.layout
        ns, ts = [], []
        for key, enc in self._fitted().items():
            n, t = enc.events(self._value(record, key))
            ns.append(n + layout[key].start)
            ts.append(t)
        return np.concatenate(ns), np.concatenate(ts)

    def transform(self, records: Sequence[Mapping[str, Any]]) -> torch.Tensor:
        """Spikes ``[T, B, N]`` float32 0/1 of ``B = len(records)`` records."""
        encoders = self._fitted()
        self._check_records(records)
        raster = np.zeros((self.n_steps, len(records), self.n_inputs), dtype=np.float32)
        starts = {k: s.start for k, s in self.layout.items()}
        for b, record in enumerate(records):
            for key, enc in encoders.items():
                n, t = enc.events(self._value(record, key))
                raster[t, b, n + starts[key]] = 1.0
        return torch.from_numpy(raster)

    def fit_transform(self, records: Sequence[Mapping[str, Any]], y: Any = None) -> torch.Tensor:
        """``fit(records)`` then ``transform(records)``."""
        return self.fit(records).transform(records)
