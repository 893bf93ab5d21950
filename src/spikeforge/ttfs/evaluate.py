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
      (its window-relative time ``t_max - t`` as the closed form / engine computes it, against
      the canonical ReLU network's activation) and every logit (against the original model's
      logits);
    * ``spikes_per_neuron``: hidden neurons only, spikes strictly before ``t_max``, closed-form
      (noise-free) times; ``latency``: the output layer's ``t_min`` in units of tau_c;
    * ``event_*``: the event-driven simulation (``event_engine``: ``"compiled"``,
      :mod:`spikeforge.ttfs.engine`, or ``"python"``, :mod:`spikeforge.ttfs.events`);
      ``event_vs_closed_window_relative`` its largest difference from the closed form over the
      logits and the window-relative spike times ``t_max - t`` of every hidden layer (as both
      compute them; the exactness figure: it does not depend on how late a layer's window
      lies), ``event_vs_closed`` the same number (kept for older readers), and
      ``event_vs_closed_absolute`` the difference over the logits and the absolute spike times
      ``t``, which also holds the rounding of forming ``t = t_max - (t_max - t)`` on each side
      (up to an ulp of ``t_max``: 9.1e-13 at ``t_max`` = 7501);
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
    event_vs_closed_window_relative: float | None = None
    event_vs_closed_absolute: float | None = None
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
    net: TTFSNetwork, x: Tensor, values: list[Tensor], logits: Tensor, reference: Tensor
) -> float:
    """Largest ``|x_snn - x_relu|`` over hidden values (window-relative times ``t_max - t``
    against the canonical ReLU network's activations on ``x``) and logits (against
    ``reference``)."""
    hidden = max_abs_difference(values, _relu_hidden(net, x))
    return max(hidden, max_abs_difference(logits, reference))


def window_relative_times(net: TTFSNetwork, result: object) -> list[Tensor]:
    """The hidden layers' window-relative spike times ``t_max - t`` ``[B, *shape]`` of a
    closed-form (:class:`~spikeforge.ttfs.network.TTFSOutput`) or event-driven result: its
    ``hidden_values`` as computed, where it has them, else formed from ``hidden_times``."""
    values = getattr(result, "hidden_values", None)
    times: list[Tensor] = result.hidden_times  # type: ignore[attr-defined]
    if values:
        return list(values)
    return [w.t_max - t for t, w in zip(times, net.windows.layers(), strict=False)]


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
            values = window_relative_times(net, out)
            err = max(err, _error_vs_relu(net, xb, values, out.logits, ref))
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
    event_logits, early, ev_err, ev_closed, ev_absolute = [], 0, 0.0, 0.0, 0.0
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
        sim_values = window_relative_times(net, sim)
        ev_err = max(ev_err, _error_vs_relu(net, xb, sim_values, sim.logits, ref))
        with torch.no_grad():
            closed_out = net.run(xb)
        logit_diff = max_abs_difference(sim.logits, closed[lo : lo + xb.shape[0]])
        relative = max_abs_difference(sim_values, window_relative_times(net, closed_out))
        ev_closed = max(ev_closed, logit_diff, relative)
        ev_absolute = max(
            ev_absolute, logit_diff, max_abs_difference(sim.hidden_times, closed_out.hidden_times)
        )
        bar.update(xb.shape[0])
    bar.close()
    event = torch.cat(event_logits)
    result.event_samples = event_samples
    result.event_accuracy = accuracy(event, y[:event_samples])
    result.event_agreement = agreement(event, reference_logits[:event_samples])
    result.event_max_error = ev_err
    result.event_vs_closed = ev_closed
    result.event_vs_closed_window_relative = ev_closed
    result.event_vs_closed_absolute = ev_absolute
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
    "window_relative_times",
]
