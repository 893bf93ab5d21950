"""Saving and reloading fitted file classifiers (spikeforge.files.persist)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.exceptions import NotFittedError

from spikeforge.encoding import KeyValueEncoder
from spikeforge.files.memristive import MemristiveSynapse
from spikeforge.files.persist import ModelFileError, load_model, save_model
from spikeforge.files.stdp import STDPClassifier
from spikeforge.files.supervised import SNNClassifier

SCHEMA = {"ext": "categorical", "size": "numeric", "exec": "boolean", "dir": "tokens"}


def _records(n: int, seed: int) -> tuple[list[dict[str, object]], np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, n)
    exts = np.array(["py", "gz", "so"])
    records = [
        {
            "ext": str(exts[c]) if rng.random() < 0.9 else "",
            "size": int(rng.integers(10, 1000) * (10 ** int(c))),
            "exec": int(c == 2),
            "dir": ["usr", ["lib", "share", "bin"][int(c)]],
        }
        for c in labels
    ]
    return records, np.array(["text", "compressed", "elf"])[labels]


def _small(**kw: object) -> SNNClassifier:
    encoder = KeyValueEncoder(SCHEMA, n_steps=16, n_token_neurons=32)
    params: dict[str, object] = {"n_hidden": 16, "max_epochs": 2, "random_state": 0, **kw}
    return SNNClassifier(encoder=encoder, **params)


@pytest.fixture(scope="module")
def fitted() -> tuple[SNNClassifier, list[dict[str, object]]]:
    records, y = _records(300, 0)
    return _small().fit(records, y), _records(100, 1)[0]


def test_reloaded_model_predicts_identically(fitted, tmp_path: Path) -> None:
    model, test = fitted
    path = save_model(model, tmp_path / "m.pt")
    again = load_model(path)
    assert type(again) is SNNClassifier
    assert again.get_params(deep=False).keys() == model.get_params(deep=False).keys()
    assert np.array_equal(again.classes_, model.classes_)
    assert np.array_equal(again.predict(test), model.predict(test))
    assert np.array_equal(again.predict_proba(test), model.predict_proba(test))
    assert again.history_ == model.history_
    # a plain file: loading it never unpickles objects
    payload = torch.load(path, weights_only=True)
    assert payload["class"] == "SNNClassifier" and payload["format"] == 1


def test_array_model_and_memristive_model_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 3))
    y = (X[:, 0] > 0).astype(int)
    synapse = MemristiveSynapse(n_levels=32, w_scale=0.5, mode="mixed_precision")
    model = SNNClassifier(
        encoder=KeyValueEncoder({"x": "numeric"}, n_steps=16),
        n_hidden=8,
        max_epochs=2,
        synapse=synapse,
        random_state=1,
    ).fit(X, y)
    again = load_model(save_model(model, tmp_path / "a.pt"))
    assert again.synapse == synapse
    assert again.n_features_in_ == 3
    assert np.array_equal(again.predict(X), model.predict(X))
    with pytest.raises(ValueError, match="features"):
        again.predict(X[:, :2])


def test_bad_files_and_models_are_refused(fitted, tmp_path: Path) -> None:
    model, _ = fitted
    path = save_model(model, tmp_path / "m.pt")
    truncated = tmp_path / "t.pt"
    truncated.write_bytes(path.read_bytes()[:200])
    with pytest.raises(ModelFileError, match=r"t\.pt"):
        load_model(truncated)
    foreign = tmp_path / "f.pt"
    torch.save({"weights": torch.zeros(2)}, foreign)
    with pytest.raises(ModelFileError, match="format"):
        load_model(foreign)
    with pytest.raises(FileNotFoundError):
        load_model(tmp_path / "missing.pt")
    with pytest.raises(NotFittedError):
        save_model(_small(), tmp_path / "u.pt")
    unsaveable = _small(random_state=np.random.RandomState(0))
    unsaveable.fit(*_records(60, 2))
    with pytest.raises(ModelFileError, match="random_state"):
        save_model(unsaveable, tmp_path / "r.pt")
    assert not (tmp_path / "r.pt").exists()


@pytest.mark.parametrize("readout", ["vote", "logistic"])
@pytest.mark.parametrize("memristive", [False, True])
def test_stdp_model_round_trip(readout: str, memristive: bool, tmp_path: Path) -> None:
    records, y = _records(240, 3)
    synapse = MemristiveSynapse(n_levels=16, stochastic_rounding=True) if memristive else None
    model = STDPClassifier(
        encoder=KeyValueEncoder(SCHEMA, n_steps=16, n_token_neurons=32),
        n_neurons=12,
        readout=readout,
        synapse=synapse,
        random_state=0,
    ).fit(records, y)
    again = load_model(save_model(model, tmp_path / "s.pt"))
    test = _records(80, 4)[0]
    assert type(again) is STDPClassifier
    assert np.array_equal(again.predict(test), model.predict(test))
    assert np.array_equal(again.predict_proba(test), model.predict_proba(test))
    assert torch.equal(again.network_.weight, model.network_.weight)
