"""Baselines on vectorised records (spec file-classification.md §3.12)."""

from __future__ import annotations

import numpy as np
import pytest

from spikeforge.encoding import KeyValueEncoder
from spikeforge.files.baselines import (
    C_GRID,
    RecordVectorizer,
    SpikeRasterVectorizer,
    fit_baseline,
    make_baseline,
)

SCHEMA = {"ext": "categorical", "exec": "boolean", "size": "numeric", "dir": "tokens"}
TRAIN = [
    {"ext": "py", "exec": 0, "size": 100, "dir": "usr/lib/python3"},
    {"ext": "gz", "exec": 0, "size": 10_000, "dir": "usr/share/doc"},
    {"ext": "", "exec": 1, "size": 1_000_000, "dir": ["usr", "bin"]},
]


def _dense(v: RecordVectorizer, records: list[dict[str, object]]) -> dict[str, float]:
    row = v.transform(records).toarray()[0]
    return {name: row[j] for name, j in v.vocabulary_.items() if row[j] != 0}


def test_one_hot_multi_hot_and_standardised_numbers() -> None:
    v = RecordVectorizer(SCHEMA).fit(TRAIN)
    got = _dense(v, [TRAIN[0]])
    assert got.keys() == {"ext=py", "exec=0", "size", "dir~usr", "dir~lib", "dir~python3"}
    assert all(got[k] == 1.0 for k in got if k != "size")
    g = np.log1p([100.0, 10_000.0, 1_000_000.0])  # size uses log1p, as the spike encoder
    assert got["size"] == pytest.approx((g[0] - g.mean()) / g.std())
    # unseen values, tokens and missing indicators are ignored; a seen missing one is a feature
    got = _dense(v, [{"ext": "rs", "exec": None, "size": 100, "dir": "opt/new"}])
    assert got.keys() == {"size"}
    assert _dense(v, [TRAIN[2]])["ext=<missing>"] == 1.0


def test_binned_numbers_use_the_encoders_tile_bins() -> None:
    v = RecordVectorizer(SCHEMA, numeric="binned", n_bins=8).fit(TRAIN)
    names = set(_dense(v, [TRAIN[2]]))
    assert "size#7" in names and "size" not in names  # the training maximum: last bin
    assert "size#0" in set(_dense(v, [TRAIN[0]]))
    with pytest.raises(ValueError, match="numeric"):
        RecordVectorizer(SCHEMA, numeric="raw").fit(TRAIN)


def test_spike_raster_vectorizer_is_the_flattened_encoder_output() -> None:
    enc = KeyValueEncoder(SCHEMA, n_steps=16, n_token_neurons=32)
    v = SpikeRasterVectorizer(enc).fit(TRAIN)
    assert not hasattr(enc, "encoders_")  # the parameter is cloned, never fitted itself
    flat = v.transform(TRAIN).toarray()
    dense = v.encoder_.transform(TRAIN).numpy()  # [T, B, N]
    assert np.array_equal(flat, dense.transpose(1, 0, 2).reshape(len(TRAIN), -1))


def test_fit_baseline_grid_groups_and_prediction() -> None:
    rng = np.random.default_rng(0)
    n = 240
    y = rng.integers(0, 3, n)
    exts = np.array(["py", "gz", "so"])
    records = [
        {"ext": str(exts[c]) if rng.random() < 0.8 else "txt", "exec": int(c == 2), "size": int(s)}
        for c, s in zip(y, rng.integers(1, 1000, n), strict=True)
    ]
    groups = np.arange(n) % 12
    schema = {"ext": "categorical", "exec": "boolean", "size": "numeric"}
    for name in ("logistic", "linear_svm", "rbf_svm"):
        fit = fit_baseline(name, records, y, groups, schema, max_rows=200, grid_rows=150)
        assert fit.C in C_GRID and set(fit.cv_scores) == set(C_GRID)
        assert fit.rows == 200
        assert (fit.model.predict(records) == y).mean() > 0.8
    with pytest.raises(ValueError, match="unknown baseline"):
        make_baseline("forest")
