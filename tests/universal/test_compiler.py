"""The compiler (spec §4): every construction exhaustively correct, counts from introspection
equal to the closed formulas (and to the spec's table), the smallest construction chosen,
start-up transients, and errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from spikeforge import universal as U
from spikeforge.universal.verify import sliding_windows

torch.set_num_threads(1)


def parity(w: np.ndarray) -> int:
    return int(w.sum() % 2)


def exhaustive_ok(c: U.Circuit, fn, length: int, memory: int, period: int | None = None) -> None:
    """Every sequence of ``length``, float32 and float64: S_o[t + D] = f(X)[t] for t >= 1."""
    results = {}
    for dtype in (torch.float32, torch.float64):
        x = U.all_sequences(length, c.inputs, dtype)
        out = c.run(x)
        assert torch.equal(c.to_module()(x, return_all=True), c.simulate(x)[0])
        results[dtype] = out
        want = U.reference_outputs(fn, x, memory, period)
        got = out.numpy().astype(np.int8)
        assert np.array_equal(got[c.latency :], want[: length - c.latency]), c
    assert torch.equal(results[torch.float32].double(), results[torch.float64])


def counts(c: U.Circuit) -> tuple[int, int]:
    return c.neurons, c.synapses


def dnf_counts(d: int, m: int, k: int) -> tuple[int, int]:
    """Spec §4: N = dm + K + 1, synapses = dm + K d(m+1) + K."""
    return d * m + k + 1, d * m + k * d * (m + 1) + k


def test_reference_outputs_equal_a_naive_loop() -> None:
    rng = np.random.default_rng(0)
    x = (rng.random((7, 30, 2)) < 0.5).astype(np.int8)

    def fn(w: np.ndarray, phase: int) -> int:
        return int((w[0, 0] + 2 * w[1, 2] + phase) % 3 == 1)

    got = U.reference_outputs(fn, x, memory=2, period=3)
    for b in range(30):
        for t in range(1, 8):
            window = np.zeros((2, 3), dtype=np.int8)
            for j, lag in enumerate((2, 1, 0)):
                if t - lag >= 1:
                    window[:, j] = x[t - lag - 1, b]
            assert got[t - 1, b] == fn(window, t % 3)
    assert sliding_windows(x, 2).shape == (7, 30, 2, 3)


def test_spec_table_functions() -> None:
    """Spec §4 verified table: counts and exhaustive correctness."""
    xor = U.compile(lambda w: int(w[0, 0] ^ w[0, 1]), inputs=1, memory=1)
    exhaustive_ok(xor, lambda w: int(w[0, 0] ^ w[0, 1]), 8, 1)
    assert counts(xor) == (4, 7) == dnf_counts(1, 1, 2) and xor.latency == 2
    par = U.compile(parity, 1, 3, method="dnf")
    exhaustive_ok(par, parity, 8, 3)
    assert counts(par) == (12, 43) == dnf_counts(1, 3, 8)

    def ago3(w: np.ndarray) -> int:
        return int(w[0, 0])

    ago = U.compile(ago3, 1, 3, method="dnf")
    exhaustive_ok(ago, ago3, 8, 3)
    assert counts(ago) == (12, 43)

    def majority(w: np.ndarray) -> int:
        return int(w.sum() >= 3)

    maj = U.compile(majority, 1, 4, method="dnf")
    exhaustive_ok(maj, majority, 8, 4)
    assert counts(maj) == (21, 100) == dnf_counts(1, 4, 16)
    maj_t = U.compile(majority, 1, 4)  # auto: THRESH with a single unit
    exhaustive_ok(maj_t, majority, 8, 4)
    assert maj_t.construction == "THRESH" and counts(maj_t) == (4 + 1 + 1, 4 + 5 + 1)

    def two_input(w: np.ndarray) -> int:
        return int((w[0, 1] and w[1, 0]) or (w[1, 1] and not w[0, 0]))

    two = U.compile(two_input, 2, 1)
    exhaustive_ok(two, two_input, 6, 1)
    assert counts(two) == (10, 37) == dnf_counts(2, 1, 7)


@pytest.mark.parametrize(("m", "neurons", "synapses"), [(2, 6, 14), (3, 8, 23), (5, 12, 47)])
def test_parity_by_thresh(m: int, neurons: int, synapses: int) -> None:
    c = U.compile(parity, 1, m)
    assert c.construction == "THRESH"
    assert counts(c) == (neurons, synapses)
    n_w = m + 1
    assert counts(c) == (m + n_w + 1, m + n_w**2 + n_w)  # spec formula (parity: every unit)
    exhaustive_ok(c, parity, 10 if m == 5 else 8, m)
    assert counts(U.compile_symmetric(lambda k: k % 2, 1, m)) == counts(c)


@pytest.mark.parametrize("k", [1, 2, 3])
def test_spike_exactly_k_steps_ago(k: int) -> None:
    def fn(w: np.ndarray) -> int:
        return int(w[0, 0])

    c = U.compile(fn, 1, k)
    exhaustive_ok(c, fn, 8, k)
    assert counts(c) == dnf_counts(1, k, 2 ** (k))


def _table_fn(table: np.ndarray):
    """fn(window[, phase]) reading a truth table by the window's bits (MSB first)."""

    def fn(w: np.ndarray, phase: int = 0) -> int:
        idx = int("".join(str(int(b)) for b in w.reshape(-1)), 2)
        return int(table[idx] if table.ndim == 1 else table[phase, idx])

    return fn


def _formula_counts(
    table: np.ndarray, d: int, m: int, method: str, period: int | None
) -> tuple[int, int, int]:
    """Spec §4 formulas recomputed here from the table."""
    n_w = d * (m + 1)
    rows = table.reshape(-1, 2**n_w)
    value = 1 if method == "dnf" else 0
    ones = np.array([bin(i).count("1") for i in range(2**n_w)])
    k = int((rows == value).sum())
    if period is None:
        biases = int(((rows == value) & (ones[None] != 1)).sum())
        n, w = d * m + k + 1, d * m + k * n_w + k
    else:
        biases = period + int(((rows == value) & (ones[None] != 0)).sum())
        n, w = d * m + period + k + 1, d * m + k * (n_w + 1) + k
    return n, w, biases + (value == 0)


def test_random_truth_tables() -> None:
    """30 random tables (d in {1, 2}, m in {0, 1, 2}), every construction that applies."""
    rng = np.random.default_rng(11)
    for _ in range(30):
        d, m = int(rng.integers(1, 3)), int(rng.integers(0, 3))
        table = rng.integers(0, 2, size=2 ** (d * (m + 1)))
        fn = _table_fn(table)
        for method in ("dnf", "complement"):
            c = U.compile(table, inputs=d, memory=m, method=method)
            exhaustive_ok(c, fn, 8 if d == 1 else 6, m)
            assert (c.neurons, c.synapses, c.biases) == _formula_counts(table, d, m, method, None)
        # the callable and the table give the same circuit
        auto = U.compile(fn, inputs=d, memory=m)
        assert auto.neurons == min(
            U.compile(table, d, m, method=k).neurons for k in U.candidate_formulas(table, d, m)
        )


def test_random_periodic_tables() -> None:
    """20 random periodic tables (P <= 4), DNF and complement forms."""
    rng = np.random.default_rng(12)
    for _ in range(20):
        d, m, period = int(rng.integers(1, 3)), int(rng.integers(0, 3)), int(rng.integers(1, 5))
        table = rng.integers(0, 2, size=(period, 2 ** (d * (m + 1))))
        fn = _table_fn(table)
        for method in ("dnf", "complement"):
            c = U.compile(fn, inputs=d, memory=m, period=period, method=method)
            exhaustive_ok(c, fn, 8 if d == 1 else 6, m, period)
            assert (c.neurons, c.synapses, c.biases) == _formula_counts(table, d, m, method, period)
            assert c.period == period and c.latency == 2


def test_periodic_detector() -> None:
    """'x[t] and x[t-1] at even t, x[t] or x[t-1] at odd t'; and CEIL_m as a periodic table."""

    def fn(w: np.ndarray, phase: int) -> int:
        return int(w[0].all() if phase == 0 else w[0].any())

    c = U.compile(fn, 1, 1, period=2)
    exhaustive_ok(c, fn, 9, 1, 2)

    def ceil_fn(w: np.ndarray, phase: int) -> int:
        return int(phase == 0 and w.any())

    for m in range(1, 5):
        exhaustive_ok(U.ceil(m), ceil_fn, 13, m - 1, m)


def test_compile_picks_the_smallest_construction() -> None:
    # few true patterns: DNF; few false patterns: complement; symmetric: THRESH
    assert U.compile(lambda w: int(w[0, :3].all()), 1, 3).construction == "DNF"
    assert U.compile(lambda w: int(w[0, :3].any()), 1, 3).construction == "complement"
    # AND of the window is symmetric: one THRESH unit ties the DNF in neurons and synapses
    # and needs no bias
    assert U.compile(lambda w: int(w.all()), 1, 3).construction == "THRESH"
    assert (
        U.compile(lambda w: int(not (w[0, 0] and w[0, 1] and not w[0, 2])), 1, 2).construction
        == "complement"
    )
    assert U.compile(parity, 1, 4).construction == "THRESH"
    constant_one = U.compile(lambda w: 1, 1, 2)
    exhaustive_ok(constant_one, lambda w: 1, 6, 2)


def test_start_up_transients_are_as_documented() -> None:
    """Outputs at steps 1..D are transients: step 1 is the output neuron's bias alone (OR: 0,
    NOR: 1), step 2 is F of the all-padding window (t = 0)."""
    x = U.all_sequences(6, 1)

    def fn(w: np.ndarray) -> int:
        return int(w[0, -1] == 0)  # F(padding window) = 1

    for method, first in (("dnf", 0), ("complement", 1)):
        out = U.compile(fn, 1, 2, method=method).run(x)
        assert torch.all(out[0] == first) and torch.all(out[1] == 1)
    # outputs from step D + 1 on are correct with the zero-padded history (tested above)


def test_compile_errors_are_clear() -> None:
    with pytest.raises(ValueError, match="must return 0 or 1"):
        U.compile(lambda w: 2, 1, 1)
    with pytest.raises(ValueError, match=r"shape \[4\]"):
        U.compile([0, 1, 1], 1, 1)
    with pytest.raises(ValueError, match="not symmetric"):
        U.compile(lambda w: int(w[0, 0]), 1, 1, method="thresh")
    with pytest.raises(ValueError, match="has a period"):
        U.compile(lambda w, r: 1, 1, 1, period=2, method="thresh")
    with pytest.raises(ValueError, match="max_detectors"):
        U.compile(parity, 1, 6, method="dnf", max_detectors=10)
    with pytest.raises(ValueError, match="unknown method"):
        U.compile(parity, 1, 1, method="karnaugh")
    with pytest.raises(ValueError, match="memory"):
        U.compile(parity, 1, -1)
    with pytest.raises(ValueError, match="too large"):
        U.compile(parity, 3, 8)
