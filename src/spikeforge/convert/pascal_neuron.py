"""PASCAL's spike-accumulation neuron (Ramesh & Srinivasan 2025; spec §3).

A layer with threshold ``theta`` (= the QCFS ``lambda``) and ``L`` levels receives its input
over ``T_in`` steps; its spike unit is ``u = theta / L`` (each spike carries ``u``, not
``theta``). Per neuron:

1. **integrate-and-fire, T_in steps**: ``mem = u/2`` at the start; each step ``mem += x[t]``;
   if ``mem >= u``: ``mem -= u``, ``cnt += 1`` (at most one spike per step);
2. **spike accumulation, max(T_in, L) - 1 steps, no input**: if ``mem >= u``: ``mem -= u``,
   ``cnt += 1``; elif ``mem < 0``: inhibitory spike, ``mem += u``, ``cnt -= 1`` (counted, not
   transmitted);
3. **emission, L steps**: front-loaded spikes of value ``u`` while the count allows: the
   emitted count is ``clip(cnt, 0, L)``.

Invariant: ``cnt * u + mem = sum_t x[t] + u/2``. After the full drain ``0 <= mem < u`` (or the
count is clipped), so the emitted count equals the QCFS level
``clip(floor(z L / theta + 1/2), 0, L)`` with ``z = sum_t x[t]``: :func:`pascal_levels` is that
closed form (the fast path), :func:`pascal_neuron_steps` the step-by-step reference (they share
no formula). The drain of ``max(T_in, L) - 1`` steps is exactly sufficient; one step fewer is
not (spec §3.2).

Conventions: thresholds compare with ``>=`` and no float tolerance (the official code fires at
``mem - u >= -8e-5``); phase 3 keeps the potential in units of ``u`` (``cnt``, an integer) so that
emitting ``k`` spikes never depends on rounding ``k * u``; ``theta`` must be positive (the
official code's branch for negative learned thresholds is not reproduced).
"""

from __future__ import annotations

import torch
from torch import Tensor

from spikeforge.convert.qcfs import SHIFT


def pascal_levels(z: Tensor, theta: Tensor | float, levels: int) -> Tensor:
    """Closed form of the emitted spike count for a total input ``z``: ``[...] -> [...]``.

    ``floor(clamp(z / theta, 0, 1) * L + 1/2)``, evaluated in the same order as the QCFS
    activation (so float rounding matches the ANN); integer-valued, in ``z``'s dtype.
    """
    return torch.floor(torch.clamp(z / theta, 0.0, 1.0) * levels + SHIFT)


def drain_steps(steps_in: int, levels: int) -> int:
    """The exact drain length of phase 2: ``max(T_in, L) - 1``."""
    return max(int(steps_in), int(levels)) - 1


def pascal_neuron_steps(
    x_seq: Tensor, theta: Tensor | float, levels: int, *, drain: int | None = None
) -> tuple[Tensor, Tensor]:
    """Simulate a layer of PASCAL neurons step by step (the three phases of the module docstring).

    ``x_seq``: input currents ``[T_in, B, ...]`` (what the synapses deliver at each step);
    ``theta``: the threshold (positive scalar); ``levels``: ``L``; ``drain``: phase-2 length
    (default: the exact :func:`drain_steps`; anything shorter is not exact).

    Returns ``(spikes, count)``: the emitted spikes ``[L, B, ...]`` (0 or 1, in ``x_seq``'s dtype;
    each spike carries ``theta / L``) and the signed internal count ``[B, ...]`` after phase 2
    (before clipping to ``[0, L]``).
    """
    if x_seq.dim() < 2 or x_seq.shape[0] < 1:
        raise ValueError(f"expected input currents [T_in, B, ...], got {list(x_seq.shape)}")
    steps_in = x_seq.shape[0]
    drain = drain_steps(steps_in, levels) if drain is None else int(drain)
    if drain < 0:
        raise ValueError(f"drain must be >= 0, got {drain}")
    if isinstance(theta, Tensor):
        theta = theta.to(x_seq.dtype)
    unit = theta / levels
    mem = torch.full_like(x_seq[0], 0.5) * unit
    count = torch.zeros_like(x_seq[0])
    for x in x_seq.unbind(0):  # phase 1: integrate and fire
        mem = mem + x
        fire = (mem >= unit).to(mem.dtype)
        mem = mem - fire * unit
        count = count + fire
    for _ in range(drain):  # phase 2: accumulate positive and inhibitory spikes
        fire = (mem >= unit).to(mem.dtype)
        inhibit = (mem < 0).to(mem.dtype)
        mem = mem - fire * unit + inhibit * unit
        count = count + fire - inhibit
    remaining = count.clone()  # phase 3: the potential cnt * u, kept in units of u
    spikes = []
    for _ in range(levels):
        fire = (remaining >= 1).to(remaining.dtype)
        remaining = remaining - fire
        spikes.append(fire)
    return torch.stack(spikes), count


def front_loaded(count: Tensor, levels: int) -> Tensor:
    """Spike train ``[L, B, ...]`` (0/1) emitting ``count [B, ...]`` spikes at the first steps:
    ``spikes[t] = 1[count > t]`` (phase 3's emission pattern)."""
    steps = torch.arange(levels, dtype=count.dtype, device=count.device)
    return (count.unsqueeze(0) > steps.reshape((-1,) + (1,) * count.dim())).to(count.dtype)


__all__ = [
    "drain_steps",
    "front_loaded",
    "pascal_levels",
    "pascal_neuron_steps",
]
