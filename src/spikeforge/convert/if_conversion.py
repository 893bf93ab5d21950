"""Plain QCFS -> IF conversion (Bu et al. 2022; spec §2).

:func:`to_if` turns a QCFS network into an :class:`IFNetwork`: every QCFS site becomes a layer of
integrate-and-fire neurons (:class:`spikeforge.core.IF`) with

* threshold ``theta = lambda`` (the layer's learned clip level), firing at ``>= theta``;
* initial potential ``v[0] = theta / 2`` (QCFS's shift, phi = 1/2);
* reset by subtraction;
* spikes carrying ``theta`` (the layer outputs ``theta * s[t]``).

Weights are copied unchanged; biases and BatchNorm (running statistics) are applied as they are
at **every** step; residual joins add per step. The input is the analog image at every step
(direct encoding). The output layer does not spike; the network's prediction at ``T`` steps is
the **mean** of the output layer over steps ``1..T``.

Output layout: ``ifnet(x_seq)`` takes ``[T, B, ...]`` and returns ``[T, B, ...out]`` where entry
``t`` is the mean output over the first ``t + 1`` steps, so one run gives the prediction at every
``T = 1..T_max`` (``out[T - 1].argmax(-1)``). :meth:`IFNetwork.run` repeats a ``[B, ...]`` input.

Theory (spec §2.3): with ``T = L`` a single layer reproduces QCFS exactly; deeper networks carry
an "unevenness error" that no ``T`` removes (spec §2.4), which PASCAL
(:mod:`spikeforge.convert.pascal`) eliminates.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from spikeforge.convert.graph import Graph, Node, build_ops, resolve_main, trace_network
from spikeforge.convert.streams import OperationCounter, run_streams, spikes_per_neuron
from spikeforge.core import IF
from spikeforge.core.functional import Backend


@dataclass
class IFOutput:
    """One IF-SNN run with counts.

    * ``outputs``: ``[T, B, ...out]``, mean output over the first ``t + 1`` steps;
    * ``spikes``: per neuron layer, spikes per neuron over the ``T`` steps ``[B, *shape]``
      (``int64``);
    * ``synops`` / ``macs``: per Linear / Conv layer, per sample ``[B]`` over the ``T`` steps
      (:mod:`spikeforge.convert.streams`).
    """

    outputs: Tensor
    spikes: dict[str, Tensor]
    synops: dict[str, Tensor]
    macs: dict[str, Tensor]

    def spikes_per_neuron(self) -> float:
        """Mean number of spikes per neuron and sample over all neuron layers (all ``T`` steps)."""
        return spikes_per_neuron(self.spikes, self.outputs.shape[1])


class IFNetwork(nn.Module):
    """A QCFS network converted to IF neurons (module docstring); build it with :func:`to_if`.

    ``forward(x_seq [T, B, ...]) -> [T, B, ...out]`` (running mean of the output layer).
    ``neurons``: the :class:`spikeforge.core.IF` modules, keyed like ``ops`` by node.
    """

    def __init__(self, graph: Graph, *, backend: Backend = "auto") -> None:
        super().__init__()
        self.graph = graph
        resolve_main(graph, {n.index: 1 for n in graph.neurons})
        self.ops = build_ops(graph, lambda node: 1)
        self.neurons = nn.ModuleDict(
            {
                n.key: IF(threshold=float(n.theta), reset="subtract", backend=backend)
                for n in graph.neurons
            }
        )

    def _run(self, x_seq: Tensor, counter: OperationCounter | None) -> tuple[Tensor, dict]:
        if x_seq.dim() < 2:
            raise ValueError(f"expected a time-first input [T, B, ...], got {list(x_seq.shape)}")
        steps = {n.index: x_seq.shape[0] for n in self.graph.nodes if n.kind != "static"}
        spikes: dict[str, Tensor] = {}

        def neuron(node: Node, op: nn.Module, stream: Tensor) -> Tensor:
            v0 = op.theta.to(stream.dtype) / 2
            fired = self.neurons[node.key](stream, state=v0)
            if counter is not None:
                spikes[node.path] = fired.detach().sum(0).to(torch.int64)
            return fired * op.theta

        out = run_streams(self.graph, self.ops, x_seq, steps, neuron, counter)
        t = torch.arange(1, out.shape[0] + 1, dtype=out.dtype, device=out.device)
        return out.cumsum(0) / t.reshape((-1,) + (1,) * (out.dim() - 1)), spikes

    def forward(self, x_seq: Tensor) -> Tensor:
        """Running mean of the output layer ``[T, B, ...out]`` for inputs ``x_seq [T, B, ...]``."""
        outputs, _ = self._run(x_seq, None)
        return outputs

    def run(self, x: Tensor, steps: int, *, return_stats: bool = False) -> Tensor | IFOutput:
        """Direct encoding: ``x [B, ...]`` repeated for ``steps`` steps; returns the running mean
        ``[steps, B, ...out]`` (or an :class:`IFOutput` with ``return_stats=True``)."""
        if steps < 1:
            raise ValueError(f"steps must be >= 1, got {steps}")
        x_seq = x.unsqueeze(0).expand(steps, *x.shape)
        counter = OperationCounter(self.graph, self.ops) if return_stats else None
        outputs, spikes = self._run(x_seq, counter)
        if counter is None:
            return outputs
        return IFOutput(outputs, spikes, counter.synops, counter.macs)


def to_if(qnet: nn.Module, *, backend: Backend = "auto") -> IFNetwork:
    """Convert a QCFS network into a plain IF spiking network (module docstring).

    ``qnet``: as for :func:`~spikeforge.convert.to_pascal` (parameters copied, BatchNorm running
    statistics). ``backend``: the :class:`spikeforge.core.IF` backend (``"auto"``, ``"fused"``,
    ``"reference"``). Raises :class:`~spikeforge.convert.errors.UnsupportedLayerError` for
    unsupported layers.
    """
    return IFNetwork(trace_network(qnet), backend=backend)


__all__ = [
    "IFNetwork",
    "IFOutput",
    "to_if",
]
