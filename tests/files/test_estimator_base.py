"""spikeforge.files.estimator_base: the event cache equals the encoder, inputs, splits, and a
minimal subclass passes scikit-learn's estimator checks."""

from __future__ import annotations

import pickle
from typing import Any

import numpy as np
import pytest
import torch
from sklearn.utils.estimator_checks import parametrize_with_checks

from spikeforge.encoding import EncodingError, KeyValueEncoder
from spikeforge.files.estimator_base import (
    EventCache,
    SpikingClassifierBase,
    class_weight_vector,
    encode_events,
    iter_batches,
    validation_split,
)

SCHEMA = {
    "ext": "categorical",
    "exec": "boolean",
    "size": "numeric",
    "mtime": "numeric",
    "dir": "tokens",
}


def records(n: int, seed: int = 0) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        r: dict[str, Any] = {
            "ext": ["py", "so", "gz", "", "txt"][int(rng.integers(5))],
            "exec": bool(rng.integers(2)),
            "size": int(rng.integers(0, 10_000)),
            "mtime": float(rng.integers(10)) * 1e6,
            "dir": "/".join(["usr", "lib", "share", "doc", "x"][: int(rng.integers(1, 5))]),
        }
        if i % 7 == 0:
            r["size"] = None
        if i % 5 == 0:
            r["dir"] = ["usr", "usr", "bin"]  # duplicate token: unique events
        out.append(r)
    return out


class CountCentroid(SpikingClassifierBase):
    """Minimal subclass: nearest class centroid of the flattened rasters ``[T·N]``."""

    def __init__(self, encoder: KeyValueEncoder | None = None, random_state: Any = None) -> None:
        self.encoder = encoder
        self.random_state = random_state

    def fit(self, X: Any, y: Any, groups: Any = None) -> CountCentroid:
        cache, y_enc = self._fit_inputs(X, y)
        counts = cache.dense().transpose(0, 1).flatten(1).double().numpy()  # [n, T·N]
        self.centroids_ = np.stack(
            [counts[y_enc == c].mean(0) for c in range(self.classes_.shape[0])]
        )
        return self

    def _scores(self, cache: EventCache) -> np.ndarray:
        counts = cache.dense().transpose(0, 1).flatten(1).double().numpy()
        return -((counts[:, None, :] - self.centroids_[None]) ** 2).sum(-1)

    def predict_proba(self, X: Any) -> np.ndarray:
        s = self._scores(self._predict_inputs(X))
        e = np.exp(s - s.max(1, keepdims=True))
        return e / e.sum(1, keepdims=True)


@pytest.mark.parametrize("n", [60, 400])  # 400: more distinct sizes than bins (batch binning)
def test_cache_equals_encoder_record_by_record(n: int) -> None:
    recs = records(n)
    enc = KeyValueEncoder(SCHEMA, n_steps=32).fit(recs)
    cache = encode_events(enc, records=recs)
    assert len(cache) == n and cache.n_steps == 32 and cache.n_inputs == enc.n_inputs
    torch.testing.assert_close(cache.dense(), enc.transform(recs), rtol=0, atol=0)
    for i, r in enumerate(recs):
        n, t = enc.events(r)
        expected = np.unique(t * enc.n_inputs + n)
        s = slice(cache.ptr[i], cache.ptr[i + 1])
        got = cache.times[s].astype(np.int64) * enc.n_inputs + cache.neurons[s]
        assert len(np.unique(got)) == len(got)  # no event twice
        np.testing.assert_array_equal(np.sort(got), expected)


def test_cache_batches_take_and_coo() -> None:
    recs = records(40, seed=1)
    enc = KeyValueEncoder(SCHEMA, n_steps=16).fit(recs)
    cache = encode_events(enc, records=recs)
    dense = cache.dense()
    idx = np.array([5, 0, 39, 5])
    torch.testing.assert_close(cache.dense(idx), dense[:, idx], rtol=0, atol=0)
    torch.testing.assert_close(cache.take(idx).dense(), dense[:, idx], rtol=0, atol=0)
    t, b, n = cache.coo(idx)
    assert dense[:, idx][t, b, n].eq(1).all() and t.shape[0] == int(dense[:, idx].sum())
    assert cache.n_events.sum() == cache.neurons.shape[0] and cache.nbytes > 0
    assert cache.times.dtype == np.int16 and cache.neurons.dtype == np.int32


def test_array_columns_equal_records() -> None:
    rng = np.random.default_rng(0)
    X = np.round(rng.normal(size=(50, 3)), 1)
    est = CountCentroid(random_state=0).fit(X, np.arange(50) % 2)
    recs = [{f"x{j}": float(X[i, j]) for j in range(3)} for i in range(50)]
    expected = est.encoder_.transform(recs)
    torch.testing.assert_close(est._predict_inputs(X).dense(), expected, rtol=0, atol=0)
    assert est.n_features_in_ == 3 and est.input_kind_ == "array" and est.n_steps_ == 64


def test_records_need_an_encoder_and_it_is_cloned() -> None:
    recs = records(30)
    y = np.array(["a", "b", "c"] * 10)
    with pytest.raises(ValueError, match="encoder"):
        CountCentroid().fit(recs, y)
    template = KeyValueEncoder(SCHEMA, n_steps=16)
    est = CountCentroid(encoder=template).fit(recs, y)
    assert not hasattr(template, "encoders_") and est.encoder_ is not template
    assert est.input_kind_ == "records" and not hasattr(est, "n_features_in_")
    assert set(est.predict(recs)) <= {"a", "b", "c"} and est.n_steps_ == 16
    with pytest.raises(ValueError, match="records"):
        est.predict(np.zeros((3, 5)))
    with pytest.raises(EncodingError, match="unknown key"):
        est.predict([{"nope": 1}])
    bad = records(3)
    bad[1]["size"] = float("nan")
    with pytest.raises(EncodingError, match="NaN"):
        est.predict(bad)
    est2 = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(est2.predict(recs), est.predict(recs))


def test_template_encoder_for_arrays() -> None:
    X = np.random.default_rng(0).normal(size=(20, 4))
    est = CountCentroid(encoder=KeyValueEncoder({"whatever": "numeric"}, n_steps=8, n_neurons=8))
    est.fit(X, np.arange(20) % 2)
    assert est.n_inputs_ == 4 * 8 and est.n_steps_ == 8
    assert list(est.encoder_.schema) == ["x0", "x1", "x2", "x3"]


def test_one_class_is_refused() -> None:
    with pytest.raises(ValueError, match="class"):
        CountCentroid().fit(np.zeros((5, 2)), np.ones(5))


def test_validation_split_grouped_and_stratified() -> None:
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(4), 25)
    groups = np.arange(100) // 7
    tr, va = validation_split(y, 0.2, rng, groups)
    assert set(groups[tr]).isdisjoint(groups[va]) and len(tr) + len(va) == 100
    assert 0.1 <= len(va) / 100 <= 0.35
    tr, va = validation_split(y, 0.2, rng)
    assert np.bincount(y[va]).tolist() == [5, 5, 5, 5]
    tr, va = validation_split(y, 0.0, rng)
    assert len(va) == 0
    # a rare class living in one small group stays in training
    y_rare = np.zeros(200, dtype=np.int64)
    y_rare[:3] = 1
    groups = np.arange(200) // 4  # the rare class is group 0 only
    for seed in range(10):
        tr, _ = validation_split(y_rare, 0.3, np.random.default_rng(seed), groups)
        assert 1 in set(y_rare[tr].tolist())
    batches = list(iter_batches(10, 4, np.random.default_rng(1)))
    assert [len(b) for b in batches] == [4, 4, 2]
    assert sorted(np.concatenate(batches).tolist()) == list(range(10))


def test_class_weight_vector() -> None:
    classes = np.array(["a", "b"])
    y = np.array([0, 0, 0, 1])
    np.testing.assert_allclose(class_weight_vector(None, classes, y), [1, 1])
    np.testing.assert_allclose(class_weight_vector("balanced", classes, y), [4 / 6, 2.0])
    np.testing.assert_allclose(class_weight_vector({"b": 3.0}, classes, y), [1, 3])
    np.testing.assert_allclose(class_weight_vector("balanced", classes, np.zeros(4, int)), [0.5, 1])
    with pytest.raises(ValueError):
        class_weight_vector("heavy", classes, y)


@parametrize_with_checks([CountCentroid(random_state=0)])
def test_sklearn_compatible(estimator: Any, check: Any) -> None:
    check(estimator)
