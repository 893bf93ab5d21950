"""Spike-train classification by counters of window detectors (spec ``universal.md`` §5.1).

A bank of minterm detectors (one per window pattern of ``d(m+1)`` bits, after ``d m`` relays)
runs over the sequence; each detector feeds a **counter**, a neuron with β = 1 and θ = +inf (it
never fires, so it never resets) that adds the pattern's weight ``a_p`` whenever its detector
fires. The decision is read at the end: the counter potential after step ``n + 2`` (the
latency of the detectors plus one) is ``sum_p a_p count_p`` over the windows at ``t = 1..n``.

**Start-up correction.** At step 1 the detectors evaluate the all-padding window at ``t = 0``, so
the all-zero-pattern detector fires once before any input; the counter starts from
``v0 = -a_0`` to cancel it (``startup_correction=True``).

:class:`MarkovSource` is an order-m binary Markov source started from the all-zero state, with
exact log-probabilities; :func:`markov_classifier` builds the Bayes decision between two sources
(equal priors): the sign of the log-likelihood ratio, whose pattern weights are
``a_p = log P_1(x_t | context) - log P_0(x_t | context)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from spikeforge.universal.circuit import Circuit, CircuitBuilder
from spikeforge.universal.compiler import _literal_sources, _window_literals
from spikeforge.universal.windows import all_windows, window_bits

__all__ = ["CounterClassifier", "MarkovSource", "counter_classifier", "markov_classifier"]

READOUT_DELAY = 2
"""The counter holds the windows at t = 1..n after step n + READOUT_DELAY."""


@dataclass(frozen=True, eq=False)
class CounterClassifier:
    """A detector bank with one counter (``circuit.output``) and its readout.

    ``score(x [n, B, d])`` is the counter potential after step ``n + 2`` ``[B]``;
    ``decide(x)`` is ``1`` where the score is ``> 0`` (class 1), else 0.
    """

    circuit: Circuit
    weights: np.ndarray
    startup_correction: bool

    @property
    def neurons(self) -> int:
        return self.circuit.neurons

    @property
    def synapses(self) -> int:
        return self.circuit.synapses

    @property
    def biases(self) -> int:
        return self.circuit.biases

    @property
    def latency(self) -> int:
        """Steps after the last input at which the score is read."""
        return READOUT_DELAY

    def score(self, x: Tensor, dtype: torch.dtype | None = None) -> Tensor:
        """The counter potential ``[B]`` after step ``n + 2`` for input spikes ``x [n, B, d]``."""
        padded = torch.cat([x, x.new_zeros(READOUT_DELAY, *x.shape[1:])])
        _, v = self.circuit.simulate(padded, dtype)
        return v[:, self.circuit.output]

    def decide(self, x: Tensor, dtype: torch.dtype | None = None) -> Tensor:
        """Class decisions ``[B]`` (int64): 1 where the score is positive."""
        return (self.score(x, dtype) > 0).long()


def counter_classifier(
    weights: np.ndarray, inputs: int, memory: int, startup_correction: bool = True
) -> CounterClassifier:
    """Detectors for every window pattern (``2**n_w`` of them) and one counter adding
    ``weights[p]`` (indexed as :mod:`spikeforge.universal.windows`) per detected pattern ``p``.

    Counts: ``N = dm + 2**n_w + 1``, ``synapses = dm + 2**n_w (n_w + 1)`` (zero weights are not
    synapses), biases: detectors with ``|P| != 1`` plus nothing for the counter.
    """
    n_w = window_bits(inputs, memory)
    weights = np.asarray(weights, dtype=np.float64)
    if weights.shape != (2**n_w,):
        raise ValueError(f"weights must have shape [{2**n_w}] (2**n_w), got {list(weights.shape)}")
    if not np.all(np.isfinite(weights)):
        raise ValueError("pattern weights must be finite")
    b = CircuitBuilder(inputs)
    literals = _window_literals(_literal_sources(b, inputs, memory), memory)
    bits = all_windows(inputs, memory).reshape(2**n_w, n_w)
    detectors = []
    for idx, pattern in enumerate(bits):
        det = b.add_neuron(f"p{idx}", bias=1 - int(pattern.sum()))
        for src, bit in zip(literals, pattern, strict=True):
            b.connect(src, det, 1 if bit else -1)
        detectors.append(det)
    v0 = -float(weights[0]) if startup_correction else 0.0
    counter = b.add_neuron("counter", beta=1.0, threshold=float("inf"), v0=v0)
    for det, a in zip(detectors, weights, strict=True):
        if a != 0:
            b.connect(det, counter, float(a))
    circuit = b.build(
        counter,
        latency=READOUT_DELAY,
        memory=memory,
        construction="counter classifier" + ("" if startup_correction else " (no v0 fix)"),
    )
    return CounterClassifier(circuit, weights, startup_correction)


@dataclass(frozen=True)
class MarkovSource:
    """Order-``memory`` binary Markov source: ``P(x_t = 1 | x_{t-m..t-1}) = p_one[context]``,
    context index = the ``m`` previous bits read as a binary number (oldest most significant),
    started from the all-zero state (``x_t = 0`` for ``t <= 0``)."""

    p_one: np.ndarray
    memory: int

    def __post_init__(self) -> None:
        p = np.asarray(self.p_one, dtype=np.float64)
        if p.shape != (2**self.memory,):
            raise ValueError(f"p_one must have shape [{2**self.memory}], got {list(p.shape)}")
        if not np.all((p > 0) & (p < 1)):
            raise ValueError("transition probabilities must lie strictly in (0, 1)")
        object.__setattr__(self, "p_one", p)

    @classmethod
    def random(cls, memory: int, rng: np.random.Generator, low: float = 0.1) -> MarkovSource:
        """Probabilities drawn uniformly from ``[low, 1 - low]``."""
        return cls(rng.uniform(low, 1 - low, size=2**memory), memory)

    def contexts(self, x: np.ndarray) -> np.ndarray:
        """Context index of every step of ``x [n, B]`` (0/1), ``[n, B]``."""
        n = x.shape[0]
        padded = np.concatenate([np.zeros((self.memory, x.shape[1]), dtype=np.int64), x])
        ctx = np.zeros(x.shape, dtype=np.int64)
        for j in range(self.memory):  # bit of lag m - j
            ctx = ctx * 2 + padded[j : j + n]
        return ctx

    def log_prob(self, x: np.ndarray) -> np.ndarray:
        """Exact ``log P(x)`` of sequences ``x [n, B]`` (0/1), ``[B]``."""
        x = np.asarray(x, dtype=np.int64)
        p = self.p_one[self.contexts(x)]
        return np.where(x == 1, np.log(p), np.log1p(-p)).sum(0)

    def sample(self, n: int, batch: int, rng: np.random.Generator) -> np.ndarray:
        """``batch`` sequences of length ``n``, ``[n, batch]`` int64."""
        x = np.zeros((n, batch), dtype=np.int64)
        ctx = np.zeros(batch, dtype=np.int64)
        mask = 2**self.memory - 1
        for t in range(n):
            x[t] = rng.random(batch) < self.p_one[ctx]
            ctx = ((ctx << 1) | x[t]) & mask if self.memory else ctx
        return x

    def pattern_log_probs(self) -> np.ndarray:
        """``log P(x_t | context)`` for every window pattern ``(x_{t-m}, ..., x_t)`` as a
        ``[2**(m+1)]`` array in window-index order."""
        idx = np.arange(2 ** (self.memory + 1))
        ctx, bit = idx >> 1, idx & 1
        p = self.p_one[ctx]
        return np.where(bit == 1, np.log(p), np.log1p(-p))


def markov_classifier(
    source0: MarkovSource, source1: MarkovSource, startup_correction: bool = True
) -> CounterClassifier:
    """The Bayes decision (equal priors) between two order-m sources: the counter adds the
    log-likelihood ratio ``a_p`` of every window pattern, so its score is ``log P_1(x) -
    log P_0(x)``; ``decide`` returns 1 where it is positive. ``N = m + 2**(m+1) + 1``."""
    if source0.memory != source1.memory:
        raise ValueError(f"the sources have different orders {source0.memory} and {source1.memory}")
    a = source1.pattern_log_probs() - source0.pattern_log_probs()
    return counter_classifier(a, 1, source0.memory, startup_correction)
