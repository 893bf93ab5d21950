"""Non-spiking baselines on the same records as the spiking classifiers (spec §3.12).

:class:`RecordVectorizer` turns key-value records into a sparse feature matrix
``[n_records, n_features]`` (CSR, float64) with the same information the spike encoder sees:

- categorical and boolean keys: one-hot of the key-value pair (``"k=v"``); values not seen in
  training are ignored (``OneHotEncoder(handle_unknown="ignore")`` behaviour);
- token-set keys: multi-hot of the tokens (``"k~token"``), tokenised as the spike encoder does;
- numeric keys, ``numeric="standardised"``: ``g(x)`` (log1p for sizes, identity for small
  integers, the training quantile transform otherwise, exactly the encoder's transform),
  standardised with the training mean and standard deviation; ``numeric="binned"``: one-hot of
  the encoder's tile bin ``b`` (the same ``B`` bins, fitted on the training records);
- a missing value (``None`` or ``""``) gives a ``"k=<missing>"`` indicator and, for a
  standardised numeric key, 0.

:func:`make_baseline` builds the logistic-regression, linear-SVM and RBF-SVM pipelines and
:func:`fit_baseline` chooses ``C`` from the spec's grid by an inner grouped cross-validation on
the training records (macro-F1), then refits on all of them (the RBF SVM on a subsample).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, TransformerMixin, clone
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, GroupKFold
from sklearn.pipeline import Pipeline
from sklearn.svm import SVC, LinearSVC

from spikeforge.encoding import (
    DEFAULT_NUMERIC_TRANSFORMS,
    EncodingError,
    KeyValueEncoder,
    TileEncoder,
    tokenize,
)
from spikeforge.encoding.categorical import is_missing
from spikeforge.encoding.tiles import to_float
from spikeforge.files.estimator_base import encode_events

__all__ = [
    "BASELINES",
    "C_GRID",
    "BaselineFit",
    "RecordVectorizer",
    "SpikeRasterVectorizer",
    "fit_baseline",
    "make_baseline",
]

BASELINES = ("logistic", "linear_svm", "rbf_svm")
C_GRID = (0.01, 0.1, 1.0, 10.0)
"""Spec §3.12: the regularisation grid of every baseline."""

_MISSING = "<missing>"


def _tokens(value: object) -> list[str]:
    if isinstance(value, str):
        return sorted(set(tokenize(value)))
    return sorted({t for t in value if t})  # type: ignore[union-attr]


class RecordVectorizer(BaseEstimator, TransformerMixin):
    """Records (dicts key -> value) to a sparse matrix ``[n_records, n_features]`` (CSR).

    ``schema`` maps keys to ``"categorical"``, ``"boolean"``, ``"numeric"`` or ``"tokens"`` (as
    for :class:`spikeforge.encoding.KeyValueEncoder`); ``numeric`` is ``"standardised"`` or
    ``"binned"``; ``n_bins`` and ``numeric_transforms`` match the spike encoder's. Fitted
    attributes: ``vocabulary_`` (feature name -> column), ``feature_names_`` and, per numeric
    key, ``tiles_`` (the fitted :class:`~spikeforge.encoding.TileEncoder`) and ``scale_``
    (mean, std of ``g(x)``).
    """

    def __init__(
        self,
        schema: Mapping[str, str],
        numeric: Literal["standardised", "binned"] = "standardised",
        n_bins: int = 64,
        numeric_transforms: Mapping[str, str] | None = None,
    ) -> None:
        self.schema = schema
        self.numeric = numeric
        self.n_bins = n_bins
        self.numeric_transforms = numeric_transforms

    def _numeric_value(self, key: str, value: object) -> float | None:
        return None if is_missing(value) else to_float(key, value)

    def _names(self, record: Mapping[str, Any]) -> tuple[list[str], list[tuple[str, float]]]:
        """The active one-hot names and the (key, g(x)) standardised numeric entries."""
        names: list[str] = []
        numbers: list[tuple[str, float]] = []
        for key, kind in self.schema.items():
            value = record.get(key)
            if isinstance(value, float) and np.isnan(value):
                value = None
            if is_missing(value):
                names.append(f"{key}={_MISSING}")
            elif kind in ("categorical", "boolean"):
                names.append(f"{key}={value}")
            elif kind == "tokens":
                names += [f"{key}~{t}" for t in _tokens(value)]
            elif kind == "numeric":
                tile = self.tiles_[key]
                if self.numeric == "binned":
                    names.append(f"{key}#{tile.bin(value)}")
                else:
                    g = float(tile.g(np.array([to_float(key, value)]))[0])
                    numbers.append((key, g))
            else:
                raise EncodingError(f"key {key!r}: unknown key type {kind!r}")
        return names, numbers

    def fit(self, records: Sequence[Mapping[str, Any]], y: Any = None) -> RecordVectorizer:
        """Fix the vocabulary, the numeric transforms and the scales on ``records``."""
        if self.numeric not in ("standardised", "binned"):
            raise ValueError(f"numeric must be 'standardised' or 'binned', got {self.numeric!r}")
        if len(records) == 0:
            raise ValueError("RecordVectorizer.fit needs at least one record")
        transforms = {**DEFAULT_NUMERIC_TRANSFORMS, **(self.numeric_transforms or {})}
        self.tiles_: dict[str, TileEncoder] = {}
        for key, kind in self.schema.items():
            if kind == "numeric":
                tile = TileEncoder(key, transforms.get(key, "quantile"), n_bins=self.n_bins)
                self.tiles_[key] = tile.fit([r.get(key) for r in records])
        vocabulary: dict[str, int] = {}
        sums: dict[str, list[float]] = {k: [] for k in self.tiles_}
        for record in records:
            names, numbers = self._names(record)
            for name in names:
                vocabulary.setdefault(name, len(vocabulary))
            for key, g in numbers:
                sums[key].append(g)
        if self.numeric == "standardised":
            for key in self.tiles_:
                vocabulary.setdefault(key, len(vocabulary))
        self.scale_ = {
            k: (float(np.mean(v)), float(np.std(v)) or 1.0) if v else (0.0, 1.0)
            for k, v in sums.items()
        }
        self.vocabulary_ = vocabulary
        self.feature_names_ = np.array(sorted(vocabulary, key=vocabulary.__getitem__), dtype=object)
        return self

    def transform(self, records: Sequence[Mapping[str, Any]]) -> sp.csr_matrix:
        """Sparse features ``[len(records), n_features]`` float64 (CSR)."""
        vocab = self.vocabulary_
        rows: list[int] = []
        cols: list[int] = []
        vals: list[float] = []
        for i, record in enumerate(records):
            names, numbers = self._names(record)
            for name in names:
                j = vocab.get(name)
                if j is not None:
                    rows.append(i)
                    cols.append(j)
                    vals.append(1.0)
            for key, g in numbers:
                mean, std = self.scale_[key]
                rows.append(i)
                cols.append(vocab[key])
                vals.append((g - mean) / std)
        return sp.csr_matrix((vals, (rows, cols)), shape=(len(records), len(vocab)))

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """The feature names, in column order."""
        return self.feature_names_


class SpikeRasterVectorizer(BaseEstimator, TransformerMixin):
    """Records to their input spike raster, flattened: a sparse 0/1 matrix
    ``[n_records, T·N]`` (CSR) with a one at ``t·N + n`` where input neuron ``n`` spikes at step
    ``t``. A linear model on it sees exactly what the spiking classifiers see (a diagnostic:
    how much of the label the encoding keeps). ``encoder`` is a
    :class:`~spikeforge.encoding.KeyValueEncoder`, cloned and fitted on the training records."""

    def __init__(self, encoder: KeyValueEncoder) -> None:
        self.encoder = encoder

    def fit(self, records: Sequence[Mapping[str, Any]], y: Any = None) -> SpikeRasterVectorizer:
        """Fit a clone of the encoder on ``records``."""
        self.encoder_ = clone(self.encoder).fit(records)
        return self

    def transform(self, records: Sequence[Mapping[str, Any]]) -> sp.csr_matrix:
        """Flattened rasters ``[len(records), T·N]`` float64 (CSR)."""
        cache = encode_events(self.encoder_, records=records)
        rows = np.repeat(np.arange(len(cache)), cache.n_events)
        cols = cache.times.astype(np.int64) * self.encoder_.n_inputs + cache.neurons
        shape = (len(cache), self.encoder_.n_steps * self.encoder_.n_inputs)
        return sp.csr_matrix((np.ones(rows.size), (rows, cols)), shape=shape)


def make_baseline(
    name: str, C: float = 1.0, random_state: int = 0
) -> LogisticRegression | LinearSVC | SVC:
    """An unfitted baseline classifier on vectorised records (spec §3.12): ``"logistic"``
    (multinomial, L2, ``max_iter=2000``), ``"linear_svm"`` (``LinearSVC``) or ``"rbf_svm"``
    (``SVC``, ``gamma="scale"``)."""
    if name == "logistic":
        return LogisticRegression(C=C, max_iter=2000, random_state=random_state)
    if name == "linear_svm":
        return LinearSVC(C=C, max_iter=5000, random_state=random_state)
    if name == "rbf_svm":
        return SVC(C=C, kernel="rbf", gamma="scale", random_state=random_state)
    raise ValueError(f"unknown baseline {name!r}; choose one of {', '.join(BASELINES)}")


@dataclass
class BaselineFit:
    """A fitted baseline: the pipeline (vectoriser + classifier), the chosen ``C``, the inner
    cross-validation macro-F1 of every ``C`` and the fit time in seconds (grid included)."""

    model: Pipeline
    C: float
    cv_scores: dict[float, float]
    seconds: float
    rows: int


def fit_baseline(
    name: str,
    records: Sequence[Mapping[str, Any]],
    y: np.ndarray,
    groups: np.ndarray,
    schema: Mapping[str, str],
    *,
    numeric: Literal["standardised", "binned"] = "standardised",
    c_grid: Sequence[float] = C_GRID,
    inner_folds: int = 3,
    max_rows: int | None = None,
    grid_rows: int | None = None,
    random_state: int = 0,
    vectorizer: TransformerMixin | None = None,
) -> BaselineFit:
    """Fit baseline ``name`` on training ``records`` / labels ``y`` ``[n]``.

    ``C`` is chosen from ``c_grid`` by macro-F1 in a :class:`GroupKFold` over ``groups`` (the
    package of each record, so no package is in both parts of an inner split), then the model is
    refitted on all the training records. ``max_rows`` caps the rows of the final fit (spec: RBF
    SVM on at most 10,000, its cost is quadratic) and ``grid_rows`` those of the inner search;
    both subsamples are drawn uniformly with ``random_state``. The vectoriser
    (default ``RecordVectorizer(schema, numeric=numeric)``; e.g. a
    :class:`SpikeRasterVectorizer`) is fitted once on the (subsampled) training records, so the
    inner folds share its vocabulary and scales.
    """
    start = time.perf_counter()
    y = np.asarray(y)
    groups = np.asarray(groups)
    rng = np.random.default_rng(random_state)
    index = np.arange(len(records))
    if max_rows is not None and len(index) > max_rows:
        index = np.sort(rng.choice(index, size=max_rows, replace=False))
    train = [records[i] for i in index]
    if vectorizer is None:
        vectorizer = RecordVectorizer(schema, numeric=numeric)
    vectorizer = clone(vectorizer).fit(train)
    features = vectorizer.transform(train)
    grid_index = np.arange(len(index))
    if grid_rows is not None and len(grid_index) > grid_rows:
        grid_index = np.sort(rng.choice(grid_index, size=grid_rows, replace=False))
    search = GridSearchCV(
        make_baseline(name, random_state=random_state),
        {"C": list(c_grid)},
        scoring="f1_macro",
        cv=GroupKFold(n_splits=inner_folds),
        refit=False,
    )
    search.fit(features[grid_index], y[index][grid_index], groups=groups[index][grid_index])
    means = search.cv_results_["mean_test_score"]
    scores = {c: float(s) for c, s in zip(c_grid, means, strict=True)}
    best = max(c_grid, key=lambda c: (scores[c], -c))  # ties: the stronger regularisation
    model = Pipeline(
        [
            ("vectorizer", vectorizer),
            ("classifier", make_baseline(name, C=best, random_state=random_state)),
        ]
    )
    model.named_steps["classifier"].fit(features, y[index])
    return BaselineFit(model, best, scores, time.perf_counter() - start, len(index))
