"""The spike-accumulation neuron (spec §3, §9.3): the drain of max(T_in, L) - 1 steps is exactly
sufficient for every (T_in, L) in {1, 2, 4, 8}^2, one step fewer is not."""

from __future__ import annotations

import itertools

import pytest
import torch

from spikeforge.convert import pascal_levels, pascal_neuron_steps, qcfs
from spikeforge.convert.pascal_neuron import drain_steps, front_loaded

pytestmark = pytest.mark.usefixtures("one_thread")

PAIRS = list(itertools.product([1, 2, 4, 8], repeat=2))


def _inputs(steps_in: int, levels: int, theta: float, seed: int, neurons: int) -> torch.Tensor:
    """Per-step inputs ~ N(0, (3u)^2), u = theta / L (spec §9.3)."""
    g = torch.Generator().manual_seed(seed)
    unit = theta / levels
    return 3 * unit * torch.randn(steps_in, neurons, generator=g, dtype=torch.float64)


@pytest.mark.parametrize(("steps_in", "levels"), PAIRS)
def test_full_drain_is_exact(steps_in: int, levels: int) -> None:
    theta = 0.7
    x = _inputs(steps_in, levels, theta, seed=steps_in * 10 + levels, neurons=50_000)
    spikes, count = pascal_neuron_steps(x, theta, levels)
    assert spikes.shape == (levels, 50_000)
    assert set(spikes.unique().tolist()) <= {0.0, 1.0}
    z = x.sum(0)
    expected = pascal_levels(z, theta, levels)
    assert torch.equal(spikes.sum(0), expected)
    # emitted spikes carry theta / L: the layer's output is the QCFS activation of z
    assert torch.allclose(spikes.sum(0) * theta / levels, qcfs(z, theta, levels), atol=1e-12)
    # front-loaded emission; the internal count is the unclipped level where that lies in [0, L]
    assert torch.equal(spikes, front_loaded(expected, levels))
    unclipped = torch.floor(z * levels / theta + 0.5)
    inside = (unclipped >= 0) & (unclipped <= levels)
    assert torch.equal(count[inside], unclipped[inside])


@pytest.mark.parametrize(("steps_in", "levels"), [p for p in PAIRS if max(p) > 1])
def test_one_drain_step_fewer_is_not_exact(steps_in: int, levels: int) -> None:
    """With 1e5 neurons the shortened drain misses 11 (T_in = 8, L = 2) to 30981 (1, 2) of them."""
    theta = 0.7
    x = _inputs(steps_in, levels, theta, seed=steps_in * 10 + levels, neurons=100_000)
    short = drain_steps(steps_in, levels) - 1
    spikes, _ = pascal_neuron_steps(x, theta, levels, drain=short)
    exact = (spikes.sum(0) == pascal_levels(x.sum(0), theta, levels)).double().mean()
    assert 0.5 < float(exact) < 1.0


def test_drain_length_and_input_checks() -> None:
    assert drain_steps(1, 1) == 0
    assert drain_steps(8, 2) == 7
    assert drain_steps(2, 8) == 7
    x = torch.zeros(2, 3, dtype=torch.float64)
    with pytest.raises(ValueError, match="drain"):
        pascal_neuron_steps(x, 1.0, 2, drain=-1)
    with pytest.raises(ValueError, match=r"\[T_in, B"):
        pascal_neuron_steps(torch.zeros(3), 1.0, 2)


def test_inhibitory_spikes_cancel_early_positive_input() -> None:
    """Input +u then -u (T_in = 2, L = 2): phase 1 fires once, then the potential goes negative;
    a plain IF neuron would keep the spike, PASCAL's drain cancels it (total 0 -> level 0)."""
    theta, levels = 1.0, 2
    unit = theta / levels
    x = torch.tensor([[unit], [-unit]], dtype=torch.float64)
    spikes, count = pascal_neuron_steps(x, theta, levels)
    assert count.item() == 0 and spikes.sum().item() == 0
    spikes, count = pascal_neuron_steps(x, theta, levels, drain=0)
    assert count.item() == 1 and spikes.sum().item() == 1
