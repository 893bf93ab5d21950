"""Event-driven SpikeLinear against torch's dense linear layer, forward and backward."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from spikeforge.core import spike_linear as sl
from spikeforge.core import spike_linear_paths as paths
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
    for fn in (functools.partial(spike_linear, path="event"), F.linear):
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
    y = spike_linear(x, w, b, path="event")
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
    y = spike_linear(x, w, path="event")
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
    assert "max_density=0.3, path='auto'" in repr(layer)


def test_bad_arguments_are_named() -> None:
    with pytest.raises(ValueError, match="max_density"):
        SpikeLinear(4, 300, max_density=1.5)
    with pytest.raises(ValueError, match="path must be one of"):
        SpikeLinear(4, 300, path="sparse")
    with pytest.raises(ValueError, match="path must be one of"):
        spike_linear(torch.zeros(2, 4), torch.zeros(300, 4), path="fast")
    with pytest.raises(ValueError, match=r"input of shape \[2, 5\].*weight of shape \[300, 4\]"):
        spike_linear(torch.zeros(2, 5), torch.zeros(300, 4))


# --- the measured choice between the event and the dense path (path="auto") -----------------


def test_event_limit_is_where_the_linear_event_cost_meets_the_dense_cost() -> None:
    lo, hi = paths.CALIBRATION_DENSITIES
    s = paths.SAFETY
    # event cost e(d) = 2 + 40 d, dense 10: e(d) = s * 10 at d = (s * 10 - 2) / 40
    t = paths.PathTimings(dense=10.0, event_low=2.0 + 40 * lo, event_high=2.0 + 40 * hi)
    assert t.event_limit == pytest.approx((s * 10.0 - 2.0) / 40)
    # slower than the budget at the low point: never, even where a line would predict it faster
    assert paths.PathTimings(dense=1.0, event_low=s * 1.0 + 1e-3, event_high=3.0).event_limit == 0
    assert paths.PathTimings(dense=10.0, event_low=1.0, event_high=2.0).event_limit == 1.0
    assert paths.PathTimings(dense=10.0, event_low=5.0, event_high=5.0).event_limit == 1.0
    assert paths.PathTimings(dense=10.0, event_low=s * 10.0, event_high=11.0).event_limit == lo


def _fake_measure(dense: float, event_low: float, event_high: float, calls: list[paths.LayerKey]):
    lo, _ = paths.CALIBRATION_DENSITIES

    def measure(key: paths.LayerKey):
        calls.append(key)
        return lambda d: dense if d is None else event_low if d == lo else event_high

    return measure


@pytest.fixture
def fresh_paths(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """Forgets the measured limits and points the store at a temporary kernel path."""
    paths.forget()
    monkeypatch.setattr(sl.LIBRARY, "path", tmp_path / "kernel.so")
    yield tmp_path / "kernel.paths.json"
    paths.forget()


@needs_kernels
@pytest.mark.parametrize("event_faster", [True, False])
def test_auto_takes_the_path_measured_faster(
    monkeypatch: pytest.MonkeyPatch, fresh_paths: Path, event_faster: bool
) -> None:
    calls: list[paths.LayerKey] = []
    timings = (10.0, 1.0, 2.0) if event_faster else (1.0, 2.0, 3.0)
    monkeypatch.setattr(sl, "_measure", _fake_measure(*timings, calls))
    scans: list[int] = []
    scan = sl._spike_indices
    monkeypatch.setattr(sl, "_spike_indices", lambda x, d: scans.append(1) or scan(x, d))
    x, w = _spikes((100, 40), 0.2, torch.float32), torch.randn(300, 40, requires_grad=True)
    for _ in range(2):
        y = spike_linear(x, w)
        assert ("_SpikeLinearBackward" in _nodes(y.grad_fn)) is event_faster
        torch.testing.assert_close(y, F.linear(x, w), rtol=1e-5, atol=1e-5)
    assert calls == [paths.LayerKey(128, 40, 300, "float32", torch.get_num_threads(), True)]
    assert len(scans) == (2 if event_faster else 0)  # slower everywhere: not even a scan
    with torch.no_grad():
        spike_linear(x, w)
    assert [k.train for k in calls] == [True, False]  # inference is measured on its own
    assert "_SpikeLinearBackward" not in _nodes(spike_linear(x, w, path="dense").grad_fn)


@needs_kernels
def test_auto_respects_the_measured_density_limit(
    monkeypatch: pytest.MonkeyPatch, fresh_paths: Path
) -> None:
    lo, hi = paths.CALIBRATION_DENSITIES
    # event cost 1 + 100 d, dense 20 / SAFETY: limit (20 - 1) / 100 = 0.19
    dense = 20.0 / paths.SAFETY
    monkeypatch.setattr(sl, "_measure", _fake_measure(dense, 1 + 100 * lo, 1 + 100 * hi, []))
    w = torch.randn(300, 400)
    sparse, dense = _spikes((64, 400), 0.1, torch.float32), _spikes((64, 400), 0.25, torch.float32)
    assert "_SpikeLinearBackward" in _nodes(spike_linear(sparse, w.requires_grad_()).grad_fn)
    assert "_SpikeLinearBackward" not in _nodes(spike_linear(dense, w).grad_fn)


@needs_kernels
def test_inputs_far_above_the_limit_skip_the_scan(
    monkeypatch: pytest.MonkeyPatch, fresh_paths: Path
) -> None:
    lo, hi = paths.CALIBRATION_DENSITIES
    dense_t = 20.0 / paths.SAFETY  # limit 0.19, as above
    monkeypatch.setattr(sl, "_measure", _fake_measure(dense_t, 1 + 100 * lo, 1 + 100 * hi, []))
    scans: list[int] = []
    scan = sl._spike_indices
    monkeypatch.setattr(sl, "_spike_indices", lambda x, d: scans.append(1) or scan(x, d))
    w = torch.randn(300, 400, requires_grad=True)
    far = _spikes((256, 400), 0.25, torch.float32)  # the sample holds ~0.25 > 1.1 x 0.19
    y = spike_linear(far, w)
    assert scans == [] and "_SpikeLinearBackward" not in _nodes(y.grad_fn)
    torch.testing.assert_close(y, F.linear(far, w))
    near = _spikes((256, 400), 0.2, torch.float32)  # above the limit, within the margin
    assert "_SpikeLinearBackward" not in _nodes(spike_linear(near, w).grad_fn) and scans == [1]
    sparse = _spikes((256, 400), 0.1, torch.float32)
    assert "_SpikeLinearBackward" in _nodes(spike_linear(sparse, w).grad_fn) and scans == [1, 1]


@needs_kernels
def test_measured_limits_are_stored_and_reused(
    monkeypatch: pytest.MonkeyPatch, fresh_paths: Path
) -> None:
    calls: list[paths.LayerKey] = []
    monkeypatch.setattr(sl, "_measure", _fake_measure(10.0, 1.0, 2.0, calls))
    x, w = _spikes((30, 40), 0.2, torch.float32), torch.randn(300, 40)
    spike_linear(x, w)
    assert len(calls) == 1 and fresh_paths.is_file()
    paths.forget()  # a new process: the stored limit is read, nothing is measured
    spike_linear(x, w)
    assert len(calls) == 1
    fresh_paths.write_text("{not json")  # corrupt: measured again and rewritten
    paths.forget()
    spike_linear(x, w)
    assert len(calls) == 2
    assert "32x40x300/float32" in fresh_paths.read_text()


def test_an_unwritable_store_keeps_the_limit_in_memory(tmp_path: Path) -> None:
    calls: list[paths.LayerKey] = []
    key = paths.LayerKey.of(10, 40, 300, torch.float32, train=False)
    (tmp_path / "a-file").write_text("")
    store = tmp_path / "a-file" / "k.paths.json"  # its folder is a file: writing fails
    paths.forget()
    try:
        for _ in range(2):
            limit = paths.event_limit(key, _fake_measure(10.0, 1.0, 2.0, calls), store)
            assert limit == 1.0
        assert len(calls) == 1 and not store.exists()
    finally:
        paths.forget()


@needs_kernels
def test_measuring_leaves_the_global_random_state_alone(fresh_paths: Path) -> None:
    torch.manual_seed(3)
    expected = torch.rand(3)
    torch.manual_seed(3)
    spike_linear(_spikes((16, 33), 0.1, torch.float32), torch.randn(300, 33))
    torch.manual_seed(3)
    assert torch.equal(torch.rand(3), expected)
    assert len(fresh_paths.read_text()) > 0  # the real measurement ran
