"""Encoder properties of spec ``file-classification.md`` §5 (items 1-2) and §3.3-3.5."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from spikeforge.encoding import (
    CategoricalEncoder,
    EncodingError,
    KeyValueEncoder,
    NotFittedError,
    TileEncoder,
    TokenSetEncoder,
)

SCHEMA = {
    "ext": "categorical",
    "section": "categorical",
    "exec": "boolean",
    "size": "numeric",
    "mtime": "numeric",
    "dir": "tokens",
}
RECORDS = [
    {"ext": "so", "section": "libs", "exec": 0, "size": 1000, "mtime": 1.6e9, "dir": "usr/lib"},
    {"ext": "py", "section": "python", "exec": 1, "size": 50, "mtime": 1.7e9, "dir": "usr/share"},
    {"ext": "", "section": "doc", "exec": "0", "size": 0, "mtime": 1.5e9, "dir": ["usr", "doc"]},
]


def _coincidences(a: torch.Tensor, b: torch.Tensor) -> int:
    return int((a * b).sum())


def test_determinism_across_processes() -> None:
    enc = KeyValueEncoder(SCHEMA).fit(RECORDS)
    here = enc.transform(RECORDS).nonzero().tolist()
    code = (
        "import json\nfrom spikeforge.encoding import KeyValueEncoder\n"
        f"e = KeyValueEncoder({SCHEMA!r}).fit({RECORDS!r})\n"
        f"print(json.dumps(e.transform({RECORDS!r}).nonzero().tolist()))\n"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    import json

    assert json.loads(out.stdout) == here


def test_equal_values_identical_and_one_change_only_touches_that_group() -> None:
    enc = KeyValueEncoder(SCHEMA).fit(RECORDS)
    pair = enc.transform([RECORDS[0], dict(RECORDS[0])])
    assert torch.equal(pair[:, 0], pair[:, 1])
    a = pair[:, 0]
    changed = {**RECORDS[0], "section": "admin"}
    c = enc.transform([changed])[:, 0]
    diff = (a != c).any(dim=0).nonzero().flatten().tolist()
    sl = enc.layout["section"]
    assert diff and all(sl.start <= n < sl.stop for n in diff)


def test_missing_key_is_silent_and_one_spike_per_neuron() -> None:
    enc = KeyValueEncoder(SCHEMA).fit(RECORDS)
    x = enc.transform([{"ext": "so"}, {"ext": None}])
    assert x.shape == (64, 2, enc.n_inputs)
    assert x.dtype == torch.float32
    assert torch.equal(x[:, 0, enc.layout["ext"]].sum(0), torch.ones(16))
    assert x[:, 1].sum() == 0
    assert x[:, 0].sum() == 16


def test_boolean_spellings_agree() -> None:
    enc = KeyValueEncoder({"exec": "boolean"}).fit([{}])
    x = enc.transform([{"exec": v} for v in (1, True, np.bool_(True), "1", "yes")])
    assert all(torch.equal(x[:, 0], x[:, i]) for i in range(1, 5))
    assert not torch.equal(x[:, 0], enc.transform([{"exec": "0"}])[:, 0])


def test_correlation_property_matches_expectation() -> None:
    """Coincidences M*(s + (n_both - s)/T), summed over random record pairs, within 4 sigma."""
    keys = [f"k{i}" for i in range(8)]
    enc = KeyValueEncoder(dict.fromkeys(keys, "categorical"), n_steps=32).fit([{}])
    rng = np.random.default_rng(0)
    m, t = 16, 32
    observed = expected = var = 0.0
    sims, coins = [], []
    for _ in range(150):
        # fresh values from a large vocabulary, so chance coincidences are independent draws
        a = {k: f"v{rng.integers(10**9)}" for k in keys if rng.random() < 0.9}
        b = {
            k: (a[k] if k in a and rng.random() < 0.5 else f"v{rng.integers(10**9)}")
            for k in keys
            if rng.random() < 0.9
        }
        both = [k for k in keys if k in a and k in b]
        s = sum(a[k] == b[k] for k in both)
        x = enc.transform([a, b])
        c = _coincidences(x[:, 0], x[:, 1])
        observed += c
        expected += m * (s + (len(both) - s) / t)
        var += m * (len(both) - s) * (1 / t) * (1 - 1 / t)
        sims.append(s / math.sqrt(len(a) * len(b)) if a and b else 0.0)
        coins.append(c)
    assert abs(observed - expected) < 4 * math.sqrt(var)
    # more similar records (Ochiai) give more coincident spikes
    assert np.corrcoef(sims, coins)[0, 1] > 0.9


def test_different_keys_same_value_do_not_collide() -> None:
    a = CategoricalEncoder("ext").spike_times("x")
    b = CategoricalEncoder("section").spike_times("x")
    assert (a == b).sum() <= 4  # chance level 16/64 = 0.25 expected
    assert not np.array_equal(a, b)
    tok_a, tok_b = TokenSetEncoder("dir"), TokenSetEncoder("name")
    assert not np.array_equal(
        np.stack(tok_a.token_events("lib")), np.stack(tok_b.token_events("lib"))
    )


def test_n_spikes_option_draws_distinct_times() -> None:
    times = CategoricalEncoder("ext", n_spikes=3).spike_times("so")
    assert times.shape == (16, 3)
    assert all(len(set(row)) == 3 for row in times.tolist())


# tile coding ---------------------------------------------------------------------------------
def test_tile_overlap_exact() -> None:
    enc = TileEncoder("x", "identity", n_neurons=32, width=8, n_bins=64).fit(range(64))
    for d in range(0, 12):
        for b in (0, 5, 20):
            shared = (enc.cells(b) == enc.cells(b + d)).mean()
            assert shared == max(0.0, 1 - d / 8)


def test_tile_neighbours_share_spikes_distant_do_not() -> None:
    enc = TileEncoder("x", "identity", n_neurons=32, width=8).fit(range(64))
    base = enc.events(10)[1]
    near = enc.events(11)[1]
    far = enc.events(40)[1]
    assert (base == near).sum() >= 28  # 7/8 of 32 share cells
    assert (base == far).sum() <= 6  # only chance coincidences (1/64 each)


def test_tile_fit_on_training_only_and_clipping() -> None:
    enc = TileEncoder("size", "log1p").fit([0, 10, 100, 1000])
    lo, delta = enc.lo_, enc.delta_
    assert enc.bin(1000) == 63 and enc.bin(0) == 0
    assert enc.bin(10**9) == 63  # unseen extreme: clipped
    enc.events(10**9)
    assert (enc.lo_, enc.delta_) == (lo, delta)  # transform never refits
    q = TileEncoder("mtime", "quantile").fit(np.linspace(1e9, 2e9, 100))
    assert q.bin(0) == 0 and q.bin(5e9) == 63
    assert q.bin(1.5e9) in (31, 32)


def test_keyvalue_numeric_fitted_on_train_only() -> None:
    train = [{"size": s} for s in (1, 10, 100)]
    enc = KeyValueEncoder({"size": "numeric"}).fit(train)
    before = enc.encoders_["size"].delta_
    enc.transform([{"size": 10**12}, {"size": 0}])
    assert enc.encoders_["size"].delta_ == before
    assert enc.encoders_["size"].bin(10**12) == 63


# token sets ----------------------------------------------------------------------------------
def test_token_sets_shared_tokens_give_shared_spikes() -> None:
    enc = KeyValueEncoder({"dir": "tokens"}).fit([{}])
    x = enc.transform(
        [{"dir": "usr/share/doc"}, {"dir": ["usr", "share", "man"]}, {"dir": "opt/x/y"}]
    )
    ab = _coincidences(x[:, 0], x[:, 1])
    ac = _coincidences(x[:, 0], x[:, 2])
    assert ab >= 4  # usr and share: r = 2 spikes each
    assert ab > ac
    assert torch.equal(enc.transform([{"dir": "a/b"}]), enc.transform([{"dir": ["b", "a", "a"]}]))


# bad input -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("record", "match"),
    [
        ({"size": float("nan")}, "NaN"),
        ({"size": "abc"}, "cannot parse"),
        ({"size": [1]}, "must be a number"),
        ({"ext": ["so"]}, "categorical value"),
        ({"exec": 2}, "boolean value"),
        ({"dir": 5}, "token-set value"),
        ({"bogus": 1}, "unknown key"),
    ],
)
def test_bad_input_raises_clear_errors(record: dict, match: str) -> None:
    enc = KeyValueEncoder(SCHEMA).fit(RECORDS)
    with pytest.raises(EncodingError, match=match):
        enc.transform([record])


def test_non_strict_and_nan_missing_options() -> None:
    enc = KeyValueEncoder(SCHEMA, strict=False, nan="missing").fit(RECORDS)
    x = enc.transform([{"bogus": 1, "size": float("nan")}])
    assert x.sum() == 0


def test_protocol_errors_and_params() -> None:
    enc = KeyValueEncoder(SCHEMA)
    with pytest.raises(NotFittedError):
        enc.transform(RECORDS)
    with pytest.raises(EncodingError, match="sequence"):
        enc.fit(RECORDS[0])  # type: ignore[arg-type]
    with pytest.raises(EncodingError, match="type must be"):
        KeyValueEncoder({"a": "weird"}).fit([{}])
    params = enc.get_params()
    assert params["n_steps"] == 64 and params["n_neurons"] == 16
    assert params["n_token_neurons"] == 64 and params["neurons_per_token"] == 2
    assert params["n_bins"] == 64 and params["tile_width"] == 8
    enc.fit(RECORDS).set_params(n_steps=32)
    with pytest.raises(NotFittedError):
        enc.transform(RECORDS)
    assert enc.fit(RECORDS).transform(RECORDS).shape[0] == 32


def test_tile_degenerate_and_bad_training_values() -> None:
    const = TileEncoder("mtime", "quantile").fit([5.0] * 10)
    assert const.bin(5.0) == 0 and const.bin(1e12) in range(64)
    with pytest.raises(EncodingError, match="not finite"):
        TileEncoder("size", "log1p").fit([1.0, float("nan")])
    with pytest.raises(EncodingError, match="no non-missing"):
        TileEncoder("size", "log1p").fit([None, ""])
    with pytest.raises(NotFittedError):
        TileEncoder("size", "log1p").bin(3)


def test_fitted_state_round_trip_gives_identical_spikes() -> None:
    schema = {"size": "numeric", "mtime": "numeric", "ext": "categorical", "dir": "tokens"}
    rng = np.random.default_rng(3)
    records = [
        {"size": int(s), "mtime": int(m), "ext": e, "dir": "usr/share/doc"}
        for s, m, e in zip(
            rng.integers(0, 10**6, 200),
            rng.integers(10**9, 2 * 10**9, 200),
            rng.choice(["py", "gz", ""], 200),
            strict=True,
        )
    ]
    enc = KeyValueEncoder(schema).fit(records[:150])
    state = json.loads(json.dumps(enc.fitted_state()))  # plain values survive JSON
    again = KeyValueEncoder(**enc.get_params()).load_fitted_state(state)
    assert torch.equal(enc.transform(records), again.transform(records))
    with pytest.raises(EncodingError, match="numeric keys"):
        KeyValueEncoder({"size": "numeric"}).load_fitted_state(state)
    bad = dict(state, size={**state["size"], "delta": 0.0})
    with pytest.raises(EncodingError, match="bad fitted state"):
        KeyValueEncoder(**enc.get_params()).load_fitted_state(bad)
