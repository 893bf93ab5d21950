"""The batched simulator of the synchronous LIF circuit semantics (spec ``universal.md`` §1).

For ``t = 1, 2, ...`` and every neuron ``i``::

    H_i[t] = beta_i * V_i[t-1] + sum_k U_ik X_k[t-1] + sum_j W_ij S_j[t-1] + b_i
    S_i[t] = 1[H_i[t] >= theta_i]            (fire: ">=")
    V_i[t] = H_i[t] * (1 - S_i[t])           (reset: hard, to zero)

with ``V[0] = v0``, ``S[0] = 0`` and zero padding ``X[t] = 0`` for ``t <= 0``. Every synapse,
input synapses included, delivers a spike one step later.

Layouts: the input ``x`` is ``[T, B, d]`` with ``x[t - 1] = X[t]`` (0/1 values); the returned
spikes are ``[T, B, N]`` with ``spikes[t - 1] = S[t]``, the final potential ``V[T]`` is
``[B, N]``. The whole batch (e.g. every input sequence of a length) runs at once.

:func:`fire` and :func:`reset` are the two places the convention lives; the semantics-guard tests
replace them (``>`` for ``>=``, subtraction for the hard reset) and show that named tests break.
"""

from __future__ import annotations

from typing import Protocol

import torch
from torch import Tensor

__all__ = ["CircuitLike", "check_spike_input", "fire", "reset", "simulate"]


class CircuitLike(Protocol):
    """What the simulator reads of a :class:`~spikeforge.universal.circuit.Circuit`."""

    @property
    def inputs(self) -> int: ...

    @property
    def neurons(self) -> int: ...

    @property
    def output(self) -> int: ...

    @property
    def latency(self) -> int | None: ...

    @property
    def construction(self) -> str: ...

    def tensors(self, dtype: torch.dtype, device: torch.device | str = "cpu") -> dict[str, Tensor]:
        """``beta, threshold, bias, v0 [N]``, ``input_weights [N, d]``, ``weights [N, N]``."""
        ...


def fire(h: Tensor, threshold: Tensor) -> Tensor:
    """Spikes ``1[h >= threshold]`` in ``h``'s dtype (``h [B, N]``, ``threshold [N]``)."""
    return (h >= threshold).to(h.dtype)


def reset(h: Tensor, s: Tensor, threshold: Tensor) -> Tensor:
    """Hard reset to zero: ``V = H * (1 - S)`` (``threshold`` unused; it is the argument a
    subtractive reset would need)."""
    del threshold
    return h * (1 - s)


def check_spike_input(x: Tensor, inputs: int) -> None:
    """Raise ``ValueError`` unless ``x`` is a floating ``[T, B, inputs]`` tensor of 0/1."""
    if not isinstance(x, Tensor):
        raise TypeError(f"expected a torch.Tensor of spikes [T, B, d], got {type(x).__name__}")
    if x.dim() != 3 or x.shape[2] != inputs:
        raise ValueError(
            f"expected input spikes [T, B, d] with d = {inputs} channels, got {list(x.shape)}"
        )
    if not x.is_floating_point():
        raise ValueError(f"expected floating-point spikes, got dtype {x.dtype}")
    if x.numel() and not bool(((x == 0) | (x == 1)).all()):
        raise ValueError("input spikes must be 0 or 1")


def simulate(
    circuit: CircuitLike, x: Tensor, dtype: torch.dtype | None = None
) -> tuple[Tensor, Tensor]:
    """Run ``circuit`` on input spikes ``x [T, B, d]``.

    Returns ``(spikes [T, B, N], v_final [B, N])`` in ``dtype`` (default: ``x``'s dtype).
    Spikes are identical in float32 and float64 for circuits with small integer parameters.
    """
    check_spike_input(x, circuit.inputs)
    dtype = dtype or x.dtype
    x = x.to(dtype)
    steps, batch = x.shape[0], x.shape[1]
    p = circuit.tensors(dtype, x.device)
    u_t, w_t = p["input_weights"].T, p["weights"].T
    beta, bias, threshold = p["beta"], p["bias"], p["threshold"]
    v = p["v0"].expand(batch, -1).clone()
    s = x.new_zeros(batch, circuit.neurons)
    x_prev = x.new_zeros(batch, circuit.inputs)
    out = []
    for t in range(steps):
        h = beta * v + x_prev @ u_t + s @ w_t + bias
        s = fire(h, threshold)
        v = reset(h, s, threshold)
        out.append(s)
        x_prev = x[t]
    spikes = torch.stack(out) if out else x.new_zeros(0, batch, circuit.neurons)
    return spikes, v
