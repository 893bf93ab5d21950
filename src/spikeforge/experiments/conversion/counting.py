"""Counting synaptic operations and spikes in a network by hooks, for the converters that do not
count them themselves (SpikingJelly's, the max-norm IF baseline).

**Synaptic operations** (SOPs): the accumulate operations that non-zero inputs trigger in the
convolution and linear layers, counted exactly (``sum_j 1[x_j != 0] * fanout_j``, with the
fan-out of every input position of a convolution from its stride, padding and borders). The
first synaptic layer, whose input is the analog image, is left out: it does multiply-accumulates
on pixels, the same in every method. A non-zero input is a spike, or a pooled value to which at
least one spike contributed.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

__all__ = ["SpikeCounter", "SynapticOpCounter", "fanout_map"]


def fanout_map(layer: nn.Module, in_shape: tuple[int, ...]) -> Tensor:
    """Connections of every input position ``in_shape`` (one sample, e.g. ``[C, H, W]``) of a
    ``nn.Conv2d`` or ``nn.Linear``: how many (output, weight) pairs it takes part in."""
    if isinstance(layer, nn.Linear):
        return torch.full(in_shape, float(layer.out_features), dtype=torch.float64)
    if isinstance(layer, nn.Conv2d):
        with torch.enable_grad():
            ones = torch.ones((1, *in_shape), dtype=torch.float64, requires_grad=True)
            weight = torch.ones_like(layer.weight, dtype=torch.float64)
            out = F.conv2d(
                ones, weight, None, layer.stride, layer.padding, layer.dilation, layer.groups
            )
            (grad,) = torch.autograd.grad(out.sum(), ones)
        return grad[0].detach()
    raise TypeError(f"no fan-out for {type(layer).__name__}")


class _HookTotals:
    """Counts added up by hooks: into :attr:`total`, or per time step into :attr:`per_step`
    ``[T]`` when ``steps`` is given (time folded into the batch, ``[T * B, ...]``)."""

    def __init__(self, steps: int | None) -> None:
        self.steps = steps
        self.total = 0.0
        self.per_step: Tensor | None = None
        self._handles: list[RemovableHandle] = []

    def _add(self, counts: Tensor) -> None:
        """Adds per-sample ``counts [N]`` (``N = T * B`` with ``steps``)."""
        if self.steps is None:
            self.total += float(counts.sum())
        else:
            self._add_per_step(counts.reshape(self.steps, -1).sum(1))

    def _add_per_step(self, per: Tensor) -> None:
        self.per_step = per if self.per_step is None else self.per_step + per

    def reset(self) -> None:
        self.total = 0.0
        self.per_step = None

    def remove(self) -> None:
        for h in self._handles:
            h.remove()


class SynapticOpCounter(_HookTotals):
    """Forward pre-hooks on every ``nn.Conv2d`` / ``nn.Linear`` of ``model`` adding the SOPs of
    each call (module docstring). ``steps``: when the model runs with time folded into the batch
    (``[T * B, ...]``), the per-step counts are kept apart (:attr:`per_step`, ``[T]``); else
    every call adds to :attr:`total`. The first synaptic layer called (the analog input layer)
    is skipped."""

    def __init__(self, model: nn.Module, steps: int | None = None) -> None:
        super().__init__(steps)
        self._maps: dict[tuple[int, tuple[int, ...]], Tensor] = {}
        self._first: nn.Module | None = None
        self._handles = [
            m.register_forward_pre_hook(self._hook)
            for m in model.modules()
            if isinstance(m, (nn.Conv2d, nn.Linear))
        ]

    def _hook(self, module: nn.Module, args: tuple) -> None:
        if self._first is None:
            self._first = module
        if module is self._first:
            return
        x = args[0]
        key = (id(module), tuple(x.shape[1:]))
        if key not in self._maps:
            fan = fanout_map(module, tuple(x.shape[1:]))
            if float(fan.sum()) >= 2**24:
                raise ValueError(f"{type(module).__name__}: too many synapses to count exactly")
            self._maps[key] = fan.to(device=x.device, dtype=torch.float32)
        fan = self._maps[key]
        # float32 is exact here: per-sample sums stay far below 2**24
        self._add(((x != 0).to(fan.dtype) * fan).flatten(1).sum(1).to(torch.float64))


class SpikeCounter(_HookTotals):
    """Forward hooks on the spiking ``modules`` adding up their non-zero outputs: :attr:`total`
    for single-step calls, :attr:`per_step` ``[T]`` with ``steps`` (time folded into the batch,
    ``[T * B, ...]``) or with ``time_first`` (outputs ``[T, B, ...]``); :attr:`neurons` is the
    number of neurons per image (set by the first call of each module)."""

    def __init__(
        self,
        modules: Iterable[nn.Module],
        steps: int | None = None,
        *,
        time_first: bool = False,
    ) -> None:
        super().__init__(steps)
        self.time_first = time_first
        self.neurons_of: dict[int, int] = {}
        self._handles = [m.register_forward_hook(self._hook) for m in modules]

    @property
    def neurons(self) -> int:
        return sum(self.neurons_of.values())

    def _hook(self, module: nn.Module, _args: tuple, out: Tensor) -> None:
        if self.time_first:  # [T, B, ...]: per-step counts
            self.neurons_of.setdefault(id(module), int(out[0, 0].numel()))
            self._add_per_step((out != 0).flatten(1).sum(1).to(torch.float64))
            return
        self.neurons_of.setdefault(id(module), int(out[0].numel()))
        self._add((out != 0).flatten(1).sum(1).to(torch.float64))
