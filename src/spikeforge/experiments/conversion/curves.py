"""Accuracy against time steps: one simulation of ``T_max`` steps gives the accuracy at every
``T = 1..T_max`` (rate read-out: the output summed over the first ``T`` steps, arg-max; the
same arg-max as the average), plus the spikes per neuron up to each ``T``."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

__all__ = ["Curve", "evaluate_curve", "steps_to_reach"]


@dataclass
class Curve:
    """Accuracy and activity of one rate-coded SNN at every ``T = 1..len(accuracy)``.

    ``accuracy[T - 1]``: test accuracy reading out after ``T`` steps; ``spikes_per_neuron[T - 1]``:
    spikes per hidden neuron and image emitted in steps ``1..T`` (``None`` where not counted);
    ``synaptic_ops[T - 1]``: synaptic operations per image in steps ``1..T`` (``None`` where not
    counted); ``samples``: test images; ``seconds``: wall time of the simulation."""

    accuracy: list[float]
    samples: int
    seconds: float
    spikes_per_neuron: list[float] | None = None
    synaptic_ops: list[float] | None = None
    extra: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {
            "accuracy": self.accuracy,
            "spikes_per_neuron": self.spikes_per_neuron,
            "synaptic_ops": self.synaptic_ops,
            "samples": self.samples,
            "seconds": round(self.seconds, 2),
            **self.extra,
        }

    @classmethod
    def from_dict(cls, data: dict) -> Curve:
        known = {"accuracy", "spikes_per_neuron", "synaptic_ops", "samples", "seconds"}
        return cls(
            accuracy=list(data["accuracy"]),
            samples=int(data["samples"]),
            seconds=float(data["seconds"]),
            spikes_per_neuron=data.get("spikes_per_neuron"),
            synaptic_ops=data.get("synaptic_ops"),
            extra={k: v for k, v in data.items() if k not in known},
        )

    def best(self) -> tuple[float, int]:
        """The highest accuracy and the first ``T`` that reaches it."""
        top = max(self.accuracy)
        return top, self.accuracy.index(top) + 1


StepFn = Callable[[Tensor], "tuple[Tensor, Tensor | None, Tensor | None]"]


def evaluate_curve(
    simulate: StepFn,
    x: Tensor,
    y: Tensor,
    *,
    batch_size: int,
    neurons: int | None = None,
    cumulative: bool = False,
) -> Curve:
    """Run ``simulate(x_batch) -> (outputs [T, B, C], spikes [T] | None, sops [T] | None)`` over
    ``x`` ``[N, ...]`` in batches; ``spikes[t]`` / ``sops[t]`` are the batch's total spikes and
    synaptic operations in step ``t``. ``outputs[t]`` is the output of step ``t`` (summed here
    over steps ``1..T`` for the read-out at ``T``), or with ``cumulative`` already the read-out
    at ``T = t + 1`` (e.g. a running mean). ``neurons``: hidden neurons per image."""
    if x.shape[0] != y.shape[0] or x.shape[0] == 0:
        raise ValueError(f"{x.shape[0]} images for {y.shape[0]} labels")
    start = time.perf_counter()
    correct: Tensor | None = None
    spikes: Tensor | None = None
    sops: Tensor | None = None
    with torch.no_grad():
        for i in range(0, x.shape[0], batch_size):
            out, s, o = simulate(x[i : i + batch_size])
            readout = out if cumulative else out.cumsum(0)
            hit = (readout.argmax(-1) == y[i : i + batch_size]).sum(1).double()
            correct = hit if correct is None else correct + hit
            if s is not None:
                s = s.double()
                spikes = s if spikes is None else spikes + s
            if o is not None:
                o = o.double()
                sops = o if sops is None else sops + o
    assert correct is not None
    n = x.shape[0]
    curve = Curve(accuracy=(correct / n).tolist(), samples=n, seconds=time.perf_counter() - start)
    if spikes is not None and neurons:
        curve.spikes_per_neuron = (spikes.cumsum(0) / (n * neurons)).tolist()
    if sops is not None:
        curve.synaptic_ops = (sops.cumsum(0) / n).tolist()
    return curve


def steps_to_reach(accuracy: Sequence[float], target: float, tol: float = 1e-12) -> int | None:
    """The first ``T`` (1-based) whose accuracy is at least ``target`` (up to ``tol``), or
    ``None`` when no ``T`` of the curve reaches it."""
    for t, acc in enumerate(accuracy, start=1):
        if acc >= target - tol:
            return t
    return None
