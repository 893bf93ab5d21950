"""Per-layer firing windows: one source of truth, exact chaining.

Layers are numbered n = 0 (input), 1 .. N-1 (hidden, spiking), N (output, read out). Only the
widths ``B_n`` of the hidden windows are stored; every boundary is derived from them::

    t_min(0) = 0,  t_max(0) = 1,
    t_min(1) = 1,  t_max(n) = t_min(n) + B_n,  t_min(n + 1) = t_max(n).

Both ``t_max(n)`` and ``t_min(n + 1)`` are read from the same entry of one cumulative sum, so the
chaining ``t_min(n + 1) == t_max(n)`` holds bit for bit, which the TTFS code relies on: a silent
neuron (spike time ``t_max(n)``) contributes exactly zero to layer n + 1.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn


@dataclass(frozen=True)
class LayerWindow:
    """The times one layer needs: its input layer's window start ``t_min_prev`` (bias-current
    onset in alpha1), its own window ``[t_min, t_max]`` (``t_min`` = input layer's ``t_max``).

    ``span_prev`` = ``t_min - t_min_prev`` and ``span`` = ``t_max - t_min`` are the window
    widths as stored (not rounded through the absolute times), for window-relative
    computations; ``None`` (a window built by hand) falls back to the differences."""

    t_min_prev: float
    t_min: float
    t_max: float
    span_prev: float | None = None
    span: float | None = None

    @property
    def width(self) -> float:
        return self.t_max - self.t_min

    @property
    def relative_width(self) -> float:
        """``B_n`` as stored (``span``), else ``t_max - t_min``."""
        return self.t_max - self.t_min if self.span is None else self.span

    @property
    def relative_width_prev(self) -> float:
        """``B_{n-1}`` as stored (``span_prev``; 1 for the input window), else
        ``t_min - t_min_prev``."""
        return self.t_min - self.t_min_prev if self.span_prev is None else self.span_prev


class Windows(nn.Module):
    """Hidden-layer window widths ``B_1 .. B_{N-1}`` as a float64 buffer, and derived bounds."""

    widths: Tensor

    def __init__(self, widths: Tensor | list[float]) -> None:
        super().__init__()
        widths = torch.as_tensor(widths, dtype=torch.float64).flatten().clone()
        if bool((widths < 0).any()) or not bool(torch.isfinite(widths).all()):
            raise ValueError(f"window widths must be finite and >= 0, got {widths.tolist()}")
        self.register_buffer("widths", widths)
        #: called as ``listener(old, new)`` (the :meth:`layers` before and after) by
        #: :meth:`set_widths`; alpha1 networks re-derive their thresholds this way
        self.listeners: list[Callable[[list[LayerWindow], list[LayerWindow]], None]] = []

    @property
    def num_hidden(self) -> int:
        return int(self.widths.numel())

    def edges(self) -> list[float]:
        """``[t_min(0), t_min(1), ..., t_min(N)]``: entry n + 1 is both ``t_max(n)`` and
        ``t_min(n + 1)``."""
        w = self.widths.to(torch.float64)
        one = torch.ones(1, dtype=torch.float64, device=w.device)
        inner = torch.cat([one, one + torch.cumsum(w, 0)])
        return [0.0, *inner.tolist()]

    def layers(self) -> list[LayerWindow]:
        """Windows of layers 1 .. N (for the output layer N, ``t_max`` = ``t_min``, its readout
        time)."""
        e = self.edges()
        last = self.num_hidden + 1
        spans = [1.0, *self.widths.tolist(), 0.0]  # input window, hidden windows, readout
        return [
            LayerWindow(e[n - 1], e[n], e[n + 1] if n < last else e[n], spans[n - 1], spans[n])
            for n in range(1, last + 1)
        ]

    def layer(self, n: int) -> LayerWindow:
        """Window of layer ``n`` in 1 .. N."""
        if not 1 <= n <= self.num_hidden + 1:
            raise IndexError(f"layer {n} outside 1..{self.num_hidden + 1}")
        return self.layers()[n - 1]

    def hidden_t_max(self) -> list[float]:
        """``t_max`` of hidden layers 1 .. N-1 (a spike at ``t_max`` means no spike)."""
        return [w.t_max for w in self.layers()[:-1]]

    @property
    def latency(self) -> float:
        """Classification latency: the output layer's ``t_min`` = 1 + sum of hidden widths."""
        return self.edges()[-1]

    def set_widths(self, widths: Tensor | list[float]) -> None:
        """Replace all widths at once (re-chaining every boundary), then tell the
        :attr:`listeners` (an alpha1 network re-derives its thresholds). Changing ``widths``
        in place instead leaves alpha1 thresholds stale: such a network then refuses to run."""
        new = torch.as_tensor(widths, dtype=self.widths.dtype, device=self.widths.device)
        if new.shape != self.widths.shape:
            raise ValueError(f"expected {self.num_hidden} widths, got {tuple(new.shape)}")
        if bool((new < 0).any()) or not bool(torch.isfinite(new).all()):
            raise ValueError(f"window widths must be finite and >= 0, got {new.tolist()}")
        old = self.layers()
        self.widths.copy_(new)
        current = self.layers()
        for listener in self.listeners:
            listener(old, current)

    def extra_repr(self) -> str:
        return f"widths={[round(v, 4) for v in self.widths.tolist()]}, latency={self.latency:.4f}"


__all__ = [
    "LayerWindow",
    "Windows",
]
