"""Surrogate spike functions: Heaviside forward, analytic and finite-difference backward."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
from torch import Tensor

from spikeforge.core.surrogate import SURROGATES, default_alpha, heaviside, spike

# Independent closed forms of the smoothed steps g (primitives of the surrogates) and of g'.
PRIMITIVES: dict[str, Callable[[Tensor, float], Tensor]] = {
    "atan": lambda x, a: torch.atan(math.pi / 2 * a * x) / math.pi + 0.5,
    "sigmoid": lambda x, a: torch.sigmoid(a * x),
    "fast_sigmoid": lambda x, a: 0.5 + 0.5 * torch.sign(x) * (1 - 1 / (1 + a * x.abs())),
    "triangle": lambda x, a: torch.where(
        x < -a,
        torch.zeros_like(x),
        torch.where(
            x > a,
            torch.ones_like(x),
            torch.where(x < 0, (x + a) ** 2 / (2 * a**2), 1 - (a - x) ** 2 / (2 * a**2)),
        ),
    ),
    "rectangle": lambda x, a: ((x + a / 2) / a).clamp(0, 1),
}
DERIVATIVES: dict[str, Callable[[Tensor, float], Tensor]] = {
    "atan": lambda x, a: a / 2 / (1 + (math.pi / 2 * a * x) ** 2),
    "sigmoid": lambda x, a: a * torch.sigmoid(a * x) * (1 - torch.sigmoid(a * x)),
    "fast_sigmoid": lambda x, a: (1 + a * x.abs()) ** -2,
    "triangle": lambda x, a: torch.clamp(a - x.abs(), min=0) / a**2,
    "rectangle": lambda x, a: (x.abs() < a / 2).double() / a,
}


def test_every_registered_surrogate_is_covered() -> None:
    assert set(SURROGATES) == set(PRIMITIVES) == set(DERIVATIVES)


@pytest.mark.parametrize("name", sorted(SURROGATES))
def test_forward_is_heaviside_with_ge_by_default(name: str) -> None:
    x = torch.tensor([-1.0, -1e-6, 0.0, 1e-6, 2.0])
    assert spike(x, name).tolist() == [0.0, 0.0, 1.0, 1.0, 1.0]
    assert spike(x, name, strict=True).tolist() == [0.0, 0.0, 0.0, 1.0, 1.0]
    assert spike(x.double(), name).dtype == torch.float64


@pytest.mark.parametrize("name", sorted(SURROGATES))
@pytest.mark.parametrize("alpha", [None, 0.5, 3.0])
def test_backward_matches_analytic_derivative(name: str, alpha: float | None) -> None:
    a = default_alpha(name) if alpha is None else alpha
    # avoid the kinks of the piecewise surrogates, where the derivative is ambiguous
    x = torch.linspace(-2.13, 2.07, 41, dtype=torch.float64).requires_grad_(True)
    upstream = torch.linspace(0.5, 1.5, 41, dtype=torch.float64)
    (spike(x, name, alpha) * upstream).sum().backward()
    expected = upstream * DERIVATIVES[name](x.detach(), a)
    torch.testing.assert_close(x.grad, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", sorted(SURROGATES))
def test_backward_is_finite_difference_of_the_smoothed_step(name: str) -> None:
    """The surrogate is the derivative of a smoothed step g that integrates to 1."""
    a = default_alpha(name) if name != "fast_sigmoid" else 2.0
    x = torch.linspace(-1.71, 1.73, 31, dtype=torch.float64)
    if name in ("triangle", "rectangle"):  # stay off the kinks at |x| = a, a/2
        x = x[((x.abs() - a).abs() > 1e-3) & ((x.abs() - a / 2).abs() > 1e-3)]
    g = PRIMITIVES[name]
    h = 1e-6
    numeric = (g(x + h, a) - g(x - h, a)) / (2 * h)
    xr = x.clone().requires_grad_(True)
    spike(xr, name, a).sum().backward()
    torch.testing.assert_close(xr.grad, numeric, rtol=1e-6, atol=1e-7)
    # g goes from 0 to 1: the surrogate integrates to one
    assert float(g(torch.tensor(-1e4, dtype=torch.float64), a)) == pytest.approx(0, abs=1e-3)
    assert float(g(torch.tensor(1e4, dtype=torch.float64), a)) == pytest.approx(1, abs=1e-3)


def test_bad_name_and_alpha_are_rejected() -> None:
    with pytest.raises(ValueError, match="unknown surrogate 'erf'"):
        spike(torch.zeros(2), "erf")
    with pytest.raises(ValueError, match="positive"):
        spike(torch.zeros(2), "atan", alpha=0.0)


def test_heaviside_has_no_gradient_path() -> None:
    x = torch.zeros(3, requires_grad=True)
    assert not heaviside(x).requires_grad
