"""The neuron-level adaptive threshold (spec dwam.md §6.1 (b)):
``ϑ ← ϑ + a·S − (ϑ − ϑ_0)/τ_a``."""

from __future__ import annotations

import pytest
import torch

from spikeforge.core import decay_lif_multistep
from spikeforge.homeostasis import AdaptiveLIF, adaptive_lif_multistep


def _current(seed: int, steps: int = 400, batch: int = 4, n: int = 16) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(steps, batch, n, generator=g) * 0.6


def test_a_zero_is_the_decay_lif():
    x = _current(0)
    s, (v, theta) = adaptive_lif_multistep(x, decay=0.8, theta0=1.0, a=0.0)
    s_ref, v_ref = decay_lif_multistep(
        x, None, decay=0.8, threshold=1.0, reset="subtract", backend="reference"
    )
    assert torch.equal(s, s_ref)
    torch.testing.assert_close(v, v_ref)
    assert torch.equal(theta, torch.ones_like(theta))


def test_threshold_jumps_by_a_and_relaxes_to_theta0():
    x = torch.zeros(12, 1, 1)
    x[0] = 2.0  # one spike at t = 0
    s, (_, theta) = adaptive_lif_multistep(x, decay=0.5, theta0=1.0, a=0.5, tau_a=4.0)
    assert s[:, 0, 0].tolist() == [1.0] + [0.0] * 11
    # ϑ[0] = 1 + 0.5; then ϑ − 1 shrinks by (1 − 1/4) per step
    expected = 1.0 + 0.5 * 0.75**11
    assert float(theta) == pytest.approx(expected, rel=1e-6)


def test_steady_threshold_matches_fixed_point():
    x = torch.full((3000, 1, 8), 0.5)
    s, (_, theta) = adaptive_lif_multistep(x, decay=0.8, theta0=1.0, a=0.05, tau_a=50.0)
    rate = s[1000:].mean(0)
    # ϑ* = ϑ_0 + a·τ_a·r (averaged over the last steps: ϑ saw-tooths around it)
    _, (_, thetas) = adaptive_lif_multistep(x[:1], (torch.zeros(1, 8), theta), a=0.05, tau_a=50.0)
    torch.testing.assert_close(thetas, 1.0 + 0.05 * 50.0 * rate, atol=0.06, rtol=0)


def test_homeostasis_damps_rate_changes():
    """Scaling the input by 1.5 raises the rate by about half as much (absolute) with the
    adaptive threshold; the relative change is only slightly smaller (1.65x vs 1.80x here)."""
    x = _current(1, steps=2000)

    def rates(a: float) -> tuple[float, float]:
        lo = float(adaptive_lif_multistep(x, a=a, tau_a=50.0)[0][500:].mean())
        hi = float(adaptive_lif_multistep(1.5 * x, a=a, tau_a=50.0)[0][500:].mean())
        return lo, hi

    lo0, hi0 = rates(0.0)
    lo1, hi1 = rates(0.05)
    assert hi0 / lo0 > 1.5
    assert hi1 - lo1 < 0.6 * (hi0 - lo0)
    assert hi1 / lo1 < hi0 / lo0


def test_module_streams_state_and_has_no_hidden_state():
    x = _current(2, steps=50)
    neuron = AdaptiveLIF(decay=0.9, a=0.1, tau_a=10.0)
    whole = neuron(x)
    first, state = neuron(x[:20], return_state=True)
    second = neuron(x[20:], state=state)
    assert torch.equal(torch.cat([first, second]), whole)
    assert torch.equal(neuron(x), whole)  # nothing kept between calls
    assert "tau_a=10.0" in repr(neuron)


def test_gradients_flow():
    x = _current(3, steps=30).requires_grad_()
    AdaptiveLIF(a=0.05)(x).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


@pytest.mark.parametrize(
    ("kwargs", "msg"),
    [
        ({"decay": 1.5}, "decay"),
        ({"theta0": 0.0}, "theta0"),
        ({"a": -0.1}, "a "),
        ({"tau_a": 0.5}, "tau_a"),
        ({"reset": "soft"}, "unknown reset"),
    ],
)
def test_bad_parameters(kwargs, msg):
    with pytest.raises(ValueError, match=msg):
        AdaptiveLIF(**kwargs)
    with pytest.raises(ValueError, match=msg):
        adaptive_lif_multistep(torch.zeros(2, 1, 3), **kwargs)


def test_bad_inputs():
    with pytest.raises(ValueError, match=r"time-first input \[T, B, \.\.\.\]"):
        adaptive_lif_multistep(torch.zeros(3))
    with pytest.raises(ValueError, match="T = 0"):
        adaptive_lif_multistep(torch.zeros(0, 1, 3))
    with pytest.raises(ValueError, match="do not broadcast"):
        adaptive_lif_multistep(torch.zeros(2, 1, 3), (torch.zeros(1, 4), torch.ones(1, 4)))
    with pytest.raises(TypeError, match="pair"):
        adaptive_lif_multistep(torch.zeros(2, 1, 3), torch.zeros(1, 3))  # type: ignore[arg-type]
