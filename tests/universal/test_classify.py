"""The counter-based classifier (spec §5.1): exact log-likelihood ratio, Bayes decisions, the v0
start-up correction, counts."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from spikeforge import universal as U

torch.set_num_threads(1)


def _llr_by_hand(s0: U.MarkovSource, s1: U.MarkovSource, seq: list[int]) -> float:
    """log P_1 - log P_0 of one sequence, by the chain rule with an all-zero start."""
    m = s0.memory
    hist = [0] * m + list(seq)
    total = 0.0
    for t in range(len(seq)):
        ctx = 0
        for bit in hist[t : t + m]:
            ctx = 2 * ctx + bit
        for sign, src in ((1, s1), (-1, s0)):
            p = src.p_one[ctx]
            total += sign * math.log(p if seq[t] else 1 - p)
    return total


def test_counter_equals_the_log_likelihood_ratio_for_every_sequence_up_to_length_12() -> None:
    rng = np.random.default_rng(5)
    s0, s1 = U.MarkovSource.random(1, rng), U.MarkovSource.random(1, rng)
    clf = U.markov_classifier(s0, s1)
    raw = U.markov_classifier(s0, s1, startup_correction=False)
    assert (clf.neurons, clf.synapses) == (1 + 4 + 1, 1 + 4 * 2 + 4)
    assert clf.circuit.v0[clf.circuit.output] == -clf.weights[0]
    sequences, differ = 0, 0
    for n in range(1, 13):
        x = U.all_sequences(n, 1)
        score = clf.score(x).numpy()
        seqs = x[:, :, 0].numpy().astype(int).T
        llr = np.array([_llr_by_hand(s0, s1, list(s)) for s in seqs])
        np.testing.assert_allclose(score, llr, rtol=0, atol=1e-9)
        assert np.array_equal(clf.decide(x).numpy(), (llr > 0).astype(int))
        differ += int((raw.decide(x).numpy() != (llr > 0)).sum())
        sequences += x.shape[1]
    assert sequences == 8190
    assert differ > 0  # without the v0 correction some decisions are wrong


@pytest.mark.parametrize("m", [1, 2, 3])
def test_circuit_reaches_the_exact_bayes_accuracy(m: int) -> None:
    rng = np.random.default_rng(m)
    s0, s1 = U.MarkovSource.random(m, rng), U.MarkovSource.random(m, rng)
    clf = U.markov_classifier(s0, s1)
    assert clf.neurons == m + 2 ** (m + 1) + 1
    x = U.all_sequences(10, 1)
    xs = x[:, :, 0].numpy().astype(np.int64)
    p0, p1 = np.exp(s0.log_prob(xs)), np.exp(s1.log_prob(xs))
    assert math.isclose(p0.sum(), 1.0) and math.isclose(p1.sum(), 1.0)
    d = clf.decide(x).numpy().astype(bool)
    accuracy = 0.5 * (p1[d].sum() + p0[~d].sum())
    assert accuracy == pytest.approx(0.5 * np.maximum(p0, p1).sum(), abs=1e-12)
    assert torch.equal(clf.decide(x.float()), clf.decide(x))
    # the module bridge gives the same counter
    _, v = clf.circuit.to_module()(torch.cat([x, x.new_zeros(2, *x.shape[1:])]), return_state=True)
    np.testing.assert_allclose(v[:, clf.circuit.output].numpy(), clf.score(x).numpy(), atol=1e-12)


def test_markov_source_sampling_matches_its_probabilities() -> None:
    rng = np.random.default_rng(0)
    src = U.MarkovSource(np.array([0.2, 0.7, 0.4, 0.9]), 2)
    x = src.sample(12, 20000, rng)
    ctx = src.contexts(x)
    for c in range(4):
        freq = x[ctx == c].mean()
        assert abs(freq - src.p_one[c]) < 0.02, c


def test_classifier_errors() -> None:
    with pytest.raises(ValueError, match="strictly in"):
        U.MarkovSource(np.array([0.0, 0.5]), 1)
    with pytest.raises(ValueError, match="different orders"):
        rng = np.random.default_rng(0)
        U.markov_classifier(U.MarkovSource.random(1, rng), U.MarkovSource.random(2, rng))
    with pytest.raises(ValueError, match=r"shape \[4\]"):
        U.counter_classifier(np.zeros(3), 1, 1)
