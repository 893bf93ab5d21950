"""Window chaining: one source of truth, exact t_min(n+1) == t_max(n)."""

from __future__ import annotations

import itertools

import pytest
import torch

from spikeforge.ttfs import Windows


def test_chaining_is_exact_after_every_update() -> None:
    gen = torch.Generator().manual_seed(0)
    windows = Windows(torch.rand(6, generator=gen, dtype=torch.float64) * 1000)
    for _ in range(5):
        layers = windows.layers()
        assert (layers[0].t_min_prev, layers[0].t_min) == (0.0, 1.0)
        for prev, nxt in itertools.pairwise(layers):
            assert nxt.t_min == prev.t_max  # bit for bit
            assert nxt.t_min_prev == prev.t_min
        assert layers[-1].t_min == layers[-1].t_max == windows.latency
        widths = windows.widths.tolist()
        assert [w.width for w in layers[:-1]] == pytest.approx(widths, rel=1e-12)
        windows.set_widths(windows.widths * (1 + torch.rand(6, generator=gen, dtype=torch.float64)))


def test_latency_is_one_plus_the_hidden_widths() -> None:
    windows = Windows([1.5, 2.0, 0.25])
    assert windows.latency == 1 + 1.5 + 2.0 + 0.25
    assert windows.hidden_t_max() == [2.5, 4.5, 4.75]
    assert windows.layer(4).t_min == 4.75
    with pytest.raises(IndexError):
        windows.layer(5)


def test_invalid_widths_are_rejected() -> None:
    with pytest.raises(ValueError, match="finite and >= 0"):
        Windows([1.0, -0.5])
    windows = Windows([1.0, 2.0])
    with pytest.raises(ValueError, match="expected 2 widths"):
        windows.set_widths([1.0])
    with pytest.raises(ValueError, match="finite"):
        windows.set_widths([1.0, float("nan")])
