"""Composition with latency alignment (spec §5) and causality (spec §6.3)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from spikeforge import universal as U

torch.set_num_threads(1)


def parity(w: np.ndarray) -> int:
    return int(w.sum() % 2)


def composite_fn(w: np.ndarray) -> int:
    return int(w[0].sum() % 2 == 1 and w[1, -1] == 1)


def spec_composite() -> U.Circuit:
    """parity(x1[t-2..t]) and x2[t]: THRESH parity (latency 2) + SKIP relay of x2 (latency 1,
    aligned by one SKIP) + AND."""
    return U.compose(U.and_gate(2), [U.compile(parity, 1, 2), U.skip()], wiring=[[0], [1]])


def test_spec_composite_counts_and_exhaustive_correctness() -> None:
    c = spec_composite()
    assert (c.neurons, c.synapses, c.latency, c.memory) == (9, 18, 3, 2)
    parts = [U.compile(parity, 1, 2), U.skip(), U.and_gate(2)]
    assert c.neurons == sum(p.neurons for p in parts) + 1  # one alignment SKIP
    assert c.formula == {"neurons": 9, "synapses": 18, "biases": 1}
    for dtype in (torch.float32, torch.float64):
        x = U.all_sequences(9, 2, dtype)  # every 2-input sequence of length 9
        out_t = c.run(x)
        assert torch.equal(c.to_module()(x), out_t)
        out = out_t.numpy().astype(np.int8)
        want = U.reference_outputs(composite_fn, x, memory=2)
        assert np.array_equal(out[3:], want[:-3])
    flat = U.compile(composite_fn, 2, 2)
    assert flat.neurons > c.neurons  # the modular construction is smaller


def test_alignment_of_unequal_latencies() -> None:
    """g = XOR of (x delayed by 3 steps, latency 3) and (x[t] and x[t-1], latency 2)."""
    inner_a = U.delay(3)
    inner_b = U.compile(lambda w: int(w.all()), 1, 1)
    outer = U.compile(lambda w: int(w[0, 0] ^ w[1, 0]), 2, 0)
    c = U.compose(outer, [inner_a, inner_b])
    assert c.latency == 3 + 2
    assert c.neurons == inner_a.neurons + inner_b.neurons + outer.neurons + 1

    def fn(w: np.ndarray) -> int:  # window of memory 1; x[t] delayed by 3 is a relay
        return int(w[0, -1] ^ (w[0, -1] & w[0, -2]))

    # h_a represents x[t] with latency 3, h_b represents x[t] and x[t-1] with latency 2
    x = U.all_sequences(10, 1)
    out = c.run(x).numpy().astype(np.int8)
    want = U.reference_outputs(fn, x, memory=1)
    assert np.array_equal(out[5:], want[:-5])


def test_causality_on_the_composite_network() -> None:
    """Replacing X[s] for s >= tau changes no neuron's spikes at steps 1..tau; changing X[tau - 1]
    does change some (so the check is not vacuous)."""
    c = spec_composite()
    rng = np.random.default_rng(0)
    base = torch.tensor((rng.random((12, 256, 2)) < 0.5).astype(np.float64))
    spikes, _ = c.simulate(base)
    some_change = False
    for tau in range(1, 12):
        other = base.clone()
        other[tau - 1 :] = torch.tensor((rng.random((13 - tau, 256, 2)) < 0.5).astype(np.float64))
        changed, _ = c.simulate(other)
        assert torch.equal(changed[:tau], spikes[:tau]), tau
        if tau >= 2:
            flipped = base.clone()
            flipped[tau - 2] = 1 - flipped[tau - 2]  # X[tau - 1]
            some_change |= not torch.equal(c.simulate(flipped)[0][:tau], spikes[:tau])
    assert some_change


def test_compose_errors() -> None:
    with pytest.raises(ValueError, match="no fixed latency"):
        U.compose(U.and_gate(2), [U.clock(3), U.skip()])
    with pytest.raises(ValueError, match="2 inputs, got 1"):
        U.compose(U.and_gate(2), [U.skip()])
    with pytest.raises(ValueError, match="pass wiring"):
        U.compose(U.and_gate(2), [U.skip(), U.and_gate(2)])
