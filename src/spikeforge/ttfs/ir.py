"""A small intermediate representation of a ReLU network as a chain of operations.

:func:`spikeforge.ttfs.trace.trace_chain` turns a PyTorch model into a list of these operations,
:mod:`spikeforge.ttfs.fold` rewrites the list (BatchNorm folding, input-range fold, weight-sum
scaling), and :mod:`spikeforge.ttfs.mapping` turns the final list into a TTFS network.

All operations act on batch-first value tensors ``[B, *shape]``; ``in_shape`` / ``out_shape``
exclude the batch dimension. Conventions:

* :class:`Affine` is a Linear or Conv2d layer whose bias is either per output feature
  (``[O]`` for linear, ``[O, 1, 1]`` for conv) or a position-dependent map ``[O, H_out, W_out]``
  (border biases from folding an affine map across zero padding).
* :class:`Pool` with ``kind="max"`` carries a per-channel ``sign``: +1 takes the maximum of the
  values in each window (earliest spike), -1 the minimum (latest spike).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor


@dataclass
class Affine:
    """A Linear (``kind="linear"``) or Conv2d (``kind="conv"``) layer with a bias (map)."""

    path: str
    kind: Literal["linear", "conv"]
    weight: Tensor
    bias: Tensor
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] | str = (0, 0)
    dilation: tuple[int, int] = (1, 1)
    groups: int = 1
    in_shape: tuple[int, ...] = ()
    out_shape: tuple[int, ...] = ()

    def apply_no_bias(self, x: Tensor, weight: Tensor | None = None) -> Tensor:
        """Apply the synaptic operation without bias: ``[B, *in_shape] -> [B, *out_shape]``.

        Zero padding (conv) means padded inputs contribute nothing.
        """
        w = self.weight if weight is None else weight
        if self.kind == "linear":
            return F.linear(x, w)
        return F.conv2d(x, w, None, self.stride, self.padding, self.dilation, self.groups)

    def apply(self, x: Tensor) -> Tensor:
        """``[B, *in_shape] -> [B, *out_shape]`` including the bias (map)."""
        return self.apply_no_bias(x) + self.bias

    def fan_in_sum(self, weight: Tensor | None = None) -> Tensor:
        """Sum of the weights over each output neuron's fan-in, shaped like the bias: ``[O]`` or
        ``[O, 1, 1]``."""
        w = self.weight if weight is None else weight
        s = w.flatten(1).sum(dim=1)
        return s if self.kind == "linear" else s[:, None, None]

    def input_channel_index(self) -> Tensor:
        """For conv: ``[O, C_in / groups]`` index of the input channel each weight slice reads."""
        out_ch, in_per_group = self.weight.shape[:2]
        per_group_out = out_ch // self.groups
        group = torch.arange(out_ch) // per_group_out
        return group[:, None] * in_per_group + torch.arange(in_per_group)[None, :]

    def scale_inputs(self, factor: Tensor) -> None:
        """Multiply the weights reading each input feature (linear, ``factor`` of shape
        ``in_shape``) or input channel (conv, ``factor`` of shape ``[C_in]``) by ``factor``."""
        if self.kind == "linear":
            self.weight = self.weight * factor.reshape(1, -1)
        else:
            per_slice = factor[self.input_channel_index()]
            self.weight = self.weight * per_slice[:, :, None, None]

    def scale_outputs(self, factor: Tensor) -> None:
        """Multiply row ``o`` (weights and every entry of its bias map) by ``factor[o]``."""
        view = (-1,) + (1,) * (self.weight.dim() - 1)
        self.weight = self.weight * factor.reshape(view)
        self.bias = self.bias * factor.reshape((-1,) + (1,) * (self.bias.dim() - 1))

    def compact_bias(self) -> None:
        """Store a conv bias map as ``[O, 1, 1]`` when it is the same at every position."""
        if self.kind == "conv" and self.bias.dim() == 3 and self.bias.shape[1:] != (1, 1):
            first = self.bias[:, :1, :1]
            if torch.equal(self.bias, first.expand_as(self.bias)):
                self.bias = first.clone()


def max_min_pool(
    x: Tensor,
    sign: Tensor | None,
    kernel_size: tuple[int, int],
    stride: tuple[int, int],
    padding: tuple[int, int],
    dilation: tuple[int, int] = (1, 1),
    ceil_mode: bool = False,
    *,
    of_times: bool,
) -> Tensor:
    """Per-channel max (``sign > 0`` or ``sign is None``) or min (``sign < 0``) pooling of values
    ``[B, C, H, W]``; with ``of_times=True`` the same selection expressed on spike times
    (``t = t_max - x``): the earliest spike for max channels, the latest for min channels.
    Padding never wins (it is -inf for a max, +inf for a min)."""

    def largest(v: Tensor) -> Tensor:
        return F.max_pool2d(v, kernel_size, stride, padding, dilation, ceil_mode)

    positive = None if sign is None else sign > 0
    if positive is None or bool(positive.all()):
        return -largest(-x) if of_times else largest(x)
    larger, smaller = largest(x), -largest(-x)
    if not bool(positive.any()):
        return larger if of_times else smaller
    positive = positive.reshape(1, -1, 1, 1)
    if of_times:
        return torch.where(positive, smaller, larger)
    return torch.where(positive, larger, smaller)


@dataclass
class Pool:
    """MaxPool2d (with per-channel max/min sign) or AvgPool2d (zero padding counted)."""

    path: str
    kind: Literal["max", "avg"]
    kernel_size: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]
    dilation: tuple[int, int] = (1, 1)
    ceil_mode: bool = False
    sign: Tensor | None = None
    in_shape: tuple[int, ...] = ()
    out_shape: tuple[int, ...] = ()

    def max_or_min(self, x: Tensor, *, of_times: bool) -> Tensor:
        """Max pooling of values (``of_times=False``) or the equivalent pooling of spike times
        (``of_times=True``). ``x``: ``[B, C, H, W]``."""
        geometry = (self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode)
        return max_min_pool(x, self.sign, *geometry, of_times=of_times)

    def avg(self, x: Tensor) -> Tensor:
        """Average pooling with zero padding counted in the divisor. ``x``: ``[B, C, H, W]``."""
        return F.avg_pool2d(x, self.kernel_size, self.stride, self.padding, self.ceil_mode, True)

    def apply(self, x: Tensor) -> Tensor:
        """Pool values ``[B, C, H, W] -> [B, C, H', W']``."""
        return self.max_or_min(x, of_times=False) if self.kind == "max" else self.avg(x)


@dataclass
class Flatten:
    """Flatten ``[B, *in_shape] -> [B, prod(in_shape)]`` (PyTorch order: C, then H, then W)."""

    path: str
    in_shape: tuple[int, ...] = ()
    out_shape: tuple[int, ...] = ()

    def apply(self, x: Tensor) -> Tensor:
        return x.flatten(1)


@dataclass
class Relu:
    path: str
    in_shape: tuple[int, ...] = ()
    out_shape: tuple[int, ...] = ()

    def apply(self, x: Tensor) -> Tensor:
        return torch.relu(x)


@dataclass
class ScaleShift:
    """A per-channel affine map ``y = scale * x + shift`` (inference BatchNorm, input range).

    ``scale`` and ``shift`` have shape ``[C]``; channel is dimension 1 of the input.
    """

    path: str
    scale: Tensor
    shift: Tensor
    in_shape: tuple[int, ...] = ()
    out_shape: tuple[int, ...] = ()
    description: str = field(default="BatchNorm")

    def expand(self, t: Tensor, shape: tuple[int, ...]) -> Tensor:
        """Broadcast a per-channel tensor ``[C]`` to a feature shape ``(C, ...)``."""
        return t.reshape((-1,) + (1,) * (len(shape) - 1)).expand(shape)

    def apply(self, x: Tensor) -> Tensor:
        shape = tuple(x.shape[1:])
        return x * self.expand(self.scale, shape) + self.expand(self.shift, shape)


Op = Affine | Pool | Flatten | Relu | ScaleShift


def describe(op: Op) -> str:
    """Human-readable ``"<layer type> at <path>"`` for error messages."""
    if isinstance(op, Affine):
        name = "Linear" if op.kind == "linear" else "Conv2d"
    elif isinstance(op, Pool):
        name = "MaxPool2d" if op.kind == "max" else "AvgPool2d"
    elif isinstance(op, Relu):
        name = "ReLU"
    elif isinstance(op, ScaleShift):
        name = op.description
    else:
        name = type(op).__name__
    return f"{name} at {op.path}"


__all__ = [
    "Affine",
    "Flatten",
    "Op",
    "Pool",
    "Relu",
    "ScaleShift",
    "describe",
    "max_min_pool",
]
