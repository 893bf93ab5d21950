"""The primitives of spec ``universal.md`` §3 as :class:`~spikeforge.universal.circuit.Circuit`
objects (β = 0 and θ = 1 unless stated; every one verified exhaustively in the tests).

Counts as (neurons, synapses, biases):

* ``skip()``: S[t] = x[t-1]; (1, 1, 0).
* ``delay(k)``: S[t] = x[t-k], a chain of k SKIPs; (k, k, 0).
* ``and_gate(d, P, Q)``: AND of channels P and of NOT channels Q, weights +1 / -1, bias
  1 - |P|; (1, |P| + |Q|, [|P| != 1]).
* ``or_gate(d)``: OR of d channels; (1, d, 0).  ``not_gate()``: weight -1, bias 1; (1, 1, 1).
* ``thresh(d, k)``: [sum of d channels >= k], θ = k; (1, d, 0).
* ``clock(m, phase)``: β = 1, bias 1, θ = m, v0 = phase; spikes at t = m - phase + jm; (1, 0, 1).
* ``leaky_clock(m, beta)``: the same with a leak β in (0, 1); (1, 0, 1).
* ``latch()``: L[t] = (SET[t-1] OR L[t-1]) AND NOT CLR[t-1]; (1, 3, 0).
* ``ceil(m)``: O[t+1] = [t = 0 (mod m)] AND (x spiked in (t - m, t]); (3, 6, 2).
"""

from __future__ import annotations

from collections.abc import Sequence

from spikeforge.universal.circuit import Circuit, CircuitBuilder

__all__ = [
    "and_gate",
    "ceil",
    "clock",
    "delay",
    "latch",
    "leaky_clock",
    "leaky_clock_potentials",
    "not_gate",
    "or_gate",
    "skip",
    "thresh",
]


def _formula(neurons: int, synapses: int, biases: int) -> dict[str, int]:
    return {"neurons": neurons, "synapses": synapses, "biases": biases}


def skip() -> Circuit:
    """SKIP (relay): one neuron, S[t] = x[t-1]; latency 1."""
    b = CircuitBuilder(1)
    n = b.add_neuron("skip")
    b.connect(b.input(0), n, 1)
    return b.build(n, latency=1, memory=0, construction="SKIP", formula=_formula(1, 1, 0))


def delay(k: int) -> Circuit:
    """DELAY_k: a chain of ``k >= 1`` SKIPs, S_k[t] = x[t-k]; latency k."""
    if k < 1:
        raise ValueError(f"DELAY_k needs k >= 1, got {k}")
    b = CircuitBuilder(1)
    src = b.input(0)
    for j in range(k):
        n = b.add_neuron(f"skip{j + 1}")
        b.connect(src, n, 1)
        src = n
    return b.build(src, latency=k, memory=0, construction=f"DELAY_{k}", formula=_formula(k, k, 0))


def and_gate(
    inputs: int, positive: Sequence[int] | None = None, negative: Sequence[int] = ()
) -> Circuit:
    """AND / minterm over the channels ``positive`` (must spike) and ``negative`` (must not):
    weights +1 / -1, bias 1 - |P|, θ = 1; latency 1. Default: every channel positive."""
    pos = list(range(inputs)) if positive is None else list(positive)
    neg = list(negative)
    if len(set(pos + neg)) != len(pos) + len(neg):
        raise ValueError(f"a channel is both positive and negative or repeated: {pos}, {neg}")
    if any(not 0 <= k < inputs for k in pos + neg):
        raise ValueError(f"channels must lie in 0..{inputs - 1}, got {pos + neg}")
    b = CircuitBuilder(inputs)
    n = b.add_neuron("and", bias=1 - len(pos))
    for k in pos:
        b.connect(b.input(k), n, 1)
    for k in neg:
        b.connect(b.input(k), n, -1)
    formula = _formula(1, len(pos) + len(neg), int(len(pos) != 1))
    return b.build(n, latency=1, memory=0, construction="AND", formula=formula)


def or_gate(inputs: int) -> Circuit:
    """OR of ``inputs`` channels (weights 1, θ = 1); latency 1."""
    b = CircuitBuilder(inputs)
    n = b.add_neuron("or")
    for k in range(inputs):
        b.connect(b.input(k), n, 1)
    return b.build(n, latency=1, memory=0, construction="OR", formula=_formula(1, inputs, 0))


def not_gate() -> Circuit:
    """NOT (weight -1, bias 1); latency 1."""
    b = CircuitBuilder(1)
    n = b.add_neuron("not", bias=1)
    b.connect(b.input(0), n, -1)
    return b.build(n, latency=1, memory=0, construction="NOT", formula=_formula(1, 1, 1))


def thresh(inputs: int, k: int) -> Circuit:
    """THRESH_k: fires iff at least ``k`` of the ``inputs`` channels spiked (θ = k); latency 1."""
    if k < 1:
        raise ValueError(f"THRESH_k needs k >= 1, got {k}")
    b = CircuitBuilder(inputs)
    n = b.add_neuron(f"thresh{k}", threshold=k)
    for j in range(inputs):
        b.connect(b.input(j), n, 1)
    formula = _formula(1, inputs, 0)
    return b.build(n, latency=1, memory=0, construction=f"THRESH_{k}", formula=formula)


def clock(m: int, phase: int = 0) -> Circuit:
    """CLOCK_m: β = 1, bias 1, θ = m, no inputs, ``v0 = phase``: first spike at t = m - phase,
    then every m steps. Integer parameters, so exact in floating point (the variant bias 1/m,
    θ = 1 is not)."""
    if m < 1:
        raise ValueError(f"CLOCK_m needs m >= 1, got {m}")
    if not 0 <= phase < m:
        raise ValueError(f"the phase of CLOCK_{m} must lie in 0..{m - 1}, got {phase}")
    b = CircuitBuilder(0)
    n = b.add_neuron(f"clock{m}", beta=1.0, threshold=m, bias=1.0, v0=phase)
    return b.build(n, period=m, construction=f"CLOCK_{m}", formula=_formula(1, 0, 1))


def leaky_clock_potentials(m: int, beta: float, bias: float = 1.0) -> tuple[float, float]:
    """``(V_{m-1}, V_m)`` with ``V_k = bias (1 - beta^k) / (1 - beta)``, computed by iterating
    ``V <- beta V + bias`` from 0 in float64."""
    v_prev, v = 0.0, 0.0
    for _ in range(m):
        v_prev, v = v, beta * v + bias
    return v_prev, v


def leaky_clock(m: int, beta: float, bias: float = 1.0, threshold: float | None = None) -> Circuit:
    """Leaky CLOCK_m (leak ``0 < beta < 1``): fires at t = m, 2m, ...; θ in (V_{m-1}, V_m]
    (default: the midpoint, away from rounding) and ``bias / (1 - beta) > θ``."""
    if m < 1:
        raise ValueError(f"CLOCK_m needs m >= 1, got {m}")
    if not 0 < beta < 1:
        raise ValueError(f"a leaky clock needs 0 < beta < 1, got {beta}")
    if bias <= 0:
        raise ValueError(f"a leaky clock needs a positive bias, got {bias}")
    v_prev, v_m = leaky_clock_potentials(m, beta, bias)
    theta = (v_prev + v_m) / 2 if threshold is None else float(threshold)
    if not v_prev < theta <= v_m:
        raise ValueError(f"threshold {theta} must lie in (V_{m - 1}, V_{m}] = ({v_prev}, {v_m}]")
    b = CircuitBuilder(0)
    n = b.add_neuron(f"leaky_clock{m}", beta=beta, threshold=theta, bias=bias)
    return b.build(n, period=m, construction=f"leaky CLOCK_{m}", formula=_formula(1, 0, 1))


def latch() -> Circuit:
    """LATCH (SR, clear priority) on channels (SET, CLR): w_set = +1, w_self = +1, w_clr = -2;
    L[t] = (SET[t-1] OR L[t-1]) AND NOT CLR[t-1]. A state machine: no fixed latency."""
    b = CircuitBuilder(2)
    n = b.add_neuron("latch")
    b.connect(b.input(0), n, 1)
    b.connect(n, n, 1)
    b.connect(b.input(1), n, -2)
    return b.build(n, construction="LATCH", formula=_formula(1, 3, 0))


def ceil(m: int) -> Circuit:
    """CEIL_m (spec §3.2): re-times spikes to the next multiple of m, merging spikes of a block:
    O[t+1] = [t = 0 (mod m)] AND (x has a spike in (t - m, t]). Neurons: C = CLOCK_m, L (+1 x,
    +1 self, -2 C), O (bias -2; +1 x, +1 L, +2 C). As a function: memory m - 1, period m,
    latency 1."""
    if m < 1:
        raise ValueError(f"CEIL_m needs m >= 1, got {m}")
    b = CircuitBuilder(1)
    c = b.add_neuron("clock", beta=1.0, threshold=m, bias=1.0)
    lt = b.add_neuron("since_tick")
    o = b.add_neuron("out", bias=-2.0)
    x = b.input(0)
    b.connect(x, lt, 1)
    b.connect(lt, lt, 1)
    b.connect(c, lt, -2)
    b.connect(x, o, 1)
    b.connect(lt, o, 1)
    b.connect(c, o, 2)
    return b.build(
        o,
        latency=1,
        memory=m - 1,
        period=m,
        construction=f"CEIL_{m}",
        formula=_formula(3, 6, 2),
    )
