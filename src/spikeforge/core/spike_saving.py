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
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from spikeforge.core.fused import spikes_from_h

__all__ = ["CHUNK_BYTES", "SpikesFromH", "spike_saving"]

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
        (h,) = self.node.saved_tensors
        return self._compare(h).as_strided(self.shape, self.stride, self.offset)

    def rows(self, lo: int, hi: int) -> Tensor:
        """Rows ``lo:hi`` of a view that is the whole spike tensor flattened to ``[N, ...]``."""
        (h,) = self.node.saved_tensors
        return self._compare(h.reshape(self.shape)[lo:hi])


_CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)


class _SpikeConv(torch.autograd.Function):
    """``conv(x)`` for spikes ``x [N, C, ...]``; backward in chunks of recomputed spikes."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, x: Tensor, weight: Tensor, bias: Tensor | None, conv: nn.Module, node: Any
    ) -> Tensor:
        ctx.spikes = SpikesFromH(node, x)
        ctx.conv = conv
        ctx.has_bias = bias is not None
        ctx.save_for_backward(weight)
        fn = (F.conv1d, F.conv2d, F.conv3d)[x.dim() - 3]
        return fn(x, weight, bias, conv.stride, conv.padding, conv.dilation, conv.groups)

    @staticmethod
    def backward(  # type: ignore[override]
        ctx: Any, g: Tensor
    ) -> tuple[Tensor | None, Tensor | None, Tensor | None, None, None]:
        (weight,) = ctx.saved_tensors
        conv, spikes = ctx.conv, ctx.spikes
        need_x, need_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        need_b = ctx.has_bias and ctx.needs_input_grad[2]
        n = spikes.shape[0]
        per_sample = max(1, spikes.shape.numel() // max(n, 1) * weight.element_size())
        step = max(1, CHUNK_BYTES // per_sample)
        g = g.contiguous()
        g_x = torch.empty(spikes.shape, dtype=weight.dtype) if need_x else None
        g_w = torch.zeros_like(weight) if need_w else None
        g_b = weight.new_zeros(weight.shape[0]) if need_b else None
        for lo in range(0, n, step) if need_x or need_w or need_b else ():
            hi = min(n, lo + step)
            gx, gw, gb = torch.ops.aten.convolution_backward(
                g[lo:hi],
                spikes.rows(lo, hi),
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

    with torch.autograd.graph.saved_tensors_hooks(pack, unpack):
        yield


def apply_to_spikes(layers: list[nn.Module], x: Tensor, node: Any) -> Tensor:
    """Run ``layers`` on spikes ``x [N, ...]`` (the flattened output of the fused neuron
    ``node``) keeping no copy of the spikes for backward (module docstring)."""
    with spike_saving(node, x):
        first, *rest = layers
        if _plain_conv(first, x):
            y = _SpikeConv.apply(x, first.weight, first.bias, first, node)
        else:
            y = first(x)
        for layer in rest:
            y = layer(y)
    return y
