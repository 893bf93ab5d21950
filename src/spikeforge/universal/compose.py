"""Composition with latency alignment (spec ``universal.md`` §5).

``compose(g, [h_1, ..., h_k])`` builds ``f = g(h_1, ..., h_k)``: each inner circuit ``h_i``
(latency ``D_i``) gets ``D_max - D_i`` SKIP neurons after its output so that all arrive together,
and the aligned outputs become the input channels of ``g``. Latency ``D_max + D_g``; memory
``m_g + max_i m_i``; cost ``sum_i N(h_i) + sum_i (D_max - D_i) + N(g)`` neurons, additive.
"""

from __future__ import annotations

from collections.abc import Sequence

from spikeforge.universal.circuit import Circuit, CircuitBuilder

__all__ = ["compose", "composition_formula"]


def _check_latency(c: Circuit, role: str) -> int:
    if c.latency is None:
        raise ValueError(
            f"{role} {c.construction!r} has no fixed latency (a clock or a latch); "
            "only representations with a latency can be composed"
        )
    return c.latency


def composition_formula(outer: Circuit, inners: Sequence[Circuit]) -> dict[str, int]:
    """Neurons, synapses and biases ``compose`` produces: the parts' counts plus one neuron and
    one synapse per alignment SKIP."""
    latencies = [_check_latency(h, "inner circuit") for h in inners]
    skips = sum(max(latencies) - d for d in latencies)
    parts = [*inners, outer]
    return {
        "neurons": sum(c.neurons for c in parts) + skips,
        "synapses": sum(c.synapses for c in parts) + skips,
        "biases": sum(c.biases for c in parts),
        "skips": skips,
    }


def compose(
    outer: Circuit,
    inners: Sequence[Circuit],
    wiring: Sequence[Sequence[int]] | None = None,
    inputs: int | None = None,
) -> Circuit:
    """The circuit of ``outer(inners[0], ..., inners[k-1])``.

    Args:
        outer: g, with ``outer.inputs == len(inners)``.
        inners: h_1..h_k, each with a fixed latency.
        wiring: for each inner circuit, the composite's input channels feeding its channels
            (default: every inner circuit reads channels ``0..d-1``, all with the same ``d``).
        inputs: the composite's number of channels (default: as the wiring needs).
    """
    if not inners:
        raise ValueError("compose needs at least one inner circuit")
    if outer.inputs != len(inners):
        raise ValueError(f"the outer circuit has {outer.inputs} inputs, got {len(inners)} inners")
    d_outer = _check_latency(outer, "outer circuit")
    latencies = [_check_latency(h, "inner circuit") for h in inners]
    if wiring is None:
        widths = {h.inputs for h in inners}
        if len(widths) != 1:
            raise ValueError(
                f"inner circuits read different numbers of channels {sorted(widths)}; pass wiring"
            )
        wiring = [list(range(inners[0].inputs)) for _ in inners]
    if len(wiring) != len(inners):
        raise ValueError(f"wiring: expected {len(inners)} entries, got {len(wiring)}")
    for i, (h, w) in enumerate(zip(inners, wiring, strict=True)):
        if len(w) != h.inputs:
            raise ValueError(f"wiring[{i}] names {len(w)} channels, inner {i} reads {h.inputs}")
    needed = 1 + max((k for w in wiring for k in w), default=-1)
    d = needed if inputs is None else inputs
    if d < needed:
        raise ValueError(f"inputs = {d}, but the wiring uses channel {needed - 1}")
    d_max = max(latencies)
    b = CircuitBuilder(d)
    aligned = []
    for i, (h, w, lat) in enumerate(zip(inners, wiring, latencies, strict=True)):
        refs = b.add_circuit(h, [b.input(k) for k in w], prefix=f"h{i}.")
        src = refs[h.output]
        for j in range(d_max - lat):
            skip = b.add_neuron(f"h{i}.align{j + 1}")
            b.connect(src, skip, 1)
            src = skip
        aligned.append(src)
    refs = b.add_circuit(outer, aligned, prefix="g.")
    memory = None
    if outer.memory is not None and all(h.memory is not None for h in inners):
        memory = outer.memory + max(h.memory for h in inners)  # type: ignore[type-var]
    periods = {c.period for c in (*inners, outer) if c.period is not None}
    return b.build(
        refs[outer.output],
        latency=d_max + d_outer,
        memory=memory,
        period=None if not periods else _lcm(periods),
        construction=f"{outer.construction}({', '.join(h.construction for h in inners)})",
        formula={k: v for k, v in composition_formula(outer, inners).items() if k != "skips"},
    )


def _lcm(values: set[int]) -> int:
    from math import lcm

    return lcm(*values)
