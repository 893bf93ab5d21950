"""The TTFS network: input encoding, closed-form forward pass and the event-driven check."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from spikeforge import __version__
from spikeforge.io import content_digest, save_torch
from spikeforge.ttfs.errors import InputRangeError
from spikeforge.ttfs.fold import Chain
from spikeforge.ttfs.hardware import Hardware, constrain_hidden_times, constrain_input_times
from spikeforge.ttfs.ir import Affine, Flatten, Pool
from spikeforge.ttfs.layers import SpikeTimePool, Synapses, TTFSLayer, window_violations
from spikeforge.ttfs.windows import LayerWindow, Windows

#: Name and version of the file format :meth:`TTFSNetwork.save` writes and
#: :func:`spikeforge.ttfs.saving.load` reads (layout in :mod:`spikeforge.ttfs.saving`).
SAVE_FORMAT = "spikeforge.ttfs.network"
SAVE_VERSION = 1


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
    (``[B, *shape]`` each, ``t_max`` meaning no spike) and the input spike times.

    ``hidden_values``: without a hardware model, the same spike times window-relative as the
    closed form computes them, ``t_max - t`` ``[B, *shape]`` per hidden layer (0: no spike;
    ``hidden_times`` are ``t_max`` minus these); empty under a hardware model."""

    logits: Tensor
    input_times: Tensor
    hidden_times: list[Tensor] = field(default_factory=list)
    hidden_values: list[Tensor] = field(default_factory=list)


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
        if self.neuron == "alpha1":  # thresholds and readout current depend on the windows
            for layer, win in zip(self.layers, windows.layers(), strict=True):
                layer.derived_for = win
            windows.listeners.append(self._rederive_alpha1)

    def _apply(self, fn: Any, recurse: bool = True) -> TTFSNetwork:
        """``to`` / ``double`` / ``float``: parameters and window widths are converted together
        (rounded alike), so the alpha1 parameters stay derived for the converted windows."""
        super()._apply(fn, recurse)
        if self.neuron == "alpha1":
            for layer, win in zip(self.layers, self.windows.layers(), strict=True):
                layer.derived_for = win
        return self

    def _rederive_alpha1(self, old: list[LayerWindow], new: list[LayerWindow]) -> None:
        """Windows listener: move every alpha1 threshold / readout current to new windows."""
        for layer, before, after in zip(self.layers, old, new, strict=True):
            if before != after:
                layer.rederive(before, after)

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
        return 1.0 - self.encode_values(x, clip)

    def encode_values(self, x: Tensor, clip: bool = False) -> Tensor:
        """``(x - p) / (q - p)`` ``[B, *in_shape]``: the input values relative to the input
        window, ``t_max(0) - t = 1 - t`` (checks as :meth:`encode`)."""
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
            return x
        return (x - p) / (q - p)

    def run(
        self, x: Tensor, clip: bool = False, generator: torch.Generator | None = None
    ) -> TTFSOutput:
        """Closed-form spike times of every layer and the output potentials.

        Without a hardware model every layer computes window-relative values
        (:meth:`~spikeforge.ttfs.layers.TTFSLayer.values`: ``t_max - t``, from the previous
        layer's ``t_max - t``), so rounding does not grow with the depth or with absolute time
        (spec risk 2); the absolute spike times ``t_max - (t_max - t)`` are materialised only
        for the output. With one, layers work on absolute times (``forward``).

        Under a hardware model (:attr:`hardware`) each layer n gets, in this order: time
        quantisation of its input times, its closed form with fake-quantised weights, then for
        hidden layers the saturating clamp and the noise (:mod:`spikeforge.ttfs.hardware`);
        ``hidden_times`` are the times after all of them, ``input_times`` the encoded input
        times before quantisation. Noise draws from ``generator``, or from torch's global RNG
        when it is ``None`` (``generator`` is unused without noise).
        """
        hw = self._hardware
        if hw is None:
            values = self.encode_values(x, clip)
            t = 1.0 - values
            out = TTFSOutput(logits=t, input_times=t)
            for n, (layer, win) in enumerate(zip(self.layers, self.windows.layers(), strict=True)):
                values = layer.values(values, win)
                if n < self.windows.num_hidden:
                    out.hidden_values.append(values)
                    out.hidden_times.append(win.t_max - values)
            out.logits = values.flatten(1) if self.flatten_output else values
            return out
        t = self.encode(x, clip)
        out = TTFSOutput(logits=t, input_times=t)
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

    def simulate(
        self, x: Tensor, clip: bool = False, engine: str = "auto", **kwargs: int
    ) -> Tensor:
        """Logits from an exact event-driven simulator, which does not model hardware
        constraints (it raises if :attr:`hardware` is set).

        ``engine``: ``"compiled"`` (:mod:`spikeforge.ttfs.engine`, C++, fast), ``"python"``
        (:mod:`spikeforge.ttfs.events`, the readable reference; ``kwargs`` go to it) or
        ``"auto"`` (compiled when its kernel library is available, else python)."""
        from spikeforge.ttfs import engine as compiled

        if engine not in ("auto", "compiled", "python"):
            raise ValueError(f"engine must be 'auto', 'compiled' or 'python', got {engine!r}")
        if engine == "compiled" or (engine == "auto" and compiled.is_available()):
            if kwargs:
                raise TypeError(f"the compiled engine takes no {sorted(kwargs)}")
            return compiled.simulate(self, x, clip=clip).logits
        from spikeforge.ttfs.events import simulate

        return simulate(self, x, clip=clip, **kwargs).logits

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the network to ``path`` atomically (:func:`spikeforge.io.save_torch`) in the
        format of :mod:`spikeforge.ttfs.saving`; read it back with
        :func:`spikeforge.ttfs.load`. The file holds only plain data and tensors (it loads with
        ``torch.load(path, weights_only=True)``); tensors are stored on the CPU with their
        dtypes. Returns the path written."""
        state = {k: v.cpu() for k, v in self.state_dict().items()}
        payload = {**_header(), "network": _network_record(self), "state_dict": state}
        return save_torch(path, payload | {"sha256": content_digest(payload)})


# ---------------------------------------------------------------------------------------------
# the saved form (writer side; the reader and the layout are in spikeforge.ttfs.saving, which
# imports this module)
# ---------------------------------------------------------------------------------------------


def _header() -> dict[str, Any]:
    return {
        "format": SAVE_FORMAT,
        "version": SAVE_VERSION,
        "written_by": f"spikeforge {__version__}",
    }


def _plain(value: Any) -> Any:
    """Tuples -> lists (recursively), tensors detached on the CPU, everything else unchanged."""
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, Tensor):
        return value.detach().cpu()
    return value


def _op_record(op: Affine | Pool | Flatten) -> dict[str, Any]:
    """An IR operation as ``{"op": class name, field: value, ...}``."""
    fields = {f.name: _plain(getattr(op, f.name)) for f in dataclasses.fields(op)}
    return {"op": type(op).__name__, **fields}


def _layer_record(layer: TTFSLayer) -> dict[str, Any]:
    pre: list[dict[str, Any]] = []
    for op in layer.pre:
        if isinstance(op, SpikeTimePool):  # geometry here, the sign buffer in the state dict
            pre.append({**_op_record(op.spec), "signed": op.sign is not None})
        else:
            pre.append({"op": "Flatten"})
    syn: Synapses = layer.synapses
    synapses = {
        name: _plain(getattr(syn, name))
        for name in ("kind", "stride", "padding", "dilation", "groups", "in_shape", "out_shape")
    }
    return {"kind": type(layer).__name__, "path": layer.path, "pre": pre, "synapses": synapses}


def _mapping_record(info: MappingInfo) -> dict[str, Any]:
    chain = info.chain
    return {
        "chain": {
            "in_shape": _plain(chain.in_shape),
            "stages": [
                {"pre": [_op_record(op) for op in s.pre], "affine": _op_record(s.affine)}
                for s in chain.stages
            ],
            "post": [_op_record(op) for op in chain.post],
        },
        "max_activations": list(info.max_activations),
        "zeta": info.zeta,
        "weight_sum_scaled": info.weight_sum_scaled,
    }


def _network_record(net: TTFSNetwork) -> dict[str, Any]:
    return {
        "neuron": net.neuron,
        "input_range": list(net.input_range),
        "in_shape": list(net.in_shape),
        "flatten_output": net.flatten_output,
        "layers": [_layer_record(layer) for layer in net.layers],
        "hardware": None if net.hardware is None else net.hardware.as_dict(),
        "mapping": None if net.mapping is None else _mapping_record(net.mapping),
    }


__all__ = ["SAVE_FORMAT", "SAVE_VERSION", "MappingInfo", "TTFSNetwork", "TTFSOutput"]
