"""P2's gradient claims, measured (spec ``ttfs.md`` §6-§8, risks 11 and 13).

:func:`run_gradient_experiment` trains four networks side by side, from the same initialisation,
on the same batches, in float64, with the same optimiser:

``relu``
    an MLP ``Flatten -> depth x (Linear(width) + ReLU) -> Linear(classes)`` with Keras'
    ``glorot_uniform`` weights and zero biases (P2's initialiser);
``b1``
    its B1 network (by default :func:`~spikeforge.ttfs.mapping.from_relu` of a copy, windows
    ``1.5 X_n`` calibrated on the training subset; with ``b1_windows="scratch"``
    :func:`~spikeforge.ttfs.mapping.b1_from_scratch`, P2's from-scratch windows with
    ``X_n = 1000``), windows grown after every step (:func:`~spikeforge.ttfs.train.grow_windows`,
    P2's rule);
``alpha1_smart``
    P1's alpha1 network mapped from the same initialisation
    (``from_relu(..., neuron="alpha1")``: weight-sum scaling, ``J = W / (1 - sum W)``), equal to
    the ReLU network at initialisation ("smart alpha1 initialisation", spec §7 point 2);
``alpha1_naive``
    an alpha1 network whose weights ``J`` *are* the ReLU initialisation's weights (no weight-sum
    scaling, no ``1 / (1 - sum W)`` factor), see :func:`naive_alpha1`.

Trainable parameters: ReLU ``(W, b)``; B1 ``(W, D)``; alpha1 ``J`` and ``theta`` of every hidden
layer (``alpha = 1`` stays fixed: it is the "1" of alpha1) and the readout's ``W`` and bias
current ``alpha``. The alpha1 windows stay fixed: their thresholds were computed for them.

**Effective ReLU parameters of an alpha1 layer** (derivation; checked numerically by
:func:`effective_parameters` against the canonical scaled network and against the spike times).
With input values ``x_j = t_min - t_j``, ``S_i = sum_j J_ij`` and slope ``s_i = alpha_i + S_i``,
the closed form ``t_i = (theta_i + alpha_i t_min_prev + sum_j J_ij t_j) / s_i`` clipped at
``t_max`` gives ``x_i = t_max - t_i = ReLU(sum_j W_eff_ij x_j + b_eff_i)`` with::

    W_eff_ij = J_ij / s_i,
    b_eff_i  = (alpha_i (t_max - t_min_prev) + S_i (t_max - t_min) - theta_i) / s_i.

This holds for the closed form whatever the sign of ``s_i`` and whether or not an activation
exceeds its window (the closed form then extrapolates; such spikes are counted as window
violations). A neuron with ``s_i <= 0`` cannot actually fire in the physical alpha1 model: the
closed form is meaningless for it, which is reported (``slopes``), not corrected. The alpha1
readout computes ``b_eff = alpha (t_min - t_min_prev)`` and ``W_eff = W``; B1's effective
parameters are its parameters ``(W, D)``.

**Parameter distance to the ReLU run.** B1: ``(W, D)`` against ``(W, b)`` directly. alpha1:
effective parameters against the ReLU run's current parameters pushed through the *fixed*
weight-sum scaling of the initialisation (:func:`weight_sum_factors`: row ``i`` of hidden layer
``l`` times ``f_l[i]``, column ``j`` of layer ``l + 1`` divided by ``f_l[j]``), the exact linear
reparametrisation under which the ReLU network and the mapped network coincide at step 0. For the
naive alpha1 network the factors are 1 (it is a different function from the start). Both
``max|a - b|`` and ``||a - b||_2 / ||b||_2`` over all parameters are recorded.

**Noise floor.** B1 equals the ReLU run only up to rounding: spike times are absolute (up to
``1 + sum_n B_n``, a few hundred after window growth), so every step rounds activations at
``~1e-13`` (spec risk 2), and training amplifies any difference over the steps. To show the
scale of that amplification, a fifth network, the ReLU MLP from its initialisation times
``1 + 1e-15 N(0, 1)``, is trained on the same batches and its distance to the ReLU run recorded
(``relu_perturbed``).
"""

from __future__ import annotations

import argparse
import copy
import itertools
import math
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from torch import Tensor, nn
from torch.optim.lr_scheduler import LambdaLR
from tqdm import tqdm

from spikeforge.data import Dataset, load_dataset
from spikeforge.experiments.registry import Command
from spikeforge.experiments.report import ReportFolder
from spikeforge.experiments.ttfs_mapping import calibration_batches
from spikeforge.tables import format_table
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
from spikeforge.ttfs.mapping import b1_from_scratch, from_relu
from spikeforge.ttfs.network import MappingInfo, TTFSNetwork
from spikeforge.ttfs.trace import trace_chain
from spikeforge.ttfs.train import grow_windows
from spikeforge.ttfs.windows import Windows
from spikeforge.viz import write_png

RUNS = ("relu", "b1", "alpha1_smart", "alpha1_naive")
SNN_RUNS = RUNS[1:]
FLOOR = "relu_perturbed"  # the ReLU run from a 1e-15-perturbed init: float64 noise floor
DISTANCE_RUNS = (*SNN_RUNS, FLOOR)
RUN_LABELS = {
    "relu": "ReLU",
    "b1": "B1",
    "alpha1_smart": "alpha1 (smart init)",
    "alpha1_naive": "alpha1 (naive init)",
    FLOOR: "ReLU, init x (1 + 1e-15 N(0,1))",
}
RUN_COLORS = {
    FLOOR: "tab:gray",
    "relu": "black",
    "b1": "tab:blue",
    "alpha1_smart": "tab:red",
    "alpha1_naive": "tab:orange",
}

# P2's optimiser: Adam with ExponentialDecay(lr, decay_steps=5000, decay_rate=0.9) (continuous),
# Keras' default epsilon.
DECAY_STEPS = 5000
DECAY_RATE = 0.9
ADAM_EPS = 1e-7

_DPI = 120
_LOG_FLOOR = 1e-17  # exact zeros are drawn here on log axes


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


def _sig(v: float | None, digits: int = 6) -> float | None:
    """A JSON-friendly float rounded to ``digits`` significant digits (None stays None)."""
    if v is None:
        return None
    v = float(v)
    if not math.isfinite(v):
        return v
    return float(f"{v:.{digits}g}")


class _Run:
    """One network under training: the model, its optimiser, and what is recorded about it."""

    def __init__(self, name: str, model: nn.Module, lr: float) -> None:
        self.name = name
        self.model = model
        self.is_snn = isinstance(model, TTFSNetwork)
        if self.is_snn and model.neuron == "alpha1":
            for layer in model.layers[:-1]:
                layer.alpha.requires_grad_(False)  # alpha1: alpha = 1 is part of the model
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.opt = torch.optim.Adam(self.params, lr=lr, eps=ADAM_EPS)
        self.sched = LambdaLR(self.opt, lambda step: DECAY_RATE ** (step / DECAY_STEPS))
        self.diverged_at: int | None = None
        self.divergence: str | None = None
        self.losses: list[float | None] = []
        self.violations: list[int | None] = []

    @property
    def alive(self) -> bool:
        return self.diverged_at is None

    def weights(self) -> list[Tensor]:
        if self.is_snn:
            return [layer.synapses.weight for layer in self.model.layers]
        return [m.weight for m in _linears(self.model)]

    def logits(self, x: Tensor) -> Tensor:
        return self.model(x)

    def fail(self, step: int, why: str) -> None:
        self.diverged_at, self.divergence = step, why

    def step(self, step: int, xb: Tensor, yb: Tensor) -> None:
        """One optimiser step on batch ``xb`` ``[B, *in_shape]``, ``yb`` ``[B]``."""
        if not self.alive:
            self.losses.append(None)
            self.violations.append(None)
            return
        self.opt.zero_grad(set_to_none=True)
        out = self.model.run(xb) if self.is_snn else None
        logits = out.logits if out is not None else self.model(xb)
        loss = F.cross_entropy(logits, yb)
        value = float(loss.detach())
        self.losses.append(value)
        self.violations.append(
            sum(self.model.window_violations(out.hidden_times)) if out is not None else 0
        )
        if not math.isfinite(value):
            self.fail(step, f"non-finite loss {value} at step {step}")
            return
        loss.backward()
        self.opt.step()
        self.sched.step()
        if not all(bool(torch.isfinite(p).all()) for p in self.params):
            self.fail(step, f"non-finite parameters after step {step}")
            return
        if self.is_snn and self.model.neuron == "b1":
            grow_windows(self.model, out.hidden_times)  # P2: pre-step times, after the step

    def grad_norms(self, x: Tensor, y: Tensor) -> list[float]:
        """L2 norm of the loss gradient w.r.t. each weight layer (first hidden .. output) on a
        fixed batch; does not touch ``.grad`` or the optimiser."""
        weights = self.weights()
        loss = F.cross_entropy(self.logits(x), y)
        grads = torch.autograd.grad(loss, weights, allow_unused=True)
        return [float(g.norm()) if g is not None else 0.0 for g in grads]

    def accuracy(self, x: Tensor, y: Tensor, chunk: int = 1000) -> float:
        with torch.no_grad():
            correct = sum(
                int((self.logits(x[i : i + chunk]).argmax(1) == y[i : i + chunk]).sum())
                for i in range(0, x.shape[0], chunk)
            )
        return correct / x.shape[0]


def _slope_stats(net: TTFSNetwork) -> list[dict[str, float]]:
    """Per alpha1 hidden layer: min / median / max slope ``s = alpha + sum_j J_ij`` and the
    fraction of neurons with ``s <= 0`` (they cannot fire in the physical model)."""
    stats = []
    with torch.no_grad():
        for layer in net.layers[:-1]:
            s = layer.slope().flatten()
            stats.append(
                {
                    "min": _sig(float(s.min())),
                    "median": _sig(float(s.median())),
                    "max": _sig(float(s.max())),
                    "min_abs": _sig(float(s.abs().min())),
                    "fraction_nonpositive": _sig(float((s <= 0).double().mean())),
                }
            )
    return stats


def _effective_check(
    net: TTFSNetwork, x_probe: Tensor, reference: Sequence[tuple[Tensor, Tensor]] | None
) -> dict[str, float]:
    """Numerical check of the effective-parameter derivation on a freshly built network.

    ``hidden_max_error``: max |(t_max - t) - ReLU(W_eff x + b_eff)| over hidden layers on the
    probe; ``logits_max_error`` likewise for the logits. For a mapped network,
    ``canonical_max_error``: max |effective - canonical (scaled) chain parameters|, and with
    ``reference`` (the ReLU parameters times the weight-sum factors), ``reference_max_error``.
    """
    eff = effective_parameters(net)
    with torch.no_grad():
        out = net.run(x_probe)
        values = hidden_values(net, out.hidden_times)
        hidden, logits = mlp_forward(eff, x_probe)
    check = {
        "hidden_max_error": max(
            float((a - b).abs().max()) for a, b in zip(values, hidden, strict=True)
        ),
        "logits_max_error": float((out.logits - logits).abs().max()),
    }
    if net.mapping is not None and net.mapping.weight_sum_scaled:
        canonical = [(s.affine.weight, s.affine.bias) for s in net.mapping.chain.stages]
        check["canonical_max_error"] = parameter_distance(eff, canonical)[0]
        if reference is not None:
            check["reference_max_error"] = parameter_distance(reference, canonical)[0]
    return {k: _sig(v, 4) for k, v in check.items()}


# ---------------------------------------------------------------------------------------------
# the experiment
# ---------------------------------------------------------------------------------------------


def _batch_order(n: int, steps: int, batch_size: int, generator: torch.Generator) -> Tensor:
    """``[steps, batch_size]`` sample indices: shuffled epochs, concatenated."""
    epochs = -(-steps * batch_size // n)
    order = torch.cat([torch.randperm(n, generator=generator) for _ in range(epochs)])
    return order[: steps * batch_size].reshape(steps, batch_size)


def _distance_summary(param: dict[str, list], func: list) -> dict[str, float | None]:
    """Final and largest parameter distance and final logit distance of one series."""
    return {
        "final_param_max_abs": param["max_abs"][-1],
        "final_param_rel_l2": param["rel_l2"][-1],
        "max_param_max_abs": max((v for v in param["max_abs"] if v is not None), default=None),
        "max_param_rel_l2": max((v for v in param["rel_l2"] if v is not None), default=None),
        "final_function_rel_l2": func[-1],
    }


def _run_depth(
    data: Dataset,
    depth: int,
    *,
    width: int,
    steps: int,
    batch_size: int,
    lr: float,
    seed: int,
    eval_every: int,
    probe_samples: int,
    grad_samples: int,
    zeta: float,
    b1_windows: str,
    floor_perturbation: float | None,
    bar: Any,
    save_dir: Path,
) -> dict:
    x_train, y_train = data.x_train, data.y_train
    x_test, y_test = data.x_test, data.y_test
    in_features = int(np.prod(x_train.shape[1:]))
    classes = int(max(int(y_train.max()), int(y_test.max())) + 1)
    relu = glorot_mlp(in_features, width, depth, classes, torch.Generator().manual_seed(seed))
    calibration = calibration_batches(x_train)
    factors = weight_sum_factors(relu)
    x_probe = x_test[:probe_samples]
    x_grad, y_grad = x_train[:grad_samples], y_train[:grad_samples]

    if b1_windows == "scratch":
        b1 = b1_from_scratch(copy.deepcopy(relu), tuple(x_train.shape[1:]), zeta=zeta)
    else:
        b1 = from_relu(copy.deepcopy(relu), calibration, neuron="b1", zeta=zeta)
    smart = from_relu(copy.deepcopy(relu), calibration, neuron="alpha1", zeta=zeta)
    runs = {
        "relu": _Run("relu", relu, lr),
        "b1": _Run("b1", b1, lr),
        "alpha1_smart": _Run("alpha1_smart", smart, lr),
    }
    report: dict[str, Any] = {"depth": depth, "init": {}}
    try:
        naive = naive_alpha1(copy.deepcopy(relu), calibration, zeta=zeta)
        runs["alpha1_naive"] = _Run("alpha1_naive", naive, lr)
    except ValueError as exc:
        report["init"]["alpha1_naive_error"] = str(exc)
    if floor_perturbation:
        perturbed = copy.deepcopy(relu)
        gen = torch.Generator().manual_seed(seed + 2)
        with torch.no_grad():
            for p in perturbed.parameters():
                noise = torch.randn(p.shape, generator=gen, dtype=p.dtype)
                p.mul_(1.0 + floor_perturbation * noise)
        runs[FLOOR] = _Run(FLOOR, perturbed, lr)

    relu_params = relu_parameters(relu)
    ref_smart = scaled_parameters(relu_params, factors)
    report["init"]["weight_sum_scaled_neurons"] = [int((f != 1).sum()) for f in factors]
    report["init"]["effective_check"] = {
        name: _effective_check(
            runs[name].model, x_probe, ref_smart if name == "alpha1_smart" else None
        )
        for name in ("alpha1_smart", "alpha1_naive")
        if name in runs
    }
    report["init"]["windows"] = {
        name: [_sig(w) for w in run.model.windows.widths.tolist()]
        for name, run in runs.items()
        if run.is_snn
    }

    param_dist: dict[str, dict[str, list]] = {
        n: {"max_abs": [], "rel_l2": []} for n in DISTANCE_RUNS
    }
    func_dist: dict[str, list] = {n: [] for n in DISTANCE_RUNS}
    evals: dict[str, Any] = {
        "steps": [],
        "accuracy": {n: [] for n in RUNS},
        "grad_norms": {n: [] for n in RUNS},
        "slopes": {n: [] for n in ("alpha1_smart", "alpha1_naive")},
    }

    def record_distances() -> None:
        relu_now = relu_parameters(relu)
        with torch.no_grad():
            relu_logits = relu(x_probe)
        refs = {
            "b1": relu_now,
            "alpha1_smart": scaled_parameters(relu_now, factors),
            "alpha1_naive": relu_now,
            FLOOR: relu_now,
        }
        for name in DISTANCE_RUNS:
            run = runs.get(name)
            if run is None or not run.alive:
                param_dist[name]["max_abs"].append(None)
                param_dist[name]["rel_l2"].append(None)
                func_dist[name].append(None)
                continue
            params = effective_parameters(run.model) if run.is_snn else relu_parameters(run.model)
            max_abs, rel = parameter_distance(params, refs[name])
            with torch.no_grad():
                logits = run.model(x_probe)
            if not bool(torch.isfinite(logits).all()):
                run.fail(len(func_dist[name]), "non-finite logits on the probe batch")
            param_dist[name]["max_abs"].append(_sig(max_abs, 4))
            param_dist[name]["rel_l2"].append(_sig(rel, 4))
            func_dist[name].append(_sig(relative_l2(logits, relu_logits), 4))

    def record_eval(step: int) -> None:
        evals["steps"].append(step)
        for name in RUNS:
            run = runs.get(name)
            alive = run is not None and run.alive
            evals["accuracy"][name].append(_sig(run.accuracy(x_test, y_test)) if alive else None)
            evals["grad_norms"][name].append(
                [_sig(v, 4) for v in run.grad_norms(x_grad, y_grad)] if alive else None
            )
            if name in evals["slopes"]:
                evals["slopes"][name].append(_slope_stats(run.model) if alive else None)

    order = _batch_order(
        x_train.shape[0], steps, batch_size, torch.Generator().manual_seed(seed + 1)
    )
    start = time.perf_counter()
    record_distances()
    record_eval(0)
    for step in range(1, steps + 1):
        idx = order[step - 1]
        xb, yb = x_train[idx], y_train[idx]
        for run in runs.values():
            run.step(step, xb, yb)
        record_distances()
        if step % eval_every == 0 or step == steps:
            record_eval(step)
        bar.update(1)

    def ratio(norms: list[float] | None) -> float | None:
        if not norms or norms[0] == 0:
            return None
        return _sig(norms[-1] / norms[0], 4)

    def last_alive(series: list) -> Any:
        return next((v for v in reversed(series) if v is not None), None)

    summary: dict[str, dict[str, Any]] = {}
    for name in RUNS:
        run = runs.get(name)
        norms = evals["grad_norms"][name]
        summary[name] = {
            "final_accuracy": evals["accuracy"][name][-1],
            "last_accuracy": last_alive(evals["accuracy"][name]),
            "final_loss": _sig(last_alive(run.losses)) if run else None,
            "grad_ratio_init": ratio(norms[0]),
            "grad_ratio_final": ratio(last_alive(norms)),
            "window_violations": sum(v for v in run.violations if v) if run else None,
            "steps_with_violations": sum(1 for v in run.violations if v) if run else None,
            "diverged_at": run.diverged_at if run else 0,
            "divergence": run.divergence if run else report["init"].get("alpha1_naive_error"),
        }
        if name in SNN_RUNS:
            summary[name] |= _distance_summary(param_dist[name], func_dist[name])
    summary[FLOOR] = _distance_summary(param_dist[FLOOR], func_dist[FLOOR])
    report |= {
        "seconds": round(time.perf_counter() - start, 2),
        "summary": summary,
        "loss": {n: [_sig(v) for v in runs[n].losses] if n in runs else None for n in RUNS},
        "parameter_distance": param_dist,
        "function_distance": func_dist,
        "window_violations": {n: runs[n].violations if n in runs else None for n in SNN_RUNS},
        "eval": evals,
        "final_windows": {
            name: [_sig(w) for w in run.model.windows.widths.tolist()]
            for name, run in runs.items()
            if run.is_snn
        },
        "networks": {  # the trained SNNs that did not diverge (spikeforge.ttfs.load)
            name: run.model.save(save_dir / f"snn-depth{depth}-{name}.pt").name
            for name, run in runs.items()
            if run.is_snn and run.alive
        },
    }
    return report


def run_gradient_experiment(
    dataset: Dataset,
    out_dir: str | os.PathLike[str],
    *,
    depths: Sequence[int] = (2, 4, 8),
    width: int = 128,
    steps: int = 1000,
    batch_size: int = 32,
    lr: float = 5e-4,
    train_samples: int | None = 10_000,
    test_samples: int | None = 2_000,
    seed: int = 0,
    progress: bool = True,
    eval_every: int = 50,
    probe_samples: int = 256,
    grad_samples: int = 256,
    zeta: float = 0.5,
    b1_windows: Literal["scratch", "calibrated"] = "calibrated",
    threads: int | None = 1,
    floor_perturbation: float | None = 1e-15,
) -> dict:
    """Train ReLU, B1, alpha1 (smart init) and alpha1 (naive init) MLPs side by side (module
    docstring) for each depth in ``depths`` and write ``out_dir/gradients.json`` and the plots
    ``parameter_distance.png``, ``gradient_norms.png``, ``accuracy.png``.

    Args:
        dataset: images ``[N, *in_shape]`` in [0, 1] and labels ``[N]``; the first
            ``train_samples`` / ``test_samples`` are used (``None``: all), in float64.
        depths: numbers of hidden layers.
        width: hidden layer width.
        steps: optimiser steps per run; all runs see the same batches (shuffled epochs drawn from
            a generator seeded with ``seed + 1``; the initialisation uses ``seed``).
        batch_size, lr: Adam (epsilon 1e-7) with P2's exponential decay
            ``lr * 0.9 ** (step / 5000)``.
        eval_every: test accuracy, per-layer gradient norms (on the first ``grad_samples``
            training samples) and alpha1 slope statistics every ``eval_every`` steps, at step 0
            and at the last step.
        probe_samples: first test images on which the logits' relative L2 distance to the ReLU
            run (function distance) is measured after every step.
        zeta: window margin of the mappings (``B_n = (1 + zeta) X_n``).
        b1_windows: ``"calibrated"`` (``from_relu`` of the initialisation on the training
            subset, ``B_n = (1 + zeta) X_n``) or ``"scratch"`` (P2 from scratch: ``X_n = 1000``,
            windows of 1500); windows grow after every step either way. With ``"scratch"`` the
            absolute spike times reach ~1e4 at depth 8 and rounding (spec risk 2) makes the B1
            parameters drift from the ReLU run's by ~1e-11 after a few hundred steps, against
            ~1e-13 with ``"calibrated"``.
        threads: torch intra-op threads during the run (restored afterwards); the matrices are
            small, so one thread is fastest on a shared machine. ``None`` leaves the setting.
        floor_perturbation: also train a copy of the ReLU network whose initial parameters are
            multiplied by ``1 + floor_perturbation * N(0, 1)`` and record its distance to the
            ReLU run (``relu_perturbed``): how much the training dynamics amplify a rounding-
            sized difference, the float64 noise floor for B1's distance. ``None`` or 0: skip.

    Returns the report written to ``gradients.json``: ``config``, ``environment``, and per depth
    (key ``str(depth)``) per-step ``loss``, ``parameter_distance`` (``max_abs`` and ``rel_l2``
    per SNN run; index k = after k steps), ``function_distance``, ``window_violations`` (per
    step, in the training batch), ``eval`` (``steps``, ``accuracy``, ``grad_norms`` per layer,
    alpha1 ``slopes``), ``init`` checks and a ``summary``. A run whose loss, parameters or
    probe logits become non-finite is stopped and its ``diverged_at`` step recorded; its later
    entries are ``null``.
    """
    if b1_windows not in ("scratch", "calibrated"):
        raise ValueError(f"b1_windows must be 'scratch' or 'calibrated', got {b1_windows!r}")
    if steps < 1 or batch_size < 1 or eval_every < 1:
        raise ValueError("steps, batch_size and eval_every must be >= 1")
    if not depths:
        raise ValueError("no depths given")
    folder = ReportFolder(out_dir)
    out = folder.path
    sub = dataset.subset(train_samples, test_samples)
    data = Dataset(
        sub.name,
        sub.x_train.to(torch.float64),
        sub.y_train.long(),
        sub.x_test.to(torch.float64),
        sub.y_test.long(),
    )
    config = {
        "dataset": dataset.name,
        "depths": [int(d) for d in depths],
        "width": width,
        "steps": steps,
        "batch_size": batch_size,
        "lr": lr,
        "optimizer": f"Adam(eps={ADAM_EPS}), lr * {DECAY_RATE} ** (step / {DECAY_STEPS})",
        "train_samples": int(data.x_train.shape[0]),
        "test_samples": int(data.x_test.shape[0]),
        "seed": seed,
        "eval_every": eval_every,
        "probe_samples": int(min(probe_samples, data.x_test.shape[0])),
        "grad_samples": int(min(grad_samples, data.x_train.shape[0])),
        "zeta": zeta,
        "b1_windows": b1_windows,
        "floor_perturbation": floor_perturbation,
        "init": "glorot_uniform weights, zero biases",
        "dtype": "float64",
    }
    results: dict[str, Any] = {
        "config": config,
        "environment": folder.environment(),
        "depths": {},
    }
    start = time.perf_counter()
    threads_before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    results["environment"]["threads"] = torch.get_num_threads()
    bar = tqdm(
        total=steps * len(depths),
        disable=not progress,
        file=sys.stderr,
        desc="gradient experiment",
        unit="step",
        leave=False,
    )
    try:
        for depth in depths:
            bar.set_postfix(depth=depth)
            results["depths"][str(depth)] = _run_depth(
                data,
                int(depth),
                width=width,
                steps=steps,
                batch_size=batch_size,
                lr=lr,
                seed=seed,
                eval_every=eval_every,
                probe_samples=probe_samples,
                grad_samples=grad_samples,
                zeta=zeta,
                b1_windows=b1_windows,
                floor_perturbation=floor_perturbation,
                bar=bar,
                save_dir=out,
            )
    finally:
        bar.close()
        torch.set_num_threads(threads_before)
    results["seconds"] = round(time.perf_counter() - start, 2)
    results["plots"] = [
        plot_parameter_distance(results, out / "parameter_distance.png").name,
        plot_gradient_norms(results, out / "gradient_norms.png").name,
        plot_accuracy(results, out / "accuracy.png").name,
    ]
    folder.write_json("gradients.json", results)
    return results


# ---------------------------------------------------------------------------------------------
# tables and plots
# ---------------------------------------------------------------------------------------------


def format_gradient_tables(results: dict) -> str:
    """Markdown tables from :func:`run_gradient_experiment`'s result (or ``gradients.json``):
    per depth and run, the final parameter distance to the ReLU run (and the largest max-abs
    distance over all steps), the final logit distance, final test accuracy and loss, window
    violations (spikes before ``t_min``, summed over the training batches) and divergence
    (plus the float64 noise-floor row, a ReLU run from a perturbed initialisation, when
    recorded); then the per-layer gradient norm ratio
    ``||dL/dW_last|| / ||dL/dW_first||`` (output layer over first hidden layer) at
    initialisation and at the end."""
    traj_rows: list[list[object]] = []
    grad_rows: list[list[object]] = []
    for depth, rep in results["depths"].items():
        for name in RUNS:
            s = rep["summary"][name]
            diverged = s["diverged_at"]
            traj_rows.append(
                [
                    depth,
                    RUN_LABELS[name],
                    s.get("final_param_rel_l2"),
                    s.get("final_param_max_abs"),
                    s.get("max_param_max_abs"),
                    s.get("final_function_rel_l2"),
                    s["final_accuracy"] if diverged is None else s["last_accuracy"],
                    s["final_loss"],
                    s["window_violations"],
                    "-" if diverged is None else f"step {diverged}",
                ]
            )
            norms = rep["eval"]["grad_norms"][name]
            first = norms[0]
            last = next((v for v in reversed(norms) if v is not None), None)
            grad_rows.append(
                [
                    depth,
                    RUN_LABELS[name],
                    first[0] if first else None,
                    first[-1] if first else None,
                    s["grad_ratio_init"],
                    last[0] if last else None,
                    last[-1] if last else None,
                    s["grad_ratio_final"],
                ]
            )
        floor = rep["summary"].get(FLOOR)
        if floor and floor["final_param_rel_l2"] is not None:
            traj_rows.append(
                [
                    depth,
                    RUN_LABELS[FLOOR],
                    floor["final_param_rel_l2"],
                    floor["final_param_max_abs"],
                    floor["max_param_max_abs"],
                    floor["final_function_rel_l2"],
                    None,
                    None,
                    None,
                    "-",
                ]
            )
    traj = format_table(
        [
            "depth",
            "run",
            "param dist (rel L2)",
            "param dist (max abs)",
            "worst step (max abs)",
            "logit dist (rel L2)",
            "test acc",
            "final loss",
            "early spikes (train)",
            "diverged",
        ],
        traj_rows,
    )
    grads = format_table(
        [
            "depth",
            "run",
            "|g_first| init",
            "|g_last| init",
            "last/first init",
            "|g_first| end",
            "|g_last| end",
            "last/first end",
        ],
        grad_rows,
    )
    return f"{traj}\n\n{grads}"


def _series(values: Sequence[float | None], floor: float | None = None) -> np.ndarray:
    arr = np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64)
    arr[~np.isfinite(arr)] = np.nan
    if floor is not None:
        arr = np.where(arr < floor, floor, arr)  # NaN stays NaN
    return arr


def _figure(columns: int, rows: int = 1) -> Figure:
    return Figure(figsize=(4.2 * columns, 3.4 * rows), layout="constrained")


def plot_parameter_distance(results: dict, path: str | os.PathLike[str]) -> Path:
    """Per depth (columns): parameter distance (top; relative L2 solid, max-abs dotted) and
    logit distance on the probe batch (bottom) of each SNN run, and of the perturbed-init ReLU
    run (float64 noise floor, grey), to the ReLU run, per step, log y-axis; exact zeros are drawn
    at 1e-17."""
    depths = list(results["depths"])
    fig = _figure(len(depths), 2)
    axes = fig.subplots(2, len(depths), squeeze=False)
    for col, depth in enumerate(depths):
        rep = results["depths"][depth]
        top, bottom = axes[0][col], axes[1][col]
        for name in DISTANCE_RUNS:
            if name not in rep["parameter_distance"]:
                continue
            pd = rep["parameter_distance"][name]
            steps = np.arange(len(pd["rel_l2"]))
            color = RUN_COLORS[name]
            top.plot(steps, _series(pd["rel_l2"], _LOG_FLOOR), color=color, label=RUN_LABELS[name])
            top.plot(steps, _series(pd["max_abs"], _LOG_FLOOR), color=color, linestyle=":")
            fd = rep["function_distance"][name]
            bottom.plot(steps, _series(fd, _LOG_FLOOR), color=color, label=RUN_LABELS[name])
        top.set_title(f"{depth} hidden layers")
        for ax in (top, bottom):
            ax.set_yscale("log")
            ax.grid(True, alpha=0.3)
            ax.set_xlabel("training step")
        if col == 0:
            top.set_ylabel("parameter distance to ReLU\n(solid: rel. L2, dotted: max abs)")
            bottom.set_ylabel("logit distance to ReLU (rel. L2)")
            top.legend(fontsize=7)
    return write_png(fig, path, dpi=_DPI)


def plot_gradient_norms(results: dict, path: str | os.PathLike[str]) -> Path:
    """Per depth (columns): L2 norm of the loss gradient w.r.t. each weight layer (1 = first
    hidden, last = output) for every run, at initialisation (solid) and at the last evaluation
    (dashed), log y-axis."""
    depths = list(results["depths"])
    fig = _figure(len(depths))
    axes = fig.subplots(1, len(depths), squeeze=False)[0]
    for ax, depth in zip(axes, depths, strict=True):
        ev = results["depths"][depth]["eval"]
        for name in RUNS:
            norms = ev["grad_norms"][name]
            color = RUN_COLORS[name]
            wide = {"linewidth": 3.0, "alpha": 0.5} if name == "relu" else {}
            if norms[0]:
                layers = np.arange(1, len(norms[0]) + 1)
                ax.plot(
                    layers,
                    _series(norms[0], _LOG_FLOOR),
                    color=color,
                    marker="o",
                    markersize=3,
                    label=f"{RUN_LABELS[name]}, step 0",
                    **wide,
                )
            k = max((i for i, v in enumerate(norms) if v is not None), default=None)
            if k:
                layers = np.arange(1, len(norms[k]) + 1)
                ax.plot(
                    layers,
                    _series(norms[k], _LOG_FLOOR),
                    color=color,
                    linestyle="--",
                    marker="x",
                    markersize=4,
                    label=f"{RUN_LABELS[name]}, step {ev['steps'][k]}",
                    **wide,
                )
        ax.set_yscale("log")
        ax.set_xlabel("weight layer (last = output)")
        ax.set_title(f"{depth} hidden layers")
        ax.grid(True, alpha=0.3)
    axes[0].set_ylabel("||dL/dW|| (fixed batch)")
    axes[0].legend(fontsize=6)
    return write_png(fig, path, dpi=_DPI)


def plot_accuracy(results: dict, path: str | os.PathLike[str]) -> Path:
    """Per depth (columns): test accuracy of every run over training."""
    depths = list(results["depths"])
    fig = _figure(len(depths))
    axes = fig.subplots(1, len(depths), squeeze=False)[0]
    for ax, depth in zip(axes, depths, strict=True):
        ev = results["depths"][depth]["eval"]
        for name in RUNS:
            style = "--" if name == "b1" else "-"
            ax.plot(
                ev["steps"],
                _series(ev["accuracy"][name]),
                color=RUN_COLORS[name],
                linestyle=style,
                marker="o",
                markersize=2,
                label=RUN_LABELS[name],
            )
        ax.set_xlabel("training step")
        ax.set_title(f"{depth} hidden layers")
        ax.set_ylim(0.0, 1.0)
        ax.grid(True, alpha=0.3)
    axes[0].set_ylabel("test accuracy")
    axes[0].legend(fontsize=7)
    return write_png(fig, path, dpi=_DPI)


__all__ = [
    "COMMANDS",
    "RUNS",
    "effective_parameters",
    "format_gradient_tables",
    "glorot_mlp",
    "hidden_values",
    "mlp_forward",
    "naive_alpha1",
    "parameter_distance",
    "plot_accuracy",
    "plot_gradient_norms",
    "plot_parameter_distance",
    "relative_l2",
    "relu_parameters",
    "run_gradient_experiment",
    "scaled_parameters",
    "weight_sum_factors",
]


# ---------------------------------------------------------------------------------------------
# command
# ---------------------------------------------------------------------------------------------


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", choices=["mnist", "fashion-mnist", "digits"], default="mnist")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--out", default=None, help="default reports/ttfs-gradients-DATASET")
    parser.add_argument("--depths", type=int, nargs="+", default=[2, 4, 8])
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--train-samples", type=int, default=10_000)
    parser.add_argument("--test-samples", type=int, default=2_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def _run_command(args: argparse.Namespace) -> int:
    dataset = load_dataset(args.dataset, args.data_dir)
    out = args.out or f"reports/ttfs-gradients-{args.dataset}"
    results = run_gradient_experiment(
        dataset,
        out,
        depths=args.depths,
        width=args.width,
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        train_samples=args.train_samples,
        test_samples=args.test_samples,
        seed=args.seed,
        progress=not args.quiet,
    )
    print(format_gradient_tables(results))
    print(f"report written to {out}/ (gradients.json and plots)")
    return 0


COMMANDS = (
    Command(
        "ttfs-gradients",
        "ReLU, B1 and alpha1 trained side by side: trajectories and gradient norms (P2)",
        _arguments,
        _run_command,
        group="reproduce",
        runtime="3.5 min (MNIST, depths 2 4 8, 1000 steps)",
    ),
)
