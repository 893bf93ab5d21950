"""PASCAL: a spiking network exactly equal to a QCFS network (spec §3-4, §6).

:func:`to_pascal` converts a QCFS network (:func:`~spikeforge.convert.to_qcfs`) into a
:class:`PascalNetwork`. Every QCFS site becomes a layer of spike-accumulation neurons
(:mod:`spikeforge.convert.pascal_neuron`) with threshold ``theta = lambda`` and its own number of
levels ``L``; its output is a stream of ``L`` steps whose spikes carry ``theta / L``.

Network-level rules (spec §4):

* the input is analog and enters for one step (direct encoding): the first Linear / Conv and
  BatchNorm run once with their biases unchanged, and the first neuron layer turns the result
  into its level (``L_0`` front-loaded spikes);
* every other Linear / Conv bias and BatchNorm shift (``beta - gamma * mean / sigma``: bias and
  running mean) is **divided by the step count of the layer's input** (the previous neuron
  layer's ``L``), since it is added at every input step;
* a residual join of streams with different step counts sums the shorter-lived inputs over time
  and adds them at the first step of the main input (:mod:`spikeforge.convert.graph`); the
  shortcut's own BatchNorm is rescaled by its own input's step count;
* the output layer's per-step outputs are **summed** over its input steps: the logits equal the
  QCFS network's (the official code averages, a constant factor).

Two computations give the same logits (equal to ``qnet.eval()(x)`` up to float rounding, to
1e-9 in float64):

* ``snn(x)``: the fast path, one pass at the cost of the ANN; each neuron layer uses the closed
  form of its emitted count, every per-step layer its summed form ``W X + T_in b_step``;
* ``snn.simulate(x)``: the step-by-step reference; every layer runs at every time step on
  ``[T, B, ...]`` streams and every neuron runs the three phases (integrate, drain, emit) with
  the drain length ``max(T_in, L) - 1``.

Layouts: input ``x`` is ``[B, ...]`` (the QCFS network's input), logits ``[B, ...]`` (its
output). Per-layer statistics are keyed by the layer's module path (``path#2`` for a module's
second call).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from spikeforge.convert.graph import (
    Graph,
    Node,
    build_ops,
    call_node,
    resolve_main,
    trace_network,
)
from spikeforge.convert.levels import Latency, TEff, network_latency, t_eff
from spikeforge.convert.pascal_neuron import (
    drain_steps,
    front_loaded,
    pascal_levels,
    pascal_neuron_steps,
)
from spikeforge.convert.streams import (
    OperationCounter,
    last_uses,
    referenced,
    run_streams,
    spikes_per_neuron,
)


def _unit(op: nn.Module, stream: Tensor) -> Tensor:
    """The spike value ``theta / L`` of a neuron layer, in the stream's dtype."""
    return op.theta.to(stream.dtype) / op.levels


@dataclass(frozen=True)
class PascalLayer:
    """One neuron layer of a :class:`PascalNetwork`.

    ``steps_in``: step count of its input stream (1 for the analog first layer); ``levels``: its
    ``L`` (= its output step count); ``drain``: phase-2 length ``max(steps_in, L) - 1``;
    ``theta``: threshold (the QCFS lambda); ``fan_in``: fan-in of the Linear / Conv feeding it
    (0 if none).
    """

    path: str
    levels: int
    steps_in: int
    drain: int
    theta: float
    fan_in: int


@dataclass
class PascalOutput:
    """Logits and operation counts of one PASCAL inference.

    * ``logits``: ``[B, ...]``;
    * ``spikes``: per neuron layer, transmitted (emitted) spikes per neuron ``[B, *shape]``
      (``int64``; the counting spikes of phases 1-2 are internal and not included);
    * ``synops``: per Linear / Conv layer fed by spikes, synaptic operations per sample ``[B]``;
    * ``macs``: per Linear / Conv layer fed by analog values, multiply-accumulates per sample
      ``[B]`` (:mod:`spikeforge.convert.streams`).
    """

    logits: Tensor
    spikes: dict[str, Tensor]
    synops: dict[str, Tensor]
    macs: dict[str, Tensor]

    def spikes_per_neuron(self) -> float:
        """Mean number of transmitted spikes per neuron and sample over all neuron layers."""
        return spikes_per_neuron(self.spikes, self.logits.shape[0])

    def total_synops(self) -> Tensor:
        """Synaptic operations per sample over all layers: ``[B]`` (``int64``)."""
        total = torch.zeros(self.logits.shape[0], dtype=torch.int64)
        for count in self.synops.values():
            total = total + count.cpu()
        return total


class PascalNetwork(nn.Module):
    """A PASCAL spiking network (module docstring); build it with :func:`to_pascal`.

    Parameters are buffers copied at conversion (``.to()`` / ``.double()`` work; nothing trains).
    ``forward(x [B, ...]) -> logits [B, ...]``; :meth:`run` adds spike and operation counts;
    :meth:`simulate` is the step-by-step reference.
    """

    def __init__(
        self, graph: Graph, *, rescale_bias: bool = True, drain_shortfall: int = 0
    ) -> None:
        super().__init__()
        self.graph = graph
        self.rescale_bias = bool(rescale_bias)
        self.drain_shortfall = int(drain_shortfall)
        self.steps = resolve_main(graph, {n.index: n.levels for n in graph.neurons})

        def divisor(node: Node) -> int:
            return self.steps[node.streams[0]] if self.rescale_bias else 1

        self.ops = build_ops(graph, divisor)
        self._last = last_uses(graph)
        self.layers = [
            PascalLayer(
                path=n.path,
                levels=n.levels,
                steps_in=self.steps[n.streams[0]],
                drain=drain_steps(self.steps[n.streams[0]], n.levels),
                theta=float(n.theta),
                fan_in=(f.fan_in if (f := graph.feeding_affine(n)) is not None else 0),
            )
            for n in graph.neurons
        ]

    # -- structure --------------------------------------------------------------------------

    @property
    def step_counts(self) -> dict[str, int]:
        """Per neuron layer (path): its levels ``L``, the step count of its output stream."""
        return {layer.path: layer.levels for layer in self.layers}

    @property
    def latency(self) -> Latency:
        """Wall-clock time steps, pipelined and sequential (:mod:`spikeforge.convert.levels`)."""
        return network_latency(self.graph, self.steps)

    @property
    def t_eff(self) -> TEff:
        """Effective time steps per neuron layer and their mean (spec §5.4, inferred ``r``)."""
        return t_eff(
            [layer.levels for layer in self.layers],
            [layer.fan_in for layer in self.layers],
            [layer.path for layer in self.layers],
        )

    # -- fast path --------------------------------------------------------------------------

    def _closed_form(self, x: Tensor) -> tuple[Tensor, dict[int, Tensor]]:
        """Logits and the emitted count ``[B, ...]`` of every neuron node."""
        env: dict[int, object] = {}
        counts: dict[int, Tensor] = {}
        for node in self.graph.nodes:
            if node.kind == "input":
                value: object = x
            elif node.kind in ("affine", "norm"):
                total = env[node.streams[0]]
                op = self.ops[node.key]
                value = op.summed(total, self.steps[node.streams[0]])
            elif node.kind in ("static", "linear"):
                module = self.ops[node.key] if node.key in self.ops else None
                value = call_node(node, env.__getitem__, module)
            else:  # neuron
                op = self.ops[node.key]
                count = pascal_levels(env[node.streams[0]], op.theta, op.levels)
                counts[node.index] = count
                value = (count / op.levels) * op.theta.to(count.dtype)  # as QCFS rounds it
            env[node.index] = value
            for arg in referenced(node):
                if self._last.get(arg) == node.index:
                    del env[arg]
        return env[self.graph.output], counts

    def _check_input(self, x: Tensor) -> None:
        if not isinstance(x, Tensor) or x.dim() < 1:
            raise ValueError("expected an input tensor [B, ...]")
        if not x.is_floating_point():
            raise ValueError(f"expected a floating-point input, got {x.dtype}")

    def forward(self, x: Tensor) -> Tensor:
        """Logits ``[B, ...]`` for inputs ``x [B, ...]`` (the fast path)."""
        self._check_input(x)
        logits, _ = self._closed_form(x)
        return logits

    def run(self, x: Tensor) -> PascalOutput:
        """The fast path with spike and operation counts (:class:`PascalOutput`).

        Spike counts come from the closed form; synaptic operations need the spike trains at
        every step, so this runs the per-step layers once with front-loaded trains of those counts
        (the cost of :meth:`simulate` without the neurons' phases).
        """
        self._check_input(x)
        logits, counts = self._closed_form(x)
        counter = OperationCounter(self.graph, self.ops)

        def emitted(node: Node, op: nn.Module, stream: Tensor) -> Tensor:
            return front_loaded(counts[node.index], op.levels) * _unit(op, stream)

        with torch.no_grad():
            run_streams(self.graph, self.ops, x.unsqueeze(0), self.steps, emitted, counter)
        spikes = {n.path: counts[n.index].to(torch.int64) for n in self.graph.neurons}
        return PascalOutput(logits, spikes, counter.synops, counter.macs)

    # -- step-by-step reference -------------------------------------------------------------

    def simulate(self, x: Tensor, *, return_stats: bool = False) -> Tensor | PascalOutput:
        """Step-by-step reference simulation: logits ``[B, ...]`` (or a :class:`PascalOutput`
        with ``return_stats=True``) for inputs ``x [B, ...]``.

        The input is one analog step; every Linear / Conv / BatchNorm adds its per-step bias at
        every step, every neuron layer runs integrate / drain / emit step by step
        (:func:`~spikeforge.convert.pascal_neuron.pascal_neuron_steps`), and the logits are the
        output stream summed over its steps.
        """
        self._check_input(x)
        spikes: dict[str, Tensor] = {}

        def neuron(node: Node, op: nn.Module, stream: Tensor) -> Tensor:
            drain = drain_steps(stream.shape[0], op.levels) - self.drain_shortfall
            fired, _ = pascal_neuron_steps(stream, op.theta, op.levels, drain=max(drain, 0))
            if return_stats:
                spikes[node.path] = fired.sum(0).to(torch.int64)
            return fired * _unit(op, stream)

        counter = OperationCounter(self.graph, self.ops) if return_stats else None
        out = run_streams(self.graph, self.ops, x.unsqueeze(0), self.steps, neuron, counter)
        logits = out.sum(0)
        if counter is None:
            return logits
        return PascalOutput(logits, spikes, counter.synops, counter.macs)

    def extra_repr(self) -> str:
        levels = [layer.levels for layer in self.layers]
        return f"levels={levels}, latency={self.latency}"


def to_pascal(
    qnet: nn.Module, *, _rescale_bias: bool = True, _drain_shortfall: int = 0
) -> PascalNetwork:
    """Convert a QCFS network into an exactly equivalent PASCAL network.

    ``qnet``: a network made by :func:`~spikeforge.convert.to_qcfs` (or any ``torch.fx``
    traceable network of QCFS activations and the layers listed in
    :mod:`spikeforge.convert.graph`); its parameters are copied, BatchNorm uses its running
    statistics (the SNN equals ``qnet.eval()``). Per-layer levels are the QCFS modules'
    ``levels``.

    Private switches for tests that prove the rules matter: ``_rescale_bias=False`` adds the full
    bias at every input step; ``_drain_shortfall=k`` shortens every drain by ``k`` steps in
    :meth:`PascalNetwork.simulate`. Both break the equivalence.

    Raises :class:`~spikeforge.convert.errors.UnsupportedLayerError` naming any unsupported
    layer (path and type).
    """
    return PascalNetwork(
        trace_network(qnet), rescale_bias=_rescale_bias, drain_shortfall=_drain_shortfall
    )


__all__ = [
    "PascalLayer",
    "PascalNetwork",
    "PascalOutput",
    "to_pascal",
]
