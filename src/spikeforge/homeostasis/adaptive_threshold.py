"""Neuron-level homeostasis: a leaky neuron with a per-neuron adaptive threshold (spec §6.1 (b)).

Layout: inputs ``x_seq`` are time-first ``[T, B, ...]``; spikes have the same shape; the state is
a pair ``(v, theta)`` of ``[B, ...]`` tensors (membrane potential after reset, threshold).

Dynamics per step ``t`` (``β`` = ``decay``, a factor in ``[0, 1]`` as in
:func:`spikeforge.core.decay_lif_multistep`; ``ϑ_0`` = ``theta0``; ``a``, ``τ_a`` = ``tau_a``):

* charge: ``H[t] = β·V[t−1] + X[t]``;
* fire: ``S[t] = Θ(H[t] − ϑ[t−1])`` (``>=`` by default, ``strict=True``: ``>``), surrogate
  gradient from :mod:`spikeforge.core.surrogate`;
* reset: ``"subtract"``: ``V[t] = H[t] − ϑ[t−1]·S[t]``; ``"zero"``: ``V[t] = H[t]·(1 − S[t])``;
  ``"none"``: ``V[t] = H[t]``;
* threshold (spec §6.1 (b)): ``ϑ[t] = ϑ[t−1] + a·S[t] − (ϑ[t−1] − ϑ_0)/τ_a``.

Each spike raises the neuron's threshold by ``a``; it relaxes back to ``ϑ_0`` with time
constant ``τ_a`` steps. At a steady rate ``r`` (spikes per step) the threshold settles at
``ϑ* = ϑ_0 + a·τ_a·r``: over-excited neurons raise their threshold and fire less, so the rate is
pulled back towards the rate that the trained network had (a negative feedback on the rate, with
no explicit target rate; the spec gives the equation and nothing more). ``a = 0`` gives exactly
the decay-factor LIF with threshold ``ϑ_0``. The initial threshold is ``ϑ_0`` unless a state is
passed. The module holds no hidden state (as the core neurons): ``state=None`` starts from
``V = 0``, ``ϑ = ϑ_0``; ``return_state=True`` returns the final ``(v, theta)`` to continue from.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from spikeforge.core.functional import RESETS, Reset, check_decay
from spikeforge.core.surrogate import default_alpha, spike

__all__ = ["AdaptiveLIF", "adaptive_lif_multistep"]


def _check_params(decay: float, theta0: float, a: float, tau_a: float, reset: str) -> None:
    check_decay(decay)
    if not (math.isfinite(theta0) and theta0 > 0):
        raise ValueError(f"theta0 must be a positive finite threshold, got {theta0}")
    if not (math.isfinite(a) and a >= 0):
        raise ValueError(f"a (the threshold increment per spike) must be finite and >= 0, got {a}")
    if not (math.isfinite(tau_a) and tau_a >= 1):
        raise ValueError(f"tau_a must be a time constant in steps >= 1, got {tau_a}")
    if reset not in RESETS:
        raise ValueError(f"unknown reset {reset!r}; choose one of {list(RESETS)}")


def adaptive_lif_multistep(
    x_seq: Tensor,
    state: tuple[Tensor, Tensor] | None = None,
    *,
    decay: float = 0.8,
    theta0: float = 1.0,
    a: float = 0.05,
    tau_a: float = 50.0,
    reset: Reset = "subtract",
    surrogate: str = "atan",
    alpha: float | None = None,
    strict: bool = False,
) -> tuple[Tensor, tuple[Tensor, Tensor]]:
    """Adaptive-threshold LIF over ``x_seq [T, B, ...]`` (module docstring for the equations).

    ``state``: ``None`` (``V = 0``, ``ϑ = ϑ_0``) or ``(v, theta)``, each broadcastable to
    ``[B, ...]``. Returns ``(spikes [T, B, ...], (v_final [B, ...], theta_final [B, ...]))``.
    Differentiable (surrogate gradient; the threshold stays in the graph).
    """
    _check_params(decay, theta0, a, tau_a, reset)
    if x_seq.dim() < 2:
        raise ValueError(f"expected a time-first input [T, B, ...], got {list(x_seq.shape)}")
    if x_seq.shape[0] == 0:
        raise ValueError("the input has no time steps (T = 0)")
    shape = x_seq.shape[1:]
    if state is None:
        v = x_seq.new_zeros(shape)
        theta = x_seq.new_full(shape, theta0)
    else:
        if not (isinstance(state, tuple) and len(state) == 2):
            raise TypeError("state must be a pair (v, theta) of tensors [B, ...]")
        try:
            v = torch.broadcast_to(state[0], shape).to(x_seq.dtype)
            theta = torch.broadcast_to(state[1], shape).to(x_seq.dtype)
        except RuntimeError as err:
            raise ValueError(
                f"state shapes {list(state[0].shape)}, {list(state[1].shape)} do not broadcast "
                f"to the neuron shape [B, ...] = {list(shape)} of the input {list(x_seq.shape)}"
            ) from err
    out = []
    for x in x_seq.unbind(0):
        h = decay * v + x
        s = spike(h - theta, surrogate, alpha, strict)
        if reset == "subtract":
            v = h - theta * s
        elif reset == "zero":
            v = h * (1.0 - s)
        else:
            v = h
        theta = theta + a * s - (theta - theta0) / tau_a
        out.append(s)
    return torch.stack(out), (v, theta)


class AdaptiveLIF(nn.Module):
    """Decay-factor LIF with a per-neuron adaptive threshold on ``[T, B, ...]`` (spec §6.1 (b)).

    ``AdaptiveLIF(decay=0.8, theta0=1.0, a=0.05, tau_a=50.0)``; see the module docstring for the
    equations and the fixed point ``ϑ* = ϑ_0 + a·τ_a·r``. ``forward(x_seq, state=None,
    return_state=False)`` mirrors the core neurons: ``state`` is ``(v, theta)``.
    """

    def __init__(
        self,
        *,
        decay: float = 0.8,
        theta0: float = 1.0,
        a: float = 0.05,
        tau_a: float = 50.0,
        reset: Reset = "subtract",
        surrogate: str = "atan",
        alpha: float | None = None,
        strict: bool = False,
    ) -> None:
        super().__init__()
        _check_params(decay, theta0, a, tau_a, reset)
        default_alpha(surrogate)  # validates the name
        self.decay = float(decay)
        self.theta0 = float(theta0)
        self.a = float(a)
        self.tau_a = float(tau_a)
        self.reset = reset
        self.surrogate = surrogate
        self.alpha = alpha
        self.strict = bool(strict)

    def forward(
        self,
        x_seq: Tensor,
        state: tuple[Tensor, Tensor] | None = None,
        return_state: bool = False,
    ) -> Tensor | tuple[Tensor, tuple[Tensor, Tensor]]:
        """Spikes ``[T, B, ...]``; with ``return_state=True`` also ``(v, theta)``, ``[B, ...]``."""
        spikes, new_state = adaptive_lif_multistep(
            x_seq,
            state,
            decay=self.decay,
            theta0=self.theta0,
            a=self.a,
            tau_a=self.tau_a,
            reset=self.reset,
            surrogate=self.surrogate,
            alpha=self.alpha,
            strict=self.strict,
        )
        return (spikes, new_state) if return_state else spikes

    def extra_repr(self) -> str:
        return (
            f"decay={self.decay}, theta0={self.theta0}, a={self.a}, tau_a={self.tau_a}, "
            f"reset={self.reset!r}, surrogate={self.surrogate!r}"
        )
