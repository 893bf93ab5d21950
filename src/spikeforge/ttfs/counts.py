"""Operation counts and an energy estimate of TTFS networks, next to the ReLU network's MACs.

:func:`counts` runs a network (closed form) on inputs and counts, per layer and per sample:

* **spikes** of the layer's neurons: inputs with ``t < 1`` (value > 0), hidden neurons with
  ``t < t_max`` (value > 0; spec §9, noise-free times). In an alpha1 network every neuron also
  fires a *forced* spike at ``t_max`` when it has not fired before (P1: exactly one spike per
  neuron, needed for exactness, spec §2.1): ``forced_spikes`` counts those.
* **synaptic operations**: input spikes times the synapses each reaches (a max pool relays one
  spike per pooling window that holds one; an average pool relays every spike of its window,
  each with a fraction of the weight). A B1 neuron that stays silent sends nothing; alpha1
  needs every input spike (forced ones included), so its count is every connection. Padding
  taps are not counted (a padding spike is a constant that can be folded into the threshold).
* **ReLU MACs**: the multiply-accumulates of the equivalent ReLU network (the canonical folded
  network the TTFS network was mapped from: same layers), every connection of every output
  neuron, padding taps excluded (the same connections as the alpha1 count).

Energy model (:class:`EnergyModel`): a synaptic operation of the TTFS network adds the weight to
the target's input current, an *accumulate*; each neuron also needs one multiply-accumulate per
sample (its threshold-crossing time, or the readout). The ReLU network needs one MAC per
connection (ReLU and bias are not counted). The default energies are Horowitz's 45 nm figures
for 32-bit floating point (M. Horowitz, "Computing's energy problem (and what we can do about
it)", ISSCC 2014, Fig. 1.1.9: add 0.9 pJ, multiply 3.7 pJ, so a MAC is 4.6 pJ). Memory access,
which dominates in real chips, is not modelled: the estimate compares arithmetic only.

The synaptic-operation count is exactly what the compiled event engine
(:mod:`spikeforge.ttfs.engine`) processes for B1 (``EngineResult.synaptic_events``; a test
checks both against each other).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from spikeforge.ttfs.network import TTFSNetwork


@dataclass(frozen=True)
class EnergyModel:
    """Energy per operation in picojoules (default: 45 nm, 32-bit float, Horowitz 2014)."""

    accumulate_pj: float = 0.9
    mac_pj: float = 4.6
    source: str = (
        "M. Horowitz, 'Computing's energy problem (and what we can do about it)', ISSCC 2014: "
        "45 nm, 32-bit float add 0.9 pJ, multiply 3.7 pJ (MAC 4.6 pJ); arithmetic only"
    )


@dataclass
class LayerCounts:
    """Counts of one layer (means per sample; ``*_per_sample`` tensors ``[B]``)."""

    name: str
    neurons: int
    spikes: float
    forced_spikes: float
    synaptic_ops: float
    relu_macs: int
    spikes_per_sample: Tensor = field(repr=False)
    synaptic_ops_per_sample: Tensor = field(repr=False)

    @property
    def spikes_per_neuron(self) -> float:
        return self.spikes / max(1, self.neurons)


@dataclass
class OperationCounts:
    """Per-layer counts (``layers[0]`` is the input layer: spikes only; the last is the
    readout: synaptic operations only) and the energy estimate per sample."""

    neuron: str
    samples: int
    layers: list[LayerCounts]
    energy: EnergyModel

    @property
    def synaptic_ops(self) -> float:
        return sum(c.synaptic_ops for c in self.layers)

    @property
    def relu_macs(self) -> int:
        return sum(c.relu_macs for c in self.layers)

    @property
    def neurons(self) -> int:
        """Neurons that compute (hidden and output; inputs are encoded, not computed)."""
        return sum(c.neurons for c in self.layers[1:])

    @property
    def snn_energy_pj(self) -> float:
        e = self.energy
        return e.accumulate_pj * self.synaptic_ops + e.mac_pj * self.neurons

    @property
    def relu_energy_pj(self) -> float:
        return self.energy.mac_pj * self.relu_macs

    def as_dict(self) -> dict[str, Any]:
        """Plain numbers for a JSON report (per-sample means)."""
        return {
            "neuron": self.neuron,
            "samples": self.samples,
            "layers": [
                {
                    "name": c.name,
                    "neurons": c.neurons,
                    "spikes": c.spikes,
                    "spikes_per_neuron": c.spikes_per_neuron,
                    "forced_spikes": c.forced_spikes,
                    "synaptic_ops": c.synaptic_ops,
                    "relu_macs": c.relu_macs,
                }
                for c in self.layers
            ],
            "synaptic_ops": self.synaptic_ops,
            "relu_macs": self.relu_macs,
            "neurons": self.neurons,
            "snn_energy_pj": self.snn_energy_pj,
            "relu_energy_pj": self.relu_energy_pj,
            "energy_ratio": self.snn_energy_pj / self.relu_energy_pj if self.relu_macs else None,
            "energy_model": asdict(self.energy),
        }

    def table(self) -> str:
        """A plain-text table, one row per layer and a total row."""
        head = (
            f"{'layer':<14} {'neurons':>8} {'spikes':>10} {'spk/neuron':>10} {'forced':>9} "
            f"{'syn. ops':>12} {'ReLU MACs':>12}"
        )
        lines = [head, "-" * len(head)]
        for c in self.layers:
            lines.append(
                f"{c.name:<14} {c.neurons:8d} {c.spikes:10.1f} {c.spikes_per_neuron:10.3f} "
                f"{c.forced_spikes:9.1f} {c.synaptic_ops:12.1f} {c.relu_macs:12d}"
            )
        lines.append(
            f"{'total':<14} {self.neurons:8d} {'':>10} {'':>10} {'':>9} "
            f"{self.synaptic_ops:12.1f} {self.relu_macs:12d}"
        )
        snn, relu = self.snn_energy_pj, self.relu_energy_pj
        lines.append(
            f"energy per sample ({self.neuron}): TTFS {snn / 1e3:.2f} nJ, ReLU "
            f"{relu / 1e3:.2f} nJ (ratio {snn / relu:.3f}; {self.energy.accumulate_pj} pJ per "
            f"accumulate, {self.energy.mac_pj} pJ per MAC)"
        )
        return "\n".join(lines)


def _route(layer: Any, counts: Tensor) -> Tensor:
    """Spike counts per input feature ``[B, *shape]`` through a layer's pre-operations."""
    for op in layer.pre:
        spec = getattr(op, "spec", None)
        if spec is None:
            counts = counts.flatten(1)
        elif spec.kind == "max":
            # one spike leaves a window: its earliest (max channels: if the window holds a
            # spike) or its latest (min channels, negative sign: only if every neuron spikes)
            geometry = (spec.kernel_size, spec.stride, spec.padding, spec.dilation, spec.ceil_mode)
            any_spike = F.max_pool2d(counts, *geometry) > 0
            sign = getattr(op, "sign", None)
            if sign is not None and bool((sign <= 0).any()):
                all_spike = -F.max_pool2d(-counts, *geometry) > 0
                any_spike = torch.where((sign > 0).reshape(1, -1, 1, 1), any_spike, all_spike)
            counts = any_spike.to(counts.dtype)
        else:  # every spike of the window is relayed
            kh, kw = spec.kernel_size
            counts = F.avg_pool2d(
                counts, spec.kernel_size, spec.stride, spec.padding, spec.ceil_mode, True
            ) * (kh * kw)
    return counts


def _synapses_reached(layer: Any, counts: Tensor) -> Tensor:
    """Per sample, the number of synapses reached by ``counts`` ``[B, *in_shape]`` spikes:
    the layer's connectivity with unit weights, summed over output neurons."""
    syn = layer.synapses
    ones = torch.ones_like(syn.weight, dtype=counts.dtype)
    if syn.kind == "linear":
        reached = F.linear(counts, ones)
    else:
        reached = F.conv2d(counts, ones, None, syn.stride, syn.padding, syn.dilation, syn.groups)
    return reached.flatten(1).sum(dim=1)


def counts(
    net: TTFSNetwork,
    x: Tensor,
    energy: EnergyModel | None = None,
    batch_size: int = 1000,
    clip: bool = False,
) -> OperationCounts:
    """Spikes, synaptic operations and energy of ``net`` on inputs ``x`` ``[N, *in_shape]``
    (means per sample over ``x``; the module docstring defines every count). Counts are taken
    on the exact network: a hardware model (noise, quantisation) is switched off meanwhile."""
    if x.shape[0] == 0:
        raise ValueError("counts need at least one input")
    hardware = net.hardware
    net.hardware = None
    try:
        return _counts(net, x, energy or EnergyModel(), batch_size, clip)
    finally:
        net.hardware = hardware


def _counts(
    net: TTFSNetwork, x: Tensor, energy: EnergyModel, batch_size: int, clip: bool
) -> OperationCounts:
    alpha1 = net.neuron == "alpha1"
    n_hidden = net.windows.num_hidden
    t_max = [1.0, *net.windows.hidden_t_max()]
    spike_parts: list[list[Tensor]] = [[] for _ in range(n_hidden + 1)]
    synop_parts: list[list[Tensor]] = [[] for _ in range(n_hidden + 2)]
    neurons: list[int] = []
    macs: list[int] = [0]
    dtype = torch.float64
    with torch.no_grad():
        for lo in range(0, x.shape[0], batch_size):
            out = net.run(x[lo : lo + batch_size], clip=clip)
            times = [out.input_times, *out.hidden_times]
            fired = [(t < tm).to(dtype) for t, tm in zip(times, t_max, strict=True)]
            if not neurons:
                neurons = [int(f[0].numel()) for f in fired] + [int(out.logits[0].numel())]
            for n, f in enumerate(fired):
                spike_parts[n].append(f.flatten(1).sum(dim=1))
            for n, layer in enumerate(net.layers):
                # alpha1: every neuron of the previous layer spikes (forced at t_max)
                sending = torch.ones_like(fired[n]) if alpha1 else fired[n]
                synop_parts[n + 1].append(_synapses_reached(layer, _route(layer, sending)))
                if len(macs) <= n + 1:
                    full = torch.ones_like(fired[n][:1])
                    macs.append(int(_synapses_reached(layer, _route(layer, full)).item()))
    layers: list[LayerCounts] = []
    names = ["input"] + [
        f"{'dense' if layer.synapses.kind == 'linear' else 'conv'} {layer.path}"
        for layer in net.layers
    ]
    for n, name in enumerate(names):
        spikes = torch.cat(spike_parts[n]) if n <= n_hidden else torch.zeros(x.shape[0])
        synops = torch.cat(synop_parts[n]) if n > 0 else torch.zeros(x.shape[0], dtype=dtype)
        forced = float(neurons[n] - spikes.mean()) if alpha1 and n <= n_hidden else 0.0
        layers.append(
            LayerCounts(
                name=name,
                neurons=neurons[n],
                spikes=float(spikes.mean()),
                forced_spikes=forced,
                synaptic_ops=float(synops.mean()),
                relu_macs=macs[n],
                spikes_per_sample=spikes,
                synaptic_ops_per_sample=synops,
            )
        )
    return OperationCounts(net.neuron, int(x.shape[0]), layers, energy)


__all__ = ["EnergyModel", "LayerCounts", "OperationCounts", "counts"]
