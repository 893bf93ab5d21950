"""Exact mapping of a trained ReLU network to a TTFS network (spec ``ttfs.md`` §2-§5)."""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from typing import Literal

import torch
from torch import Tensor, nn

from spikeforge.ttfs.errors import InputRangeError
from spikeforge.ttfs.fold import Chain, canonicalize, max_activations, scale_weight_sums
from spikeforge.ttfs.layers import (
    Alpha1Layer,
    Alpha1Readout,
    B1Layer,
    B1Readout,
    Synapses,
    TTFSLayer,
)
from spikeforge.ttfs.network import MappingInfo, TTFSNetwork
from spikeforge.ttfs.trace import trace_chain
from spikeforge.ttfs.windows import Windows

Neuron = Literal["b1", "alpha1"]


def _calibration_batches(
    calibration: Tensor | Iterable, input_range: tuple[float, float], clip: bool
) -> list[Tensor]:
    """Calibration inputs as float64 batches ``[B, *in_shape]`` mapped to [0, 1]."""
    if isinstance(calibration, Tensor):
        items: Iterable = [calibration]
    else:
        items = calibration
    p, q = input_range
    batches = []
    for item in items:
        x = item[0] if isinstance(item, tuple | list) else item
        if not isinstance(x, Tensor):
            raise TypeError(f"calibration batches must be tensors, got {type(x).__name__}")
        x = x.detach().to(torch.float64)
        if x.shape[0] == 0:
            continue
        if not bool(torch.isfinite(x).all()):
            raise ValueError("calibration data contains NaN or infinite values")
        if clip:
            x = x.clamp(p, q)
        elif float(x.min()) < p or float(x.max()) > q:
            raise InputRangeError(
                f"calibration values span [{float(x.min()):.6g}, {float(x.max()):.6g}], outside "
                f"input_range [{p}, {q}]"
            )
        batches.append((x - p) / (q - p))
    if not batches:
        raise ValueError("calibration data is empty")
    return batches


def _alpha1_layers(chain: Chain, windows: Windows) -> list[TTFSLayer]:
    layers: list[TTFSLayer] = []
    for n, stage in enumerate(chain.hidden, start=1):
        a = stage.affine
        win = windows.layer(n)
        alpha = torch.ones_like(a.fan_in_sum())
        weight_j = a.weight * (alpha / (1.0 - a.fan_in_sum())).reshape(
            (-1,) + (1,) * (a.weight.dim() - 1)
        )
        sum_j = a.fan_in_sum(weight_j)
        slope = alpha + sum_j
        offset = win.width * sum_j - slope * a.bias  # D_i (spec §2.4)
        theta = alpha * (win.t_max - win.t_min_prev) + offset
        layers.append(Alpha1Layer(stage.pre, Synapses(a, weight_j), alpha, theta, a.path))
    out = chain.stages[-1]
    win = windows.layer(len(chain.stages))
    alpha = out.affine.bias / (win.t_min - win.t_min_prev)
    layers.append(
        Alpha1Readout(out.pre, Synapses(out.affine, out.affine.weight), alpha, out.affine.path)
    )
    return layers


def _b1_layers(chain: Chain) -> list[TTFSLayer]:
    layers: list[TTFSLayer] = [
        B1Layer(s.pre, Synapses(s.affine, s.affine.weight), s.affine.bias, s.affine.path)
        for s in chain.hidden
    ]
    out = chain.stages[-1]
    layers.append(
        B1Readout(
            out.pre, Synapses(out.affine, out.affine.weight), out.affine.bias, out.affine.path
        )
    )
    return layers


def from_relu(
    model: nn.Module,
    calibration: Tensor | Iterable,
    neuron: Neuron = "b1",
    zeta: float = 0.5,
    input_range: tuple[float, float] = (0.0, 1.0),
    clip: bool = False,
) -> TTFSNetwork:
    """Map a trained ReLU network to an exactly equivalent TTFS network.

    Args:
        model: ``nn.Sequential`` (or any module ``torch.fx`` traces into a single chain) of
            Linear, Conv2d, BatchNorm1d/2d, ReLU, MaxPool2d, AvgPool2d, Flatten, Dropout. The
            model is not modified; BatchNorm uses its running statistics.
        calibration: inputs ``[B, *in_shape]`` (a tensor, or an iterable of tensors or
            ``(x, y)`` batches) in ``input_range``; the window widths are
            ``B_n = (1 + zeta) X_n`` with ``X_n`` the largest ReLU output of hidden layer n
            over these inputs (normally the training set).
        neuron: ``"b1"`` (constant slope; the SNN parameters are the folded ReLU parameters) or
            ``"alpha1"`` (P1: weight-sum scaling, ``J = alpha W / (1 - sum W)`` and thresholds).
        zeta: window safety margin; ``zeta < 0`` makes windows smaller than the calibration
            maxima, so some activations exceed them: they are reported as window violations
            (exactness is lost for those neurons).
        input_range: ``(p, q)``, the range of input values; inputs map to spike times
            ``1 - (x - p) / (q - p)``.
        clip: clip calibration values to ``input_range`` instead of raising
            :class:`InputRangeError`.

    Raises:
        UnsupportedLayerError: a layer or arrangement without an exact TTFS equivalent (the
            message names the layer's path and type).
    """
    if neuron not in ("b1", "alpha1"):
        raise ValueError(f"neuron must be 'b1' or 'alpha1', got {neuron!r}")
    if not zeta > -1:
        raise ValueError(f"zeta must be > -1, got {zeta}")
    if not input_range[1] > input_range[0]:
        raise ValueError(f"input_range must have q > p, got {tuple(input_range)}")
    batches = _calibration_batches(calibration, input_range, clip)
    chain = canonicalize(trace_chain(model), batches[0][:1], input_range)
    if neuron == "alpha1":
        scale_weight_sums(chain)
    maxima = max_activations(chain, batches)
    for n, m in enumerate(maxima, start=1):
        if m == 0.0:
            warnings.warn(
                f"hidden layer {n} ({chain.stages[n - 1].affine.path}) never activates on the "
                "calibration data; its window width is set to 1 + zeta",
                stacklevel=2,
            )
    windows = Windows([(1.0 + zeta) * (m if m > 0 else 1.0) for m in maxima])
    layers = _alpha1_layers(chain, windows) if neuron == "alpha1" else _b1_layers(chain)
    info = MappingInfo(chain, maxima, zeta, weight_sum_scaled=neuron == "alpha1")
    return TTFSNetwork(layers, windows, input_range, chain.in_shape, bool(chain.post), info)


def b1_from_scratch(
    model: nn.Module,
    in_shape: tuple[int, ...],
    x_n: float = 1000.0,
    zeta: float = 0.5,
    input_range: tuple[float, float] = (0.0, 1.0),
) -> TTFSNetwork:
    """A B1 network to train from scratch, initialised with ``model``'s (folded) parameters.

    Unlike :func:`from_relu` no calibration data is used: every hidden window gets width
    ``(1 + zeta) * x_n``, P2's default ``X_n = 1000`` (a window of 1500 tau_c per layer) when
    training from scratch; :func:`spikeforge.ttfs.train.train_b1` grows them as needed. Because
    the B1 parameters are the ReLU parameters, training the result with the same batches and
    optimiser as ``model`` reproduces ``model``'s training trajectory (in float64, up to
    rounding). BatchNorm in ``model`` is folded with its running statistics: a trainable SNN
    has no batch statistics, so train BatchNorm-free models from scratch.
    """
    if not x_n > 0:
        raise ValueError(f"x_n must be > 0, got {x_n}")
    if not zeta > -1:
        raise ValueError(f"zeta must be > -1, got {zeta}")
    if not input_range[1] > input_range[0]:
        raise ValueError(f"input_range must have q > p, got {tuple(input_range)}")
    unit = torch.zeros((1, *in_shape), dtype=torch.float64)
    chain = canonicalize(trace_chain(model), unit, input_range)
    windows = Windows([(1.0 + zeta) * x_n] * len(chain.hidden))
    info = MappingInfo(chain, [x_n] * len(chain.hidden), zeta)
    return TTFSNetwork(
        _b1_layers(chain), windows, input_range, chain.in_shape, bool(chain.post), info
    )


__all__ = [
    "Neuron",
    "b1_from_scratch",
    "from_relu",
]
