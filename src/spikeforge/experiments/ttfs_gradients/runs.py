"""One network under training in the gradient experiment (:class:`Run`: model, optimiser with
P2's schedule, losses, divergence, window violations) and the checks recorded about it."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.optim.lr_scheduler import LambdaLR

from spikeforge.experiments.ttfs_gradients.networks import (
    _linears,
    effective_parameters,
    hidden_values,
    mlp_forward,
    parameter_distance,
    round_sig,
)
from spikeforge.ttfs.network import TTFSNetwork
from spikeforge.ttfs.train import grow_windows

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


class Run:
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
                    "min": round_sig(float(s.min())),
                    "median": round_sig(float(s.median())),
                    "max": round_sig(float(s.max())),
                    "min_abs": round_sig(float(s.abs().min())),
                    "fraction_nonpositive": round_sig(float((s <= 0).double().mean())),
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
    return {k: round_sig(v, 4) for k, v in check.items()}
