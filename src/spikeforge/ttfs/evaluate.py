"""Evaluate a mapped TTFS network against its ReLU network on a data set."""

from __future__ import annotations

import sys
import time
from dataclasses import asdict, dataclass, field

import torch
from torch import Tensor
from tqdm import tqdm

from spikeforge.metrics import accuracy, agreement, max_abs_difference, spike_counts
from spikeforge.ttfs import engine as compiled
from spikeforge.ttfs.counts import counts
from spikeforge.ttfs.events import simulate
from spikeforge.ttfs.network import TTFSNetwork


@dataclass
class MappingEvaluation:
    """Metrics of one mapped network on one data set.

    * ``max_error_*``: largest ``|x_snn - x_relu|`` over every hidden neuron's encoded value
      (``t_max - t`` against the canonical ReLU network's activation) and every logit (against
      the original model's logits);
    * ``spikes_per_neuron``: hidden neurons only, spikes strictly before ``t_max``, closed-form
      (noise-free) times; ``latency``: the output layer's ``t_min`` in units of tau_c;
    * ``event_*``: the event-driven simulation (``event_engine``: ``"compiled"``,
      :mod:`spikeforge.ttfs.engine`, or ``"python"``, :mod:`spikeforge.ttfs.events`);
      ``event_vs_closed`` its largest difference from the closed form (logits and spike times);
    * ``operation_counts``: :meth:`spikeforge.ttfs.counts.OperationCounts.as_dict` on the whole
      set (spikes, synaptic operations, energy per sample, next to the ReLU network's MACs).
    """

    neuron: str
    samples: int
    ann_accuracy: float
    snn_accuracy: float
    agreement: float
    max_error: float
    window_violations: int
    spikes_per_neuron: float
    spikes_per_layer: list[float]
    latency: float
    window_widths: list[float]
    seconds: float
    event_samples: int = 0
    event_accuracy: float | None = None
    event_agreement: float | None = None
    event_max_error: float | None = None
    event_vs_closed: float | None = None
    early_spikes: int | None = None
    event_seconds: float | None = None
    event_engine: str | None = None
    operation_counts: dict | None = None
    plot_times: list[Tensor] = field(default_factory=list, repr=False)

    def as_dict(self) -> dict:
        d = asdict(self)
        d.pop("plot_times")
        return d


def _relu_hidden(net: TTFSNetwork, x: Tensor) -> list[Tensor]:
    p, q = net.input_range
    record: list[Tensor] = []
    assert net.mapping is not None
    net.mapping.chain.forward((x.to(torch.float64) - p) / (q - p), record)
    return record


def _error_vs_relu(
    net: TTFSNetwork, x: Tensor, hidden_times: list[Tensor], logits: Tensor, reference: Tensor
) -> float:
    """Largest ``|x_snn - x_relu|`` over hidden values (``t_max - t`` against the canonical ReLU
    network's activations on ``x``) and logits (against ``reference``)."""
    windows = net.windows.layers()
    values = [w.t_max - t for t, w in zip(hidden_times, windows, strict=False)]
    hidden = max_abs_difference(values, _relu_hidden(net, x))
    return max(hidden, max_abs_difference(logits, reference))


def evaluate_mapping(
    net: TTFSNetwork,
    x: Tensor,
    y: Tensor,
    reference_logits: Tensor,
    *,
    event_samples: int | None = None,
    batch_size: int = 1000,
    event_batch_size: int = 250,
    plot_samples: int = 500,
    progress: bool = False,
    engine: str = "auto",
    operation_counts: bool = True,
) -> MappingEvaluation:
    """Closed-form (all of ``x``) and event-driven (first ``event_samples``, default all)
    evaluation of ``net`` on inputs ``x`` ``[N, *in_shape]`` with labels ``y`` ``[N]``.

    ``engine``: the event simulator, ``"compiled"``, ``"python"`` or ``"auto"`` (compiled when
    its kernel library is available). ``operation_counts``: also count spikes, synaptic
    operations and energy (:func:`spikeforge.ttfs.counts.counts`) on all of ``x``.

    ``reference_logits`` ``[N, C]`` are the original ReLU model's logits, computed before any
    folding (they define ANN accuracy and agreement).
    """
    n = x.shape[0]
    event_samples = n if event_samples is None else min(event_samples, n)
    t_max = net.windows.hidden_t_max()
    logits, violations, err = [], 0, 0.0
    spikes, neurons = [0] * len(t_max), [0] * len(t_max)
    plot_times: list[list[Tensor]] = []
    start = time.perf_counter()
    with torch.no_grad():
        for lo in range(0, n, batch_size):
            xb = x[lo : lo + batch_size]
            out = net.run(xb)
            logits.append(out.logits)
            for k, (s, m) in enumerate(spike_counts(out.hidden_times, t_max)):
                spikes[k] += s
                neurons[k] += m
            violations += sum(net.window_violations(out.hidden_times))
            ref = reference_logits[lo : lo + batch_size]
            err = max(err, _error_vs_relu(net, xb, out.hidden_times, out.logits, ref))
            if lo < plot_samples:
                plot_times.append([out.input_times[:plot_samples], *out.hidden_times])
    seconds = time.perf_counter() - start
    closed = torch.cat(logits)
    result = MappingEvaluation(
        neuron=net.neuron,
        samples=n,
        ann_accuracy=accuracy(reference_logits, y),
        snn_accuracy=accuracy(closed, y),
        agreement=agreement(closed, reference_logits),
        max_error=err,
        window_violations=violations,
        spikes_per_neuron=sum(spikes) / max(1, sum(neurons)),
        spikes_per_layer=[s / max(1, m) for s, m in zip(spikes, neurons, strict=True)],
        latency=net.latency,
        window_widths=net.windows.widths.tolist(),
        seconds=seconds,
        plot_times=[torch.cat(parts)[:plot_samples] for parts in zip(*plot_times, strict=True)],
    )
    if operation_counts:
        result.operation_counts = counts(net, x, batch_size=batch_size).as_dict()
    if event_samples == 0:
        return result
    if engine not in ("auto", "compiled", "python"):
        raise ValueError(f"engine must be 'auto', 'compiled' or 'python', got {engine!r}")
    use_compiled = engine == "compiled" or (engine == "auto" and compiled.is_available())
    if use_compiled:
        event_batch_size = max(event_batch_size, 1000)
    event_logits, early, ev_err, ev_closed = [], 0, 0.0, 0.0
    start = time.perf_counter()
    bar = tqdm(
        total=event_samples,
        disable=not progress,
        file=sys.stderr,
        desc=f"event simulation ({net.neuron})",
        unit="sample",
        leave=False,
    )
    for lo in range(0, event_samples, event_batch_size):
        xb = x[lo : min(lo + event_batch_size, event_samples)]
        sim = compiled.simulate(net, xb) if use_compiled else simulate(net, xb)
        event_logits.append(sim.logits)
        early += sum(sim.early_spikes)
        ref = reference_logits[lo : lo + xb.shape[0]]
        ev_err = max(ev_err, _error_vs_relu(net, xb, sim.hidden_times, sim.logits, ref))
        with torch.no_grad():
            closed_times = net.run(xb).hidden_times
        ev_closed = max(
            ev_closed,
            max_abs_difference(sim.logits, closed[lo : lo + xb.shape[0]]),
            max_abs_difference(sim.hidden_times, closed_times),
        )
        bar.update(xb.shape[0])
    bar.close()
    event = torch.cat(event_logits)
    result.event_samples = event_samples
    result.event_accuracy = accuracy(event, y[:event_samples])
    result.event_agreement = agreement(event, reference_logits[:event_samples])
    result.event_max_error = ev_err
    result.event_vs_closed = ev_closed
    result.early_spikes = early
    result.event_seconds = time.perf_counter() - start
    result.event_engine = "compiled" if use_compiled else "python"
    return result


def format_counts(report: dict | None) -> str:
    """A short text table of :attr:`MappingEvaluation.operation_counts` (per sample)."""
    if not report:
        return ""
    lines = [
        f"operation counts per sample ({report['neuron']}, {report['samples']} samples): "
        f"{'layer':<14} {'spikes':>9} {'spk/neuron':>10} {'syn. ops':>11} {'ReLU MACs':>10}"
    ]
    pad = " " * (len(lines[0]) - 60)
    for c in report["layers"]:
        lines.append(
            f"{pad}{c['name']:<14} {c['spikes']:9.1f} {c['spikes_per_neuron']:10.3f} "
            f"{c['synaptic_ops']:11.1f} {c['relu_macs']:10d}"
        )
    lines.append(
        f"{pad}energy {report['snn_energy_pj'] / 1e3:.2f} nJ (TTFS) vs "
        f"{report['relu_energy_pj'] / 1e3:.2f} nJ (ReLU), ratio {report['energy_ratio']:.3f}"
    )
    return "\n".join(lines)


__all__ = [
    "MappingEvaluation",
    "evaluate_mapping",
    "format_counts",
]
