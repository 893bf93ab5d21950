"""Compile a finite-memory (or periodic) Boolean function of spike-train windows to a circuit
(spec ``universal.md`` §4).

Constructions, all with latency D = 2 (``S_o[t + 2] = f(X)[t]`` for every t >= 1):

* **DNF**: a delay line of ``m`` relays per input (``r_{k,j}[t] = X_k[t - j]``), one minterm
  detector per window pattern with ``F = 1`` (lag-0 literal straight from the input channel,
  lag ``j`` from ``r_{k,j}``; weights ±1, bias ``1 - |P|``, θ = 1) and an OR output.
  ``N = dm + K + 1``, ``synapses = dm + K n_w + K``, ``biases = #{patterns with |P| != 1}``.
* **complement**: detectors of the ``K0`` patterns with ``F = 0`` and a NOR output (weights -1,
  bias 1): ``N = dm + K0 + 1``, ``synapses = dm + K0 n_w + K0``, biases as DNF plus 1.
* **THRESH** (symmetric ``F = g(number of ones)``): one THRESH_k unit ``[c >= k]`` (fan-in n_w,
  θ = k) for every ``k`` where ``g(k) != g(k - 1)`` (J units) and an output with weights
  ``g(k) - g(k - 1)`` and bias ``g(0)``. ``N = dm + J + 1``, ``synapses = dm + J n_w + J``,
  ``biases = [g(0) != 0]``. (The spec counts all n_w units; the ones with output weight 0 are
  dropped here, so parity, whose g changes at every k, keeps the spec's counts.)
* **periodic** (period P): P phase clocks (CLOCK_P with ``v0 = P - r``, ``v0 = 0`` for ``r = 0``,
  so ``C_r`` fires at ``t = r (mod P)``); every detector of ``F_r`` gets a +1 literal from
  ``C_r`` (bias ``1 - (|P| + 1)``). ``N = dm + P + sum_r K_r + 1``,
  ``synapses = dm + sum_r K_r (n_w + 2)``, ``biases = P + #{detectors with |P| != 0}`` (+1 for
  the complement form).

:func:`compile` builds the smallest (neurons, then synapses, then biases) of the applicable
constructions; ``method=`` forces one. Outputs at steps ``1..D`` are start-up transients.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from spikeforge.universal.circuit import Circuit, CircuitBuilder, Ref
from spikeforge.universal.windows import (
    all_windows,
    popcounts,
    symmetric_profile,
    truth_table,
    window_bits,
)

__all__ = [
    "LATENCY",
    "MAX_DETECTORS",
    "METHODS",
    "candidate_formulas",
    "compile",
    "compile_symmetric",
    "complement_formula",
    "dnf_formula",
    "thresh_formula",
]

LATENCY = 2
"""Latency of every compiled construction."""
MAX_DETECTORS = 4096
"""Default limit on minterm detectors (the DNF is exponential in the window size)."""
METHODS = ("auto", "dnf", "complement", "thresh")


# -- closed-form counts ---------------------------------------------------------------------


def _minterm_formula(
    table: np.ndarray, inputs: int, memory: int, value: int, periodic: bool
) -> dict[str, int]:
    n_w = window_bits(inputs, memory)
    table = np.asarray(table).reshape(-1, 2**n_w)
    phases = table.shape[0]
    counts = popcounts(inputs, memory)
    chosen = table == value
    k = int(chosen.sum())
    dm = inputs * memory
    if periodic:
        neurons = dm + phases + k + 1
        synapses = dm + k * (n_w + 1) + k
        biases = phases + int((chosen & (counts[None, :] != 0)).sum())
    else:
        neurons = dm + k + 1
        synapses = dm + k * n_w + k
        biases = int((chosen & (counts[None, :] != 1)).sum())
    return {
        "neurons": neurons,
        "synapses": synapses,
        "biases": biases + (value == 0),
        "detectors": k,
    }


def dnf_formula(
    table: np.ndarray, inputs: int, memory: int, periodic: bool = False
) -> dict[str, int]:
    """Counts of the DNF construction for a truth table (``[2**n_w]`` or ``[P, 2**n_w]``)."""
    return _minterm_formula(table, inputs, memory, 1, periodic)


def complement_formula(
    table: np.ndarray, inputs: int, memory: int, periodic: bool = False
) -> dict[str, int]:
    """Counts of the complement (NOR of false patterns) construction."""
    return _minterm_formula(table, inputs, memory, 0, periodic)


def thresh_formula(g: Sequence[int], inputs: int, memory: int) -> dict[str, int]:
    """Counts of the THRESH construction of a symmetric function ``F = g(count)``."""
    g = np.asarray(g)
    n_w = window_bits(inputs, memory)
    j = int(np.count_nonzero(np.diff(g)))
    dm = inputs * memory
    return {
        "neurons": dm + j + 1,
        "synapses": dm + j * n_w + j,
        "biases": int(g[0] != 0),
        "detectors": j,
    }


def candidate_formulas(
    table: np.ndarray, inputs: int, memory: int, period: int | None = None
) -> dict[str, dict[str, int]]:
    """The closed-form counts of every construction that applies to ``table``."""
    periodic = period is not None
    out = {
        "dnf": dnf_formula(table, inputs, memory, periodic),
        "complement": complement_formula(table, inputs, memory, periodic),
    }
    if not periodic:
        g = symmetric_profile(table, inputs, memory)
        if g is not None:
            out["thresh"] = thresh_formula(g, inputs, memory)
    return out


# -- building -------------------------------------------------------------------------------


def _literal_sources(b: CircuitBuilder, inputs: int, memory: int) -> list[list[Ref]]:
    """``sources[k][lag]``: the input channel for lag 0, relay ``r_{k,lag}`` for lag >= 1."""
    sources = []
    for k in range(inputs):
        chain = [b.input(k)]
        for j in range(1, memory + 1):
            relay = b.add_neuron(f"r{k},{j}")
            b.connect(chain[-1], relay, 1)
            chain.append(relay)
        sources.append(chain)
    return sources


def _window_literals(sources: list[list[Ref]], memory: int) -> list[Ref]:
    """The source of every window bit, in window-index order (channel-major, oldest first)."""
    return [src for chain in sources for src in (chain[memory - j] for j in range(memory + 1))]


def _build_minterms(
    table: np.ndarray, inputs: int, memory: int, period: int | None, value: int
) -> Circuit:
    n_w = window_bits(inputs, memory)
    table = np.asarray(table).reshape(-1, 2**n_w)
    phases = table.shape[0]
    b = CircuitBuilder(inputs)
    literals = _window_literals(_literal_sources(b, inputs, memory), memory)
    clocks: list[Ref] = []
    if period is not None:
        for r in range(phases):
            v0 = 0 if r == 0 else phases - r
            clocks.append(b.add_neuron(f"phase{r}", beta=1.0, threshold=phases, bias=1.0, v0=v0))
    bits = all_windows(inputs, memory).reshape(2**n_w, n_w)
    detectors = []
    for r in range(phases):
        for idx in np.flatnonzero(table[r] == value):
            pattern = bits[idx]
            ones = int(pattern.sum()) + (period is not None)
            det = b.add_neuron(f"p{r},{idx}" if period is not None else f"p{idx}", bias=1 - ones)
            for src, bit in zip(literals, pattern, strict=True):
                b.connect(src, det, 1 if bit else -1)
            if period is not None:
                b.connect(clocks[r], det, 1)
            detectors.append(det)
    out = b.add_neuron("out", bias=0 if value == 1 else 1)
    for det in detectors:
        b.connect(det, out, 1 if value == 1 else -1)
    name = "DNF" if value == 1 else "complement"
    formula = _minterm_formula(table, inputs, memory, value, period is not None)
    return b.build(
        out,
        latency=LATENCY,
        memory=memory,
        period=period,
        construction=name + ("" if period is None else f" periodic P={period}"),
        formula=formula,
    )


def _build_thresh(g: np.ndarray, inputs: int, memory: int) -> Circuit:
    b = CircuitBuilder(inputs)
    literals = _window_literals(_literal_sources(b, inputs, memory), memory)
    units = []
    for k in range(1, g.shape[0]):
        step = int(g[k]) - int(g[k - 1])
        if step:
            unit = b.add_neuron(f"thresh{k}", threshold=k)
            for src in literals:
                b.connect(src, unit, 1)
            units.append((unit, step))
    out = b.add_neuron("out", bias=int(g[0]))
    for unit, step in units:
        b.connect(unit, out, step)
    return b.build(
        out,
        latency=LATENCY,
        memory=memory,
        construction="THRESH",
        formula=thresh_formula(g, inputs, memory),
    )


def _check_size(method: str, formula: dict[str, int], max_detectors: int) -> None:
    if formula["detectors"] > max_detectors:
        raise ValueError(
            f"the {method} construction needs {formula['detectors']} detectors, more than "
            f"max_detectors = {max_detectors}; raise the limit or compose smaller functions"
        )


def compile(
    fn: Callable[..., Any] | Any,
    inputs: int,
    memory: int,
    period: int | None = None,
    *,
    method: str = "auto",
    max_detectors: int = MAX_DETECTORS,
) -> Circuit:
    """A circuit representing ``f(X)[t] = F(window at t)`` with latency 2.

    Args:
        fn: ``fn(window)`` with ``window`` a ``[d, m + 1]`` 0/1 int8 array (lag 0 last), returning
            0/1; with a ``period`` P, ``fn(window, phase)`` with ``phase = t mod P``. Or a truth
            table (:mod:`spikeforge.universal.windows`).
        inputs: d, the number of input channels.
        memory: m, the number of past steps the window covers.
        period: None (time-invariant) or P >= 1.
        method: ``"auto"`` (smallest of the applicable constructions), ``"dnf"``,
            ``"complement"`` or ``"thresh"`` (symmetric functions, no period).
        max_detectors: refuse constructions with more minterm / THRESH units.

    The circuit's ``run(x [T, B, d])`` returns ``[T, B]`` with ``out[t + 1] = f(X)[t]``
    (0-based rows: row ``t - 1 + D``); rows 0 and 1 (steps 1..2) are start-up transients.
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {list(METHODS)}")
    table = truth_table(fn, inputs, memory, period)
    formulas = candidate_formulas(table, inputs, memory, period)
    if method == "auto":
        method = min(
            formulas,
            key=lambda k: (formulas[k]["neurons"], formulas[k]["synapses"], formulas[k]["biases"]),
        )
    elif method not in formulas:
        why = "has a period" if period is not None else "is not symmetric"
        raise ValueError(f"method {method!r} does not apply: the function {why}")
    _check_size(method, formulas[method], max_detectors)
    if method == "thresh":
        g = symmetric_profile(table, inputs, memory)
        assert g is not None
        return _build_thresh(g, inputs, memory)
    return _build_minterms(table, inputs, memory, period, 1 if method == "dnf" else 0)


def compile_symmetric(
    g: Callable[[int], Any] | Sequence[int],
    inputs: int,
    memory: int,
    *,
    max_detectors: int = MAX_DETECTORS,
) -> Circuit:
    """The THRESH construction of ``F = g(number of ones in the window)`` without enumerating
    windows (so it works for windows of any size). ``g``: a callable on ``0..n_w`` or a 0/1
    sequence of length ``n_w + 1``."""
    n_w = window_bits(inputs, memory)
    values = [g(c) for c in range(n_w + 1)] if callable(g) else list(g)
    if len(values) != n_w + 1:
        raise ValueError(f"g must give n_w + 1 = {n_w + 1} values, got {len(values)}")
    if any(v not in (0, 1, True, False) for v in values):
        raise ValueError(f"g must return 0 or 1, got {values}")
    profile = np.array([int(v) for v in values], dtype=np.int8)
    _check_size("thresh", thresh_formula(profile, inputs, memory), max_detectors)
    return _build_thresh(profile, inputs, memory)
