"""spikeforge.files.supervised.SNNClassifier: scikit-learn compatibility, records input, the
end-to-end smoke of spec §5.8, class weights, and memristive training (spec §5.5)."""

from __future__ import annotations

import csv
import gzip
import time
from typing import Any

import numpy as np
import pytest
import torch
from sklearn.datasets import make_blobs
from sklearn.metrics import f1_score
from sklearn.utils.estimator_checks import parametrize_with_checks

from spikeforge.encoding import KeyValueEncoder
from spikeforge.files.memristive import MemristiveSynapse
from spikeforge.files.supervised import SNNClassifier


@pytest.fixture(autouse=True)
def one_thread() -> Any:
    """Small tensors: one thread (on a shared 2-core machine, two OpenMP threads waiting on each
    other made these tiny fits 3-10x slower)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


SMALL = {"n_hidden": 16, "batch_size": 16, "lr": 2e-2, "max_epochs": 20, "random_state": 0}


def small_encoder(n_steps: int = 16) -> KeyValueEncoder:
    """Template for array input: T = 16 (the schema is replaced by one key per column)."""
    return KeyValueEncoder({"x0": "numeric"}, n_steps=n_steps)


@parametrize_with_checks([SNNClassifier(encoder=small_encoder(), **SMALL)])
def test_sklearn_compatible(estimator: Any, check: Any) -> None:
    check(estimator)


def blobs() -> tuple[np.ndarray, np.ndarray]:
    return make_blobs(240, centers=3, cluster_std=1.0, random_state=0)


def test_fit_predict_proba_score_and_attributes() -> None:
    X, y = blobs()
    m = SNNClassifier(encoder=small_encoder(), **SMALL).fit(X, y)
    assert m.score(X, y) > 0.85
    proba = m.predict_proba(X)
    np.testing.assert_allclose(proba.sum(1), 1.0, rtol=1e-12)
    d2 = m.decision_distances(X)
    # the temperature changes the sharpness only; the most probable class is the prediction
    np.testing.assert_array_equal(m.classes_[proba.argmax(1)], m.predict(X))
    hot = m.set_params(temperature=0.1).predict_proba(X)
    np.testing.assert_allclose(
        hot,
        np.exp(-(d2 - d2.min(1, keepdims=True)) / 0.1)
        / np.exp(-(d2 - d2.min(1, keepdims=True)) / 0.1).sum(1, keepdims=True),
    )
    assert m.targets_.shape == (16, 3, 6) and m.network_.w_in.shape == (2 * 16, 16)
    assert 1 <= m.best_epoch_ <= m.n_epochs_ <= 20 and len(m.history_) == m.n_epochs_
    counts = m.spike_counts(X)
    assert counts["input"] == 2 * 16 and counts["output"] > 0
    # same seed, same model
    m2 = SNNClassifier(encoder=small_encoder(), **SMALL).fit(X, y)
    np.testing.assert_array_equal(
        m2.decision_distances(X),
        SNNClassifier(encoder=small_encoder(), **SMALL).fit(X, y).decision_distances(X),
    )


def test_bad_parameters() -> None:
    X, y = blobs()
    for bad in (
        {"n_hidden": 0},
        {"targets": "x"},
        {"scoring": "auc"},
        {"lr": -1.0},
        {"margin": -0.5},
        {"patience": 0},
    ):
        with pytest.raises(ValueError):
            SNNClassifier(**bad).fit(X, y)
    with pytest.raises(TypeError, match="MemristiveSynapse"):
        SNNClassifier(synapse="pcm").fit(X, y)
    with pytest.raises(ValueError, match="groups"):
        SNNClassifier(**SMALL).fit(X, y, groups=np.zeros(3))


SCHEMA = {
    "ext": "categorical",
    "section": "categorical",
    "mode": "categorical",
    "exec": "boolean",
    "size": "numeric",
    "depth": "numeric",
    "dir": "tokens",
    "name": "tokens",
}


def synthetic_records(n: int, seed: int = 0) -> tuple[list[dict[str, Any]], np.ndarray]:
    """Records whose class shows in some keys, with noise; imbalanced 4 classes."""
    rng = np.random.default_rng(seed)
    y = rng.choice(4, n, p=[0.55, 0.25, 0.15, 0.05])
    recs = []
    for c in y.tolist():
        noisy = rng.random(4) < 0.3
        recs.append(
            {
                "ext": f"e{rng.integers(9)}" if noisy[0] else f"e{c}",
                "section": f"s{rng.integers(6)}",
                "mode": "0o755" if (c == 3) != noisy[1] else "0o644",
                "exec": int((c == 3) != noisy[1]),
                "size": float(rng.lognormal(3 + c, 0.7)),
                "depth": int(rng.integers(2, 7)),
                "dir": f"usr/share/k{c if not noisy[2] else rng.integers(4)}/x{rng.integers(50)}",
                "name": f"f{rng.integers(500)}.{'t' if noisy[3] else c}",
            }
        )
    return recs, y


def test_records_with_key_value_encoder_and_balanced_class_weight() -> None:
    recs, y = synthetic_records(900)
    labels = np.array(["text", "c_source", "image", "terminfo"])[y]
    train, test = slice(0, 700), slice(700, 900)
    enc = KeyValueEncoder(SCHEMA, n_steps=32)
    m = SNNClassifier(
        encoder=enc,
        n_hidden=32,
        class_weight="balanced",
        max_epochs=15,
        lr=5e-3,
        batch_size=32,
        random_state=1,
    )
    groups = np.arange(700) // 10
    m.fit(recs[train], labels[train], groups=groups)
    assert not hasattr(enc, "encoders_")  # the parameter is not fitted in place
    assert m.input_kind_ == "records" and m.n_inputs_ == 6 * 16 + 2 * 64
    # balanced weights n / (C·n_c) of the training part (the validation split holds some out)
    weight = dict(zip(m.classes_.tolist(), m.class_weight_.tolist(), strict=True))
    assert weight["terminfo"] > weight["image"] > weight["c_source"] > weight["text"]
    share = {k: (labels[train] == k).mean() for k in weight}
    assert weight["terminfo"] == pytest.approx(1 / (4 * share["terminfo"]), rel=0.3)
    pred = m.predict(recs[test])
    majority = (labels[test] == "text").mean()
    assert (pred == labels[test]).mean() > majority + 0.1
    assert f1_score(labels[test], pred, average="macro") > 0.5


def test_margin_term() -> None:
    m = SNNClassifier(margin=100.0, tau_vr=5.0)
    targets = torch.zeros(16, 3, 3)
    targets[8, 0, 0] = targets[10, 1, 1] = targets[12, 2, 2] = 1.0
    y = torch.tensor([0, 2])
    out = targets[:, y]  # each output equals its own target: D_y = 0
    loss, d2 = m._losses(out, y, torch.ones(2), targets)
    assert d2.tolist() == [0.0, 0.0]
    # the other targets are one unmatched spike each away from out: D^2 = 1/2 + 1/2 = 1
    assert float(loss) == pytest.approx(100.0 - 1.0, abs=1e-5)
    out = out.clone().requires_grad_(True)
    m._losses(out, y, torch.ones(2), targets)[0].backward()
    assert out.grad is not None and float(out.grad.abs().sum()) > 0


def debfiles_subset() -> tuple[list[dict[str, Any]], np.ndarray, np.ndarray, np.ndarray] | None:
    try:
        from spikeforge.data.paths import resolve_data_dir

        path = resolve_data_dir() / "debfiles" / "debfiles.csv.gz"
    except Exception:
        return None
    if not path.is_file():
        return None
    keys = list(DEB_SCHEMA)
    recs, kinds, folds, pkgs = [], [], [], []
    with gzip.open(path, "rt", encoding="utf-8", newline="") as fh:
        for i, row in enumerate(csv.DictReader(fh)):
            if i % 20:  # every 20th row (rows are sorted by path): 2,002 rows
                continue
            recs.append({k: row[k] for k in keys})
            kinds.append(row["kind"])
            folds.append(int(row["fold"]))
            pkgs.append(row["package"])
    return recs, np.array(kinds), np.array(folds), np.array(pkgs)


DEB_SCHEMA = {
    **dict.fromkeys(
        ["ext", "section", "priority", "arch", "multi_arch", "top2", "mode", "uid", "gid"],
        "categorical",
    ),
    **dict.fromkeys(["exec", "setid", "essential", "conffile", "has_md5"], "boolean"),
    **dict.fromkeys(
        ["size", "installed_size_kb", "depth", "name_len", "n_dots", "nlink", "mtime"], "numeric"
    ),
    "dir": "tokens",
    "name": "tokens",
}


def test_end_to_end_debfiles_subset_beats_majority_within_a_minute() -> None:
    data = debfiles_subset()
    if data is None:
        pytest.skip("debfiles.csv.gz not found (spikeforge.data.paths.resolve_data_dir)")
    recs, kinds, folds, pkgs = data
    assert len(recs) == 2002
    train, test = np.flatnonzero(folds != 0), np.flatnonzero(folds == 0)
    start = time.perf_counter()
    m = SNNClassifier(
        encoder=KeyValueEncoder(DEB_SCHEMA), batch_size=32, max_epochs=12, random_state=0
    )
    m.fit([recs[i] for i in train], kinds[train], groups=pkgs[train])
    pred = m.predict([recs[i] for i in test])
    seconds = time.perf_counter() - start
    values, counts = np.unique(kinds[train], return_counts=True)
    majority = (kinds[test] == values[counts.argmax()]).mean()
    accuracy = (pred == kinds[test]).mean()
    assert accuracy > majority + 0.1, (accuracy, majority)
    assert seconds < 60


def test_memristive_ideal_mode_equals_float_training() -> None:
    X, y = blobs()
    kw = {**SMALL, "max_epochs": 3, "validation_fraction": 0.0}
    ref = SNNClassifier(encoder=small_encoder(), **kw).fit(X, y)
    ideal = MemristiveSynapse(quantize=False, w_scale=4.0, g_min=0.0, g_max=1.0)
    mem = SNNClassifier(encoder=small_encoder(), synapse=ideal, **kw).fit(X, y)
    assert mem.synapses_ is not None and len(mem.synapses_) == 2
    for a, b in (
        (ref.network_.w_in, mem.network_.w_in),
        (ref.network_.fc_out.weight, mem.network_.fc_out.weight),
    ):
        assert float(b.detach().abs().max()) < 4.0  # the bounds were never reached
        # equal up to float32 rounding (a pair adds one rounding per update: measured 2e-7)
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
    # ... and the network computes exactly the same outputs
    np.testing.assert_array_equal(ref.decision_distances(X), mem.decision_distances(X))
    for array in mem.synapses_:
        g_pos, g_neg = array.conductance()
        torch.testing.assert_close(4.0 * (g_pos - g_neg), array.weight(noisy=False))


def test_memristive_quantised_weights_stay_on_levels() -> None:
    X, y = blobs()
    cfg = MemristiveSynapse(n_levels=32, w_scale=2.0, mode="mixed_precision")
    m = SNNClassifier(encoder=small_encoder(), synapse=cfg, **{**SMALL, "max_epochs": 4}).fit(X, y)
    step = cfg.dw_min
    for param in (m.network_.w_in, m.network_.fc_out.weight):
        levels = param.detach().double() / step
        torch.testing.assert_close(levels, levels.round(), rtol=0, atol=1e-4)
        assert float(param.detach().abs().max()) <= 2.0 + 1e-6
    assert m.score(X, y) > 0.5  # still learns something with 32 levels
