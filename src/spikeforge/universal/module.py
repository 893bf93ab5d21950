"""``CircuitModule``: a :class:`~spikeforge.universal.circuit.Circuit` as an ``nn.Module``.

The bridge to the rest of spikeforge: the module takes spike tensors ``[T, B, d]`` (time first,
as every :mod:`spikeforge.core` layer) and runs the circuit's dense recurrent update, so a
compiled circuit can run beside trained multi-step networks. Parameters are buffers (it is not
trained; ``.to(dtype)`` / ``.double()`` move them). It is written apart from
:func:`spikeforge.universal.simulate.simulate` (one stacked matrix ``[U W]`` over the
concatenated ``[X, S]`` state and ``torch.where`` for the reset); the tests check that the two
give the same spikes bit for bit.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from spikeforge.universal.simulate import CircuitLike, check_spike_input

__all__ = ["CircuitModule"]


class CircuitModule(nn.Module):
    """``forward(x [T, B, d]) -> output spikes [T, B]`` (``return_all=True``: every neuron,
    ``[T, B, N]``; ``return_state=True``: also the final potential ``[B, N]``).

    Semantics of :mod:`spikeforge.universal.simulate`: unit synaptic delay, fire at
    ``H >= theta``, hard reset to zero, ``V[0] = v0``, zero padding before the first step.
    """

    beta: Tensor
    threshold: Tensor
    bias: Tensor
    v0: Tensor
    stacked: Tensor

    def __init__(self, circuit: CircuitLike) -> None:
        super().__init__()
        self.inputs = circuit.inputs
        self.neurons = circuit.neurons
        self.output = circuit.output
        self.latency = circuit.latency
        weights = circuit.tensors(torch.float64)
        self.synapses = int(
            torch.count_nonzero(weights["input_weights"]) + torch.count_nonzero(weights["weights"])
        )
        self.biases = int(torch.count_nonzero(weights["bias"]))
        self.construction = circuit.construction
        # kept in float64 and cast to the input's dtype in forward: exact for the small integer
        # parameters of the constructions, and real parameters (counter weights) lose nothing
        q = circuit.tensors(torch.float64)
        for name in ("beta", "threshold", "bias", "v0"):
            self.register_buffer(name, q[name])
        self.register_buffer("stacked", torch.cat([q["input_weights"], q["weights"]], dim=1))

    def forward(
        self, x: Tensor, return_all: bool = False, return_state: bool = False
    ) -> Tensor | tuple[Tensor, Tensor]:
        check_spike_input(x, self.inputs)
        dtype = x.dtype
        beta, threshold, bias = (t.to(dtype) for t in (self.beta, self.threshold, self.bias))
        stacked = self.stacked.to(dtype)
        u_t, w_t = stacked[:, : self.inputs].T, stacked[:, self.inputs :].T
        batch = x.shape[1]
        v = self.v0.to(dtype).unsqueeze(0).repeat(batch, 1)
        state = x.new_zeros(batch, self.inputs + self.neurons)
        zero = x.new_zeros(())
        spikes = []
        for t in range(x.shape[0]):
            h = beta * v + state[:, : self.inputs] @ u_t + state[:, self.inputs :] @ w_t + bias
            fired = h >= threshold
            v = torch.where(fired, zero, h)
            s = fired.to(dtype)
            spikes.append(s)
            state = torch.cat([x[t], s], dim=1)
        all_spikes = torch.stack(spikes) if spikes else x.new_zeros(0, batch, self.neurons)
        out = all_spikes if return_all else all_spikes[:, :, self.output]
        return (out, v) if return_state else out

    def extra_repr(self) -> str:
        return (
            f"{self.construction!r}, inputs={self.inputs}, neurons={self.neurons}, "
            f"synapses={self.synapses}, biases={self.biases}, latency={self.latency}, "
            "fires at H >= theta, hard reset to 0, unit synaptic delay"
        )
