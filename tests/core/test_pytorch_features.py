"""The fused path under PyTorch features: hooks, pruning, weight norm, parametrizations, double
backward, saved-tensor hooks, grad modes.

Each test runs a small network on the fused path (fused neurons; the layers after them take the
spike-saving path, ``_SpikeConv`` and ``SpikeLinear``'s event-driven kernels where allowed) and
on the reference path (``backend="reference"`` neurons, ``nn.Linear`` for ``SpikeLinear``) and
requires the same outputs (bit for bit where the reference is, else 1e-12 in float64), the same
gradients (1e-12) and the same hook calls. Where a feature cannot be supported (a second
backward through the fused neuron's kernel backward) it must raise, never return a wrong value.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import torch
from torch import Tensor, nn
from torch.nn.modules import module as torch_module
from torch.nn.utils import parametrizations, parametrize, prune

from spikeforge.core import IF, LIF, MultiStep, SpikeLinear, fused, spike_linear, spike_saving

pytestmark = [
    pytest.mark.needs_kernels(fused.LIBRARY),  # see conftest.py
    pytest.mark.needs_kernels(spike_linear.LIBRARY),
]

TOL = {"rtol": 1e-12, "atol": 1e-12}
T, B = 3, 4


def _gain(layer: nn.Module, factor: float) -> nn.Module:
    with torch.no_grad():
        layer.weight.mul_(factor)  # type: ignore[operator]
    return layer


def _net(backend: str, mid: str, *, dense_reference: bool = False, last: bool = True) -> nn.Module:
    """``MultiStep(first) -> IF -> MultiStep(mid) -> LIF -> MultiStep(readout)``, float64, seeded.

    ``mid``: ``"conv"`` (a conv, taken by ``_SpikeConv``), ``"conv_bn"`` (a ``Sequential``
    conv, BatchNorm), ``"spike_linear"`` or ``"linear"``; the conv kinds take inputs
    ``[T, B, 1, 6, 6]``, the linear kinds ``[T, B, 16]``. ``dense_reference``: an ``nn.Linear``
    instead of the ``SpikeLinear`` (the same weights). ``last=False`` stops after the middle
    layer (no neuron after it).
    """
    torch.manual_seed(0)
    if mid.startswith("conv"):
        first: nn.Module = _gain(nn.Conv2d(1, 4, 3, padding=1), 6.0)
        middle = [_gain(nn.Conv2d(4, 4, 3, padding=1), 8.0)]
        if mid == "conv_bn":
            middle.append(nn.BatchNorm2d(4))
        readout = [nn.Flatten(), nn.Linear(4 * 6 * 6, 3)]
    else:
        first = _gain(nn.Linear(16, 32), 3.0)
        dense = mid == "linear" or dense_reference
        cls = nn.Linear if dense else functools.partial(SpikeLinear, max_density=1.0, path="event")
        middle = [_gain(cls(32, 128), 6.0)]
        readout = [nn.Linear(128, 3)]
    layers = [MultiStep(first), IF(backend=backend), MultiStep(*middle)]
    if last:
        layers += [LIF(backend=backend, threshold=0.5), MultiStep(*readout)]
    return nn.Sequential(*layers).double()


def _input(mid: str, seed: int = 0) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    shape = (T, B, 1, 6, 6) if mid.startswith("conv") else (T, B, 16)
    return torch.rand(shape, generator=g, dtype=torch.float64)


def _nets(mid: str, **kw: Any) -> tuple[nn.Module, nn.Module]:
    """(fused-path network, reference-path network) with the same parameters."""
    return _net("fused", mid, **kw), _net("reference", mid, dense_reference=True, **kw)


def _middle(net: nn.Module) -> nn.Module:
    """The layer after the first neuron (the one the fast paths replace)."""
    layer = net[2].layer
    return layer[0] if isinstance(layer, nn.Sequential) else layer


def _run(net: nn.Module, x: Tensor) -> tuple[Tensor, list[Tensor]]:
    """Output and parameter gradients of a fixed loss."""
    net.zero_grad()
    out = net(x)
    weights = torch.linspace(-1, 1, out.numel(), dtype=out.dtype).reshape(out.shape)
    (out * weights + out.square()).sum().backward()
    return out.detach(), [p.grad for p in net.parameters()]


def _nodes(fn: Any) -> set[str]:
    names, stack, seen = set(), [fn], set()
    while stack:
        node = stack.pop()
        if node is not None and node not in seen:
            seen.add(node)
            names.add(type(node).__name__)
            stack += [nxt for nxt, _ in node.next_functions]
    return names


def _assert_same(
    got: tuple[Tensor, list[Tensor]], ref: tuple[Tensor, list[Tensor]], exact: bool = True
) -> None:
    if exact:
        assert torch.equal(got[0], ref[0]), (got[0] - ref[0]).abs().max()
    else:
        torch.testing.assert_close(got[0], ref[0], **TOL)
    assert len(got[1]) == len(ref[1])
    for a, b in zip(got[1], ref[1], strict=True):
        torch.testing.assert_close(a, b, **TOL)


def test_the_networks_fire_and_take_the_fast_paths() -> None:
    """The other tests mean something: both neuron layers fire, and without features the fused
    networks run _SpikeConv and SpikeLinear's event-driven kernels."""
    for mid, node in (("conv", "_SpikeConvBackward"), ("spike_linear", "_SpikeLinearBackward")):
        net, ref = _nets(mid)
        rates: list[float] = []
        for i in (1, 3):
            net[i].register_forward_hook(lambda _m, _i, s, r=rates: r.append(s.mean().item()))
        out = net(_input(mid))
        assert all(0.05 < r < 0.7 for r in rates), (mid, rates)
        assert node in _nodes(out.grad_fn)
        _assert_same(_run(net, _input(mid)), _run(ref, _input(mid)), exact=mid == "conv")


# --- hooks ------------------------------------------------------------------------------------


def _hook(kind: str, record: list[Any]) -> Callable[..., None]:
    def clone(ts: Any) -> list[Tensor | None]:
        return [None if t is None else t.detach().clone() for t in ts]

    if kind == "forward":
        return lambda _m, args, out: record.append(clone([*args, out]))
    if kind == "forward_pre":
        return lambda _m, args: record.append(clone(args))
    return lambda _m, *grads: record.append([g for gs in grads for g in clone(gs)])


def _register(module: nn.Module, kind: str, hook: Callable[..., None]) -> Any:
    return {
        "forward": module.register_forward_hook,
        "forward_pre": module.register_forward_pre_hook,
        "full_backward": module.register_full_backward_hook,
        "full_backward_pre": module.register_full_backward_pre_hook,
    }[kind](hook)


def _assert_same_calls(got: list[Any], ref: list[Any]) -> None:
    assert len(got) == len(ref) > 0
    for call, ref_call in zip(got, ref, strict=True):
        assert len(call) == len(ref_call)
        for a, b in zip(call, ref_call, strict=True):
            if b is None:
                assert a is None
            else:
                torch.testing.assert_close(a, b, **TOL)


@pytest.mark.parametrize("kind", ["forward", "forward_pre", "full_backward", "full_backward_pre"])
@pytest.mark.parametrize("target", ["conv", "sequential", "spike_linear"])
def test_module_hooks_fire_as_on_the_reference_path(kind: str, target: str) -> None:
    """Hooks on the layer right after a fused neuron: a conv (replaced by _SpikeConv when it has
    no hooks), a Sequential in MultiStep (run child by child when it has no hooks), SpikeLinear."""
    mid = {"conv": "conv", "sequential": "conv_bn", "spike_linear": "spike_linear"}[target]
    results, calls = [], []
    for net in _nets(mid):
        record: list[Any] = []
        _register(
            net[2].layer if target == "sequential" else _middle(net), kind, _hook(kind, record)
        )
        results.append(_run(net, _input(mid)))
        calls.append(record)
    _assert_same(*results, exact=mid != "spike_linear")
    _assert_same_calls(*calls)


@contextmanager
def _global_hook(kind: str, hook: Callable[..., None]) -> Iterator[None]:
    register = {
        "forward": torch_module.register_module_forward_hook,
        "forward_pre": torch_module.register_module_forward_pre_hook,
        "full_backward": torch_module.register_module_full_backward_hook,
        "full_backward_pre": torch_module.register_module_full_backward_pre_hook,
    }[kind]
    handle = register(hook)
    try:
        yield
    finally:
        handle.remove()


@pytest.mark.filterwarnings("ignore:Full backward hook is firing")  # the network's first module
@pytest.mark.parametrize("kind", ["forward", "forward_pre", "full_backward", "full_backward_pre"])
@pytest.mark.parametrize("mid", ["conv", "conv_bn"])
def test_global_module_hooks_fire_as_on_the_reference_path(kind: str, mid: str) -> None:
    results, calls, names = [], [], []
    for net in _nets(mid):
        record: list[Any] = []
        called: list[str] = []
        base = _hook(kind, record)

        def hook(m: nn.Module, *args: Any, base: Any = base, called: list[str] = called) -> None:
            called.append(type(m).__name__)
            base(m, *args)

        with _global_hook(kind, hook):
            results.append(_run(net, _input(mid)))
        calls.append(record)
        names.append(called)
    assert names[0] == names[1]
    assert "Conv2d" in names[0]
    _assert_same(*results)
    _assert_same_calls(*calls)


def test_forward_set_on_the_instance_is_called() -> None:
    """A forward replaced on the instance (as accelerate-style wrappers do) is called."""
    results, counts = [], []
    for net in _nets("conv"):
        conv, count = _middle(net), []
        plain = conv.forward
        conv.forward = lambda x, plain=plain, count=count: count.append(1) or plain(x) + 0.25
        results.append(_run(net, _input("conv")))
        counts.append(len(count))
    assert counts[0] == counts[1] == 1
    _assert_same(*results)


# --- pruning, weight norm, parametrizations ---------------------------------------------------


@pytest.mark.parametrize("mid", ["conv", "conv_bn", "spike_linear"])
def test_pruning_then_an_update_of_weight_orig(mid: str) -> None:
    """The issue's case: prune the layer after a fused neuron, change ``weight_orig`` (an
    optimiser step): grad-mode output = no-grad output = reference output, gradients equal."""
    results = []
    for net in _nets(mid):
        layer = _middle(net)
        prune.l1_unstructured(layer, "weight", amount=0.5)
        with torch.no_grad():
            layer.weight_orig.add_(
                torch.linspace(-1, 1, layer.weight_orig.numel())
                .view_as(layer.weight_orig)
                .to(layer.weight_orig.dtype)
            )
        with torch.no_grad():
            plain = net(_input(mid))
        out, grads = _run(net, _input(mid))
        torch.testing.assert_close(out, plain, **TOL)
        results.append((out, grads))
    _assert_same(*results, exact=mid != "spike_linear")


@pytest.mark.parametrize("norm", ["weight_norm", "spectral_norm"])
@pytest.mark.parametrize("mid", ["conv", "conv_bn", "spike_linear"])
def test_old_style_weight_norm_and_spectral_norm(norm: str, mid: str) -> None:
    """``torch.nn.utils.weight_norm`` / ``spectral_norm`` (forward pre-hooks) on the layer after
    a fused neuron, then a change of their parameters (an optimiser step)."""
    results = []
    for net in _nets(mid):
        layer = _middle(net)
        torch.manual_seed(1)  # spectral_norm draws its power-iteration vectors
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # weight_norm is deprecated
            getattr(torch.nn.utils, norm)(layer)
        name = "weight_g" if norm == "weight_norm" else "weight_orig"
        with torch.no_grad():
            getattr(layer, name).mul_(1.5)
        results.append(_run(net, _input(mid)))
        results[-1] = (results[-1][0], [*results[-1][1], *[b.clone() for b in layer.buffers()]])
    _assert_same(*results, exact=mid != "spike_linear")


class _Scale(nn.Module):
    def forward(self, w: Tensor) -> Tensor:
        return w * 1.5 - 0.125


@pytest.mark.parametrize("how", ["weight_norm", "spectral_norm", "custom"])
@pytest.mark.parametrize("mid", ["conv", "conv_bn", "spike_linear"])
def test_parametrizations(how: str, mid: str) -> None:
    results = []
    for net in _nets(mid):
        layer = _middle(net)
        torch.manual_seed(1)  # spectral_norm draws its power-iteration vectors
        if how == "custom":
            parametrize.register_parametrization(layer, "weight", _Scale())
        else:
            getattr(parametrizations, how)(layer)
        results.append(_run(net, _input(mid)))
    _assert_same(*results, exact=mid != "spike_linear")


def test_functional_call_with_other_parameters() -> None:
    """``torch.func.functional_call`` (meta-learning's fast weights): the passed tensors are used
    and receive the gradients."""
    results = []
    for net in _nets("conv"):
        params = {k: v.detach() * 1.25 for k, v in net.named_parameters()}
        for v in params.values():
            v.requires_grad_()
        out = torch.func.functional_call(net, params, (_input("conv"),))
        grads = torch.autograd.grad(out.square().sum(), list(params.values()))
        results.append((out.detach(), list(grads)))
    _assert_same(*results)


# --- double backward --------------------------------------------------------------------------


def _penalty(net: nn.Module, x: Tensor, params: list[Tensor]) -> tuple[list[Tensor], Tensor]:
    """First-order gradients built with create_graph=True and their squared norm."""
    loss = net(x).square().sum()
    grads = torch.autograd.grad(loss, params, create_graph=True)
    return [g.detach() for g in grads], sum(g.square().sum() for g in grads)  # type: ignore[return-value]


@pytest.mark.parametrize("mid", ["conv", "conv_bn", "spike_linear"])
def test_double_backward_through_the_fused_neuron_raises(mid: str) -> None:
    """A gradient penalty whose second backward needs the fused neuron's backward to be
    differentiable raises an error naming the fix; the first-order values are still right."""
    net, ref = _nets(mid)
    grads, penalty = _penalty(net, _input(mid), list(net.parameters()))
    ref_grads, _ = _penalty(ref, _input(mid), list(ref.parameters()))
    for got, want in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(got, want, **TOL)
    first_weight = net[0].layer.weight
    with pytest.raises(RuntimeError, match="backend='reference'"):  # the dP/dW1
        torch.autograd.grad(penalty, [first_weight], retain_graph=True)
    with pytest.raises(RuntimeError, match="backend='reference'"):
        penalty.backward()


@pytest.mark.parametrize("wrt", ["weight", "init_state"])
def test_double_backward_raises_when_the_loss_is_linear_in_the_spikes(wrt: str) -> None:
    """The incoming gradient of the spikes is a constant here, so only the neuron's inputs (the
    weight through X, the learnable initial potential through V[0]) connect the second-order
    terms to the graph; the error must still be raised, not a gradient without those terms."""
    for backend in ("reference", "fused"):
        torch.manual_seed(0)
        conv = _gain(nn.Conv2d(1, 4, 3, padding=1), 6.0).double()
        neuron = LIF(backend=backend, learnable_init=True, shape=(4, 6, 6)).double()
        spikes = neuron(MultiStep(conv)(_input("conv")))
        weights = torch.linspace(-1, 1, spikes.numel(), dtype=spikes.dtype).view_as(spikes)
        params = [conv.weight, neuron.init_state]
        grads = torch.autograd.grad((spikes * weights).sum(), params, create_graph=True)
        penalty = sum(g.square().sum() for g in grads) + neuron.init_state.square().sum()
        target = conv.weight if wrt == "weight" else neuron.init_state
        if backend == "reference":
            assert torch.autograd.grad(penalty, [target])[0].abs().sum() > 0
        else:
            with pytest.raises(RuntimeError, match="backend='reference'"):
                torch.autograd.grad(penalty, [target])


@pytest.mark.parametrize("mid", ["conv", "spike_linear"])
def test_double_backward_through_spike_conv_and_spike_linear_is_exact(mid: str) -> None:
    """A penalty on the gradients of the layer after the last fused neuron: its second backward
    goes through _SpikeConv's / SpikeLinear's backward (and the neuron's first-order backward)
    and equals the reference path's."""
    results = []
    for net in _nets(mid, last=False):
        out = net(_input(mid))
        if net[1].backend == "fused":
            assert {"_SpikeConvBackward", "_SpikeLinearBackward"} & _nodes(out.grad_fn)
        params = list(net.parameters())
        grads, penalty = _penalty(net, _input(mid), list(_middle(net).parameters()))
        results.append((penalty.detach(), [*grads, *torch.autograd.grad(penalty, params)]))
    _assert_same(*results, exact=False)


def test_double_backward_of_spike_linear_after_reference_neurons() -> None:
    """The fix the error names (backend='reference') keeps SpikeLinear: its event path's double
    backward is exact, here for a penalty on every parameter's gradient."""
    results = []
    for dense in (False, True):
        net = _net("reference", "spike_linear", dense_reference=dense)
        out = net(_input("spike_linear"))
        assert ("_SpikeLinearBackward" in _nodes(out.grad_fn)) is not dense
        params = list(net.parameters())
        grads, penalty = _penalty(net, _input("spike_linear"), params)
        results.append((penalty.detach(), [*grads, *torch.autograd.grad(penalty, params)]))
    _assert_same(*results, exact=False)


# --- saved-tensor hooks, grad modes -----------------------------------------------------------


@pytest.mark.parametrize("mid", ["conv", "conv_bn", "spike_linear"])
def test_own_saved_tensors_hooks_around_forward_and_backward(mid: str) -> None:
    """The user's hooks see every tensor the layers after a neuron save (spikeforge's own hooks
    would hide them), nothing they hand back is changed behind autograd's back (without a
    version bump), and results are the reference's."""
    results = []
    for net in _nets(mid):
        packed: list[tuple[Tensor, Tensor, int]] = []

        def pack(t: Tensor, packed: list[tuple[Tensor, Tensor, int]] = packed) -> int:
            packed.append((t, t.detach().clone(), t._version))
            return len(packed) - 1

        def unpack(i: int, packed: list[tuple[Tensor, Tensor, int]] = packed) -> Tensor:
            return packed[i][0]

        with torch.autograd.graph.saved_tensors_hooks(pack, unpack):
            results.append(_run(net, _input(mid)))
        seen = {t.untyped_storage().data_ptr() for t, _, _ in packed}
        for name, p in list(net.named_parameters())[2:]:  # the first layer's input needs no grad
            if name.endswith("weight") and p.dim() > 1:
                assert p.untyped_storage().data_ptr() in seen, f"{name} not seen by the hook"
        buffers = {b.untyped_storage().data_ptr() for b in net.buffers()}  # BN updates its own
        for t, copy, version in packed:
            if t.untyped_storage().data_ptr() not in buffers:
                assert torch.equal(t, copy) or t._version != version, "a saved tensor changed"
    _assert_same(*results, exact=mid != "spike_linear")


@pytest.mark.parametrize("mid", ["conv", "conv_bn", "spike_linear"])
def test_checkpoint(mid: str) -> None:
    """``torch.utils.checkpoint`` (saved-tensor hooks that recompute the forward)."""
    results = []
    for net in _nets(mid):
        net.zero_grad()
        out = torch.utils.checkpoint.checkpoint(net, _input(mid), use_reentrant=False)
        out.square().sum().backward()
        results.append((out.detach(), [p.grad for p in net.parameters()]))
    _assert_same(*results, exact=mid != "spike_linear")


def test_saved_tensors_hooks_disabled() -> None:
    """Under ``disable_saved_tensors_hooks`` nothing may push hooks: the plain path runs."""
    for mid in ("conv", "spike_linear"):
        results = []
        for net in _nets(mid):
            with torch.autograd.graph.disable_saved_tensors_hooks("no hooks here"):
                results.append(_run(net, _input(mid)))
        _assert_same(*results, exact=mid != "spike_linear")


def test_foreign_saved_tensors_hooks_detection() -> None:
    """The private torch API the guards use still answers (else the fast paths would silently
    step aside everywhere)."""
    assert not fused.foreign_saved_tensors_hooks()
    with torch.autograd.graph.saved_tensors_hooks(lambda t: t, lambda t: t):
        assert fused.foreign_saved_tensors_hooks()
    x = torch.zeros(2, 3)
    with spike_saving.saved_as_recomputed(x, lambda: x):
        assert not fused.foreign_saved_tensors_hooks()
    assert spike_saving.spike_path_allowed()


@pytest.mark.parametrize("mode", ["no_grad", "inference_mode"])
@pytest.mark.parametrize("mid", ["conv", "conv_bn", "spike_linear"])
def test_no_grad_and_inference_mode(mode: str, mid: str) -> None:
    outs = []
    for net in _nets(mid):
        with torch.no_grad() if mode == "no_grad" else torch.inference_mode():
            plain = net(_input(mid))
        outs.append(plain.clone())
        torch.testing.assert_close(net(_input(mid)).detach(), plain, rtol=0, atol=0)
    torch.testing.assert_close(
        outs[0], outs[1], **({"rtol": 0, "atol": 0} if mid != "spike_linear" else TOL)
    )
