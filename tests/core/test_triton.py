"""The Triton kernels of the fused neurons (``spikeforge.core.fused_triton``) against the
plain-torch reference path, run on CPU tensors by Triton's interpreter (``TRITON_INTERPRET=1``).

The kernel tests skip only when ``triton`` cannot be imported; with Triton installed a wrong
kernel fails them. Spikes and final potentials must equal the reference's bit for bit (float32,
float64), gradients to 1e-5 relative (float32) / 1e-12 (float64). The dispatch tests (Triton
missing, disabled, unsupported calls) need no Triton.
"""

from __future__ import annotations

import itertools
import os
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import torch
from torch import Tensor, nn

from spikeforge.core import IF, LIF, DecayLIF, MultiStep, fused, fused_triton
from spikeforge.core import functional as F
from spikeforge.core.surrogate import spike

KINDS: dict[str, tuple[Callable[..., Any], dict[str, Any]]] = {
    "if": (F.if_multistep, {}),
    "lif": (F.lif_multistep, {"tau": 2.0}),
    "lif_nodecay_input": (F.lif_multistep, {"tau": 4.0, "decay_input": False}),
    "lif_tau3": (F.lif_multistep, {"tau": 3.0}),
    "lif_nodecay_input_tau1.5": (F.lif_multistep, {"tau": 1.5, "decay_input": False}),
    "decay_lif": (F.decay_lif_multistep, {"decay": 0.25}),
}
SURROGATES = ("atan", "sigmoid", "fast_sigmoid", "triangle", "rectangle")
RESETS = ("subtract", "zero", "none")
TOL = {torch.float64: 1e-12, torch.float32: 1e-5}
#: (strict, with v0, dtype) for every case; each test takes two of them in turn
CASES = list(itertools.product((False, True), (False, True), (torch.float32, torch.float64)))


@pytest.fixture(scope="module")
def interpreter() -> Iterator[None]:
    """``TRITON_INTERPRET=1`` while this module's kernel tests run (restored after), so that
    :func:`spikeforge.core.triton_kernels.kernels` decorates the kernels for the interpreter;
    skips when triton cannot be imported. Triton is imported *before* the variable is set, on
    purpose: Triton decorates its own ``@triton.jit`` helpers (``tl.zeros``, ``tl.sum``, ...)
    when it is imported, so a kernel calling one would work in one mode per process only; the
    kernels use none, and these tests would fail if one crept in."""
    pytest.importorskip("triton", reason="triton is not installed (pip install triton)")
    saved = os.environ.get("TRITON_INTERPRET")
    os.environ["TRITON_INTERPRET"] = "1"
    try:
        yield
    finally:
        if saved is None:
            del os.environ["TRITON_INTERPRET"]
        else:
            os.environ["TRITON_INTERPRET"] = saved


@pytest.fixture
def on_triton(interpreter: None) -> Iterator[None]:
    """CPU tensors take the Triton path (interpreted) inside the test."""
    with fused_triton.interpret_on_cpu():
        yield


def inputs(shape: tuple[int, ...], dtype: torch.dtype, seed: int, dyadic: bool) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(shape, generator=g, dtype=torch.float64) * 1.6 - 0.2
    if dyadic:  # exact potentials: H lands on the threshold often (strict vs non-strict)
        x = torch.round(x * 8) / 8
    return x.to(dtype)


def run(
    fn: Callable[..., Any],
    x: Tensor,
    v0: Tensor | None,
    backend: str,
    seed: int,
    **kw: Any,
) -> tuple[Tensor, ...]:
    """``(spikes, v_final, dL/dx[, dL/dv0], name of the spikes' grad_fn)`` of a fixed loss."""
    g = torch.Generator().manual_seed(seed + 1)
    w_s = torch.randn(x.shape, generator=g, dtype=torch.float64).to(x.device, x.dtype)
    w_v = torch.randn(x.shape[1:], generator=g, dtype=torch.float64).to(x.device, x.dtype)
    xr = x.clone().requires_grad_()
    leaves = [xr] if v0 is None else [xr, v0.clone().requires_grad_()]
    s, v = fn(xr, None if v0 is None else leaves[1], backend=backend, **kw)
    loss = (s * w_s).sum() + (v * w_v).sum()
    grads = torch.autograd.grad(loss, leaves)
    return s.detach(), v.detach(), *grads, type(s.grad_fn).__name__  # type: ignore[return-value]


def assert_parity(got: tuple[Any, ...], ref: tuple[Any, ...], dtype: torch.dtype) -> None:
    assert got[-1] == "_TritonNeuronBackward", f"the Triton path was not taken: {got[-1]}"
    assert torch.equal(got[0], ref[0]), "spikes differ"
    assert torch.equal(got[1], ref[1]), "final potential differs"
    for a, b in zip(got[2:-1], ref[2:-1], strict=True):
        torch.testing.assert_close(a, b, rtol=TOL[dtype], atol=TOL[dtype])


# --- parity for every neuron configuration ----------------------------------------------------


@pytest.mark.usefixtures("interpreter")
@pytest.mark.parametrize("surrogate", SURROGATES)
@pytest.mark.parametrize("detach_reset", [False, True])
@pytest.mark.parametrize("reset", RESETS)
@pytest.mark.parametrize("kind", list(KINDS))
def test_triton_matches_reference(
    kind: str, reset: str, detach_reset: bool, surrogate: str
) -> None:
    """Two cases per configuration, rotating over strict x v0 (IMP) x dtype, the layout
    ([T, B, N] or [T, B, C, H, W] with 594 neurons: two blocks of 512, the last partial),
    dyadic or continuous inputs, the threshold and the hard-reset value."""
    fn, extra = KINDS[kind]
    index = (
        list(KINDS).index(kind) * 30
        + RESETS.index(reset) * 10
        + detach_reset * 5
        + SURROGATES.index(surrogate)
    )
    shapes = ((6, 3, 7), (3, 2, 3, 11, 9))
    for i in (2 * index, 2 * index + 1):
        strict, with_v0, dtype = CASES[i % len(CASES)]
        shape = shapes[(i // 3) % 2]
        dyadic = (i // 5) % 2 == 0
        x = inputs(shape, dtype, seed=i, dyadic=dyadic)
        v0 = inputs((1, *shape[2:]), dtype, seed=1000 + i, dyadic=dyadic) if with_v0 else None
        kw = {
            **extra,
            "reset": reset,
            "detach_reset": detach_reset,
            "surrogate": surrogate,
            "strict": strict,
            "threshold": 0.75 if i % 2 else 1.0,
            "v_reset": 0.125 if reset == "zero" and i % 3 == 0 else 0.0,
        }
        ref = run(fn, x, v0, "reference", i, **kw)
        with fused_triton.interpret_on_cpu():
            got = run(fn, x, v0, "fused", i, **kw)
        try:
            assert_parity(got, ref, dtype)
        except AssertionError as e:
            raise AssertionError(f"case strict={strict} v0={with_v0} {dtype} {shape}: {e}") from e


def _cuda_reference(
    x: Tensor, v0: Tensor | None, tau: float, decay_input: bool, **kw: Any
) -> tuple[Tensor, Tensor]:
    """The reference LIF as torch computes it on CUDA: a division by the Python scalar ``tau``
    is a multiplication by its reciprocal rounded to the dtype (torch's CUDA ``div_true``)."""
    inv = torch.tensor(1.0 / tau, dtype=x.dtype)  # a 0-dim tensor: a multiply in x's dtype
    thr, reset = kw["threshold"], kw["reset"]
    v = torch.zeros_like(x[0]) if v0 is None else v0.expand_as(x[0])
    spikes = []
    for xt in x.unbind(0):
        h = v + (xt - v) * inv if decay_input else v - v * inv + xt
        s = spike(h - thr, kw["surrogate"], None, kw["strict"])
        v = h - thr * s if reset == "subtract" else h * (1 - s)
        spikes.append(s)
    return torch.stack(spikes), v


@pytest.mark.usefixtures("interpreter")
@pytest.mark.parametrize("decay_input", [True, False])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_cuda_arithmetic_matches_torch_on_cuda(decay_input: bool, dtype: torch.dtype) -> None:
    """The kernels as they run on CUDA tensors (``1/τ`` multiplied) against the reference
    computed as torch does on CUDA; τ = 3 so that this differs from a division."""
    x = inputs((8, 4, 33), dtype, seed=7, dyadic=False) * 2
    v0 = inputs((1, 33), dtype, seed=8, dyadic=False)
    results = []
    for cuda_kernel in (False, True):
        for reset in ("subtract", "zero"):
            kw = {"threshold": 1.0, "reset": reset, "surrogate": "sigmoid", "strict": False}
            xr, vr = x.clone().requires_grad_(), v0.clone().requires_grad_()
            if cuda_kernel:
                with fused_triton.interpret_on_cpu(arithmetic="cuda"):
                    s, v = F.lif_multistep(xr, vr, tau=3.0, decay_input=decay_input, **kw)
                assert type(s.grad_fn).__name__ == "_TritonNeuronBackward"
            else:
                s, v = _cuda_reference(xr, vr, 3.0, decay_input, **kw)
            (s * torch.linspace(-1, 1, s.numel(), dtype=dtype).view_as(s)).sum().add(
                v.square().sum()
            ).backward()
            results.append((s.detach(), v.detach(), xr.grad, vr.grad))
    for got, ref in zip(results[2:], results[:2], strict=True):
        assert torch.equal(got[0], ref[0]) and torch.equal(got[1], ref[1])
        assert got[0].sum() > 10
        for a, b in zip(got[2:], ref[2:], strict=True):
            torch.testing.assert_close(a, b, rtol=TOL[dtype], atol=TOL[dtype])
    # and it is a different computation from the CPU reference's division
    with torch.no_grad():
        div = F.lif_multistep(x, v0, tau=3.0, decay_input=decay_input, backend="reference")
    assert not torch.equal(div[1], results[2][1])


@pytest.mark.usefixtures("on_triton")
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_inputs_run_with_float32_state(dtype: torch.dtype) -> None:
    """float16 / bfloat16: the spikes of the float32 computation on the converted input, the
    outputs and gradients in the input's dtype."""
    x32 = inputs((6, 4, 40), torch.float32, seed=3, dyadic=False)
    v0 = inputs((1, 40), torch.float32, seed=4, dyadic=False)
    x = x32.to(dtype)
    ref = run(F.lif_multistep, x.float(), v0.to(dtype).float(), "reference", 0, tau=3.0)
    got = run(F.lif_multistep, x, v0.to(dtype), "fused", 0, tau=3.0)
    assert got[-1] == "_TritonNeuronBackward"
    assert all(t.dtype == dtype for t in got[:-1])
    assert torch.equal(got[0], ref[0].to(dtype)) and got[0].sum() > 20
    assert torch.equal(got[1], ref[1].to(dtype))
    # the loss weights are rounded to the dtype on one path only, and the kernel rounds its
    # float32 gradients to the dtype (Triton's interpreter truncates to bfloat16): to rounding
    for a, b in zip(got[2:-1], ref[2:-1], strict=True):
        torch.testing.assert_close(a.float(), b, rtol=2e-2, atol=2e-2)


@pytest.mark.usefixtures("on_triton")
@pytest.mark.parametrize("strict", [False, True])
def test_threshold_equality_follows_the_compare(strict: bool) -> None:
    x = torch.tensor([0.5, 0.5, 0.25], dtype=torch.float32).reshape(3, 1, 1)
    s, v = F.if_multistep(x, strict=strict, backend="fused")
    assert type(s.grad_fn).__name__ != "_FusedNeuronBackward"
    assert s.flatten().tolist() == ([0.0, 0.0, 1.0] if strict else [0.0, 1.0, 0.0])
    assert float(v) == 0.25


@pytest.mark.usefixtures("on_triton")
def test_one_output_used_noncontiguous_input_no_grad_and_retain_graph() -> None:
    x = inputs((5, 6, 4), torch.float64, seed=3, dyadic=False).transpose(1, 2)  # [T, 4, 6]
    assert not x.is_contiguous()
    for use in ("spikes", "v"):
        grads = []
        for backend in ("reference", "fused"):
            xr = x.clone().requires_grad_()
            s, v = F.lif_multistep(xr, 0.3, backend=backend, surrogate="sigmoid")
            out = s.sum() if use == "spikes" else (v**2).sum()
            first = torch.autograd.grad(out, xr, retain_graph=True)[0]
            # H must survive a backward that keeps the graph
            torch.testing.assert_close(torch.autograd.grad(out, xr)[0], first, rtol=0, atol=0)
            grads.append(first)
        torch.testing.assert_close(grads[1], grads[0], rtol=1e-12, atol=1e-12)
    with torch.no_grad():
        ref = F.lif_multistep(x, backend="reference")
        out = F.lif_multistep(x, backend="fused")
    assert torch.equal(out[0], ref[0]) and torch.equal(out[1], ref[1])
    assert out[0].grad_fn is None


@pytest.mark.usefixtures("on_triton")
@pytest.mark.parametrize("shape", [(1, 5, 300), (4, 0, 3)])
def test_single_step_and_empty_batch(shape: tuple[int, ...]) -> None:
    x = inputs(shape, torch.float32, seed=11, dyadic=False) * 2
    ref = run(F.lif_multistep, x, None, "reference", 0, tau=3.0, reset="zero")
    got = run(F.lif_multistep, x, None, "fused", 0, tau=3.0, reset="zero")
    assert_parity(got, ref, torch.float32)
    assert got[0].shape == shape and got[1].shape == shape[1:]


@pytest.mark.usefixtures("on_triton")
@pytest.mark.parametrize("cls", [IF, LIF, DecayLIF])
def test_modules_match_reference_with_imp(cls: type[nn.Module]) -> None:
    torch.manual_seed(0)
    mods = [cls(learnable_init=True, shape=(2, 3, 3), backend=b) for b in ("reference", "auto")]
    mods[1].load_state_dict(mods[0].state_dict())
    x = inputs((5, 4, 2, 3, 3), torch.float32, seed=9, dyadic=False)
    out = []
    for m in mods:
        s = m(x.clone().requires_grad_())
        (s * torch.arange(s.numel()).view_as(s)).sum().backward()
        out.append((s.detach(), m.init_state.grad, type(s.grad_fn).__name__))
    assert out[1][2] == "_TritonNeuronBackward"
    assert torch.equal(out[1][0], out[0][0])
    torch.testing.assert_close(out[1][1], out[0][1], rtol=1e-5, atol=1e-6)


# --- the guarantees of the CPU path (issue 10) ------------------------------------------------


def _net(backend: str) -> nn.Module:
    """``MultiStep(conv) -> IF -> MultiStep(conv) -> LIF -> MultiStep(readout)``, float64."""
    torch.manual_seed(0)
    layers = [nn.Conv2d(1, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1)]
    with torch.no_grad():
        layers[0].weight.mul_(6.0)
        layers[1].weight.mul_(8.0)
    return nn.Sequential(
        MultiStep(layers[0]),
        IF(backend=backend),  # type: ignore[arg-type]
        MultiStep(layers[1]),
        LIF(backend=backend, threshold=0.5),  # type: ignore[arg-type]
        MultiStep(nn.Flatten(), nn.Linear(4 * 6 * 6, 3)),
    ).double()


def _x() -> Tensor:
    return torch.rand((3, 4, 1, 6, 6), generator=torch.Generator().manual_seed(0)).double()


def _nodes(fn: Any) -> set[str]:
    names, stack, seen = set(), [fn], set()
    while stack:
        node = stack.pop()
        if node is not None and node not in seen:
            seen.add(node)
            names.add(type(node).__name__)
            stack += [nxt for nxt, _ in node.next_functions]
    return names


def _train(net: nn.Module) -> tuple[Tensor, list[Tensor], set[str]]:
    net.zero_grad()
    out = net(_x())
    weights = torch.linspace(-1, 1, out.numel(), dtype=out.dtype).reshape(out.shape)
    (out * weights + out.square()).sum().backward()
    return out.detach(), [p.grad.clone() for p in net.parameters()], _nodes(out.grad_fn)


def _assert_same(got: tuple[Any, ...], ref: tuple[Any, ...]) -> None:
    assert torch.equal(got[0], ref[0])
    for a, b in zip(got[1], ref[1], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.usefixtures("on_triton")
@pytest.mark.parametrize("spikes_by", ["cpu_kernel", "torch_ops"])
def test_network_takes_the_spike_saving_path_and_matches(
    spikes_by: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``torch_ops``: the spikes recomputed from ``H`` with torch ops, as on a GPU."""
    if spikes_by == "torch_ops":
        monkeypatch.setattr(fused, "_library", lambda: None)
    ref, got = _train(_net("reference")), _train(_net("auto"))
    assert "_TritonNeuronBackward" in got[2] and "_SpikeConvBackward" in got[2]
    _assert_same(got, ref)


@pytest.mark.usefixtures("on_triton")
@pytest.mark.parametrize("feature", ["forward_pre_hook", "parametrization", "global_hook"])
def test_hooks_and_parametrizations_take_the_plain_call(feature: str) -> None:
    results, calls = [], []
    for backend in ("reference", "auto"):
        net = _net(backend)
        conv = net[2].layer
        count: list[int] = []
        handle = None
        if feature == "forward_pre_hook":
            conv.register_forward_pre_hook(lambda _m, _a, c=count: c.append(1))
        elif feature == "parametrization":

            class Halve(nn.Module):
                def forward(self, w: Tensor, c: list[int] = count) -> Tensor:
                    c.append(1)
                    return w * 0.5

            torch.nn.utils.parametrize.register_parametrization(conv, "weight", Halve())
        else:
            handle = nn.modules.module.register_module_forward_hook(
                lambda m, _a, _o, c=count: c.append(1) if isinstance(m, nn.Conv2d) else None
            )
        try:
            results.append(_train(net))
        finally:
            if handle is not None:
                handle.remove()
        calls.append(len(count))
    assert calls[0] == calls[1] > 0
    assert "_TritonNeuronBackward" in results[1][2]
    assert "_SpikeConvBackward" not in results[1][2]
    _assert_same(results[1], results[0])


@pytest.mark.usefixtures("on_triton")
def test_double_backward_raises_and_first_order_is_right() -> None:
    grads = []
    for backend in ("reference", "auto"):
        net = _net(backend)
        params = list(net.parameters())
        loss = net(_x()).square().sum()
        first = torch.autograd.grad(loss, params, create_graph=True)
        grads.append([g.detach() for g in first])
        penalty = sum(g.square().sum() for g in first)
        if backend == "auto":
            with pytest.raises(RuntimeError, match="backend='reference'"):
                torch.autograd.grad(penalty, [net[0].layer.weight])
    for a, b in zip(grads[1], grads[0], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.usefixtures("on_triton")
def test_saved_tensors_hooks_see_h_and_checkpoint_works() -> None:
    x = inputs((4, 3, 10), torch.float32, seed=2, dyadic=False).requires_grad_()
    packed: list[Tensor] = []

    def pack(t: Tensor) -> Tensor:
        packed.append(t)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        s, _ = F.lif_multistep(x, backend="auto")
    assert type(s.grad_fn).__name__ == "_TritonNeuronBackward"
    (h,) = [t for t in packed if t.shape == x.shape]
    h_copy = h.clone()
    s.sum().backward()
    assert torch.equal(h, h_copy), "the backward overwrote a tensor a hook handed back"
    ref = x.grad.clone()
    x.grad = None
    out = torch.utils.checkpoint.checkpoint(
        lambda t: F.lif_multistep(t, backend="auto")[0], x, use_reentrant=False
    )
    out.sum().backward()
    torch.testing.assert_close(x.grad, ref, rtol=0, atol=0)


# --- on a GPU (skipped without one) ------------------------------------------------------------


@pytest.fixture
def gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """A CUDA device and Triton, compiled kernels (not the interpreter)."""
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    pytest.importorskip("triton", reason="triton is not installed (pip install triton)")
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)


@pytest.mark.usefixtures("gpu")
@pytest.mark.parametrize("kind", list(KINDS))
def test_cuda_kernels_match_the_cuda_reference(kind: str) -> None:
    """The compiled kernels on CUDA tensors against the reference path on CUDA (torch's CUDA
    arithmetic): every reset, the surrogates, strict, detach_reset, v0, float32 and float64."""
    fn, extra = KINDS[kind]
    for r, reset in enumerate(RESETS):
        for dtype in (torch.float32, torch.float64):
            i = list(KINDS).index(kind) * 6 + r * 2 + (dtype == torch.float64)
            x = inputs((7, 3, 5, 37), dtype, seed=i, dyadic=i % 2 == 0).cuda()
            v0 = inputs((1, 5, 37), dtype, seed=100 + i, dyadic=False).cuda() if i % 3 else None
            kw = {
                **extra,
                "reset": reset,
                "surrogate": SURROGATES[i % 5],
                "strict": i % 4 == 1,
                "detach_reset": i % 4 >= 2,
                "threshold": 0.75 if i % 2 else 1.0,
                "v_reset": 0.125 if reset == "zero" else 0.0,
            }
            ref = run(fn, x, v0, "reference", i, **kw)
            got = run(fn, x, v0, "auto", i, **kw)
            try:
                assert_parity(got, ref, dtype)
            except AssertionError as e:
                raise AssertionError(f"{dtype} {kw}: {e}") from e


@pytest.mark.usefixtures("gpu")
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_cuda_half_inputs(dtype: torch.dtype) -> None:
    x = inputs((6, 4, 300), torch.float32, seed=3, dyadic=False).to(dtype).cuda()
    ref = run(F.lif_multistep, x.float(), None, "reference", 0, tau=2.0)
    got = run(F.lif_multistep, x, None, "auto", 0, tau=2.0)
    assert got[-1] == "_TritonNeuronBackward"
    assert torch.equal(got[0], ref[0].to(dtype)) and torch.equal(got[1], ref[1].to(dtype))
    torch.testing.assert_close(got[2].float(), ref[2], rtol=2e-2, atol=2e-2)


@pytest.mark.usefixtures("gpu")
def test_cuda_network_spike_saving_and_double_backward() -> None:
    nets = [_net(b).cuda() for b in ("reference", "auto")]
    x = _x().cuda()
    results = []
    for net in nets:
        net.zero_grad()
        out = net(x)
        weights = torch.linspace(-1, 1, out.numel(), dtype=out.dtype, device=out.device)
        (out * weights.reshape(out.shape) + out.square()).sum().backward()
        results.append((out.detach(), [p.grad.clone() for p in net.parameters()]))
        if net is nets[1]:
            assert {"_TritonNeuronBackward", "_SpikeConvBackward"} <= _nodes(out.grad_fn)
    # cuDNN may pick other algorithms for the chunked convolution backward: close, not equal
    for a, b in zip((results[1][0], *results[1][1]), (results[0][0], *results[0][1]), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    loss = nets[1](x).square().sum()
    first = torch.autograd.grad(loss, list(nets[1].parameters()), create_graph=True)
    with pytest.raises(RuntimeError, match="backend='reference'"):
        torch.autograd.grad(sum(g.square().sum() for g in first), [nets[1][0].layer.weight])


# --- dispatch (no Triton needed) --------------------------------------------------------------


@pytest.fixture
def fresh_warnings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(F, "_warned", set())


@pytest.fixture
def route_cpu_to_triton(monkeypatch: pytest.MonkeyPatch) -> None:
    """CPU tensors are routed to the Triton path (as CUDA tensors are), without Triton."""
    monkeypatch.setattr(fused_triton, "wants", lambda x: x.device.type == "cpu")


def _forbid(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("this path must not be taken")


@pytest.mark.usefixtures("fresh_warnings", "route_cpu_to_triton")
def test_reference_with_a_warning_when_triton_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fused_triton, "unavailable_reason", lambda: "test: no triton")
    monkeypatch.setattr(fused_triton, "triton_multistep", _forbid)
    monkeypatch.setattr(fused, "fused_multistep", _forbid)
    x = inputs((4, 2, 3), torch.float32, seed=1, dyadic=False).requires_grad_()
    with pytest.warns(RuntimeWarning, match="need Triton.*test: no triton"):
        s, _ = F.lif_multistep(x, backend="auto")
    ref, _ = F.lif_multistep(x, backend="reference")
    assert torch.equal(s, ref) and s.requires_grad
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # warned once only
        F.if_multistep(x, backend="fused")
        LIF()(x)


@pytest.mark.usefixtures("fresh_warnings", "route_cpu_to_triton")
def test_unsupported_calls_take_the_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fused_triton, "is_available", lambda: True)
    monkeypatch.setattr(fused_triton, "triton_multistep", _forbid)
    monkeypatch.setattr(fused, "fused_multistep", _forbid)
    x = inputs((4, 2, 3), torch.float32, seed=1, dyadic=False)
    F.if_multistep(x, backend="reference")
    with pytest.warns(RuntimeWarning, match="does not support"):
        F.if_multistep(x, threshold=torch.tensor(1.0), backend="fused")
    F.if_multistep(x.to(torch.int32), backend="auto")  # an integer input: silent reference


def test_supports_and_the_env_switch(monkeypatch: pytest.MonkeyPatch) -> None:
    x = torch.zeros(2, 3, 4)
    assert not fused_triton.wants(x)  # CPU tensors stay on the C++ path outside the tests
    assert not fused_triton.supports(x, None, 1.0)
    monkeypatch.setattr(fused_triton, "wants", lambda t: True)
    for dtype in (torch.float16, torch.bfloat16, torch.float32, torch.float64):
        assert fused_triton.supports(x.to(dtype), None, 1.0)
    assert not fused_triton.supports(x.to(torch.int32), None, 1.0)
    assert not fused_triton.supports(x, None, torch.tensor(1.0))
    assert not fused_triton.supports(x, torch.zeros(1, 4, device="meta"), 1.0)
    monkeypatch.setenv("SPIKEFORGE_NO_TRITON", "1")
    assert not fused_triton.is_available()
    assert "SPIKEFORGE_NO_TRITON" in fused_triton.unavailable_reason()


def test_interpret_on_cpu_needs_the_interpreter(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    with pytest.raises(RuntimeError, match="TRITON_INTERPRET=1"):
        with fused_triton.interpret_on_cpu():
            pass


# --- the compiled GPU code (no GPU needed: Triton compiles for a target) ----------------------


@pytest.mark.usefixtures("interpreter")
def test_gpu_code_has_ieee_arithmetic_and_no_fma(monkeypatch: pytest.MonkeyPatch) -> None:
    """Compile the float32 kernels for an sm_90 GPU (H100 / H200) and read the PTX: the bit
    parity above holds on the GPU only if its code does what the interpreter does, with IEEE
    division (not ``div.full`` / ``div.approx``) and no multiply-add contracted into an FMA."""
    triton = pytest.importorskip("triton")
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    from spikeforge.core import triton_kernels

    monkeypatch.delenv("TRITON_INTERPRET")  # compiled kernels, not interpreted ones
    forward, backward = triton_kernels.kernels()

    def ptx(fn: Any, sig: dict[str, str], consts: dict[str, Any]) -> str:
        full = {**sig, **dict.fromkeys(consts, "constexpr")}
        where = {(list(full).index(k),): v for k, v in consts.items()}
        src = ASTSource(fn, full, constexprs=where)
        options = {"num_warps": 4, "enable_fp_fusion": False}
        try:
            return triton.compile(src, target=GPUTarget("cuda", 90, 32), options=options).asm["ptx"]
        except Exception as e:  # no CUDA backend in this Triton build
            if "backend" in str(e).lower() and "cuda" in str(e).lower():
                pytest.skip(f"Triton cannot compile for CUDA here: {e}")
            raise

    ptrs = ("x_ptr", "v0_ptr", "s_ptr", "h_ptr", "vf_ptr", "par_ptr")
    sig = {**dict.fromkeys(ptrs, "*fp32"), "steps": "i32", "m": "i32"}
    flags = {"STRICT": False, "HAS_V0": True, "SAVE_H": True, "DIV_RN": True, "BLOCK": 256}
    code = ptx(forward, sig, {"KIND": 1, "RESET": 1, **flags})
    assert "div.rn.f32" in code
    assert not any(op in code for op in ("div.full", "div.approx", "fma.rn.f32", "mad.f32"))
    ptrs = ("h_ptr", "gs_ptr", "gvt_ptr", "gx_ptr", "gv0_ptr", "par_ptr")
    sig = {**dict.fromkeys(ptrs, "*fp32"), "steps": "i32", "m": "i32", "last": "i64"}
    flags = {"STRICT": False, "DETACH": False, "HAS_GS": True, "HAS_GVT": True}
    code = ptx(
        backward,
        sig,
        {"KIND": 4, "RESET": 1, "SG": 0, **flags, "WRITE_GV0": True, "DIV_RN": True, "BLOCK": 256},
    )
    assert "div.rn.f32" in code
    assert not any(op in code for op in ("div.full", "div.approx", "fma.rn.f32", "mad.f32"))
