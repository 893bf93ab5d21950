"""BPTT memory for layers fed by spikes: keep no copy of the spikes, recompute them from ``H``.

A layer that multiplies its input by a weight saves that input for the weight gradient. Fed by a
spiking neuron, that input is the spike tensor ``S [T·B, ...]``, as large as the activations,
while the neuron on the fused path (:mod:`spikeforge.core.fused`) already saves its pre-spike
potential ``H`` and ``S = (H >= ϑ)`` is exact and cheap to recompute. :class:`MultiStep
<spikeforge.core.neurons.MultiStep>` therefore runs its layers with :func:`spike_saving` when its
input comes straight from a fused neuron:

* every tensor a layer saves that lies in the spikes' memory is packed as a reference to ``H``
  (:class:`SpikesFromH`) and recomputed bit for bit when the backward needs it;
* a leading ``nn.Conv1d/2d/3d`` (zero padding) takes :class:`_SpikeConv`: the usual forward, and
  a backward that recomputes the spikes and runs the convolution's backward **in chunks of
  samples** (:data:`CHUNK_BYTES` of spikes each, 32 MiB), so neither the spikes nor the
  convolution's internal work buffers exist for the whole batch at once.

A spiking layer then holds one tensor across BPTT (``H``), as a ReLU layer does (its output), and
its backward's peak stays below the ReLU layer's. Results are unchanged: the spikes are
recomputed exactly and the chunked weight gradient differs from the unchunked one by summation
order only.

**Only where it is the same computation.** Everything here runs only while gradients are on, not
under ``torch.compile`` tracing, with no global module hooks
(``torch.nn.modules.module.register_module_forward_hook`` and friends) and no saved-tensor hooks
of anyone else active (a user's ``saved_tensors_hooks``, ``torch.utils.checkpoint``, offloading:
ours would hide them); :func:`spike_path_allowed` says so. Otherwise :class:`MultiStep
<spikeforge.core.neurons.MultiStep>` calls its layers as usual. A module is called through its
parts (a ``Sequential``'s children) or replaced by :class:`_SpikeConv` (a convolution) only if
:func:`bypassable`: its exact type, no forward / pre / backward hooks of its own (``prune``, the
old ``weight_norm`` / ``spectral_norm`` and firing-rate recorders are forward pre-hooks or
hooks), no parametrization, no ``forward`` set on the instance. Every other layer is called
normally, so its hooks fire and see the same tensors.

**Double backward.** :class:`_SpikeConv` saves its input as a reference to ``H`` too; a backward
with ``create_graph=True`` recomputes it as a tensor connected to the neuron and runs the
ordinary (unchunked, differentiable) convolution backward, so second-order gradients equal the
reference path's. Tensors packed by :func:`spike_saving` are unpacked connected to their
producer as well (torch's saved-tensor machinery keeps the autograd edge).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.modules import module as _module

from spikeforge.core.fused import OWN_HOOK, foreign_saved_tensors_hooks, spikes_from_h

__all__ = [
    "CHUNK_BYTES",
    "SpikesFromH",
    "bypassable",
    "saved_as_recomputed",
    "spike_path_allowed",
    "spike_saving",
]

#: bytes of spikes recomputed per chunk in the backward of a convolution fed by spikes
CHUNK_BYTES = 32 << 20


class SpikesFromH:
    """A view of a fused neuron's spikes, kept as a reference to the neuron's saved ``H``."""

    __slots__ = ("node", "offset", "shape", "stride")

    def __init__(self, node: Any, view: Tensor) -> None:
        self.node = node
        self.shape, self.stride, self.offset = view.shape, view.stride(), view.storage_offset()

    def _compare(self, h: Tensor) -> Tensor:
        return spikes_from_h(h, self.node.cfg[2], self.node.cfg[5])

    def unpack(self) -> Tensor:
        """The spikes of the view (a fresh tensor)."""
        h = self.node.saved_tensors[0]
        return self._compare(h).as_strided(self.shape, self.stride, self.offset)

    def rows(self, lo: int, hi: int) -> Tensor:
        """Rows ``lo:hi`` of a view that is the whole spike tensor flattened to ``[N, ...]``."""
        h = self.node.saved_tensors[0]
        return self._compare(h.reshape(self.shape)[lo:hi])


def _global_module_hooks() -> bool:
    return bool(
        _module._global_forward_pre_hooks
        or _module._global_forward_hooks
        or _module._global_backward_pre_hooks
        or _module._global_backward_hooks
    )


def spike_path_allowed() -> bool:
    """Whether layers fed by a fused neuron may take the spike-saving path now (module
    docstring): no global module hooks, no saved-tensor hooks but spikeforge's own. The caller
    checks grad mode and ``torch.compile`` tracing."""
    return not _global_module_hooks() and not foreign_saved_tensors_hooks()


def bypassable(module: nn.Module) -> bool:
    """Whether running ``module``'s computation without calling ``module(x)`` (its children one
    by one, or :class:`_SpikeConv` for a convolution) is the same as calling it: no hooks of its
    own (forward, forward pre-, backward, backward pre-), no parametrization, no ``forward`` set
    on the instance. The caller checks the exact type and the global hooks."""
    return not (
        module._forward_hooks
        or module._forward_pre_hooks
        or module._backward_hooks
        or module._backward_pre_hooks
        or "forward" in module.__dict__
        or "parametrizations" in module._modules  # parametrize.is_parametrized, without getattr
    )


class _Recomputed:
    """A saved tensor packed as a way to recompute it (:func:`saved_as_recomputed`)."""

    __slots__ = ("device", "dtype", "make", "shape")

    def __init__(self, make: Callable[[], Tensor], t: Tensor) -> None:
        self.make, self.shape, self.dtype, self.device = make, t.shape, t.dtype, t.device

    def unpack(self) -> Tensor:
        if torch.is_grad_enabled():  # a backward with create_graph=True
            return self.make()
        # a plain backward: the owner's backward does not read it (zero-strided, no memory)
        return torch.zeros((), dtype=self.dtype, device=self.device).expand(self.shape)


def _unpack_recomputed(packed: Any) -> Tensor:
    return packed.unpack() if isinstance(packed, _Recomputed) else packed


@contextmanager
def saved_as_recomputed(t: Tensor, make: Callable[[], Tensor]) -> Iterator[None]:
    """Within the block, ``t``, if autograd saves it, is packed as ``make`` (a function returning
    its values again) instead of being kept.

    Unpacked in a backward with ``create_graph=True`` it is ``make()``, connected to ``t``'s
    producer (so a double backward through the saving function is exact); in a plain backward
    it is a zero-strided placeholder of ``t``'s shape: the saving function's own backward reads
    it only when differentiating twice. ``make`` must not hold ``t``.
    """
    ptr, shape, stride, dtype, version = t.data_ptr(), t.shape, t.stride(), t.dtype, t._version

    def pack(s: Tensor) -> Any:
        if (
            s.data_ptr() == ptr
            and s.shape == shape
            and s.stride() == stride
            and s.dtype == dtype
            and s._version == version
        ):
            return _Recomputed(make, s)
        return s

    setattr(pack, OWN_HOOK, True)
    with torch.autograd.graph.saved_tensors_hooks(pack, _unpack_recomputed):
        yield


_CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)


def _conv_backward(
    g: Tensor, x: Tensor, weight: Tensor, conv: Any, need_x: bool, need_w: bool, need_b: bool
) -> tuple[Tensor | None, Tensor | None, Tensor | None]:
    """``aten.convolution_backward`` of ``conv``'s geometry: (dL/dx, dL/dW, dL/db), each only
    if asked for."""
    return torch.ops.aten.convolution_backward(
        g,
        x,
        weight,
        [weight.shape[0]] if need_b else None,
        list(conv.stride),
        list(conv.padding),
        list(conv.dilation),
        False,
        [0] * len(conv.stride),
        conv.groups,
        [need_x, need_w, need_b],
    )


class _SpikeConv(torch.autograd.Function):
    """``conv(x)`` for spikes ``x [N, C, ...]``; backward in chunks of recomputed spikes.

    Call under :func:`saved_as_recomputed` of ``x`` (:func:`apply_to_spikes`): ``x`` is saved
    only to be recomputed, connected, for a backward with ``create_graph=True``.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        x: Tensor,
        weight: Tensor,
        bias: Tensor | None,
        conv: nn.Module,
        spikes: SpikesFromH,
    ) -> Tensor:
        ctx.spikes = spikes
        ctx.conv = conv
        ctx.has_bias = bias is not None
        ctx.save_for_backward(x, weight)
        fn = (F.conv1d, F.conv2d, F.conv3d)[x.dim() - 3]
        return fn(x, weight, bias, conv.stride, conv.padding, conv.dilation, conv.groups)

    @staticmethod
    def backward(  # type: ignore[override]
        ctx: Any, g: Tensor
    ) -> tuple[Tensor | None, Tensor | None, Tensor | None, None, None]:
        x, weight = ctx.saved_tensors
        conv, spikes = ctx.conv, ctx.spikes
        need_x, need_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        need_b = ctx.has_bias and ctx.needs_input_grad[2]
        if torch.is_grad_enabled():
            # create_graph=True: x is the recomputed spikes connected to the neuron; the
            # ordinary convolution backward is differentiable, as the reference path's
            gx, gw, gb = _conv_backward(g, x, weight, conv, need_x, need_w, need_b)
            return gx, gw, gb if need_b else None, None, None
        n = spikes.shape[0]
        per_sample = max(1, spikes.shape.numel() // max(n, 1) * weight.element_size())
        step = max(1, CHUNK_BYTES // per_sample)
        g = g.contiguous()
        g_x = None
        if need_x:
            g_x = torch.empty(spikes.shape, dtype=weight.dtype, device=weight.device)
        g_w = torch.zeros_like(weight) if need_w else None
        g_b = weight.new_zeros(weight.shape[0]) if need_b else None
        for lo in range(0, n, step) if need_x or need_w or need_b else ():
            hi = min(n, lo + step)
            gx, gw, gb = _conv_backward(
                g[lo:hi], spikes.rows(lo, hi), weight, conv, need_x, need_w, need_b
            )
            if g_x is not None:
                g_x[lo:hi] = gx
            if g_w is not None:
                g_w += gw
            if g_b is not None:
                g_b += gb
        return g_x, g_w, g_b, None, None


def _plain_conv(layer: nn.Module, x: Tensor) -> bool:
    return (
        type(layer) in _CONVS
        and layer.padding_mode == "zeros"  # type: ignore[union-attr]
        and not isinstance(layer.padding, str)  # type: ignore[union-attr]
        and x.dim() == layer.weight.dim()  # type: ignore[union-attr]
        and x.dtype == layer.weight.dtype  # type: ignore[union-attr]
    )


@contextmanager
def spike_saving(node: Any, x: Tensor) -> Iterator[None]:
    """Within the block, tensors saved in ``x``'s memory are packed as references to ``H``.

    ``node``: :func:`spikeforge.core.fused.spike_source` of the spikes ``x`` came from (``x`` is
    that tensor or a view of it). The pack hook keeps no reference to ``x``; a tensor changed in
    place since (its version counter moved) is saved as usual.
    """
    storage, dtype, device, version = x.untyped_storage().data_ptr(), x.dtype, x.device, x._version

    def pack(t: Tensor) -> Any:
        if (
            t.dtype == dtype
            and t.device == device
            and t.untyped_storage().data_ptr() == storage
            and t._version == version  # not changed in place (e.g. an in-place dropout)
        ):
            return SpikesFromH(node, t)
        return t

    def unpack(packed: Any) -> Tensor:
        return packed.unpack() if isinstance(packed, SpikesFromH) else packed

    setattr(pack, OWN_HOOK, True)
    with torch.autograd.graph.saved_tensors_hooks(pack, unpack):
        yield


def apply_to_spikes(layers: list[nn.Module], x: Tensor, node: Any) -> Tensor:
    """Run ``layers`` on spikes ``x [N, ...]`` (the flattened output of the fused neuron
    ``node``) keeping no copy of the spikes for backward (module docstring). The caller checks
    :func:`spike_path_allowed`."""
    with spike_saving(node, x):
        first, *rest = layers
        if bypassable(first) and _plain_conv(first, x):
            spikes = SpikesFromH(node, x)
            with saved_as_recomputed(x, spikes.unpack):
                y = _SpikeConv.apply(x, first.weight, first.bias, first, spikes)
        else:
            y = first(x)
        for layer in rest:
            y = layer(y)
    return y
