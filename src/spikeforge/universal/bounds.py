"""The counting lower bound of spec ``universal.md`` §4, made explicit under stated assumptions.

There are ``2**(2**n_w)`` Boolean functions of a window of ``n_w`` bits. A circuit of **size**
``S = N + W`` (neurons plus synapses) whose parameters (leak, threshold, bias, initial potential,
weights) each take one of ``2**b`` values is described by at most

    bits(S) = S * (2 * ceil(log2(S + d)) + 4 b) + 2 * ceil(log2(S + 1)) + latency_bits

bits: per synapse its source (one of ``d + N``), target (one of ``N``) and weight; per neuron its
four parameters; the size, the output neuron and a latency below ``2**latency_bits``. Distinct
functions need distinct (circuit, latency) descriptions, so if ``bits(S) < 2**n_w`` some function
of ``n_w`` window bits needs a circuit larger than ``S``: :func:`size_lower_bound` is the
smallest ``S`` with ``bits(S) >= 2**n_w``. It is a worst-case bound over all functions of that
window size, not a bound for a particular function. spikeforge's derivation; the paper's bounds
and constants are unknown.
"""

from __future__ import annotations

from math import ceil, log2

__all__ = ["construction_precision", "description_bits", "size_lower_bound", "worst_case_size"]


def construction_precision(n_w: int, period: int = 1) -> int:
    """Bits ``b`` holding every parameter of the constructions for ``n_w`` window bits: integers
    of magnitude at most ``max(n_w + 1, period)`` plus a sign."""
    return 1 + ceil(log2(max(n_w + 1, period) + 1))


def description_bits(size: int, inputs: int, precision: int, latency_bits: int = 8) -> int:
    """``bits(S)`` of the module docstring."""
    return (
        size * (2 * ceil(log2(size + inputs)) + 4 * precision)
        + 2 * ceil(log2(size + 1))
        + latency_bits
    )


def size_lower_bound(n_w: int, inputs: int, precision: int | None = None) -> int:
    """The smallest size ``S = N + W`` with ``bits(S) >= 2**n_w``: some function of ``n_w``
    window bits on ``inputs`` channels needs a circuit of at least this size."""
    if n_w < 1 or inputs < 1:
        raise ValueError(f"n_w and inputs must be >= 1, got {n_w}, {inputs}")
    b = construction_precision(n_w) if precision is None else precision
    target = 2**n_w
    lo, hi = 1, 1
    while description_bits(hi, inputs, b) < target:
        hi *= 2
    while lo < hi:
        mid = (lo + hi) // 2
        if description_bits(mid, inputs, b) >= target:
            hi = mid
        else:
            lo = mid + 1
    return lo


def worst_case_size(inputs: int, memory: int) -> int:
    """Size ``N + W`` of the smaller of DNF / complement for a function with
    ``K = 2**(n_w - 1)`` true patterns (the worst case of ``min(K, K0)``)."""
    n_w = inputs * (memory + 1)
    k = 2 ** (n_w - 1)
    dm = inputs * memory
    return (dm + k + 1) + (dm + k * n_w + k)
