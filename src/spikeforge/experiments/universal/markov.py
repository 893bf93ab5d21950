"""Spike-train classification between two order-m Markov sources (spec ``universal.md`` §5.1):
the constructed counter circuit (Bayes-optimal by construction) against a BPTT-trained LIF SNN
built from :mod:`spikeforge.core` with more neurons.

Every accuracy is **exact**: all ``2**n`` sequences of length ``n`` are enumerated and weighted by
their probability under each source (equal priors), so no test-set sampling noise enters. The
Bayes accuracy is ``sum_x max(P_0(x), P_1(x)) / 2``. The SNN trains on fresh samples each step.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from spikeforge import universal as U
from spikeforge.core import LIF, MultiStep

__all__ = [
    "MarkovSettings",
    "MarkovTask",
    "SpikingDetector",
    "make_task",
    "run_circuit",
    "train_snn",
]


@dataclass(frozen=True)
class MarkovSettings:
    """Sequence length, training budget and seeds of the classification experiment."""

    length: int = 14
    steps: int = 3000
    batch: int = 256
    lr: float = 1e-2
    eval_every: int = 50
    seeds: tuple[int, ...] = (0, 1, 2)
    source_seed: int = 0
    hidden_factor: int = 1  # neurons per hidden layer = hidden_factor x the circuit's neurons


@dataclass(frozen=True)
class MarkovTask:
    """Two sources of order ``memory``, every sequence of ``length`` steps and their exact
    probabilities under each source."""

    memory: int
    source0: U.MarkovSource
    source1: U.MarkovSource
    x: Tensor  # [n, 2**n, 1] float64
    p0: np.ndarray
    p1: np.ndarray

    @property
    def bayes_accuracy(self) -> float:
        return float(0.5 * np.maximum(self.p0, self.p1).sum())

    def accuracy(self, decisions: np.ndarray) -> float:
        """Exact accuracy of decisions ``[2**n]`` (1 = source 1) over the enumerated sequences."""
        d = np.asarray(decisions).astype(bool)
        return float(0.5 * (self.p1[d].sum() + self.p0[~d].sum()))


def make_task(memory: int, length: int, seed: int) -> MarkovTask:
    """Two random sources (probabilities uniform in [0.1, 0.9], drawn from ``seed`` and
    ``memory``) and the enumeration of all sequences of ``length``."""
    rng = np.random.default_rng([seed, memory])
    s0 = U.MarkovSource.random(memory, rng)
    s1 = U.MarkovSource.random(memory, rng)
    x = U.all_sequences(length, 1)
    xs = x[:, :, 0].numpy().astype(np.int64)
    return MarkovTask(memory, s0, s1, x, np.exp(s0.log_prob(xs)), np.exp(s1.log_prob(xs)))


def run_circuit(task: MarkovTask) -> dict[str, Any]:
    """The constructed classifier with and without the v0 start-up correction: counts, exact
    accuracy, and the largest gap between its score and the exact log-likelihood ratio."""
    xs = task.x[:, :, 0].numpy().astype(np.int64)
    llr = task.source1.log_prob(xs) - task.source0.log_prob(xs)
    out: dict[str, Any] = {}
    for name, fix in (("corrected", True), ("uncorrected", False)):
        clf = U.markov_classifier(task.source0, task.source1, startup_correction=fix)
        score = clf.score(task.x).numpy()
        decisions = score > 0
        out[name] = {
            "accuracy": task.accuracy(decisions),
            "max_abs_score_minus_llr": float(np.abs(score - llr).max()),
            "decisions_differing_from_bayes": int((decisions != (llr > 0)).sum()),
            "neurons": clf.neurons,
            "synapses": clf.synapses,
            "biases": clf.biases,
            "latency": clf.latency,
        }
        f32 = clf.score(task.x.float()).numpy() > 0
        out[name]["float32_decisions_equal"] = bool((f32 == decisions).all())
    return out


class SpikingDetector(nn.Module):
    """Input ``[T, B, 1]`` -> Linear -> LIF -> Linear -> LIF (``hidden`` neurons each, τ = 2,
    hard reset, atan surrogate) -> a linear readout summed over time: a logit ``[B]``. Its
    spiking neurons number ``2 * hidden``."""

    def __init__(self, hidden: int) -> None:
        super().__init__()
        lif = {"tau": 2.0, "decay_input": False, "reset": "zero"}
        self.layer1 = MultiStep(nn.Linear(1, hidden))
        self.lif1 = LIF(**lif)
        self.layer2 = MultiStep(nn.Linear(hidden, hidden))
        self.lif2 = LIF(**lif)
        self.readout = MultiStep(nn.Linear(hidden, 1))
        self.spiking_neurons = 2 * hidden

    def forward(self, x: Tensor) -> Tensor:
        h = self.lif2(self.layer2(self.lif1(self.layer1(x))))
        return self.readout(h).sum(0)[:, 0]


def train_snn(task: MarkovTask, hidden: int, settings: MarkovSettings, seed: int) -> dict[str, Any]:
    """Train a :class:`SpikingDetector` by BPTT (Adam, BCE on fresh samples of both sources,
    equal priors) and evaluate its exact accuracy every ``eval_every`` steps. Returns the curve,
    the first step within 1 point of the Bayes accuracy (``None``: never) and the best and final
    accuracies."""
    torch.manual_seed(seed)
    rng = np.random.default_rng([seed, task.memory, 7])
    net = SpikingDetector(hidden)
    opt = torch.optim.Adam(net.parameters(), lr=settings.lr)
    x_eval = task.x.float()
    bayes = task.bayes_accuracy
    curve: list[tuple[int, float]] = []
    within: int | None = None
    start = time.perf_counter()
    for step in range(1, settings.steps + 1):
        y = rng.integers(0, 2, settings.batch)
        a = task.source0.sample(settings.length, settings.batch, rng)
        b = task.source1.sample(settings.length, settings.batch, rng)
        xb = torch.tensor(np.where(y[None, :] == 1, b, a), dtype=torch.float32)[:, :, None]
        loss = nn.functional.binary_cross_entropy_with_logits(
            net(xb), torch.tensor(y, dtype=torch.float32)
        )
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % settings.eval_every == 0 or step == settings.steps:
            with torch.no_grad():
                acc = task.accuracy((net(x_eval) > 0).numpy())
            curve.append((step, acc))
            if within is None and acc >= bayes - 0.01:
                within = step
    accs = [a for _, a in curve]
    return {
        "seed": seed,
        "spiking_neurons": net.spiking_neurons,
        "parameters": sum(p.numel() for p in net.parameters()),
        "steps_to_within_1_point": within,
        "best_accuracy": max(accs),
        "final_accuracy": accs[-1],
        "curve": curve,
        "train_seconds": time.perf_counter() - start,
    }


def settings_dict(settings: MarkovSettings) -> dict[str, Any]:
    """JSON-ready settings."""
    return asdict(settings) | {"seeds": list(settings.seeds)}
