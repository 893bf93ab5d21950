"""Time-stepped execution of a converted network and its operation counts.

:func:`run_streams` runs a :class:`~spikeforge.convert.graph.Graph` on time-first streams
``[T, B, ...]``: stateless operations act on every step (``x.flatten(0, 1)``, the
``MultiStep`` convention), joins align their inputs (:func:`~spikeforge.convert.graph.align`),
and each neuron layer is a callback that turns its input stream into its output stream (the
PASCAL three-phase neuron for :meth:`PascalNetwork.simulate
<spikeforge.convert.pascal.PascalNetwork.simulate>`, ``spikeforge.core.IF`` for the plain IF
conversion). Every stream is freed after its last use.

:func:`count_operations` counts the work a network's Linear / Conv layers do on given neuron
output trains:

* **synaptic operations** of a layer fed by spikes (through pooling, flatten, joins of spike
  streams): ``sum_t sum_j 1[x_t[j] != 0] * fanout[j]``, one accumulate per synapse of every
  non-zero input at every step (``fanout``: :func:`~spikeforge.convert.graph.fanout`);
* **multiply-accumulates** of a layer fed by analog values (the input image, or a BatchNorm /
  Linear output without a neuron in between): ``T_in * sum_j fanout[j]`` (dense, every step).

Both are per sample ``[B]`` (``int64``). Identity shortcuts, pooling and the neurons' own
updates are not counted.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch.fx.node import map_aggregate

from spikeforge.convert.graph import Graph, Node, Ref, align, call_node, fanout

NeuronStep = Callable[[Node, nn.Module, Tensor], Tensor]


def referenced(node: Node) -> set[int]:
    """Indices of every node whose value ``node`` reads (streams and shape values)."""
    found: set[int] = set(node.streams)
    map_aggregate(
        (node.args, node.kwargs), lambda a: found.add(a.index) if isinstance(a, Ref) else a
    )
    return found


def last_uses(graph: Graph) -> dict[int, int]:
    """For every node, the index of the last node that reads its value (the output: past the
    end), so interpreters can free values early."""
    last: dict[int, int] = {}
    for node in graph.nodes:
        for arg in referenced(node):
            last[arg] = node.index
    last[graph.output] = len(graph.nodes)
    return last


def run_streams(
    graph: Graph,
    ops: nn.ModuleDict,
    x_seq: Tensor,
    steps: dict[int, int],
    neuron: NeuronStep,
    on_affine: Callable[[Node, Tensor], None] | None = None,
) -> Tensor:
    """Run ``graph`` on the input stream ``x_seq [T_in, B, ...]``; return the output stream.

    ``steps``: step count of every stream node; ``neuron(node, op, input_stream)`` returns a
    neuron layer's output stream ``[T_out, B, ...]`` (``op``: its
    :class:`~spikeforge.convert.graph.Threshold`); ``on_affine(node, input_stream)`` is called
    with the input stream of every Linear / Conv layer (for counting).
    """
    batch = x_seq.shape[1]
    last = last_uses(graph)
    env: dict[int, object] = {}

    def flat(index: int) -> object:
        value = env[index]
        return value.flatten(0, 1) if graph.nodes[index].kind != "static" else value

    for node in graph.nodes:
        key = node.key
        if node.kind == "input":
            value: object = x_seq
        elif node.kind in ("affine", "norm"):
            stream = env[node.streams[0]]
            if node.kind == "affine" and on_affine is not None:
                on_affine(node, stream)
            value = ops[key](stream.flatten(0, 1)).unflatten(0, stream.shape[:2])
        elif node.kind == "static":
            value = call_node(node, flat, None)
        elif node.kind == "linear":
            t = steps[node.index]
            aligned = {i: align(env[i], t).flatten(0, 1) for i in node.streams}

            def lookup(i: int, aligned: dict[int, Tensor] = aligned) -> object:
                return aligned[i] if i in aligned else env[i]

            module = ops[key] if key in ops else None
            value = call_node(node, lookup, module).unflatten(0, (t, batch))
        else:  # neuron
            value = neuron(node, ops[key], env[node.streams[0]])
        env[node.index] = value
        for arg in referenced(node):
            if last.get(arg) == node.index:
                del env[arg]
    return env[graph.output]


def synaptic_events(stream: Tensor, fan: Tensor) -> Tensor:
    """``sum_t sum_j 1[stream[t, b, j] != 0] * fan[j]`` per sample: ``[T, B, ...] -> [B]``
    (``int64``); ``fan``: the per-sample fan-out map ``[...]``."""
    nonzero = (stream != 0).to(torch.float64)
    return (nonzero * fan).flatten(2).sum((0, 2)).round().to(torch.int64)


class OperationCounter:
    """Counts synaptic operations and MACs per Linear / Conv layer (module docstring).

    Pass :meth:`__call__` as ``on_affine`` to :func:`run_streams`; read :attr:`synops` and
    :attr:`macs` (``path -> [B]`` ``int64``) afterwards. Fan-out maps are cached per input shape.
    """

    def __init__(self, graph: Graph, ops: nn.ModuleDict) -> None:
        self.graph = graph
        self.ops = ops
        self.synops: dict[str, Tensor] = {}
        self.macs: dict[str, Tensor] = {}
        self._fanouts: dict[tuple[int, tuple[int, ...]], Tensor] = {}

    def fanout(self, node: Node, in_shape: tuple[int, ...]) -> Tensor:
        """Per-sample fan-out map of ``node``'s layer for inputs of shape ``in_shape``."""
        key = (node.index, in_shape)
        if key not in self._fanouts:
            self._fanouts[key] = fanout(self.ops[node.key].layer, in_shape)
        return self._fanouts[key]

    def __call__(self, node: Node, stream: Tensor) -> None:
        fan = self.fanout(node, tuple(stream.shape[2:]))
        if self.graph.nodes[node.streams[0]].spiking:
            self.synops[node.path] = synaptic_events(stream.to(fan.device), fan)
        else:
            per_step = round(float(fan.sum()))
            count = torch.full((stream.shape[1],), per_step * stream.shape[0], dtype=torch.int64)
            self.macs[node.path] = count


def spikes_per_neuron(spikes: dict[str, Tensor], batch: int) -> float:
    """Mean number of spikes per neuron and sample over the layers of ``spikes`` (each
    ``[B, ...]`` counts per neuron)."""
    total = sum(float(s.sum()) for s in spikes.values())
    neurons = sum(s[0].numel() for s in spikes.values())
    return total / (neurons * batch) if neurons else 0.0


__all__ = [
    "NeuronStep",
    "OperationCounter",
    "last_uses",
    "referenced",
    "run_streams",
    "spikes_per_neuron",
    "synaptic_events",
]
