"""Event-driven SpikeLinear against torch's dense linear layer, forward and backward."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from spikeforge.core import spike_linear as sl
from spikeforge.core.kernels import KernelLibrary
from spikeforge.core.spike_linear import SpikeLinear, spike_linear

needs_kernels = pytest.mark.needs_kernels(sl.LIBRARY)  # see conftest.py

TOL = {torch.float32: dict(rtol=1e-5, atol=1e-5), torch.float64: dict(rtol=1e-12, atol=1e-12)}


def _spikes(shape: tuple[int, ...], density: float, dtype: torch.dtype, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(shape, generator=g) < density).to(dtype)


def _nodes(fn: object) -> set[str]:
    """Names of the autograd nodes reachable from ``fn``."""
    names, stack = set(), [fn]
    while stack:
        node = stack.pop()
        if node is not None:
            names.add(type(node).__name__)
            stack += [nxt for nxt, _ in node.next_functions]
    return names


def _both(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None):
    """(outputs, grads) of spike_linear and of F.linear for the same upstream gradient."""
    results = []
    for fn in (spike_linear, F.linear):
        xs, ws = x.clone().requires_grad_(), w.clone().requires_grad_()
        bs = None if b is None else b.clone().requires_grad_()
        y = fn(xs, ws, bs)
        g = torch.linspace(-1, 1, y.numel(), dtype=y.dtype).reshape(y.shape)
        y.backward(g)
        results.append((y, xs.grad, ws.grad, None if bs is None else bs.grad, y.grad_fn))
    return results


@needs_kernels
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(
    ("shape", "out", "bias"),
    [((64, 37), 300, True), ((5, 7, 100), 256, False), ((3, 1, 4, 9), 513, True)],
)
def test_matches_dense_linear_forward_and_backward(shape, out, bias, dtype) -> None:
    x = _spikes(shape, 0.15, dtype)
    w = torch.randn(out, shape[-1], dtype=dtype)
    b = torch.randn(out, dtype=dtype) if bias else None
    (y, gx, gw, gb, node), (y_ref, gx_ref, gw_ref, gb_ref, _) = _both(x, w, b)
    assert "_SpikeLinearBackward" in _nodes(node)  # the event-driven path ran
    assert y.shape == y_ref.shape
    for got, ref in ((y, y_ref), (gx, gx_ref), (gw, gw_ref), (gb, gb_ref)):
        if ref is None:
            assert got is None
        else:
            torch.testing.assert_close(got, ref, **TOL[dtype])


@needs_kernels
def test_rows_without_spikes_give_the_bias() -> None:
    x = torch.zeros(4, 50)
    x[1, 3] = 1.0
    w, b = torch.randn(300, 50), torch.randn(300)
    y = spike_linear(x, w, b)
    torch.testing.assert_close(y[0], b)
    torch.testing.assert_close(y[1], b + w[:, 3])


@needs_kernels
@pytest.mark.parametrize(
    ("x", "out", "reason"),
    [
        (torch.full((8, 20), 0.5), 300, "not binary"),
        (_spikes((8, 20), 0.9, torch.float32), 300, "denser than max_density"),
        (_spikes((8, 20), 0.1, torch.float32), 10, "too few outputs"),
        (_spikes((8, 20), 0.1, torch.float16), 300, "float16"),
    ],
)
def test_other_inputs_take_the_dense_path(x: torch.Tensor, out: int, reason: str) -> None:
    w = torch.randn(out, 20, dtype=x.dtype, requires_grad=True)
    y = spike_linear(x, w)
    assert "_SpikeLinearBackward" not in _nodes(y.grad_fn), reason
    assert torch.equal(y, F.linear(x, w))


def test_falls_back_when_the_kernels_are_disabled(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sl, "LIBRARY", KernelLibrary("spike_linear", sl._SOURCE, sl._declare))
    monkeypatch.setenv("SPIKEFORGE_NO_FUSED", "1")
    x, w = _spikes((8, 20), 0.1, torch.float32), torch.randn(300, 20)
    assert not sl.is_available()
    assert torch.equal(spike_linear(x, w), F.linear(x, w))


def test_module_is_a_drop_in_linear() -> None:
    dense = nn.Linear(40, 300)
    layer = SpikeLinear(40, 300)
    layer.load_state_dict(dense.state_dict())
    x = _spikes((2, 6, 40), 0.2, torch.float32)
    torch.testing.assert_close(layer(x), dense(x), rtol=1e-5, atol=1e-5)
    assert "max_density=0.3" in repr(layer)


def test_bad_arguments_are_named() -> None:
    with pytest.raises(ValueError, match="max_density"):
        SpikeLinear(4, 300, max_density=1.5)
    with pytest.raises(ValueError, match=r"input of shape \[2, 5\].*weight of shape \[300, 4\]"):
        spike_linear(torch.zeros(2, 5), torch.zeros(300, 4))
