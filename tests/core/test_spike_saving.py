"""Layers fed by fused-neuron spikes keep no copy of them; gradients are unchanged."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Callable

import pytest
import torch
from torch import nn

from spikeforge.core import LIF, MultiStep, fused, spike_saving

needs_kernels = pytest.mark.needs_kernels(fused.LIBRARY)  # see conftest.py


def _gain(conv: nn.Conv2d, factor: float = 6.0) -> nn.Conv2d:
    with torch.no_grad():
        conv.weight.mul_(factor)
    return conv


def _net(backend: str, make: Callable[[], list[nn.Module]]) -> nn.Sequential:
    """conv -> LIF -> ``make()`` layers -> LIF -> linear, float64, seeded; gains so both LIF
    layers fire."""
    torch.manual_seed(0)
    net = nn.Sequential(
        MultiStep(_gain(nn.Conv2d(1, 4, 3, padding=1))),
        LIF(backend=backend, reset="zero"),
        MultiStep(*make()),
        LIF(backend=backend),
        MultiStep(nn.Flatten(), nn.LazyLinear(5)),
    ).double()
    with torch.no_grad():  # initialise the lazy layer right after seeding
        net(torch.zeros(1, 1, 1, 8, 8, dtype=torch.float64))
    return net


CASES: dict[str, Callable[[], list[nn.Module]]] = {
    "conv2d-stride-bn": lambda: [_gain(nn.Conv2d(4, 6, 3, stride=2, padding=1)), nn.BatchNorm2d(6)],
    "conv2d-groups-dilation": lambda: [_gain(nn.Conv2d(4, 6, 3, padding=2, dilation=2, groups=2))],
    "conv2d-no-bias": lambda: [_gain(nn.Conv2d(4, 6, 1, bias=False)), nn.ReLU()],
    "maxpool-first": lambda: [nn.MaxPool2d(2), _gain(nn.Conv2d(4, 6, 3))],
    # changes the spikes in place: they must be saved as they are, not recomputed from H
    "inplace-dropout-first": lambda: [nn.Dropout(0.3, inplace=True), _gain(nn.Conv2d(4, 6, 3))],
}


@needs_kernels
@pytest.mark.parametrize("chunk_bytes", [3000, spike_saving.CHUNK_BYTES])  # 6 chunks, one chunk
@pytest.mark.parametrize("case", list(CASES))
def test_gradients_equal_the_reference_path(
    case: str, chunk_bytes: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(spike_saving, "CHUNK_BYTES", chunk_bytes)
    x = torch.rand(3, 5, 1, 8, 8, dtype=torch.float64) * 4
    grads, outs, rates_seen = {}, {}, []
    for backend in ("fused", "reference"):
        net = _net(backend, CASES[case])
        torch.manual_seed(1)  # the same dropout masks
        rates = [
            net[i].register_forward_hook(lambda _m, _i, s, r=rates_seen: r.append(s.mean().item()))
            for i in (1, 3)
        ]
        out = net(x)
        for handle in rates:
            handle.remove()
        out.square().sum().backward()
        outs[backend], grads[backend] = out, [p.grad for p in net.parameters()]
    assert min(rates_seen) > 0.02, rates_seen  # both neuron layers fire: the test means something
    torch.testing.assert_close(outs["fused"], outs["reference"], rtol=0, atol=0)
    for got, ref in zip(grads["fused"], grads["reference"], strict=True):
        torch.testing.assert_close(got, ref, rtol=1e-12, atol=1e-12)


def _spikes_kept_after_forward(backend: str) -> bool:
    net = _net(backend, CASES["conv2d-stride-bn"])
    refs: list[weakref.ref] = []
    net[1].register_forward_hook(lambda _m, _i, out: refs.append(weakref.ref(out)))
    out = net(torch.rand(3, 5, 1, 8, 8, dtype=torch.float64) * 4)
    gc.collect()
    kept = refs[0]() is not None
    out.sum().backward()  # the backward still works without them
    return kept


@needs_kernels
def test_spike_tensor_is_not_kept_for_backward() -> None:
    assert not _spikes_kept_after_forward("fused")
    assert _spikes_kept_after_forward("reference")  # a plain conv saves its input


@needs_kernels
def test_retain_graph_and_second_backward() -> None:
    net = _net("fused", CASES["conv2d-no-bias"])
    out = net(torch.rand(2, 3, 1, 8, 8, dtype=torch.float64) * 4)
    out.sum().backward(retain_graph=True)
    first = [p.grad.clone() for p in net.parameters()]
    out.sum().backward()
    for g1, p in zip(first, net.parameters(), strict=True):
        torch.testing.assert_close(p.grad, 2 * g1)


@needs_kernels
def test_inference_takes_the_plain_path() -> None:
    net = _net("fused", CASES["conv2d-no-bias"])
    x = torch.rand(2, 3, 1, 8, 8, dtype=torch.float64) * 4
    with torch.no_grad():
        plain = net(x)
    torch.testing.assert_close(net(x), plain, rtol=0, atol=0)
