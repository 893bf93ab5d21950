"""``Circuit``: a network of synchronous LIF neurons (spec ``universal.md`` §1) and its builder.

A circuit has ``d`` input channels and ``N`` neurons; neuron ``i`` has a leak ``beta_i`` in
``[0, 1]``, a threshold ``theta_i`` (``+inf``: never fires), a bias ``b_i`` and an initial
potential ``v0_i``; ``input_weights [N, d]`` holds ``U`` (``U[i, k]``: channel ``k`` -> neuron
``i``) and ``weights [N, N]`` holds ``W`` (``W[i, j]``: neuron ``j`` -> neuron ``i``; any graph,
self-loops and cycles allowed). One neuron is the output. The update is that of
:mod:`spikeforge.universal.simulate` (unit synaptic delay, fire at ``H >= theta``, hard reset to
zero).

Counts: ``neurons`` = N, ``synapses`` = non-zero entries of ``U`` and ``W``, ``biases`` =
non-zero ``b``. ``latency`` D: the output at step ``t + D`` is the represented function's value
at ``t`` (``None`` where the circuit is not a representation with a fixed latency, e.g. a clock
or a latch); ``memory`` and ``period`` describe the function class (``None`` when not
applicable). ``formula`` holds the counts the construction's closed formulas predict.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import torch
from torch import Tensor

from spikeforge.universal import simulate as _simulate

if TYPE_CHECKING:
    from spikeforge.universal.module import CircuitModule

__all__ = ["Circuit", "CircuitBuilder", "Ref"]


class Ref(NamedTuple):
    """A spike source while building: input channel ``index`` (``kind == "input"``) or neuron
    ``index`` (``kind == "neuron"``)."""

    kind: str
    index: int


def _array(value: Any, name: str, shape: tuple[int, ...]) -> np.ndarray:
    a = np.array(value, dtype=np.float64)
    if a.shape != shape:
        raise ValueError(f"{name} must have shape {list(shape)}, got {list(a.shape)}")
    return a


@dataclass(frozen=True, eq=False)
class Circuit:
    """A synchronous LIF circuit (module docstring). Arrays are float64 numpy arrays; build one
    with :class:`CircuitBuilder` or the constructors of :mod:`spikeforge.universal`."""

    beta: np.ndarray
    threshold: np.ndarray
    bias: np.ndarray
    v0: np.ndarray
    input_weights: np.ndarray
    weights: np.ndarray
    output: int
    latency: int | None = None
    memory: int | None = None
    period: int | None = None
    construction: str = "circuit"
    labels: tuple[str, ...] = ()
    formula: dict[str, int] | None = field(default=None)

    def __post_init__(self) -> None:
        n = np.asarray(self.beta).shape[0] if np.ndim(self.beta) == 1 else -1
        if n < 0:
            raise ValueError("beta must be a 1-D array with one leak per neuron")
        for name in ("beta", "threshold", "bias", "v0"):
            object.__setattr__(self, name, _array(getattr(self, name), name, (n,)))
        u = np.asarray(self.input_weights, dtype=np.float64)
        if u.ndim != 2 or u.shape[0] != n:
            raise ValueError(f"input_weights must be [N, d] with N = {n}, got {list(u.shape)}")
        object.__setattr__(self, "input_weights", u.copy())
        object.__setattr__(self, "weights", _array(self.weights, "weights", (n, n)))
        if np.any((self.beta < 0) | (self.beta > 1)):
            raise ValueError("every leak beta must lie in [0, 1]")
        for name in ("bias", "v0", "input_weights", "weights"):
            if not np.all(np.isfinite(getattr(self, name))):
                raise ValueError(f"{name} must be finite")
        if np.any(np.isnan(self.threshold)):
            raise ValueError("thresholds must not be NaN")
        if not 0 <= self.output < n:
            raise ValueError(f"output neuron {self.output} out of range 0..{n - 1}")
        if self.labels and len(self.labels) != n:
            raise ValueError(f"labels: expected {n} names, got {len(self.labels)}")
        for name in ("latency", "memory", "period"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"{name} must be >= 0 or None, got {value}")

    # -- counts ---------------------------------------------------------------------------

    @property
    def neurons(self) -> int:
        """Number of neurons N."""
        return int(self.beta.shape[0])

    @property
    def inputs(self) -> int:
        """Number of input channels d."""
        return int(self.input_weights.shape[1])

    @property
    def synapses(self) -> int:
        """Non-zero input and recurrent weights."""
        return int(np.count_nonzero(self.input_weights) + np.count_nonzero(self.weights))

    @property
    def biases(self) -> int:
        """Non-zero biases."""
        return int(np.count_nonzero(self.bias))

    def counts(self) -> dict[str, int | None]:
        """``neurons``, ``synapses``, ``biases`` (introspected) and ``latency``."""
        return {
            "neurons": self.neurons,
            "synapses": self.synapses,
            "biases": self.biases,
            "latency": self.latency,
        }

    # -- running --------------------------------------------------------------------------

    def tensors(self, dtype: torch.dtype, device: torch.device | str = "cpu") -> dict[str, Tensor]:
        """The parameters as tensors of ``dtype``: ``beta, threshold, bias, v0 [N]``,
        ``input_weights [N, d]``, ``weights [N, N]``."""
        names = ("beta", "threshold", "bias", "v0", "input_weights", "weights")
        return {k: torch.as_tensor(getattr(self, k), dtype=dtype, device=device) for k in names}

    def simulate(self, x: Tensor, dtype: torch.dtype | None = None) -> tuple[Tensor, Tensor]:
        """Every neuron's spikes ``[T, B, N]`` and the final potential ``[B, N]`` for input
        spikes ``x [T, B, d]`` (:func:`spikeforge.universal.simulate.simulate`)."""
        return _simulate.simulate(self, x, dtype)

    def run(self, x: Tensor, dtype: torch.dtype | None = None) -> Tensor:
        """The output neuron's spikes ``[T, B]`` for input spikes ``x [T, B, d]``
        (``out[t - 1] = S_o[t]``; with latency D, ``out[t - 1 + D] = f(X)[t]`` for t >= 1)."""
        return self.simulate(x, dtype)[0][:, :, self.output]

    def to_module(self) -> CircuitModule:
        """An ``nn.Module`` on ``[T, B, d]`` spikes computing the same spikes bit for bit
        (:class:`spikeforge.universal.module.CircuitModule`)."""
        from spikeforge.universal.module import CircuitModule

        return CircuitModule(self)

    def with_info(self, **changes: Any) -> Circuit:
        """A copy with some descriptive fields replaced (``latency``, ``memory``, ``period``,
        ``construction``, ``formula``, ``output``)."""
        fields = {k: getattr(self, k) for k in self.__dataclass_fields__}
        unknown = set(changes) - set(fields)
        if unknown:
            raise ValueError(f"unknown Circuit fields: {sorted(unknown)}")
        return Circuit(**(fields | changes))

    def __repr__(self) -> str:
        return (
            f"Circuit({self.construction!r}, inputs={self.inputs}, neurons={self.neurons}, "
            f"synapses={self.synapses}, biases={self.biases}, latency={self.latency}, "
            f"memory={self.memory}, period={self.period})"
        )


class CircuitBuilder:
    """Mutable assembly of a :class:`Circuit` on ``inputs`` channels.

    ``add_neuron`` returns a :class:`Ref`; ``connect(src, dst, w)`` adds one synapse (a second
    synapse between the same pair is an error, so counts stay honest); ``add_circuit`` copies a
    circuit in with its input channels wired to given sources; ``build`` freezes the result.
    """

    def __init__(self, inputs: int) -> None:
        if inputs < 0:
            raise ValueError(f"inputs must be >= 0, got {inputs}")
        self.inputs = int(inputs)
        self._params: list[tuple[float, float, float, float]] = []
        self._labels: list[str] = []
        self._edges: dict[tuple[Ref, int], float] = {}

    @property
    def neurons(self) -> int:
        return len(self._params)

    def input(self, k: int) -> Ref:
        """Input channel ``k`` as a source."""
        if not 0 <= k < self.inputs:
            raise ValueError(f"input channel {k} out of range 0..{self.inputs - 1}")
        return Ref("input", k)

    def add_neuron(
        self,
        label: str = "",
        *,
        beta: float = 0.0,
        threshold: float = 1.0,
        bias: float = 0.0,
        v0: float = 0.0,
    ) -> Ref:
        """A new neuron (defaults: memoryless, ``theta = 1``, no bias, ``v0 = 0``)."""
        self._params.append((float(beta), float(threshold), float(bias), float(v0)))
        self._labels.append(label or f"n{len(self._labels)}")
        return Ref("neuron", len(self._params) - 1)

    def connect(self, src: Ref, dst: Ref, weight: float) -> None:
        """A synapse ``src -> dst`` of ``weight`` (non-zero)."""
        if dst.kind != "neuron" or not 0 <= dst.index < self.neurons:
            raise ValueError(f"synapse target must be a neuron of this builder, got {dst}")
        if src.kind == "input":
            self.input(src.index)
        elif src.kind != "neuron" or not 0 <= src.index < self.neurons:
            raise ValueError(f"synapse source must be an input or a neuron, got {src}")
        if weight == 0:
            raise ValueError(f"synapse {src} -> {dst} has weight 0")
        key = (src, dst.index)
        if key in self._edges:
            raise ValueError(f"a synapse {src} -> {dst} exists already")
        self._edges[key] = float(weight)

    def add_circuit(self, circuit: Circuit, sources: list[Ref], prefix: str = "") -> list[Ref]:
        """Copy ``circuit`` in, its input channel ``k`` fed by ``sources[k]``; returns the refs
        of its neurons (its output is ``refs[circuit.output]``)."""
        if len(sources) != circuit.inputs:
            raise ValueError(
                f"circuit {circuit.construction!r} has {circuit.inputs} inputs, "
                f"got {len(sources)} sources"
            )
        labels = circuit.labels or tuple(f"n{i}" for i in range(circuit.neurons))
        refs = [
            self.add_neuron(
                prefix + labels[i],
                beta=circuit.beta[i],
                threshold=circuit.threshold[i],
                bias=circuit.bias[i],
                v0=circuit.v0[i],
            )
            for i in range(circuit.neurons)
        ]
        for i, k in zip(*np.nonzero(circuit.input_weights), strict=True):
            self.connect(sources[k], refs[i], circuit.input_weights[i, k])
        for i, j in zip(*np.nonzero(circuit.weights), strict=True):
            self.connect(refs[j], refs[i], circuit.weights[i, j])
        return refs

    def build(self, output: Ref, **info: Any) -> Circuit:
        """The frozen circuit with ``output`` as its output neuron; ``info``: the descriptive
        fields of :class:`Circuit` (``latency``, ``memory``, ``period``, ``construction``,
        ``formula``)."""
        if output.kind != "neuron":
            raise ValueError(f"the output must be a neuron, got {output}")
        n = self.neurons
        if n == 0:
            raise ValueError("a circuit needs at least one neuron")
        params = np.array(self._params, dtype=np.float64).reshape(n, 4)
        u = np.zeros((n, self.inputs))
        w = np.zeros((n, n))
        for (src, dst), weight in self._edges.items():
            (u if src.kind == "input" else w)[dst, src.index] = weight
        return Circuit(
            beta=params[:, 0],
            threshold=params[:, 1],
            bias=params[:, 2],
            v0=params[:, 3],
            input_weights=u,
            weights=w,
            output=output.index,
            labels=tuple(self._labels),
            **info,
        )
