"""Exact event-driven simulator of TTFS networks: the reference for the closed forms.

Independent of :mod:`spikeforge.ttfs.layers`: every neuron's membrane potential is integrated
piecewise-linearly over its sorted input events, and its first threshold crossing is searched
segment by segment, so no closed-form formula is used.

* **alpha1** (spec §2.3): events are the input spikes (weight ``J_ij``; silent neurons spike at
  ``t_max`` of their layer, padding at this layer's ``t_min``) and the bias-current onset at
  ``t_min_prev`` (weight ``alpha_i``). Between events the slope is the sum of the weights of the
  events so far; the spike is the first crossing of ``theta_i``, forced at ``t_max`` if there is
  none before. A crossing before ``t_min`` is an *early spike* (a window violation).
* **B1** (spec §5): firing is blocked in the integration phase; the potential at ``t_min`` is
  integrated over the input events, then it rises with slope 1 until ``theta_i``; no crossing
  before ``t_max`` means no spike (time ``t_max``). A neuron already above threshold at
  ``t_min`` would have crossed before its window opened: it fires at ``t_min`` and counts as an
  early spike.
* The output layer is read out as its membrane potential at its ``t_min``, integrated over the
  input events.

Average pooling is realised without relay neurons: the pooled "value" reaching the next layer is
the set of its ``k*k`` input spikes, each with ``1/(k*k)`` of the synaptic weight. Max pooling
relays the earliest (or, for channels with a negative folded BatchNorm scale, the latest) spike.

Cost: a ``rows x fan_in x out`` tensor per layer, processed in chunks of ``max_elements``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import Tensor

from spikeforge.ttfs.layers import (
    Alpha1Layer,
    B1Layer,
    SpikeTimeFlatten,
    SpikeTimePool,
    Synapses,
    TTFSLayer,
    check_derived_for,
)
from spikeforge.ttfs.windows import LayerWindow, Windows


@dataclass
class SimulationResult:
    """``logits`` ``[B, *out]``; spike times per hidden layer ``[B, *shape]`` (``t_max`` = no
    spike); ``early_spikes[n]``: neurons of hidden layer n + 1 whose threshold crossing falls
    before their window opens."""

    logits: Tensor
    input_times: Tensor
    hidden_times: list[Tensor] = field(default_factory=list)
    early_spikes: list[int] = field(default_factory=list)


class Simulatable(Protocol):
    """What the simulator reads of a network (a :class:`~spikeforge.ttfs.network.TTFSNetwork`;
    not imported here, since the network calls this module)."""

    layers: Sequence[TTFSLayer]
    windows: Windows
    flatten_output: bool

    @property
    def hardware(self) -> object | None: ...

    def encode(self, x: Tensor, clip: bool = False) -> Tensor: ...


# --- spike routing: pooling, flatten, synaptic fan-in ------------------------------------------
# Spikes travel as ``[B, *shape, M]``: M spikes per feature, each carrying 1/M of its weight.


def _explicit_padding(syn: Synapses) -> tuple[int, int, int, int]:
    """(left, right, top, bottom) zero padding of a conv, resolving 'same' / 'valid'."""
    if syn.padding == "valid":
        return (0, 0, 0, 0)
    kh, kw = syn.weight.shape[2:]
    if syn.padding == "same":
        pads = []
        for k, d in ((kw, syn.dilation[1]), (kh, syn.dilation[0])):
            total = d * (k - 1)
            pads += [total // 2, total - total // 2]
        return (pads[0], pads[1], pads[2], pads[3])
    ph, pw = syn.padding
    return (pw, pw, ph, ph)


def _route_pool(pool: SpikeTimePool, spikes: Tensor, silent: float) -> Tensor:
    b, c, h, w, m = spikes.shape
    if pool.kind == "max":
        if m != 1:
            raise ValueError("max pooling of averaged spikes is not an event operation")
        return pool(spikes[..., 0], silent)[..., None]
    kh, kw = pool.spec.kernel_size
    ph, pw = pool.spec.padding
    grouped = spikes.permute(0, 1, 4, 2, 3).reshape(b, c * m, h, w)
    grouped = F.pad(grouped, (pw, pw, ph, ph), value=silent)
    stride = pool.spec.stride
    cols = F.unfold(grouped, (kh, kw), stride=stride)  # [B, C*M*kh*kw, L]
    ho = (h + 2 * ph - kh) // stride[0] + 1
    wo = (w + 2 * pw - kw) // stride[1] + 1
    return cols.reshape(b, c, m * kh * kw, ho, wo).permute(0, 1, 3, 4, 2)


def _fan_in(syn: Synapses, spikes: Tensor, silent: float) -> tuple[Tensor, Tensor, int]:
    """Per output position, the input spike times ``[B, L, K]`` and weights ``[O, K]``."""
    weight = syn.weight
    m = spikes.shape[-1]
    if syn.kind == "linear":
        b = spikes.shape[0]
        times = spikes.reshape(b, 1, -1)
        w = (weight[:, :, None] / m).expand(-1, -1, m).reshape(weight.shape[0], -1)
        return times, w, 1
    b, c, h, w_, _ = spikes.shape
    out_ch, in_per_group, kh, kw = weight.shape
    dense = weight.new_zeros(out_ch, c, kh, kw)
    per_group_out = out_ch // syn.groups
    for g in range(syn.groups):
        rows = slice(g * per_group_out, (g + 1) * per_group_out)
        dense[rows, g * in_per_group : (g + 1) * in_per_group] = weight[rows]
    grouped = spikes.permute(0, 1, 4, 2, 3).reshape(b, c * m, h, w_)
    grouped = F.pad(grouped, _explicit_padding(syn), value=silent)
    cols = F.unfold(grouped, (kh, kw), dilation=syn.dilation, stride=syn.stride)
    wts = (dense[:, :, None] / m).expand(-1, -1, m, -1, -1).reshape(out_ch, -1)
    return cols.transpose(1, 2), wts, cols.shape[-1]


# --- neuron dynamics on sorted events -----------------------------------------------------------


def _sorted(times: Tensor, weights: Tensor) -> tuple[Tensor, Tensor]:
    """Sort each row's events: times ``[R, K]``, weights ``[O, K]`` -> ``[R, K]``, ``[R, K, O]``."""
    order = torch.argsort(times, dim=1, stable=True)
    return torch.gather(times, 1, order), weights.t()[order]


def _potential_at(times: Tensor, weights: Tensor, t_end: float) -> Tensor:
    """Membrane potential at ``t_end`` from events before it, integrated segment by segment:
    ``V += slope * (t_next - t)``, ``slope += w`` at each event. ``[R, K]``, ``[O, K]`` ->
    ``[R, O]``."""
    ts, ws = _sorted(times, weights)
    ts = ts.clamp(max=t_end)
    seg = torch.diff(ts, dim=1, append=ts.new_full((ts.shape[0], 1), t_end))
    slope = torch.cumsum(ws, dim=1)
    return torch.einsum("rk,rko->ro", seg, slope)


def _first_crossing(times: Tensor, weights: Tensor, theta: Tensor) -> Tensor:
    """First time the potential ``sum_k w_k (t - t_k)^+`` reaches ``theta`` (``inf`` if never).

    ``times`` ``[R, K]``, ``weights`` ``[O, K]``, ``theta`` ``[R, O]`` -> ``[R, O]``. On the
    segment after the k-th event the potential is ``S_k t - Q_k`` with ``S_k`` the summed
    weights and ``Q_k`` the summed ``w t``; the crossing candidate ``(theta + Q_k) / S_k`` is
    valid if the slope is positive and the candidate precedes the next event.
    """
    ts, ws = _sorted(times, weights)
    slope = torch.cumsum(ws, dim=1)
    charge = torch.cumsum(ws * ts[:, :, None], dim=1)
    candidate = torch.maximum((theta[:, None, :] + charge) / slope, ts[:, :, None])
    nxt = torch.cat([ts[:, 1:], ts.new_full((ts.shape[0], 1), torch.inf)], dim=1)
    valid = (slope > 0) & (candidate < nxt[:, :, None])
    first = valid.to(torch.uint8).argmax(dim=1, keepdim=True)
    crossing = torch.gather(candidate, 1, first).squeeze(1)
    return torch.where(valid.any(dim=1), crossing, torch.inf)


def _per_row(param: Tensor, out_ch: int, positions: int, batch: int) -> Tensor:
    """A per-neuron parameter ``[O]``, ``[O, 1, 1]`` or ``[O, H, W]`` as ``[B * L, O]``."""
    per_pos = param.reshape(out_ch, -1).expand(out_ch, positions)
    return per_pos.t().repeat(batch, 1)


def _layer_events(
    layer: TTFSLayer, spikes: Tensor, win: LayerWindow, max_elements: int
) -> tuple[Tensor, int]:
    """Simulate one layer: returns its spike times (hidden) or potentials (readout) and the
    number of early spikes."""
    check_derived_for(layer, win)
    silent = win.t_min
    for op in layer.pre:
        if isinstance(op, SpikeTimeFlatten):
            spikes = spikes.flatten(1, -2)
        else:
            spikes = _route_pool(op, spikes, silent)
    syn = layer.synapses
    times, weights, positions = _fan_in(syn, spikes, silent)
    batch, out_ch = times.shape[0], weights.shape[0]
    rows = times.reshape(batch * positions, -1)
    hidden = isinstance(layer, B1Layer | Alpha1Layer)
    if isinstance(layer, Alpha1Layer):
        onset = rows.new_full((rows.shape[0], 1), win.t_min_prev)
        rows = torch.cat([rows, onset], dim=1)
        weights = torch.cat([weights, layer.alpha.reshape(out_ch, 1)], dim=1)
        theta = _per_row(layer.theta, out_ch, positions, batch)
    elif isinstance(layer, B1Layer):
        theta = _per_row(layer.threshold(win), out_ch, positions, batch)
    else:
        start = layer.initial_potential(win)
        theta = _per_row(start.expand(syn.out_shape), out_ch, positions, batch)
    chunk = max(1, max_elements // max(1, rows.shape[1] * out_ch))
    results, early = [], 0
    for lo in range(0, rows.shape[0], chunk):
        r, th = rows[lo : lo + chunk], theta[lo : lo + chunk]
        if isinstance(layer, Alpha1Layer):
            crossing = _first_crossing(r, weights, th)
            early += int((crossing < win.t_min).sum())
            results.append(torch.clamp(crossing, max=win.t_max))
        else:
            v = _potential_at(r, weights, win.t_min)
            if hidden:  # B1: slope 1 from t_min, firing blocked before
                above = v > th
                early += int(above.sum())
                results.append(torch.clamp(win.t_min + (th - v).clamp(min=0), max=win.t_max))
            else:
                results.append(v + th)
    flat = torch.cat(results).reshape(batch, positions, out_ch)
    if syn.kind == "linear":
        return flat[:, 0], early
    return flat.permute(0, 2, 1).reshape(batch, *syn.out_shape), early


def simulate(
    net: Simulatable, x: Tensor, clip: bool = False, max_elements: int = 1 << 23
) -> SimulationResult:
    """Event-driven simulation of ``net`` (a TTFS network) on inputs ``x`` ``[B, *in_shape]``.

    ``max_elements`` bounds the size of the ``rows x fan_in x out`` work tensors (about
    ``8 * max_elements`` bytes each in float64).

    The simulator models exact hardware only: a network with ``net.hardware`` set (noise,
    quantisation, saturating clamp) raises ``ValueError``.
    """
    if net.hardware is not None:
        raise ValueError(
            "the event-driven simulator does not model hardware constraints "
            f"({net.hardware}); set net.hardware = None to simulate the exact network"
        )
    with torch.no_grad():
        t = net.encode(x, clip)
        result = SimulationResult(logits=t, input_times=t)
        spikes = t[..., None]
        n_hidden = net.windows.num_hidden
        for n, (layer, win) in enumerate(zip(net.layers, net.windows.layers(), strict=True)):
            out, early = _layer_events(layer, spikes, win, max_elements)
            if n < n_hidden:
                result.hidden_times.append(out)
                result.early_spikes.append(early)
                spikes = out[..., None]
            else:
                result.logits = out.flatten(1) if net.flatten_output else out
        return result


__all__ = ["SimulationResult", "simulate"]
