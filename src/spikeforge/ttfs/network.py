"""The TTFS network: input encoding, closed-form forward pass and the event-driven check."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from spikeforge.ttfs.errors import InputRangeError
from spikeforge.ttfs.fold import Chain
from spikeforge.ttfs.hardware import Hardware, constrain_hidden_times, constrain_input_times
from spikeforge.ttfs.layers import TTFSLayer, window_violations
from spikeforge.ttfs.windows import Windows


@dataclass
class MappingInfo:
    """How a network was mapped: the canonical (folded, for alpha1 also weight-sum-scaled) ReLU
    network it is exactly equivalent to, the calibration maxima ``X_n`` and ``zeta``."""

    chain: Chain
    max_activations: list[float]
    zeta: float
    weight_sum_scaled: bool = False


@dataclass
class TTFSOutput:
    """Result of a forward pass: ``logits`` ``[B, *out]``, the spike times of every hidden layer
    (``[B, *shape]`` each, ``t_max`` meaning no spike) and the input spike times."""

    logits: Tensor
    input_times: Tensor
    hidden_times: list[Tensor] = field(default_factory=list)


class TTFSNetwork(nn.Module):
    """A time-to-first-spike network: at most one spike per neuron, read out as the output
    layer's membrane potential at its ``t_min``.

    Inputs are values ``x`` of shape ``[B, *in_shape]`` in ``input_range = (p, q)``, encoded as
    spike times ``t = 1 - (x - p) / (q - p)`` in the input window [0, 1]. Spike times are float64
    by default (``net.to(torch.float32)`` for speed; exactness tests use float64).

    ``hardware`` (:class:`~spikeforge.ttfs.hardware.Hardware`, default ``None``: exact) adds
    noise, time / weight quantisation and the saturating clamp to :meth:`run`; it is a plain
    attribute, not part of the state dict, and can be changed at any time.
    """

    def __init__(
        self,
        layers: list[TTFSLayer],
        windows: Windows,
        input_range: tuple[float, float],
        in_shape: tuple[int, ...],
        flatten_output: bool = False,
        mapping: MappingInfo | None = None,
        hardware: Hardware | None = None,
    ) -> None:
        super().__init__()
        if len(layers) != windows.num_hidden + 1:
            raise ValueError(f"{len(layers)} layers need {len(layers) - 1} hidden windows")
        self.layers = nn.ModuleList(layers)
        self.windows = windows
        self.input_range = (float(input_range[0]), float(input_range[1]))
        self.in_shape = tuple(in_shape)
        self.flatten_output = flatten_output
        self.mapping = mapping
        self._hardware: Hardware | None = None
        self.hardware = hardware

    @property
    def hardware(self) -> Hardware | None:
        """The hardware model :meth:`run` applies (``None``: the exact network)."""
        return self._hardware

    @hardware.setter
    def hardware(self, hardware: Hardware | None) -> None:
        if hardware is not None and not isinstance(hardware, Hardware):
            raise TypeError(f"hardware must be a Hardware or None, got {type(hardware).__name__}")
        quantization = None if hardware is None else hardware.weight_quantization
        for layer in self.layers:
            layer.synapses.weight_quantization = quantization
        self._hardware = hardware

    @property
    def neuron(self) -> str:
        return self.layers[0].neuron

    @property
    def latency(self) -> float:
        """The output layer's ``t_min`` (in units of tau_c)."""
        return self.windows.latency

    def _dtype(self) -> torch.dtype:
        return self.layers[0].synapses.weight.dtype

    def encode(self, x: Tensor, clip: bool = False) -> Tensor:
        """Input spike times ``[B, *in_shape]`` in [0, 1] for values ``x`` in ``[p, q]``.

        Raises :class:`InputRangeError` for values outside ``[p, q]`` unless ``clip=True``
        (clipping changes the function the network computes for those inputs), and
        ``ValueError`` for NaN / infinite values or a wrong shape.
        """
        if tuple(x.shape[1:]) != self.in_shape:
            raise ValueError(
                f"expected input of shape [B, {', '.join(map(str, self.in_shape))}], "
                f"got {list(x.shape)}"
            )
        x = x.to(self._dtype())
        p, q = self.input_range
        if clip:
            if not bool(torch.isfinite(x).all()):
                raise ValueError("input contains NaN or infinite values")
            x = x.clamp(p, q)
        elif x.numel():
            lo, hi = (float(v) for v in torch.aminmax(x))  # NaN propagates into lo / hi
            if not (p <= lo and hi <= q):
                if not bool(torch.isfinite(x).all()):
                    raise ValueError("input contains NaN or infinite values")
                raise InputRangeError(
                    f"input values span [{lo:.6g}, {hi:.6g}], outside input_range [{p}, {q}]; "
                    "pass clip=True to clip them"
                )
        if (p, q) == (0.0, 1.0):
            return 1.0 - x  # bit-identical to the general formula
        return 1.0 - (x - p) / (q - p)

    def run(
        self, x: Tensor, clip: bool = False, generator: torch.Generator | None = None
    ) -> TTFSOutput:
        """Closed-form spike times of every layer and the output potentials.

        Under a hardware model (:attr:`hardware`) each layer n gets, in this order: time
        quantisation of its input times, its closed form with fake-quantised weights, then for
        hidden layers the saturating clamp and the noise (:mod:`spikeforge.ttfs.hardware`);
        ``hidden_times`` are the times after all of them, ``input_times`` the encoded input
        times before quantisation. Noise draws from ``generator``, or from torch's global RNG
        when it is ``None`` (``generator`` is unused without noise).
        """
        t = self.encode(x, clip)
        out = TTFSOutput(logits=t, input_times=t)
        hw = self._hardware
        if hw is None:
            for n, (layer, win) in enumerate(zip(self.layers, self.windows.layers(), strict=True)):
                t = layer(t, win)
                if n < self.windows.num_hidden:
                    out.hidden_times.append(t)
        else:
            for n, (layer, win) in enumerate(zip(self.layers, self.windows.layers(), strict=True)):
                t = layer(constrain_input_times(t, win, hw), win)
                if n < self.windows.num_hidden:
                    t = constrain_hidden_times(t, win, hw, generator)
                    out.hidden_times.append(t)
        out.logits = t.flatten(1) if self.flatten_output else t
        return out

    def forward(
        self, x: Tensor, clip: bool = False, generator: torch.Generator | None = None
    ) -> Tensor:
        """Logits ``[B, classes]`` (closed form, under :attr:`hardware` if set)."""
        return self.run(x, clip, generator).logits

    def extra_repr(self) -> str:
        return "" if self._hardware is None else f"hardware={self._hardware}"

    def window_violations(self, hidden_times: list[Tensor]) -> list[int]:
        """Per hidden layer, the number of spikes before the window opens."""
        return [
            window_violations(t, self.windows.layer(n)) for n, t in enumerate(hidden_times, start=1)
        ]

    def simulate(self, x: Tensor, clip: bool = False, **kwargs: int) -> Tensor:
        """Logits from the exact event-driven simulator (:mod:`spikeforge.ttfs.events`), which
        does not model hardware constraints (it raises if :attr:`hardware` is set)."""
        from spikeforge.ttfs.events import simulate

        return simulate(self, x, clip=clip, **kwargs).logits
