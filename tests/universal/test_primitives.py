"""The primitives of spec §3, exhaustively: every input sequence of the stated lengths, compared
with the definition computed directly here; counts against the spec's table."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from spikeforge import universal as U

torch.set_num_threads(1)


def _shift(x: np.ndarray, k: int) -> np.ndarray:
    """x[t - k] with zero padding, along axis 0."""
    out = np.zeros_like(x)
    if k < x.shape[0]:
        out[k:] = x[: x.shape[0] - k]
    return out


def _run(
    c: U.Circuit, length: int, dtype: torch.dtype = torch.float64
) -> tuple[np.ndarray, np.ndarray]:
    x = U.all_sequences(length, c.inputs, dtype)
    out = c.run(x)
    assert torch.equal(c.to_module()(x), out)  # the module bridge on every sequence tested
    return x.numpy().astype(int), out.numpy().astype(int)


def _counts(c: U.Circuit) -> tuple[int, int, int]:
    return c.neurons, c.synapses, c.biases


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_skip_and_delay(dtype: torch.dtype) -> None:
    x, out = _run(U.skip(), 10, dtype)
    assert np.array_equal(out, _shift(x[:, :, 0], 1))
    assert _counts(U.skip()) == (1, 1, 0) and U.skip().latency == 1
    for k in (1, 2, 3, 5):
        c = U.delay(k)
        x, out = _run(c, 10, dtype)
        assert np.array_equal(out, _shift(x[:, :, 0], k)), k
        assert _counts(c) == (k, k, 0) and c.latency == k


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_gates_over_every_input_combination(dtype: torch.dtype) -> None:
    d = 3
    for pos_size in range(d + 1):
        for pos in itertools.combinations(range(d), pos_size):
            rest = [k for k in range(d) if k not in pos]
            for neg_size in range(len(rest) + 1):
                for neg in itertools.combinations(rest, neg_size):
                    c = U.and_gate(d, pos, neg)
                    x, out = _run(c, 5, dtype)
                    seen = _shift(x, 1)  # the gate at step t sees X[t - 1], zero-padded
                    want = np.ones(x.shape[:2], dtype=int)
                    for k in pos:
                        want &= seen[:, :, k]
                    for k in neg:
                        want &= 1 - seen[:, :, k]
                    assert np.array_equal(out, want), (pos, neg)
                    assert _counts(c) == (1, len(pos) + len(neg), int(len(pos) != 1))
    x, out = _run(U.or_gate(d), 5, dtype)
    assert np.array_equal(out, _shift(x.max(2), 1)) and _counts(U.or_gate(d)) == (1, d, 0)
    x, out = _run(U.not_gate(), 8, dtype)
    assert np.array_equal(out[1:], 1 - x[:-1, :, 0]) and _counts(U.not_gate()) == (1, 1, 1)
    assert np.all(out[0] == 1)  # start-up: NOT of the zero padding
    for k in range(1, d + 1):
        x, out = _run(U.thresh(d, k), 5, dtype)
        assert np.array_equal(out, _shift((x.sum(2) >= k).astype(int), 1))
        assert _counts(U.thresh(d, k)) == (1, d, 0)


def test_latch_over_all_two_input_sequences_of_length_9() -> None:
    c = U.latch()
    x, out = _run(c, 9)
    state = np.zeros(x.shape[1], dtype=int)
    for t in range(x.shape[0]):
        # L[t + 1] = (SET[t] or L[t]) and not CLR[t]; out[t] = L[t + 1] with L[1] from t = 0
        prev_set = x[t - 1, :, 0] if t else 0
        prev_clr = x[t - 1, :, 1] if t else 0
        state = (prev_set | state) & (1 - prev_clr)
        assert np.array_equal(out[t], state), t
    assert _counts(c) == (1, 3, 0)


def test_ceil_over_all_inputs_of_length_13() -> None:
    for m in range(1, 5):
        c = U.ceil(m)
        for dtype in (torch.float32, torch.float64):
            x, out = _run(c, 13, dtype)
            xs = x[:, :, 0]
            for t in range(1, 13):  # O[t + 1] = [t = 0 mod m] and a spike in (t - m, t]
                block = xs[max(0, t - m) : t].max(0)  # rows t-m..t-1 are X[t-m+1..t]
                want = block if t % m == 0 else np.zeros_like(block)
                assert np.array_equal(out[t], want), (m, t)
            assert out[0].sum() == 0
        assert _counts(c) == (3, 6, 2) and c.latency == 1


def test_clock_counts_and_errors() -> None:
    assert _counts(U.clock(5, 2)) == (1, 0, 1)
    assert _counts(U.leaky_clock(4, 0.9)) == (1, 0, 1)
    with pytest.raises(ValueError, match="phase"):
        U.clock(3, 3)
    with pytest.raises(ValueError, match="0 < beta < 1"):
        U.leaky_clock(3, 1.0)
    with pytest.raises(ValueError, match="threshold"):
        U.leaky_clock(3, 0.9, threshold=100.0)


def test_rational_clock_variant_is_not_exact() -> None:
    """Spec §3 note: bias 1/m, theta = 1 is not exact in floating point, so CLOCK_m uses
    bias 1, theta = m. Found here: some m where the rational variant misses a tick."""
    wrong = []
    for m in range(2, 50):
        b = U.CircuitBuilder(0)
        n = b.add_neuron(beta=1.0, threshold=1.0, bias=1.0 / m)
        out = b.build(n).run(torch.zeros(3 * m, 1, 0))[:, 0].numpy()
        want = (np.arange(1, 3 * m + 1) % m == 0).astype(float)
        if not np.array_equal(out, want):
            wrong.append(m)
        exact = U.clock(m).run(torch.zeros(3 * m, 1, 0))[:, 0].numpy()
        assert np.array_equal(exact, want)
    assert wrong
