"""Pattern mappings of one IF neuron with and without an initial membrane potential (spec §4.4-4.6).

One IF neuron (threshold 1) receives every binary input pattern ``x ∈ {0, 1}^T`` through a
weight ``w``: ``H[t] = V[t−1] + w·x[t]``, ``S[t] = 1[H[t] >= 1]`` (``strict``: ``>``), reset
soft (``V = H − S``) or hard (``V = H·(1 − S)``), ``V[0]`` = the initial potential (IMP). For
every ``(w, V[0])`` on a grid the ``2^T`` output patterns are computed with the library's own
:func:`~spikeforge.core.functional.if_multistep` (reference backend, float64; all grid values of
the spec's grids are dyadic, so the arithmetic is exact).

* **pairs**: distinct ``(input pattern, output pattern)`` over all settings;
* **mappings**: distinct functions ``{0,1}^T -> {0,1}^T``, i.e. distinct ``2^T``-tuples of
  output patterns.

With ``IMP = 0`` only, and ``w ∈ linspace(0, 1, 9)``, soft reset, ``>=``: 53 pairs and 6
mappings; with ``IMP ∈ linspace(−1, 1, 9)``: 108 pairs and 21 mappings (spec §4.6).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from spikeforge.core.functional import if_multistep

__all__ = [
    "PATTERN_SETTINGS",
    "PatternSetting",
    "binary_patterns",
    "output_patterns",
    "pattern_counts",
    "run_patterns",
]


@dataclass(frozen=True)
class PatternSetting:
    """One row of the spec §4.6 table: grids, reset and comparison, and the expected counts
    ``(pairs, mappings)`` with ``IMP = 0`` and on the IMP grid (``None``: no expectation)."""

    name: str
    weights: tuple[float, ...]
    imps: tuple[float, ...]
    reset: str = "subtract"
    strict: bool = False
    expected_zero: tuple[int, int] | None = None
    expected_grid: tuple[int, int] | None = None


def _grid(low: float, high: float, points: int) -> tuple[float, ...]:
    return tuple(torch.linspace(low, high, points, dtype=torch.float64).tolist())


_W9 = _grid(0.0, 1.0, 9)
_IMP9 = _grid(-1.0, 1.0, 9)

PATTERN_SETTINGS: tuple[PatternSetting, ...] = (
    PatternSetting("reference: >=, soft reset", _W9, _IMP9, "subtract", False, (53, 6), (108, 21)),
    PatternSetting(">=, hard reset", _W9, _IMP9, "zero", False, (48, 5), (91, 14)),
    PatternSetting(">, soft reset", _W9, _IMP9, "subtract", True, (38, 5), (80, 15)),
)
"""The 9-point-grid rows of the spec §4.6 table (w ∈ linspace(0, 1, 9), IMP ∈
linspace(−1, 1, 9)) with the spec's measured counts."""


def binary_patterns(steps: int = 4) -> Tensor:
    """All ``2^steps`` binary input patterns as a float64 tensor ``[T, 2^T]`` (time-first;
    column ``k`` is the ``k``-th pattern of ``itertools.product([0, 1], repeat=T)``)."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    rows = list(itertools.product([0.0, 1.0], repeat=steps))
    return torch.tensor(rows, dtype=torch.float64).T.contiguous()


def output_patterns(
    weight: float,
    imps: Sequence[float],
    *,
    steps: int = 4,
    reset: str = "subtract",
    strict: bool = False,
) -> Tensor:
    """Output spike patterns ``[T, 2^T, G]`` of one IF neuron (threshold 1) with weight ``weight``
    for every input pattern (:func:`binary_patterns`) and every initial potential in ``imps``
    (``G = len(imps)``), computed by :func:`~spikeforge.core.functional.if_multistep` (reference
    backend, float64)."""
    if not imps:
        raise ValueError("no initial potentials given")
    x = binary_patterns(steps) * float(weight)  # [T, P]
    g = len(imps)
    x_seq = x.unsqueeze(-1).expand(-1, -1, g).contiguous()  # [T, P, G]
    v0 = torch.tensor([list(imps)], dtype=torch.float64)  # [1, G], broadcast to [P, G]
    spikes, _ = if_multistep(x_seq, v0, reset=reset, strict=strict, backend="reference")  # type: ignore[arg-type]
    return spikes


def pattern_counts(
    weights: Sequence[float],
    imps: Sequence[float],
    *,
    steps: int = 4,
    reset: str = "subtract",
    strict: bool = False,
) -> tuple[int, int]:
    """``(pairs, mappings)`` reachable over all ``(w, V[0])`` in ``weights × imps`` (module
    docstring)."""
    if not weights:
        raise ValueError("no weights given")
    pairs: set[tuple[int, tuple[int, ...]]] = set()
    mappings: set[tuple[tuple[int, ...], ...]] = set()
    for w in weights:
        spikes = output_patterns(w, imps, steps=steps, reset=reset, strict=strict)
        s = spikes.to(torch.int64).permute(2, 1, 0).tolist()  # [G][P][T]
        for per_setting in s:
            outputs = tuple(tuple(o) for o in per_setting)
            pairs.update(enumerate(outputs))
            mappings.add(outputs)
    return len(pairs), len(mappings)


def run_patterns(
    settings: Sequence[PatternSetting] = PATTERN_SETTINGS, steps: int = 4
) -> dict[str, object]:
    """Count pairs and mappings with ``IMP = 0`` and on the IMP grid for every setting; returns a
    JSON-ready dict with the counts, the spec's expectations and whether each row matches."""
    rows = []
    for s in settings:
        zero = pattern_counts(s.weights, [0.0], steps=steps, reset=s.reset, strict=s.strict)
        grid = pattern_counts(s.weights, s.imps, steps=steps, reset=s.reset, strict=s.strict)
        expected = None
        if s.expected_zero is not None and s.expected_grid is not None:
            expected = zero == s.expected_zero and grid == s.expected_grid
        rows.append(
            {
                "setting": s.name,
                "reset": s.reset,
                "comparison": ">" if s.strict else ">=",
                "weights": list(s.weights),
                "imps": list(s.imps),
                "imp_zero": {"pairs": zero[0], "mappings": zero[1]},
                "imp_grid": {"pairs": grid[0], "mappings": grid[1]},
                "spec": None
                if s.expected_zero is None or s.expected_grid is None
                else {
                    "imp_zero": {"pairs": s.expected_zero[0], "mappings": s.expected_zero[1]},
                    "imp_grid": {"pairs": s.expected_grid[0], "mappings": s.expected_grid[1]},
                },
                "matches_spec": expected,
            }
        )
    return {
        "steps": steps,
        "threshold": 1.0,
        "neuron": "IF, H[t] = V[t-1] + w x[t], threshold 1",
        "rows": rows,
        "all_match": all(r["matches_spec"] is not False for r in rows),
    }
