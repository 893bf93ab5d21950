"""Per-layer levels for PASCAL: the AL metric and a rule to levels (spec §5), the effective
time steps ``T_eff`` (spec §5.4) and latency accounting (spec §6).

**AL metric** (``get_stats.py`` of the official code): a ``bins``-bin histogram (default 5) of a
layer's QCFS outputs over ``[min, max]`` with counts ``h_1..h_n``;

* ``A = 1 - (k - 1)/(n - 1)``, ``k`` = number of bins whose count is ``>=`` the mean count;
* ``g``, ``kappa``: skewness and excess kurtosis of the vector of **bin counts** (population
  moments, as ``np.std``);
* ``b = (g^2 + 1) * (kappa + 3 n^2 / ((n - 2)(n - 3)))``;
* ``AL = A * b``.

High AL = mass concentrated in few bins. For 5 bins: a single occupied bin gives the maximum
``AL_max = 3.25 * 12.75 = 41.4375``, two equal end bins 9.33, equal counts 0. Degenerate cases:
all counts equal (``A = 0``) give 0; values all equal are binned into the middle bin (numpy's
range ``[v - 1/2, v + 1/2]``).

**Rule metric -> L** (the paper's rule is unknown, spec §5.2; this is spikeforge's documented
choice): with the AL metric normalised by its maximum, ``m = AL / AL_max`` in ``[0, 1]``,
``L = choices[j]`` where ``j`` is the number of ``thresholds`` that ``m`` reaches. Defaults:
``choices = (8, 4, 2, 1)``, ``thresholds = (0.25, 0.5, 0.75)``: diffuse histograms keep 8 levels,
a layer whose outputs sit almost all in one bin gets 1.

**T_eff** (``get_Teff.py``): ``T_eff,l = T_l (1 + (5 T_l - 2) r_l) / (1 + T_l r_l)`` with ``T_l``
the layer's levels and ``r_l`` a per-layer constant; the official numbers equal
``r_l = 4 / (3 fan_in_l)`` (fan-in of the Linear / Conv feeding the neuron layer) for most
layers: an inference from the numbers, used as the default. ``T_eff`` is the mean over neuron
layers. It is not a wall-clock latency.

**Latency** (wall-clock time steps, spec §6; never to be reported as "T"). A neuron layer with
input step count ``T_in`` and ``L`` levels integrates ``T_in`` steps, drains
``max(T_in, L) - 1`` and emits ``L``. The first layer (analog input) computes its level in one go
and is charged its ``L_0`` emission steps only. For a chain of levels ``L_0..L_{N-1}``:

* **pipelined** (a layer integrates while the previous one emits, same-step propagation; the
  output layer integrates during the last emission):
  ``L_0 + sum_{l=1}^{N-1} [max(L_{l-1}, L_l) - 1 + L_l]``;
* **sequential** (every layer buffers its whole input, then integrates it):
  ``L_0 + sum_{l=1}^{N-1} [L_{l-1} + max(L_{l-1}, L_l) - 1 + L_l] + L_{N-1}``, the last term
  being the output layer's integration.

:func:`network_latency` applies the same model to any traced network: streams occupy time slots
``start..finish``; a join of streams starts when its main input starts and the inputs summed into
its first step have finished (pipelined), or when all inputs are complete (sequential).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from spikeforge.convert.graph import Graph
from spikeforge.convert.pascal_neuron import drain_steps
from spikeforge.convert.qcfs import check_levels, qcfs_sites

#: default rule: normalised AL thresholds and the levels they select
DEFAULT_CHOICES: tuple[int, ...] = (8, 4, 2, 1)
DEFAULT_THRESHOLDS: tuple[float, ...] = (0.25, 0.5, 0.75)


def histogram(values: Tensor, bins: int = 5, weights: Tensor | None = None) -> Tensor:
    """Counts of ``values`` (any shape) in ``bins`` equal bins over ``[min, max]`` (the last bin
    includes ``max``; a value on an inner edge goes to the upper bin, as ``np.histogram``).
    ``weights`` (same shape) counts each value that many times. Returns ``[bins]`` float64.
    """
    v = values.detach().reshape(-1).to(torch.float64)
    w = torch.ones_like(v) if weights is None else weights.detach().reshape(-1).to(torch.float64)
    if v.numel() == 0:
        raise ValueError("the histogram of an empty tensor is undefined")
    low, high = float(v.min()), float(v.max())
    if low == high:
        low, high = low - 0.5, high + 0.5
    index = torch.floor((v - low) * bins / (high - low)).clamp(0, bins - 1).to(torch.int64)
    return torch.zeros(bins, dtype=torch.float64).index_add_(0, index, w)


def al_metric_from_counts(counts: Tensor) -> float:
    """The AL metric of a histogram's bin counts ``[n]`` (``n >= 4``; module docstring)."""
    h = counts.to(torch.float64)
    n = h.numel()
    if n < 4:
        raise ValueError(f"the AL metric needs at least 4 bins, got {n}")
    mean = h.mean()
    k = int((h >= mean).sum())
    a = 1.0 - (k - 1) / (n - 1)
    std = h.std(unbiased=False)
    if a == 0.0 or float(std) == 0.0:
        return 0.0
    centred = h - mean
    g = float((centred**3).mean() / std**3)
    kappa = float((centred**4).mean() / std**4) - 3.0
    b = (g * g + 1.0) * (kappa + 3.0 * n * n / ((n - 2) * (n - 3)))
    return a * b


def al_metric(values: Tensor, bins: int = 5) -> float:
    """The AL metric of a layer's QCFS outputs ``values`` (any shape; module docstring)."""
    return al_metric_from_counts(histogram(values, bins))


def al_max(bins: int = 5) -> float:
    """The largest AL metric for ``bins`` bins (every value in one bin)."""
    counts = torch.zeros(bins, dtype=torch.float64)
    counts[0] = 1.0
    return al_metric_from_counts(counts)


def levels_from_al(
    metrics: Sequence[float],
    *,
    bins: int = 5,
    choices: Sequence[int] = DEFAULT_CHOICES,
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
) -> list[int]:
    """Per-layer levels from AL metrics (the rule of the module docstring).

    ``m = AL / al_max(bins)``; ``L = choices[j]``, ``j`` = number of ``thresholds`` (increasing)
    with ``m >= threshold``. ``choices`` has one more entry than ``thresholds``.
    """
    if len(choices) != len(thresholds) + 1:
        raise ValueError("choices needs exactly one more entry than thresholds")
    if list(thresholds) != sorted(thresholds):
        raise ValueError(f"thresholds must increase, got {list(thresholds)}")
    for i, c in enumerate(choices):
        check_levels(c, f"choices[{i}]")
    top = al_max(bins)
    return [choices[sum(m / top >= t for t in thresholds)] for m in metrics]


@torch.no_grad()
def al_metrics(qnet: nn.Module, batches: Iterable[Tensor], bins: int = 5) -> list[float]:
    """The AL metric of every QCFS site of ``qnet`` (execution order, see
    :func:`~spikeforge.convert.qcfs.qcfs_sites`), from its outputs on ``batches`` (inputs
    ``[B, ...]``; the calibration data is explicit).

    The outputs of a QCFS layer are its levels ``k * lambda / L``; the histogram is built from the
    count of each level over all batches (memory independent of the data size). Runs ``qnet`` in
    eval mode and restores its mode.
    """
    sites = qcfs_sites(qnet)
    modules = {id(m): m for _, m in sites}
    tallies: dict[int, Tensor] = {}
    order = [id(m) for _, m in sites]
    calls: dict[int, int] = {}

    def hook(module: nn.Module, args: tuple[Tensor, ...], out: Tensor) -> None:
        # a module called at several sites: the n-th call of a forward is its n-th site
        key = id(module)
        slot = calls.get(key, 0)
        calls[key] = slot + 1
        site = [i for i, k in enumerate(order) if k == key][slot]
        level = torch.round(out / module.lam * module.levels).to(torch.int64).reshape(-1)
        counts = torch.bincount(level.cpu(), minlength=module.levels + 1).to(torch.float64)
        tallies[site] = tallies.get(site, 0) + counts[: module.levels + 1]

    handles = [m.register_forward_hook(hook) for m in modules.values()]
    was_training = qnet.training
    qnet.eval()
    try:
        for x in batches:
            calls.clear()
            qnet(x)
    finally:
        for handle in handles:
            handle.remove()
        qnet.train(was_training)
    if len(tallies) != len(sites):
        raise ValueError("no batches were given, or some QCFS sites never ran")
    metrics = []
    for i in range(len(sites)):
        counts = tallies[i]
        levels = torch.arange(counts.numel(), dtype=torch.float64)
        present = counts > 0
        metrics.append(al_metric_from_counts(histogram(levels[present], bins, counts[present])))
    return metrics


def t_eff_layer(levels: int, r: float) -> float:
    """``T_eff`` of one layer: ``T (1 + (5T - 2) r) / (1 + T r)`` with ``T = levels``."""
    t = float(levels)
    return t * (1.0 + (5.0 * t - 2.0) * r) / (1.0 + t * r)


def r_from_fan_in(fan_in: int) -> float:
    """The inferred ``r = 4 / (3 fan_in)`` (0 without a Linear / Conv feeding the layer)."""
    return 4.0 / (3.0 * fan_in) if fan_in > 0 else 0.0


@dataclass(frozen=True)
class TEff:
    """Effective time steps: ``per_layer`` (neuron-layer path -> T_eff,l) and their ``mean``."""

    per_layer: dict[str, float]
    mean: float


def t_eff(levels: Sequence[int], fan_ins: Sequence[int], names: Sequence[str] = ()) -> TEff:
    """``T_eff`` of layers with these levels and fan-ins (``r = 4 / (3 fan_in)``)."""
    if len(levels) != len(fan_ins):
        raise ValueError("levels and fan_ins need one entry per layer")
    keys = list(names) or [str(i) for i in range(len(levels))]
    values = [t_eff_layer(lv, r_from_fan_in(f)) for lv, f in zip(levels, fan_ins, strict=True)]
    mean = sum(values) / len(values) if values else 0.0
    return TEff(dict(zip(keys, values, strict=True)), mean)


@dataclass(frozen=True)
class Latency:
    """Wall-clock time steps of one PASCAL inference (module docstring)."""

    pipelined: int
    sequential: int


def chain_latency(levels: Sequence[int]) -> Latency:
    """Latency of a chain of neuron layers with levels ``L_0..L_{N-1}`` followed by an output
    layer (the formulas of the module docstring)."""
    ls = [check_levels(v, f"levels[{i}]") for i, v in enumerate(levels)]
    if not ls:
        return Latency(0, 0)
    pipelined = ls[0] + sum(max(a, b) - 1 + b for a, b in itertools.pairwise(ls))
    sequential = ls[0] + sum(a + max(a, b) - 1 + b for a, b in itertools.pairwise(ls)) + ls[-1]
    return Latency(pipelined, sequential)


def network_latency(graph: Graph, steps: dict[int, int]) -> Latency:
    """Latency of a traced network (module docstring); ``steps``: step count of every stream
    node (after :func:`~spikeforge.convert.graph.resolve_main`)."""
    start: dict[int, int] = {}
    finish: dict[int, int] = {}
    ready: dict[int, int] = {}  # sequential: slot when the whole stream is available
    analog: dict[int, bool] = {}
    for node in graph.nodes:
        i = node.index
        if node.kind == "static":
            continue
        if node.kind == "input":
            start[i], finish[i], ready[i], analog[i] = 0, 0, 0, True
            continue
        inputs = node.streams
        analog[i] = all(analog[j] for j in inputs) and node.kind != "neuron"
        if node.kind == "neuron":
            j = inputs[0]
            if analog[j]:
                start[i], finish[i] = 1, node.levels
                ready[i] = node.levels
            else:
                drain = drain_steps(steps[j], node.levels)
                start[i] = finish[j] + drain + 1
                finish[i] = finish[j] + drain + node.levels
                ready[i] = ready[j] + steps[j] + drain + node.levels
            continue
        main = node.main
        begin = start[main]
        for j in inputs:
            begin = max(begin, finish[j] if steps[j] != steps[i] else start[j])
        start[i], finish[i] = begin, begin + steps[i] - 1
        ready[i] = max(ready[j] for j in inputs)
    out = graph.output
    sequential = ready[out] + (
        0 if graph.nodes[out].kind == "neuron" or analog[out] else steps[out]
    )
    return Latency(finish[out], sequential)


__all__ = [
    "DEFAULT_CHOICES",
    "DEFAULT_THRESHOLDS",
    "Latency",
    "TEff",
    "al_max",
    "al_metric",
    "al_metric_from_counts",
    "al_metrics",
    "chain_latency",
    "histogram",
    "levels_from_al",
    "network_latency",
    "r_from_fan_in",
    "t_eff",
    "t_eff_layer",
]
