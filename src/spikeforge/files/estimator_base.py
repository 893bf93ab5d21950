"""Shared base of the spikeforge file classifiers (spec ``file-classification.md`` §3.1, §3.9-3.10).

Every spikeforge file classifier (supervised BPTT, unsupervised STDP, ...) accepts the same
inputs, encodes them the same way and is a scikit-learn classifier. This module holds that part.

**Inputs** ``X`` (both for ``fit`` and ``predict``):

* **records**: a list / tuple of mappings ``key -> value`` (or a pandas DataFrame when an
  ``encoder`` is given, taken row by row). Needs the ``encoder`` parameter, a
  :class:`~spikeforge.encoding.KeyValueEncoder`; it is **cloned** and fitted on the training
  ``X`` only (the numeric keys' bins come from the training records, spec risk 4), so the
  parameter object is never modified.
* **a 2-D numeric array-like** ``[n_samples, n_features]``: validated by scikit-learn
  (``n_features_in_``, ``feature_names_in_`` for DataFrames, NaN / inf rejected). Each column ``i``
  becomes a numeric key ``x{i}`` (tile coding with a quantile transform fitted on the training
  data). If ``encoder`` is given it is used as a *template*: its schema is replaced by these
  keys, its other parameters (``n_steps``, ``n_neurons``, ``n_bins``, ``tile_width``, ...) are
  kept; otherwise the spec defaults (T = 64, M = 16, B = 64, w = 8) apply.

A model fitted on records predicts records; one fitted on arrays predicts arrays.

**Encoding once.** Inputs are encoded into an :class:`EventCache`: the records' spikes as a sparse
event list (CSR over records: ``ptr [n + 1]``, ``neurons [E]`` int32, ``times [E]`` int16, each
no (neuron, time) event twice in a record); 4 bytes per spike instead of
``T·N·4`` bytes per record dense (debfiles: ~400 spikes against 64·470 slots per record).
Mini-batches are densified on demand, :meth:`EventCache.dense` -> ``[T, B, N]`` float32 0/1, or
taken as events, :meth:`EventCache.coo` -> ``(t, b, n)`` for event-driven layers. Values repeated
across records (categorical values, numeric bins, token sets) are encoded once per distinct value;
the result equals :meth:`KeyValueEncoder.events` record by record (tested).

**Labels**: ``classes_`` (sorted distinct labels, any hashable type), encoded ``0..C-1``
internally; fitting on a single class raises ``ValueError``.

**Seeding**: :meth:`SpikingClassifierBase._generators` turns ``random_state`` (None, int or a
``RandomState``) into a numpy ``Generator`` and a ``torch.Generator`` seeded alike; the same int
gives the same fit.

How a subclass uses it::

    class MyClassifier(SpikingClassifierBase):
        def __init__(self, encoder=None, epochs=10, random_state=None):
            self.encoder = encoder          # plain assignments only (scikit-learn rule)
            self.epochs = epochs
            self.random_state = random_state

        def fit(self, X, y, groups=None):
            cache, y_enc = self._fit_inputs(X, y)   # sets encoder_, classes_, n_inputs_, ...
            rng, gen = self._generators()
            for epoch in range(self.epochs):
                for idx in iter_batches(len(cache), 128, rng):
                    spikes = cache.dense(idx)        # [T, B, N] float32
                    ...                              # train on spikes, y_enc[idx]
            return self

        def _scores(self, cache):                    # [n_samples, C], larger = more likely
            ...

``predict`` (argmax of :meth:`_scores`, ties -> lowest class index) and ``score`` (accuracy) come
from the base; ``predict_proba`` is the subclass's. Use :meth:`_predict_inputs` to validate and
encode ``X`` at prediction time. Helpers: :func:`iter_batches`, :func:`validation_split` (grouped
when ``groups`` are given), :func:`class_weight_vector` (``None``, ``"balanced"`` or a dict).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import (
    check_consistent_length,
    check_is_fitted,
    column_or_1d,
    validate_data,
)

from spikeforge.encoding import EncodingError, KeyValueEncoder, TileEncoder, TokenSetEncoder
from spikeforge.encoding.categorical import is_missing
from spikeforge.encoding.tiles import to_float

__all__ = [
    "EventCache",
    "SpikingClassifierBase",
    "class_weight_vector",
    "encode_events",
    "iter_batches",
    "validation_split",
]


@dataclass(frozen=True)
class EventCache:
    """Spikes of ``n`` records as a sparse event list (CSR over records).

    ``ptr [n + 1]`` int64: record ``i``'s events are ``ptr[i]:ptr[i + 1]``; ``neurons [E]`` int32
    and ``times [E]`` int16 (int32 when ``n_steps > 32767``), no (neuron, time) twice within a
    record (order within a record: key by key, no other guarantee); ``n_steps`` T and
    ``n_inputs`` N fix the dense shape ``[T, B, N]``.
    """

    ptr: np.ndarray
    neurons: np.ndarray
    times: np.ndarray
    n_steps: int
    n_inputs: int

    def __len__(self) -> int:
        return int(self.ptr.shape[0] - 1)

    @property
    def n_events(self) -> np.ndarray:
        """Spikes per record ``[n]`` int64."""
        return np.diff(self.ptr)

    def _gather(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(b [E_b], positions [E_b])``: batch row and event position of ``idx``'s events."""
        idx = np.asarray(idx, dtype=np.int64)
        starts, lens = self.ptr[idx], self.ptr[idx + 1] - self.ptr[idx]
        total = int(lens.sum())
        b = np.repeat(np.arange(idx.shape[0], dtype=np.int64), lens)
        first = np.cumsum(lens) - lens  # first output position of each record
        pos = np.arange(total, dtype=np.int64) + np.repeat(starts - first, lens)
        return b, pos

    def coo(self, idx: Sequence[int] | np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Events of the records ``idx`` (a batch of ``B``): ``(t, b, n)`` int64 arrays, ``b`` the
        position in ``idx``; the dense batch is ``1`` at ``[t, b, n]``, ``0`` elsewhere."""
        b, pos = self._gather(np.asarray(idx))
        return self.times[pos].astype(np.int64), b, self.neurons[pos].astype(np.int64)

    def dense(self, idx: Sequence[int] | np.ndarray | None = None) -> torch.Tensor:
        """Spikes ``[T, B, N]`` float32 0/1 of the records ``idx`` (default: all)."""
        idx = np.arange(len(self)) if idx is None else np.asarray(idx, dtype=np.int64)
        t, b, n = self.coo(idx)
        bsz = idx.shape[0]
        raster = np.zeros(self.n_steps * bsz * self.n_inputs, dtype=np.float32)
        raster[(t * bsz + b) * self.n_inputs + n] = 1.0
        return torch.from_numpy(raster.reshape(self.n_steps, bsz, self.n_inputs))

    def take(self, idx: Sequence[int] | np.ndarray) -> EventCache:
        """The cache of the records ``idx`` (in that order)."""
        idx = np.asarray(idx, dtype=np.int64)
        _, pos = self._gather(idx)
        ptr = np.zeros(idx.shape[0] + 1, dtype=np.int64)
        np.cumsum(self.ptr[idx + 1] - self.ptr[idx], out=ptr[1:])
        return EventCache(ptr, self.neurons[pos], self.times[pos], self.n_steps, self.n_inputs)

    @property
    def nbytes(self) -> int:
        """Memory held by the arrays."""
        return int(self.ptr.nbytes + self.neurons.nbytes + self.times.nbytes)


def _dedupe_key(value: Any) -> Any:
    """A hashable key under which equal values encode alike (``1``, ``1.0`` and ``True`` stay
    apart: the encoders treat them differently); ``None`` for unhashable values."""
    key = (type(value), value)
    try:
        hash(key)
    except TypeError:
        if isinstance(value, (list, tuple)):
            return (type(value), tuple(value)) if all(isinstance(v, str) for v in value) else None
        if isinstance(value, (set, frozenset)):
            ok = all(isinstance(v, str) for v in value)
            return (frozenset, frozenset(value)) if ok else None
        return None
    return key


def _distinct(
    records: Sequence[Mapping[str, Any]], key: str, nan: str
) -> tuple[list[Any], np.ndarray]:
    """``(distinct values, inverse [n])`` of ``key`` over ``records`` (NaN -> missing when
    ``nan="missing"``, else an error, as in :class:`KeyValueEncoder`)."""
    ids: dict[Any, int] = {}
    values: list[Any] = []
    inv = np.empty(len(records), dtype=np.int64)
    for i, record in enumerate(records):
        v = record.get(key)
        if isinstance(v, float) and v != v:  # NaN
            if nan != "missing":
                raise EncodingError(
                    f"key {key!r}: value is NaN (use None or '' for missing, or nan='missing')"
                )
            v = None
        dk = _dedupe_key(v)
        j = ids.get(dk) if dk is not None else None
        if j is None:
            j = len(values)
            values.append(v)
            if dk is not None:
                ids[dk] = j
        inv[i] = j
    return values, inv


def _value_events(enc: Any, values: list[Any]) -> list[tuple[np.ndarray, np.ndarray]]:
    """``enc.events(v)`` of every value; numeric keys with many values are binned at once (one
    ``events`` call per bin) when the tile encoder exposes its transform ``g``."""
    g = getattr(enc, "g", None)
    if not isinstance(enc, TileEncoder) or g is None or len(values) <= enc.n_bins:
        return [enc.events(v) for v in values]
    present = [i for i, v in enumerate(values) if not is_missing(v)]
    xs = np.array([to_float(enc.key, values[i]) for i in present], dtype=np.float64)
    assert enc.lo_ is not None and enc.delta_ is not None
    bins = np.clip(np.floor((g(xs) - enc.lo_) / enc.delta_), 0, enc.n_bins - 1).astype(np.int64)
    empty = (np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64))
    out: list[tuple[np.ndarray, np.ndarray]] = [empty] * len(values)
    by_bin: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for i, b in zip(present, bins.tolist(), strict=True):
        hit = by_bin.get(b)
        if hit is None:
            hit = by_bin[b] = enc.events(values[i])
        out[i] = hit
    return out


def encode_events(
    encoder: KeyValueEncoder,
    records: Sequence[Mapping[str, Any]] | None = None,
    columns: Mapping[str, np.ndarray] | None = None,
) -> EventCache:
    """Encode with a fitted ``encoder`` into an :class:`EventCache`.

    Either ``records`` (mappings, checked like :meth:`KeyValueEncoder.transform`: unknown keys
    raise when the encoder is strict, NaN per its ``nan`` setting) or ``columns`` (key -> 1-D
    array of the values of every record, for array input). Each distinct value of a key is
    encoded once by the key's encoder.
    """
    sub = encoder.encoders_  # raises AttributeError if not fitted: check before calling
    layout = encoder.layout
    keys = list(sub)
    if records is not None:
        n = len(records)
        for i, record in enumerate(records):
            if not isinstance(record, Mapping):
                raise EncodingError(f"record {i} is a {type(record).__name__}, not a dict")
            if encoder.strict:
                unknown = [k for k in record if k not in sub]
                if unknown:
                    raise EncodingError(
                        f"record {i}: unknown key(s) {unknown!r} (strict=True; schema keys: {keys})"
                    )
    elif columns is not None:
        n = len(next(iter(columns.values()))) if columns else 0
    else:
        raise ValueError("pass records or columns")
    t_steps, n_in = encoder.n_steps, encoder.n_inputs
    per_key = []  # per key: (record lengths [n], flat t·N + n of the distinct values, starts, inv)
    for key in keys:
        enc, offset = sub[key], layout[key].start
        if columns is not None:
            col = np.asarray(columns[key])
            uniq, inv = np.unique(col, return_inverse=True)
            values: list[Any] = [v.item() if hasattr(v, "item") else v for v in uniq]
            inv = inv.reshape(-1)
        else:
            values, inv = _distinct(records, key, encoder.nan)  # type: ignore[arg-type]
        dedupe = isinstance(enc, TokenSetEncoder)  # tokens may share (neuron, time)
        memo: dict[tuple[int, int], np.ndarray] = {}  # values of one bin share their arrays
        flat_parts = []
        events = _value_events(enc, values)  # keeps the arrays alive: their ids stay unique
        for nn, t in events:
            f = memo.get((id(nn), id(t)))
            if f is None:
                f = t * n_in + nn + offset
                f = memo[(id(nn), id(t))] = np.unique(f) if dedupe else f
            flat_parts.append(f)
        lens = np.array([f.shape[0] for f in flat_parts], dtype=np.int64)
        flat = np.concatenate(flat_parts) if flat_parts else np.zeros(0, dtype=np.int64)
        per_key.append((lens[inv], flat, np.cumsum(lens) - lens, inv))
    counts = np.zeros(n, dtype=np.int64)
    for rec_lens, *_ in per_key:
        counts += rec_lens
    ptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(counts, out=ptr[1:])
    code = np.empty(int(ptr[-1]), dtype=np.int64)
    block = ptr[:-1].copy()  # where the next key's events of each record go
    for rec_lens, flat, ustart, inv in per_key:
        total = int(rec_lens.sum())
        if total:
            first = np.cumsum(rec_lens) - rec_lens
            within = np.arange(total, dtype=np.int64) - np.repeat(first, rec_lens)
            code[np.repeat(block, rec_lens) + within] = flat[
                np.repeat(ustart[inv], rec_lens) + within
            ]
        block += rec_lens
    times, neurons = np.divmod(code, n_in)
    tdtype = np.int16 if t_steps <= np.iinfo(np.int16).max else np.int32
    return EventCache(ptr, neurons.astype(np.int32), times.astype(tdtype), t_steps, n_in)


def iter_batches(
    n: int, batch_size: int, rng: np.random.Generator | None = None
) -> Iterator[np.ndarray]:
    """Index batches ``[B]`` int64 covering ``range(n)`` once (shuffled when ``rng`` is given);
    the last batch may be smaller."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    order = rng.permutation(n) if rng is not None else np.arange(n)
    for start in range(0, n, batch_size):
        yield order[start : start + batch_size]


_SPLIT_TRIES = 20


def validation_split(
    y: np.ndarray,
    fraction: float,
    rng: np.random.Generator,
    groups: Sequence[Any] | np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """``(train_idx, val_idx)``: about ``fraction`` of the samples held out for validation.

    With ``groups`` whole groups are held out (no group on both sides; e.g. the debfiles
    packages, spec §4.4): groups are shuffled and taken until the fraction is reached; of up to
    20 shuffles the first that leaves every class in the training part is kept (else the one
    leaving the most classes). Without,
    a stratified split (each class keeps at least one training sample; classes with a single
    sample stay in training). ``fraction = 0`` or too few samples give an empty validation set.
    """
    n = y.shape[0]
    if not 0 <= fraction < 1:
        raise ValueError(f"validation_fraction must be in [0, 1), got {fraction}")
    everything = np.arange(n)
    if fraction == 0 or n < 2:
        return everything, everything[:0]
    if groups is not None:
        g = np.asarray(groups)
        if g.shape[0] != n:
            raise ValueError(f"groups has {g.shape[0]} entries for {n} samples")
        uniq, inv = np.unique(g, return_inverse=True)
        inv = inv.reshape(-1)
        if uniq.shape[0] < 2:
            return everything, everything[:0]
        sizes = np.bincount(inv)
        n_classes = np.unique(y).shape[0]
        best: tuple[int, np.ndarray] | None = None
        for _ in range(_SPLIT_TRIES):
            order = rng.permutation(uniq.shape[0])
            taken = np.cumsum(sizes[order])
            k = max(1, int(np.searchsorted(taken, fraction * n, side="left")) + 1)
            k = min(k, uniq.shape[0] - 1)
            val_groups = np.zeros(uniq.shape[0], dtype=bool)
            val_groups[order[:k]] = True
            is_val = val_groups[inv]
            kept = np.unique(y[~is_val]).shape[0]
            if best is None or kept > best[0]:
                best = (kept, is_val)
            if kept == n_classes:
                break
        assert best is not None
        is_val = best[1]
        return everything[~is_val], everything[is_val]
    is_val = np.zeros(n, dtype=bool)
    for c in np.unique(y):
        members = rng.permutation(np.flatnonzero(y == c))
        k = min(round(fraction * members.shape[0]), members.shape[0] - 1)
        is_val[members[:k]] = True
    return everything[~is_val], everything[is_val]


def class_weight_vector(
    class_weight: str | Mapping[Any, float] | None, classes: np.ndarray, y: np.ndarray
) -> np.ndarray:
    """Per-class loss weights ``[C]`` float64 for encoded labels ``y`` (``0..C-1``):
    ``None`` -> ones, ``"balanced"`` -> ``n / (C·count_c)`` (as scikit-learn; a class absent
    from ``y`` weighs 1), or a dict ``label -> weight`` (missing labels weigh 1)."""
    n_classes = classes.shape[0]
    if class_weight is None:
        return np.ones(n_classes)
    if isinstance(class_weight, str):
        if class_weight != "balanced":
            raise ValueError(
                f"class_weight must be None, 'balanced' or a dict, got {class_weight!r}"
            )
        counts = np.bincount(np.asarray(y, dtype=np.int64), minlength=n_classes)
        w = np.ones(n_classes)
        present = counts > 0
        w[present] = y.shape[0] / (n_classes * counts[present])
        return w
    if not isinstance(class_weight, Mapping):
        raise ValueError(f"class_weight must be None, 'balanced' or a dict, got {class_weight!r}")
    return np.array([float(class_weight.get(c, 1.0)) for c in classes.tolist()])


def _is_records(X: Any) -> bool:
    if isinstance(X, (list, tuple)) and len(X) > 0:
        return all(isinstance(r, Mapping) for r in X)
    return False


def _is_dataframe(X: Any) -> bool:
    return hasattr(X, "columns") and hasattr(X, "to_dict") and hasattr(X, "iloc")


class SpikingClassifierBase(ClassifierMixin, BaseEstimator):
    """Base of the spikeforge file classifiers: input handling, encoding, labels, seeding.

    See the module docstring for the inputs and how a subclass uses it. Subclasses must have
    the parameters ``encoder`` (a :class:`KeyValueEncoder` or ``None``) and ``random_state``, and
    implement ``fit`` and ``_scores``.

    Fitted attributes set by :meth:`_fit_inputs`: ``encoder_`` (the fitted clone),
    ``classes_``, ``input_kind_`` (``"records"`` or ``"array"``), ``n_inputs_`` (N),
    ``n_steps_`` (T); for arrays also ``n_features_in_`` (and ``feature_names_in_`` for a
    DataFrame).
    """

    encoder: KeyValueEncoder | None
    random_state: Any

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        tags.non_deterministic = False
        return tags

    # -- inputs ----------------------------------------------------------------------------

    def _array_encoder(self, n_features: int) -> KeyValueEncoder:
        schema = {f"x{i}": "numeric" for i in range(n_features)}
        transforms = {k: "quantile" for k in schema}
        if self.encoder is None:
            return KeyValueEncoder(schema, numeric_transforms=transforms)
        enc = clone(self.encoder)
        return enc.set_params(schema=schema, numeric_transforms=transforms)

    @staticmethod
    def _columns(X: np.ndarray) -> dict[str, np.ndarray]:
        return {f"x{i}": X[:, i] for i in range(X.shape[1])}

    def _records_of(self, X: Any) -> list[Mapping[str, Any]]:
        if _is_dataframe(X):
            return list(X.to_dict("records"))
        return list(X)

    def _fit_inputs(self, X: Any, y: Any) -> tuple[EventCache, np.ndarray]:
        """Validate ``X, y``, fit the encoder on ``X`` and encode it.

        Returns ``(cache, y_encoded [n] int64 in 0..C-1)``; sets the fitted attributes.
        """
        if y is None:
            raise ValueError(
                f"{type(self).__name__} requires y to be passed, but the target y is None"
            )
        records = _is_records(X) or (self.encoder is not None and _is_dataframe(X))
        if records:
            if self.encoder is None:
                raise ValueError(
                    "X is a sequence of records (mappings); pass encoder=KeyValueEncoder(schema)"
                )
            if not isinstance(self.encoder, KeyValueEncoder):
                raise TypeError(f"encoder must be a KeyValueEncoder, got {type(self.encoder)}")
            recs = self._records_of(X)
            y_arr = column_or_1d(y, warn=True)
            check_consistent_length(recs, y_arr)
            for attr in ("n_features_in_", "feature_names_in_"):
                self.__dict__.pop(attr, None)
        else:
            if self.encoder is not None and not isinstance(self.encoder, KeyValueEncoder):
                raise TypeError(f"encoder must be a KeyValueEncoder, got {type(self.encoder)}")
            X_arr, y_arr = validate_data(self, X, y, dtype=np.float64)
        check_classification_targets(y_arr)
        classes, y_enc = np.unique(y_arr, return_inverse=True)
        if classes.shape[0] < 2:
            raise ValueError(
                f"{type(self).__name__} needs samples of at least 2 classes in the data, "
                f"but the data contains only one class: {classes[0]!r}"
            )
        if records:
            encoder = clone(self.encoder).fit(recs)
            cache = encode_events(encoder, records=recs)
        else:
            encoder = self._array_encoder(X_arr.shape[1])
            cols = self._columns(X_arr)
            encoder.fit([dict(zip(cols, row, strict=True)) for row in X_arr.tolist()])
            cache = encode_events(encoder, columns=cols)
        self.encoder_ = encoder
        self.classes_ = classes
        self.input_kind_ = "records" if records else "array"
        self.n_inputs_ = int(encoder.n_inputs)
        self.n_steps_ = int(encoder.n_steps)
        return cache, y_enc.reshape(-1).astype(np.int64)

    def _predict_inputs(self, X: Any) -> EventCache:
        """Validate and encode ``X`` with the fitted encoder (``check_is_fitted`` first)."""
        check_is_fitted(self, ("classes_", "encoder_"))
        if self.input_kind_ == "records":
            if not (_is_records(X) or _is_dataframe(X)):
                if isinstance(X, (list, tuple)) and len(X) == 0:
                    raise ValueError("X is empty: 0 records")
                raise ValueError("this model was fitted on records: X must be records (mappings)")
            return encode_events(self.encoder_, records=self._records_of(X))
        if _is_records(X):
            raise ValueError("this model was fitted on a numeric array: X must be one too")
        X_arr = validate_data(self, X, reset=False, dtype=np.float64)
        return encode_events(self.encoder_, columns=self._columns(X_arr))

    # -- seeding ---------------------------------------------------------------------------

    def _generators(self) -> tuple[np.random.Generator, torch.Generator]:
        """A numpy ``Generator`` and a CPU ``torch.Generator``, both seeded from
        ``random_state`` (one draw of ``check_random_state(random_state)``)."""
        seed = int(check_random_state(self.random_state).randint(0, 2**31 - 1))
        return np.random.default_rng(seed), torch.Generator().manual_seed(seed)

    # -- prediction ------------------------------------------------------------------------

    def _scores(self, cache: EventCache) -> np.ndarray:
        """Class scores ``[n, C]``, larger = more likely (subclasses)."""
        raise NotImplementedError

    def predict(self, X: Any) -> np.ndarray:
        """Predicted labels ``[n]``: the class of the largest score (ties -> lowest index)."""
        cache = self._predict_inputs(X)
        return self.classes_[np.argmax(self._scores(cache), axis=1)]
