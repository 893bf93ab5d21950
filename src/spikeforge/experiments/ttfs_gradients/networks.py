"""The networks of the gradient experiment (the ReLU MLP, its B1 and alpha1 networks, the
naive alpha1 initialisation) and the measurements on them (effective alpha1 parameters, parameter
distances); see :mod:`spikeforge.experiments.ttfs_gradients` for the derivation."""

from __future__ import annotations

import copy
import itertools
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from spikeforge.ttfs.fold import (
    WEIGHT_SUM_LOWER,
    WEIGHT_SUM_UPPER,
    canonicalize,
    max_activations,
)
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

# ---------------------------------------------------------------------------------------------
# networks
# ---------------------------------------------------------------------------------------------


def glorot_mlp(
    in_features: int, width: int, depth: int, classes: int, generator: torch.Generator
) -> nn.Sequential:
    """``Flatten -> depth x (Linear(width) + ReLU) -> Linear(classes)`` in float64, weights drawn
    from Keras' ``glorot_uniform`` (``U(-a, a)``, ``a = sqrt(6 / (fan_in + fan_out))``) with
    ``generator``, biases zero (P2's initialisation)."""
    if depth < 1 or width < 1:
        raise ValueError(f"need depth >= 1 and width >= 1, got depth={depth}, width={width}")
    sizes = [in_features] + [width] * depth + [classes]
    layers: list[nn.Module] = [nn.Flatten()]
    for n, (fan_in, fan_out) in enumerate(itertools.pairwise(sizes)):
        lin = nn.Linear(fan_in, fan_out, dtype=torch.float64)
        limit = math.sqrt(6.0 / (fan_in + fan_out))
        with torch.no_grad():
            w = torch.rand(fan_out, fan_in, generator=generator, dtype=torch.float64)
            lin.weight.copy_((2.0 * w - 1.0) * limit)
            lin.bias.zero_()
        layers.append(lin)
        if n < depth:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def _linears(model: nn.Module) -> list[nn.Linear]:
    return [m for m in model.modules() if isinstance(m, nn.Linear)]


def relu_parameters(model: nn.Module) -> list[tuple[Tensor, Tensor]]:
    """``(W [O, K], b [O])`` of every Linear layer of ``model``, in order, detached."""
    return [(m.weight.detach(), m.bias.detach()) for m in _linears(model)]


def weight_sum_factors(model: nn.Module) -> list[Tensor]:
    """P1's weight-sum scale factors ``f_l`` ``[O_l]`` of each hidden layer of an MLP of Linear
    layers, computed exactly as :func:`spikeforge.ttfs.fold.scale_weight_sums` does: layer by
    layer, on weights already divided by the previous layer's factors; ``f = 0.99 / c`` where the
    weight sum ``c > 0.99``, ``-10 / c`` where ``c < -10``, else 1."""
    params = relu_parameters(model)
    factors: list[Tensor] = []
    inverse: Tensor | None = None
    for w, _ in params[:-1]:
        if inverse is not None:
            w = w * inverse.reshape(1, -1)
        sums = w.sum(dim=1)
        f = torch.ones_like(sums)
        f = torch.where(sums > WEIGHT_SUM_UPPER, WEIGHT_SUM_UPPER / sums, f)
        f = torch.where(sums < WEIGHT_SUM_LOWER, WEIGHT_SUM_LOWER / sums, f)
        factors.append(f)
        inverse = 1.0 / f
    return factors


def scaled_parameters(
    params: Sequence[tuple[Tensor, Tensor]], factors: Sequence[Tensor]
) -> list[tuple[Tensor, Tensor]]:
    """ReLU parameters ``(W, b)`` reparametrised with fixed weight-sum factors (one ``[O_l]``
    tensor per hidden layer): ``W_l <- diag(f_l) W_l diag(1 / f_{l-1})``, ``b_l <- f_l b_l``
    (the output layer only gets the column division). The network function is unchanged."""
    if len(factors) != len(params) - 1:
        raise ValueError(f"{len(factors)} factor vectors for {len(params) - 1} hidden layers")
    out: list[tuple[Tensor, Tensor]] = []
    inverse: Tensor | None = None
    for n, (w, b) in enumerate(params):
        if inverse is not None:
            w = w * inverse.reshape(1, -1)
        if n < len(factors):
            f = factors[n]
            w, b = w * f.reshape(-1, 1), b * f
            inverse = 1.0 / f
        out.append((w, b))
    return out


def effective_parameters(net: TTFSNetwork) -> list[tuple[Tensor, Tensor]]:
    """The ReLU parameters ``(W, b)`` each layer of ``net`` computes with its current windows
    (detached): hidden layers give ``x_i = ReLU(sum_j W_ij x_j + b_i)`` on values
    ``x = t_max - t``, the readout gives the logits ``sum_j W_ij x_j + b_i``.

    B1: ``(W, D)``. alpha1 hidden: ``(J / s, (alpha (t_max - t_min_prev) + S (t_max - t_min) -
    theta) / s)`` with ``S = sum_j J_ij`` and ``s = alpha + S`` (module docstring); alpha1
    readout: ``(W, alpha (t_min - t_min_prev))``. Shapes as the synapse weights (``[O, K]`` or
    ``[O, C, kh, kw]``) and the bias (``[O]``, ``[O, 1, 1]`` or a bias map ``[O, H, W]``).
    """
    params: list[tuple[Tensor, Tensor]] = []
    with torch.no_grad():
        for layer, win in zip(net.layers, net.windows.layers(), strict=True):
            w = layer.synapses.weight
            if isinstance(layer, B1Layer | B1Readout):
                params.append((w.detach().clone(), layer.bias.detach().clone()))
            elif isinstance(layer, Alpha1Layer):
                sum_j = layer.synapses.fan_in_sum()
                slope = layer.alpha + sum_j
                w_eff = w / slope.reshape((-1,) + (1,) * (w.dim() - 1))
                b_eff = (
                    layer.alpha * (win.t_max - win.t_min_prev)
                    + sum_j * (win.t_max - win.t_min)
                    - layer.theta
                ) / slope
                params.append((w_eff, b_eff))
            elif isinstance(layer, Alpha1Readout):
                params.append((w.detach().clone(), layer.initial_potential(win).detach().clone()))
            else:  # pragma: no cover - no other layer types exist
                raise TypeError(f"unknown TTFS layer {type(layer).__name__}")
    return params


def hidden_values(net: TTFSNetwork, hidden_times: Sequence[Tensor]) -> list[Tensor]:
    """Values ``x = t_max - t`` ``[B, *shape]`` of every hidden layer from its spike times."""
    return [tm - t for t, tm in zip(hidden_times, net.windows.hidden_t_max(), strict=True)]


def mlp_forward(params: Sequence[tuple[Tensor, Tensor]], x: Tensor) -> tuple[list[Tensor], Tensor]:
    """Hidden ReLU outputs ``[B, O_l]`` and logits ``[B, classes]`` of the MLP with parameters
    ``params`` (``(W [O, K], b [O])`` per layer) on inputs ``[B, ...]`` (flattened)."""
    x = x.flatten(1)
    hidden: list[Tensor] = []
    for n, (w, b) in enumerate(params):
        x = F.linear(x, w, b)
        if n < len(params) - 1:
            x = torch.relu(x)
            hidden.append(x)
    return hidden, x


def naive_alpha1(model: nn.Module, calibration: Sequence[Tensor], zeta: float = 0.5) -> TTFSNetwork:
    """An alpha1 network initialised naively from ``model``'s (untrained) parameters.

    Every hidden layer takes ``J = W`` (the ReLU initialisation's weights, no weight-sum scaling
    and no ``1 / (1 - sum W)`` factor), ``alpha = 1`` and the P1 threshold formula with the ReLU
    bias ``b``: ``theta = alpha (t_max - t_min_prev) + B_n S - s b`` (``S = sum_j J_ij``,
    ``s = alpha + S``), so that ``b_eff = b`` and ``W_eff = W / (1 + sum_j W_ij)``: with Glorot
    weights ``sum_j W_ij`` has O(1) spread and some slopes ``s`` are near 0 or negative (spec §7
    point 1). Window widths ``B_n = (1 + zeta) X_n`` with ``X_n`` the largest hidden activation
    of *this* network (its effective ReLU network) on ``calibration`` (values in [0, 1],
    ``[B, *in_shape]`` batches); 1 + zeta when a layer never activates. The readout is P1's:
    ``W`` unchanged, ``alpha = b / (t_min - t_min_prev)``. Input range [0, 1].

    Raises ``ValueError`` when the effective network's activations are not finite.
    """
    batches = [c.detach().to(torch.float64) for c in calibration]
    chain = canonicalize(trace_chain(model), batches[0][:1], (0.0, 1.0))
    effective = copy.deepcopy(chain)
    for stage in effective.hidden:
        a = stage.affine
        slope = 1.0 + a.fan_in_sum()
        a.weight = a.weight / slope.reshape((-1,) + (1,) * (a.weight.dim() - 1))
    maxima = max_activations(effective, batches)
    if not all(math.isfinite(m) for m in maxima):
        raise ValueError(f"naive alpha1 initialisation: non-finite activations (X_n = {maxima})")
    windows = Windows([(1.0 + zeta) * (m if m > 0 else 1.0) for m in maxima])
    layers: list[TTFSLayer] = []
    for n, stage in enumerate(chain.hidden, start=1):
        a = stage.affine
        win = windows.layer(n)
        alpha = torch.ones_like(a.fan_in_sum())
        sum_j = a.fan_in_sum()
        theta = alpha * (win.t_max - win.t_min_prev) + win.width * sum_j - (alpha + sum_j) * a.bias
        layers.append(Alpha1Layer(stage.pre, Synapses(a, a.weight), alpha, theta, a.path))
    out = chain.stages[-1]
    win = windows.layer(len(chain.stages))
    alpha = out.affine.bias / (win.t_min - win.t_min_prev)
    layers.append(
        Alpha1Readout(out.pre, Synapses(out.affine, out.affine.weight), alpha, out.affine.path)
    )
    info = MappingInfo(effective, maxima, zeta)
    return TTFSNetwork(layers, windows, (0.0, 1.0), chain.in_shape, bool(chain.post), info)


# ---------------------------------------------------------------------------------------------
# measurements
# ---------------------------------------------------------------------------------------------


def _flat(params: Sequence[tuple[Tensor, Tensor]]) -> Tensor:
    return torch.cat([t.reshape(-1) for pair in params for t in pair])


def parameter_distance(
    a: Sequence[tuple[Tensor, Tensor]], b: Sequence[tuple[Tensor, Tensor]]
) -> tuple[float, float]:
    """``(max|a - b|, ||a - b||_2 / ||b||_2)`` over all parameters of two lists of ``(W, b)``
    with equal shapes (``b`` is the reference)."""
    va, vb = _flat(a), _flat(b)
    if va.shape != vb.shape:
        raise ValueError(f"{va.numel()} parameters against {vb.numel()}")
    diff = va - vb
    return float(diff.abs().max()), float(diff.norm() / vb.norm())


def relative_l2(a: Tensor, b: Tensor) -> float:
    """``||a - b||_2 / ||b||_2`` (``b`` is the reference)."""
    return float((a - b).norm() / b.norm())


def round_sig(v: float | None, digits: int = 6) -> float | None:
    """A JSON-friendly float rounded to ``digits`` significant digits (None stays None)."""
    if v is None:
        return None
    v = float(v)
    if not math.isfinite(v):
        return v
    return float(f"{v:.{digits}g}")
