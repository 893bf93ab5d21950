"""The table of constructions of ``spikeforge reproduce universal``: each circuit is built,
counted by introspection, compared with its closed-form counts and checked exhaustively against
the function evaluated directly on every window of every input sequence
(:func:`spikeforge.universal.check_exhaustive`)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from spikeforge import universal as U
from spikeforge.universal.bounds import size_lower_bound, worst_case_size

__all__ = ["Row", "construction_rows", "measure_row", "random_tables"]


@dataclass(frozen=True)
class Row:
    """One construction: a name, the function as ``fn(window)`` (``fn(window, phase)`` with a
    period), its window (d, m, period), the circuit and the input length checked."""

    name: str
    fn: Callable[..., Any]
    inputs: int
    memory: int
    period: int | None
    circuit: U.Circuit
    length: int


def _parity(w: np.ndarray) -> int:
    return int(w.sum() % 2)


def _majority(w: np.ndarray) -> int:
    return int(w.sum() >= 3)


def _ago3(w: np.ndarray) -> int:
    return int(w[0, 0])


def _xor(w: np.ndarray) -> int:
    return int(w[0, 0] ^ w[0, 1])


def _two_input(w: np.ndarray) -> int:
    return int((w[0, 1] and w[1, 0]) or (w[1, 1] and not w[0, 0]))


def _alternating(w: np.ndarray, phase: int) -> int:
    """x[t] AND x[t-1] at even t, x[t] OR x[t-1] at odd t."""
    return int(w[0].all() if phase == 0 else w[0].any())


def _ceil_fn(w: np.ndarray, phase: int) -> int:
    return int(phase == 0 and w.any())


def _composite(w: np.ndarray) -> int:
    """parity(x1[t-2..t]) AND x2[t]."""
    return int(w[0].sum() % 2 == 1 and w[1, -1] == 1)


def _compiled(
    name: str,
    fn: Callable[..., Any],
    d: int,
    m: int,
    method: str = "auto",
    period: int | None = None,
    length: int = 8,
) -> Row:
    circuit = U.compile(fn, inputs=d, memory=m, period=period, method=method)
    return Row(name, fn, d, m, period, circuit, length)


def construction_rows() -> list[Row]:
    """The constructions of the table (spec §4 table, CEIL_m, a periodic function and the §5
    composition against the flat compile of the same function)."""
    rows = [
        _compiled("XOR(x[t], x[t-1]) DNF", _xor, 1, 1, "dnf"),
        _compiled("parity of 4 steps DNF", _parity, 1, 3, "dnf"),
    ]
    for m in (2, 3, 5):
        rows.append(_compiled(f"parity of {m + 1} steps THRESH", _parity, 1, m, "thresh"))
    rows += [
        _compiled("spike exactly 3 steps ago DNF", _ago3, 1, 3, "dnf"),
        _compiled("spike exactly 3 steps ago complement", _ago3, 1, 3, "complement"),
        _compiled("majority (>= 3 of 5) DNF", _majority, 1, 4, "dnf"),
        _compiled("majority (>= 3 of 5) THRESH", _majority, 1, 4, "thresh"),
        _compiled(
            "(x1[t] and x2[t-1]) or (x2[t] and not x1[t-1]) DNF", _two_input, 2, 1, "dnf", None, 6
        ),
        _compiled("AND / OR of x[t], x[t-1] by phase (P = 2)", _alternating, 1, 1, period=2),
    ]
    for m in range(1, 5):
        rows.append(Row(f"CEIL_{m} (3-neuron construction)", _ceil_fn, 1, m - 1, m, U.ceil(m), 13))
        rows.append(
            _compiled(
                f"CEIL_{m} compiled as a periodic table", _ceil_fn, 1, m - 1, period=m, length=13
            )
        )
    parity3 = U.compile(_parity, inputs=1, memory=2, method="thresh")
    composite = U.compose(U.and_gate(2), [parity3, U.skip()], wiring=[[0], [1]])
    rows += [
        Row("parity(x1[t-2..t]) and x2[t], composed", _composite, 2, 2, None, composite, 9),
        _compiled("parity(x1[t-2..t]) and x2[t], flat compile", _composite, 2, 2, length=7),
    ]
    return rows


def measure_row(row: Row) -> dict[str, Any]:
    """Introspected counts, formula counts, the exhaustive check and the counting bound."""
    c = row.circuit
    start = time.perf_counter()
    check = U.check_exhaustive(c, row.fn, row.length, row.memory, row.period)
    n_w = row.inputs * (row.memory + 1)
    formula = {k: v for k, v in (c.formula or {}).items() if k in ("neurons", "synapses", "biases")}
    measured = {"neurons": c.neurons, "synapses": c.synapses, "biases": c.biases}
    return {
        "name": row.name,
        "construction": c.construction,
        "inputs": row.inputs,
        "memory": row.memory,
        "period": row.period,
        "window_bits": n_w,
        "latency": c.latency,
        "measured": measured,
        "formula": formula,
        "counts_match_formula": measured == formula,
        "size": c.neurons + c.synapses,
        "lower_bound_size_worst_case": size_lower_bound(n_w, row.inputs),
        "worst_case_construction_size": worst_case_size(row.inputs, row.memory),
        "check": check | {"length": row.length, "seconds": time.perf_counter() - start},
    }


def random_tables(seed: int = 0) -> dict[str, Any]:
    """30 random truth tables (d in {1, 2}, m in {0, 1, 2}; compile's choice), 20 random
    periodic tables (P <= 4) and 20 forced complement constructions, each checked exhaustively
    over input length 8 (d = 1) or 6 (d = 2); counts compared with the formulas."""
    rng = np.random.default_rng(seed)
    out: dict[str, Any] = {}
    for kind, count in (("random", 30), ("periodic", 20), ("complement", 20)):
        results = []
        for _ in range(count):
            d = int(rng.integers(1, 3))
            m = int(rng.integers(0, 3))
            period = int(rng.integers(1, 5)) if kind == "periodic" else None
            n_w = d * (m + 1)
            shape = (2**n_w,) if period is None else (period, 2**n_w)
            table = rng.integers(0, 2, size=shape)

            def fn(w: np.ndarray, phase: int = 0, table: np.ndarray = table) -> int:
                idx = int("".join(str(int(b)) for b in w.reshape(-1)), 2)
                return int(table[idx] if table.ndim == 1 else table[phase, idx])

            method = "complement" if kind == "complement" else "auto"
            c = U.compile(table, inputs=d, memory=m, period=period, method=method)
            length = 8 if d == 1 else 6
            check = U.check_exhaustive(c, fn, length, m, period)
            formula = {k: c.formula[k] for k in ("neurons", "synapses", "biases")}  # type: ignore[index]
            results.append(
                {
                    "inputs": d,
                    "memory": m,
                    "period": period,
                    "construction": c.construction,
                    "neurons": c.neurons,
                    "synapses": c.synapses,
                    "biases": c.biases,
                    "counts_match_formula": formula
                    == {"neurons": c.neurons, "synapses": c.synapses, "biases": c.biases},
                    "mismatches": check["mismatches"],
                    "module_mismatches": check["module_mismatches"],
                    "compared": check["compared"],
                }
            )
        out[kind] = {
            "tables": count,
            "mismatches": sum(r["mismatches"] for r in results),
            "module_mismatches": sum(r["module_mismatches"] for r in results),
            "compared": sum(r["compared"] for r in results),
            "counts_match_formula": sum(r["counts_match_formula"] for r in results),
            "constructions": sorted({r["construction"] for r in results}),
            "items": results,
        }
    return out
