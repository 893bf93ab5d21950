"""Pattern mappings of one IF neuron (spec §4.4-4.6), against an independent scalar simulation."""

from __future__ import annotations

import itertools

import pytest

from spikeforge.experiments.imp.patterns import (
    PATTERN_SETTINGS,
    binary_patterns,
    output_patterns,
    pattern_counts,
    run_patterns,
)

WEIGHTS = [i / 8 for i in range(9)]  # linspace(0, 1, 9), exact in binary
IMPS = [i / 4 - 1 for i in range(9)]  # linspace(-1, 1, 9)


def scalar_if(w: float, v0: float, bits: tuple[int, ...], reset: str, strict: bool) -> tuple:
    """One IF neuron, threshold 1, written out step by step in plain Python."""
    v, out = v0, []
    for b in bits:
        h = v + w * b
        s = 1 if (h > 1 if strict else h >= 1) else 0
        out.append(s)
        if reset == "subtract":
            v = h - s
        else:  # hard reset to 0
            v = 0.0 if s else h
    return tuple(out)


def scalar_counts(imps: list[float], reset: str, strict: bool) -> tuple[int, int]:
    pairs, mappings = set(), set()
    inputs = list(itertools.product([0, 1], repeat=4))
    for w, v0 in itertools.product(WEIGHTS, imps):
        outputs = tuple(scalar_if(w, v0, bits, reset, strict) for bits in inputs)
        pairs.update(enumerate(outputs))
        mappings.add(outputs)
    return len(pairs), len(mappings)


@pytest.mark.parametrize(
    ("reset", "strict", "zero", "grid"),
    [
        ("subtract", False, (53, 6), (108, 21)),
        ("zero", False, (48, 5), (91, 14)),
        ("subtract", True, (38, 5), (80, 15)),
    ],
    ids=["reference >= soft", ">= hard", "> soft"],
)
def test_counts_match_the_spec_and_a_scalar_simulation(
    reset: str, strict: bool, zero: tuple[int, int], grid: tuple[int, int]
) -> None:
    assert scalar_counts([0.0], reset, strict) == zero
    assert scalar_counts(IMPS, reset, strict) == grid
    assert pattern_counts(WEIGHTS, [0.0], reset=reset, strict=strict) == zero
    assert pattern_counts(WEIGHTS, IMPS, reset=reset, strict=strict) == grid


def test_every_output_pattern_equals_the_scalar_loop() -> None:
    inputs = list(itertools.product([0, 1], repeat=4))
    for reset, strict in (("subtract", False), ("zero", False), ("subtract", True)):
        for w in WEIGHTS:
            s = output_patterns(w, IMPS, reset=reset, strict=strict)  # [T, 16, G]
            assert tuple(s.shape) == (4, 16, len(IMPS))
            for k, bits in enumerate(inputs):
                for g, v0 in enumerate(IMPS):
                    got = tuple(int(v) for v in s[:, k, g].tolist())
                    assert got == scalar_if(w, v0, bits, reset, strict)


def test_grids_and_report() -> None:
    ref = PATTERN_SETTINGS[0]
    assert list(ref.weights) == WEIGHTS and list(ref.imps) == IMPS
    report = run_patterns()
    assert report["all_match"] is True
    first = report["rows"][0]
    assert first["imp_zero"] == {"pairs": 53, "mappings": 6}
    assert first["imp_grid"] == {"pairs": 108, "mappings": 21}
    assert binary_patterns(4)[:, 1].tolist() == [0.0, 0.0, 0.0, 1.0]  # time-first [T, P]


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="steps"):
        binary_patterns(0)
    with pytest.raises(ValueError, match="initial potentials"):
        output_patterns(0.5, [])
    with pytest.raises(ValueError, match="weights"):
        pattern_counts([], [0.0])
