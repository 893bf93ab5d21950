"""TTFS layers with closed-form spike times (spec ``ttfs.md`` §2 and §5).

Every tensor of spike times is batch-first, ``[B, *shape]``, in the network's dtype (float64 by
default). Time is in units of tau_c = 1. A hidden layer n receives the spike times ``t_j`` of
layer n - 1 (after its pre-operations: pooling, flatten), whose window ends at this layer's
``t_min``; ``x_j = t_min - t_j`` is the value a spike encodes (0 for a silent neuron, which is
modelled as a spike at ``t_min``; padding is a spike at ``t_min`` too).

* **B1** (constant slope 1 in the firing phase, bias in the threshold ``theta = B_n - D``):
  ``t_i = t_min + theta_i - sum_j W_ij (t_min - t_j)``.
* **alpha1** (bias current ``alpha`` from ``t_min_prev``, slope ``alpha + sum_j J_ij``):
  ``t_i = (theta_i + alpha_i t_min_prev + sum_j J_ij t_j) / (alpha_i + sum_j J_ij)``.

Both are clipped at ``t_max`` (no spike before the window closes: value 0). A time below
``t_min`` means the neuron's activation exceeds its window: the closed form extrapolates it,
and :func:`window_violations` counts it. The output layer is read out as its membrane potential
at its ``t_min``.
"""

from __future__ import annotations

from dataclasses import replace

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from spikeforge.ttfs.hardware import fake_quantize
from spikeforge.ttfs.ir import Affine, Flatten, Pool
from spikeforge.ttfs.windows import LayerWindow


class SpikeTimePool(nn.Module):
    """Pooling of spike times ``[B, C, H, W] -> [B, C, H', W']`` (``forward``) or of the values
    they encode (``values``).

    ``kind="max"``: per channel, the earliest spike (max of values) where ``sign > 0`` and the
    latest spike (min of values) where ``sign < 0``. ``kind="avg"``: the average, padding
    counted as silent spikes (value 0, time ``t_max`` of the layer).
    """

    sign: Tensor | None

    def __init__(self, pool: Pool) -> None:
        super().__init__()
        self.spec = replace(pool, sign=None)  # geometry only; the sign is a buffer
        self.register_buffer("sign", None if pool.sign is None else pool.sign.clone())

    @property
    def kind(self) -> str:
        return self.spec.kind

    def _pool(self) -> Pool:
        return replace(self.spec, sign=self.sign)

    def forward(self, t: Tensor, silent_time: float) -> Tensor:
        if self.kind == "avg":
            return self.spec.avg(t - silent_time) + silent_time
        return self._pool().max_or_min(t, of_times=True)

    def values(self, x: Tensor) -> Tensor:
        """The same pooling on encoded values ``x = t_max - t``."""
        return self._pool().apply(x)

    def extra_repr(self) -> str:
        p = self.spec
        return f"{p.kind}, kernel={p.kernel_size}, stride={p.stride}, pad={p.padding}"


class SpikeTimeFlatten(nn.Module):
    """``[B, C, H, W] -> [B, C*H*W]`` (PyTorch order)."""

    def forward(self, t: Tensor, silent_time: float) -> Tensor:
        return t.flatten(1)

    def values(self, x: Tensor) -> Tensor:
        return x.flatten(1)


def pre_op_module(op: Pool | Flatten) -> nn.Module:
    return SpikeTimePool(op) if isinstance(op, Pool) else SpikeTimeFlatten()


class Synapses(nn.Module):
    """The weighted connection of a layer: dense (``kind="linear"``, weight ``[O, K]``) or
    convolutional (``kind="conv"``, weight ``[O, C/groups, kh, kw]``), no bias.

    ``weight_quantization = (w_min, w_max, bits)`` (set by
    :attr:`~spikeforge.ttfs.network.TTFSNetwork.hardware`; ``None`` by default) makes every
    method use the fake-quantised weight (:func:`~spikeforge.ttfs.hardware.fake_quantize`) while
    ``weight`` stays the full-precision parameter an optimiser updates. It is not part of the
    state dict.
    """

    weight_quantization: tuple[float, float, int] | None

    def __init__(self, affine: Affine, weight: Tensor) -> None:
        super().__init__()
        self.kind = affine.kind
        self.stride = affine.stride
        self.padding = affine.padding
        self.dilation = affine.dilation
        self.groups = affine.groups
        self.in_shape = affine.in_shape
        self.out_shape = affine.out_shape
        self.weight = nn.Parameter(weight.clone())
        self.weight_quantization = None

    def effective_weight(self) -> Tensor:
        """The weight the synapses apply: ``weight``, fake-quantised if
        ``weight_quantization`` is set."""
        if self.weight_quantization is None:
            return self.weight
        return fake_quantize(self.weight, *self.weight_quantization)

    def forward(self, x: Tensor) -> Tensor:
        """``sum_j W_ij x_j``: values ``[B, *in_shape]`` (zero padding) -> ``[B, *out_shape]``."""
        w = self.weight if self.weight_quantization is None else self.effective_weight()
        if self.kind == "linear":
            return F.linear(x, w)
        return F.conv2d(x, w, None, self.stride, self.padding, self.dilation, self.groups)

    def affine(self, x: Tensor, bias: Tensor) -> Tensor:
        """``sum_j W_ij x_j + bias_i`` as the ReLU layer computes it (the bias inside the
        linear / convolution call when it is per output channel)."""
        w = self.weight if self.weight_quantization is None else self.effective_weight()
        if self.kind == "linear":
            return F.linear(x, w, bias)
        if bias.dim() == 3 and bias.shape[1:] == (1, 1):
            flat = bias.reshape(-1)
            return F.conv2d(x, w, flat, self.stride, self.padding, self.dilation, self.groups)
        return self(x) + bias

    def subtract_from(self, c: Tensor, x: Tensor) -> Tensor:
        """``c - sum_j W_ij x_j`` with ``c`` broadcastable to ``[B, *out_shape]`` (fused into one
        matrix product for dense layers)."""
        if self.kind == "linear":
            w = self.weight if self.weight_quantization is None else self.effective_weight()
            return torch.addmm(c.expand(x.shape[0], -1), x, w.t(), alpha=-1)
        return c - self(x)

    def fan_in_sum(self) -> Tensor:
        """Sum of each output neuron's (effective) weights: ``[O]`` (linear) or ``[O, 1, 1]``
        (conv)."""
        w = self.weight if self.weight_quantization is None else self.effective_weight()
        s = w.flatten(1).sum(dim=1)
        return s if self.kind == "linear" else s[:, None, None]

    def extra_repr(self) -> str:
        text = f"{self.kind}, in={list(self.in_shape)}, out={list(self.out_shape)}"
        if self.weight_quantization is not None:
            lo, hi, bits = self.weight_quantization
            text += f", quantised to {bits} bits in [{lo:.4g}, {hi:.4g}]"
        return text


class TTFSLayer(nn.Module):
    """Base of the spiking and readout layers: pre-operations, then synapses."""

    neuron: str = ""

    def __init__(self, pre: list[Pool | Flatten], synapses: Synapses, path: str) -> None:
        super().__init__()
        self.pre = nn.ModuleList(pre_op_module(op) for op in pre)
        self.synapses = synapses
        self.path = path

    def input_values(self, t: Tensor, win: LayerWindow) -> Tensor:
        """``x_j = t_min - t_j`` (the input layer's ``t_max`` is this layer's ``t_min``), then
        the pre-operations (pooling on values is equivalent to pooling the spike times)."""
        return self.pooled(win.t_min - t)

    def pooled(self, x: Tensor) -> Tensor:
        """The pre-operations on input values ``x = t_min - t_j`` ``[B, *shape]``."""
        for op in self.pre:
            x = op.values(x)
        return x

    def values(self, x: Tensor, win: LayerWindow) -> Tensor:
        """Window-relative form of :meth:`forward`: from input values ``x = t_min - t_j``
        (before the pre-operations) to ``y = t_max - t_i`` (hidden layers; ``y = 0``: no spike)
        or to the output potentials (readout). No absolute time enters, so rounding does not
        grow with the depth or the window widths."""
        raise NotImplementedError


class B1Layer(TTFSLayer):
    """Hidden B1 layer: parameters ``W`` (``synapses.weight``) and ``D`` (``bias``) are the ReLU
    layer's weight and bias; threshold ``theta = (t_max - t_min) - D``."""

    neuron = "b1"

    def __init__(self, pre: list, synapses: Synapses, bias: Tensor, path: str) -> None:
        super().__init__(pre, synapses, path)
        self.bias = nn.Parameter(bias.clone())

    def threshold(self, win: LayerWindow) -> Tensor:
        return win.width - self.bias

    def forward(self, t: Tensor, win: LayerWindow) -> Tensor:
        """Spike times ``[B, *out_shape]`` from input spike times (closed form, clipped at
        ``t_max``)."""
        c = win.t_min + self.threshold(win)
        return self.synapses.subtract_from(c, self.input_values(t, win)).clamp_(max=win.t_max)

    def values(self, x: Tensor, win: LayerWindow) -> Tensor:
        """``t_max - t_i``: the potential at ``t_min`` is ``V = sum_j W_ij x_j``, the crossing
        of ``theta = B_n - D`` with slope 1 is at ``t_min + theta - V``, i.e. relative to the
        window end ``t_i - t_max = -(D + V)`` (the width cancels exactly); clipped at 0
        (``t_i <= t_max``)."""
        return torch.relu(self.synapses.affine(self.pooled(x), self.bias))


class StaleWindowError(ValueError):
    """An alpha1 layer's threshold or bias current was derived for other windows."""


def check_derived_for(layer: nn.Module, win: LayerWindow) -> None:
    """Raise :class:`StaleWindowError` if ``layer.derived_for`` (the window its alpha1
    parameters were derived for; ``None``: unchecked) is not ``win``."""
    derived = getattr(layer, "derived_for", None)
    if derived is not None and derived != win:
        raise StaleWindowError(
            f"alpha1 layer {layer.path}: its parameters were derived for the window {derived}, "
            f"the network's windows now give {win}; change windows with "
            "net.windows.set_widths(...), which re-derives them, not in place"
        )


class Alpha1Layer(TTFSLayer):
    """Hidden alpha1 layer (P1): weights ``J`` (``synapses.weight``), bias current ``alpha``
    switched on at ``t_min_prev``, threshold ``theta`` (P1 §2.4:
    ``theta = alpha (t_max - t_min_prev) + B_n sum_j J_ij - (alpha + sum_j J_ij) b``, so it
    depends on the windows). ``derived_for`` is the window it holds for (set by the network);
    :meth:`rederive` moves it to new windows with ``b`` unchanged, and the forward pass raises
    :class:`StaleWindowError` when the windows changed without it."""

    neuron = "alpha1"

    def __init__(
        self, pre: list, synapses: Synapses, alpha: Tensor, threshold: Tensor, path: str
    ) -> None:
        super().__init__(pre, synapses, path)
        self.alpha = nn.Parameter(alpha.clone())
        self.theta = nn.Parameter(threshold.clone())
        self.derived_for: LayerWindow | None = None

    def rederive(self, old: LayerWindow, new: LayerWindow) -> None:
        """Re-derive ``theta`` for window ``new`` keeping the equivalent ReLU bias ``b``:
        ``theta += alpha (delta (t_max - t_min_prev)) + sum_j J_ij (delta B_n)``."""
        with torch.no_grad():
            s = self.synapses.weight.flatten(1).sum(dim=1)
            s = s if self.synapses.kind == "linear" else s[:, None, None]
            span = (new.t_max - new.t_min_prev) - (old.t_max - old.t_min_prev)
            self.theta.add_(self.alpha * span + s * (new.width - old.width))
        self.derived_for = new

    def slope(self) -> Tensor:
        """Slope of the membrane potential at threshold, ``alpha + sum_j J_ij``."""
        return self.alpha + self.synapses.fan_in_sum()

    def forward(self, t: Tensor, win: LayerWindow) -> Tensor:
        """Closed-form first threshold crossing ``[B, *out_shape]``, clipped at ``t_max``.

        ``sum_j J_ij t_j`` is evaluated as ``t_min sum_j J_ij - sum_j J_ij (t_min - t_j)`` so that
        zero padding of ``t_min - t_j`` is exactly a padding spike at ``t_min``."""
        check_derived_for(self, win)
        s_j = self.synapses.fan_in_sum()
        c = self.theta + self.alpha * win.t_min_prev + win.t_min * s_j
        numerator = self.synapses.subtract_from(c, self.input_values(t, win))
        return numerator.div_(self.alpha + s_j).clamp_(max=win.t_max)

    def values(self, x: Tensor, win: LayerWindow) -> Tensor:
        """``t_max - t_i``: ``V(t_min) = alpha B_{n-1} + sum_j J_ij x_j``, the crossing is
        ``(theta - V(t_min)) / (alpha + sum_j J_ij)`` after ``t_min``, so
        ``t_max - t_i = B_n - (theta - V(t_min)) / s``; clipped at 0."""
        check_derived_for(self, win)
        v = self.synapses(self.pooled(x)) + self.alpha * win.relative_width_prev
        s = self.alpha + self.synapses.fan_in_sum()
        return torch.relu(win.relative_width - (self.theta - v) / s)


class B1Readout(TTFSLayer):
    """Output layer of a B1 network: ``V(t_min) = D + sum_j W_ij (t_min - t_j)``."""

    neuron = "b1"

    def __init__(self, pre: list, synapses: Synapses, bias: Tensor, path: str) -> None:
        super().__init__(pre, synapses, path)
        self.bias = nn.Parameter(bias.clone())

    def initial_potential(self, win: LayerWindow) -> Tensor:
        return self.bias

    def forward(self, t: Tensor, win: LayerWindow) -> Tensor:
        """Membrane potentials ``[B, *out_shape]`` at the readout time ``win.t_min``."""
        return self.bias + self.synapses(self.input_values(t, win))

    def values(self, x: Tensor, win: LayerWindow) -> Tensor:
        return self.synapses.affine(self.pooled(x), self.bias)


class Alpha1Readout(TTFSLayer):
    """Output layer of an alpha1 network: weights ``W`` unchanged, bias current
    ``alpha = b / (t_min - t_min_prev)``; ``V(t_min) = alpha (t_min - t_min_prev) + sum W x``."""

    neuron = "alpha1"

    def __init__(self, pre: list, synapses: Synapses, alpha: Tensor, path: str) -> None:
        super().__init__(pre, synapses, path)
        self.alpha = nn.Parameter(alpha.clone())
        self.derived_for: LayerWindow | None = None

    def rederive(self, old: LayerWindow, new: LayerWindow) -> None:
        """Re-derive ``alpha`` for window ``new`` keeping ``b = alpha (t_min - t_min_prev)``."""
        span = new.t_min - new.t_min_prev
        if not span > 0:
            raise ValueError(f"alpha1 readout {self.path}: the last hidden window has width 0")
        with torch.no_grad():
            self.alpha.mul_((old.t_min - old.t_min_prev) / span)
        self.derived_for = new

    def initial_potential(self, win: LayerWindow) -> Tensor:
        return self.alpha * (win.t_min - win.t_min_prev)

    def forward(self, t: Tensor, win: LayerWindow) -> Tensor:
        check_derived_for(self, win)
        return self.initial_potential(win) + self.synapses(self.input_values(t, win))

    def values(self, x: Tensor, win: LayerWindow) -> Tensor:
        check_derived_for(self, win)
        return self.alpha * win.relative_width_prev + self.synapses(self.pooled(x))


def window_violations(t: Tensor, win: LayerWindow) -> int:
    """Number of spike times before the window opens (activations larger than the window)."""
    return int((t < win.t_min).sum())


__all__ = [
    "Alpha1Layer",
    "Alpha1Readout",
    "B1Layer",
    "B1Readout",
    "SpikeTimeFlatten",
    "SpikeTimePool",
    "StaleWindowError",
    "Synapses",
    "TTFSLayer",
    "check_derived_for",
    "pre_op_module",
    "window_violations",
]
