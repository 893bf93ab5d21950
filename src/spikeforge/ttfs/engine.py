"""Compiled event-driven simulator of TTFS networks: fast, and independent of the closed form.

:func:`simulate` runs a :class:`~spikeforge.ttfs.network.TTFSNetwork` through a C++ kernel
(``ttfs/csrc/ttfs_events.cpp``, built and cached by :class:`spikeforge.core.kernels.KernelLibrary`)
that integrates every neuron over its own input events; see the kernel's header for the
dynamics. It reads only the network's raw parameters (weights, B1 offsets ``D``, alpha1 bias
currents and thresholds, pool geometry and signs) and the window widths, and derives everything
else itself: B1 thresholds ``theta = B_n - D``, alpha1 slopes ``alpha + sum_j J_ij`` and bias
onsets, readout initial potentials (``D``, or ``alpha (t_min - t_min_prev)``), max/min and
average pooling as spike routing. It imports nothing from :mod:`spikeforge.ttfs.layers`,
:mod:`spikeforge.ttfs.ir` or :mod:`spikeforge.ttfs.events`; the Python simulator
(:mod:`spikeforge.ttfs.events`) stays as the readable reference.

Times are window-relative inside (``x = t_min - t``, so that rounding does not grow with the
absolute time); :class:`EngineResult` reports absolute spike times like the closed form.
Everything runs in float64 on the CPU (inputs of other dtypes are converted; results are float64).

Cost: one pass over each sample's input spikes (``x > 0``) times the output channels they reach;
alpha1 also sorts each neuron group's input events. Parallel over samples with
``torch.get_num_threads()`` OpenMP threads.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from spikeforge.core.kernels import KernelLibrary

_SOURCE_PATH = Path(__file__).with_name("csrc") / "ttfs_events.cpp"
try:
    _SOURCE = _SOURCE_PATH.read_text()
    _MISSING = ""
except OSError as _exc:  # an installation without the package data
    _SOURCE = ""
    _MISSING = f"the kernel source {_SOURCE_PATH} is missing ({type(_exc).__name__})"
_ABI = 7
_MODES = {("b1", False): 0, ("alpha1", False): 1, ("b1", True): 2, ("alpha1", True): 3}


def _declare(lib: ctypes.CDLL) -> None:
    p, i64, i32, f64 = ctypes.c_void_p, ctypes.c_int64, ctypes.c_int, ctypes.c_double
    lib.ttfs_events_abi.restype = i32
    lib.ttfs_max_pool.argtypes = [p, i64, i64, i64, i64, p, *[i64] * 10, p, i32]
    lib.ttfs_max_pool.restype = None
    lib.ttfs_avg_pool.argtypes = [p, *[i64] * 5, *[i64] * 6, i64, i64, p, i32]
    lib.ttfs_avg_pool.restype = None
    lib.ttfs_layer.argtypes = [
        p,  # x
        *[i64] * 5,  # B, C, H, W, M
        p,  # wt
        *[i64] * 12,  # O, G, kh, kw, sh, sw, ph, pw, dh, dw, Ho, Wo
        i32,  # mode
        p,  # param
        i32,  # param_pp
        p,  # alpha
        i32,  # alpha_pp
        f64,  # width_prev
        f64,  # width
        p,  # out
        p,  # events
        p,  # scans
        i32,  # always_scan
        i32,  # threads
    ]
    lib.ttfs_layer.restype = i64
    if lib.ttfs_events_abi() != _ABI:
        raise RuntimeError("stale TTFS event kernel library (ABI mismatch)")


LIBRARY = KernelLibrary("ttfs_events", _SOURCE, _declare)


def is_available() -> bool:
    """Whether the compiled engine is usable (builds it on the first call)."""
    return not _MISSING and LIBRARY.get() is not None


def unavailable_reason() -> str:
    """Why the compiled engine is unavailable (empty when it is available)."""
    if _MISSING:
        return _MISSING
    LIBRARY.get()
    return LIBRARY.reason


@dataclass
class EngineResult:
    """``logits`` ``[B, *out]``; ``input_times`` ``[B, *in_shape]``; per hidden layer its spike
    times ``[B, *shape]`` (absolute, ``t_max`` = no spike), the number of neurons whose
    threshold crossing falls before their window opens (``early_spikes``) and the synaptic
    events the engine processed per sample (``synaptic_events[n]``: ``[B]`` int64, the input
    spikes before the layer's ``t_min`` times the output channels each reaches; index
    ``N - 1`` is the readout layer). ``scanned_neurons[n]``: alpha1 neurons (summed over
    samples) whose bound on the potential before ``t_min`` reached their threshold, so that
    their input events were scanned in time order for the first crossing (all of them with
    ``always_scan``; 0 for B1 and readout layers, which cannot fire before ``t_min``).
    ``hidden_values[n]``: the same spike times window-relative, ``t_max - t`` ``[B, *shape]``
    (0 = no spike), as the engine computes them (``hidden_times`` are ``t_max`` minus these)."""

    logits: Tensor
    input_times: Tensor
    hidden_times: list[Tensor] = field(default_factory=list)
    hidden_values: list[Tensor] = field(default_factory=list)
    early_spikes: list[int] = field(default_factory=list)
    synaptic_events: list[Tensor] = field(default_factory=list)
    scanned_neurons: list[int] = field(default_factory=list)


def _library() -> Any:
    if not is_available():
        raise RuntimeError(f"the compiled TTFS event engine is unavailable: {unavailable_reason()}")
    return LIBRARY.get()


def _f64(t: Tensor) -> Tensor:
    return t.detach().to(device="cpu", dtype=torch.float64).contiguous()


def _pair(v: Any) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))


def _route_max(lib: Any, x: Tensor, spec: Any, sign: Tensor | None, threads: int) -> Tensor:
    """Max/min pooling of ``x`` ``[B, C, H, W, 1]`` (values) -> ``[B, C, Ho, Wo, 1]``."""
    if x.shape[-1] != 1:
        raise ValueError(
            f"max pooling at {spec.path} follows an average pooling: the earliest of a set of "
            "sub-spikes is not the pooled value, so it has no event-driven equivalent"
        )
    b, c, h, w, _ = x.shape
    ho, wo = spec.out_shape[-2:]
    out = x.new_empty(b, c, ho, wo, 1)
    signs = None if sign is None else _f64(sign)
    kh, kw = _pair(spec.kernel_size)
    sh, sw = _pair(spec.stride)
    ph, pw = _pair(spec.padding)
    dh, dw = _pair(spec.dilation)
    lib.ttfs_max_pool(
        x.data_ptr(), b, c, h, w, None if signs is None else signs.data_ptr(),
        kh, kw, sh, sw, ph, pw, dh, dw, ho, wo, out.data_ptr(), threads,
    )  # fmt: skip
    return out


def _route_avg(lib: Any, x: Tensor, spec: Any, threads: int) -> Tensor:
    """Average pooling of ``x`` ``[B, C, H, W, M]`` as routing: ``[B, C, Ho, Wo, M kh kw]``."""
    if spec.ceil_mode or _pair(spec.dilation) != (1, 1):
        raise ValueError(f"average pooling at {spec.path}: ceil_mode / dilation not supported")
    b, c, h, w, m = x.shape
    ho, wo = spec.out_shape[-2:]
    kh, kw = _pair(spec.kernel_size)
    sh, sw = _pair(spec.stride)
    ph, pw = _pair(spec.padding)
    out = x.new_empty(b, c, ho, wo, m * kh * kw)
    lib.ttfs_avg_pool(
        x.data_ptr(), b, c, h, w, m, kh, kw, sh, sw, ph, pw, ho, wo, out.data_ptr(), threads
    )
    return out


def _conv_padding(syn: Any, kh: int, kw: int) -> tuple[int, int]:
    """(top, left) zero padding of a convolution, resolving ``"same"`` / ``"valid"``. PyTorch's
    ``"same"`` puts the odd extra padding at the bottom / right, which never shifts the
    top-left origin, so only the top / left amounts matter here."""
    if syn.padding == "valid":
        return 0, 0
    if syn.padding == "same":
        dh, dw = _pair(syn.dilation)
        return dh * (kh - 1) // 2, dw * (kw - 1) // 2
    return _pair(syn.padding)


def _per_neuron(param: Tensor, out_ch: int, positions: int) -> tuple[Tensor, int]:
    """A parameter ``[O]``, ``[O, 1, 1]`` or ``[O, Ho, Wo]`` as a float64 buffer and whether it
    is position-dependent."""
    p = _f64(param).reshape(out_ch, -1)
    if p.shape[1] == 1:
        return p.reshape(out_ch).contiguous(), 0
    if p.shape[1] != positions:
        raise ValueError(f"parameter of shape {tuple(param.shape)} does not fit {out_ch} x "
                         f"{positions} neurons")  # fmt: skip
    return p.contiguous(), 1


def _layer(
    lib: Any,
    layer: Any,
    neuron: str,
    readout: bool,
    x: Tensor,
    width_prev: float,
    width: float,
    threads: int,
    always_scan: bool,
) -> tuple[Tensor, int, Tensor, int]:
    """One layer: pre-operations (routing), then synapses and neurons in the kernel. ``x``
    ``[B, *in_shape, M]`` values -> ``(values or potentials [B, *out_shape], early, events,
    scans)``."""
    for op in layer.pre:
        spec = getattr(op, "spec", None)
        if spec is None:  # flatten (C, H, W order)
            x = x.reshape(x.shape[0], -1, 1, 1, x.shape[-1])
        elif spec.kind == "max":
            x = _route_max(lib, x, spec, getattr(op, "sign", None), threads)
        else:
            x = _route_avg(lib, x, spec, threads)
    syn = layer.synapses
    weight = _f64(syn.weight)
    batch = x.shape[0]
    if syn.kind == "linear":
        x = x.reshape(batch, -1, 1, 1, x.shape[-1])
        weight = weight.reshape(weight.shape[0], -1, 1, 1)
        groups, stride, dilation, pad = 1, (1, 1), (1, 1), (0, 0)
        ho = wo = 1
    else:
        groups = int(syn.groups)
        stride, dilation = _pair(syn.stride), _pair(syn.dilation)
        pad = _conv_padding(syn, *weight.shape[2:])
        ho, wo = syn.out_shape[-2:]
    _, c, h, w, m = x.shape
    out_ch, in_per_group, kh, kw = weight.shape
    if c != in_per_group * groups:
        raise ValueError(f"layer {layer.path}: {c} input channels, weight expects "
                         f"{in_per_group * groups}")  # fmt: skip
    # [O, Cg, kh, kw] -> [G, Cg*kh*kw, O/G]
    wt = weight.reshape(groups, out_ch // groups, -1).transpose(1, 2).contiguous()
    mode = _MODES[(neuron, readout)]
    if neuron == "b1":
        param, param_pp = _per_neuron(layer.bias, out_ch, ho * wo)
        alpha, alpha_pp = None, 0
    elif readout:
        param, param_pp = _per_neuron(layer.alpha, out_ch, ho * wo)
        alpha, alpha_pp = None, 0
    else:
        param, param_pp = _per_neuron(layer.theta, out_ch, ho * wo)
        alpha, alpha_pp = _per_neuron(layer.alpha, out_ch, ho * wo)
    x = x.contiguous()
    out = x.new_empty(batch, out_ch, ho, wo)
    events = torch.zeros(batch, dtype=torch.int64)
    scans = torch.zeros(1, dtype=torch.int64)
    early = lib.ttfs_layer(
        x.data_ptr(), batch, c, h, w, m, wt.data_ptr(), out_ch, groups, kh, kw, *stride, *pad,
        *dilation, ho, wo, mode, param.data_ptr(), param_pp,
        None if alpha is None else alpha.data_ptr(), alpha_pp, float(width_prev), float(width),
        out.data_ptr(), events.data_ptr(), scans.data_ptr(), int(always_scan), threads,
    )  # fmt: skip
    return out.reshape(batch, *syn.out_shape), int(early), events, int(scans)


def simulate(
    net: Any,
    x: Tensor,
    clip: bool = False,
    threads: int | None = None,
    always_scan: bool = False,
) -> EngineResult:
    """Event-driven simulation of a TTFS network on inputs ``x`` ``[B, *in_shape]``.

    Args:
        net: a :class:`~spikeforge.ttfs.network.TTFSNetwork` without a hardware model.
        x: input values in the network's ``input_range`` (``clip`` as in ``net.encode``).
        threads: OpenMP threads (default ``torch.get_num_threads()``).
        always_scan: scan every alpha1 neuron's events in time order for its first threshold
            crossing. By default a neuron is scanned only if a bound on its potential before
            ``t_min`` (from the sums of its negative input currents) reaches its threshold;
            otherwise it provably cannot fire before ``t_min`` and its crossing follows from
            ``V(t_min)`` and its final slope. Both give the same spike times.

    Raises:
        RuntimeError: the kernel library is unavailable (the message says why).
        ValueError: ``net.hardware`` is set, or a layer arrangement has no event equivalent.
    """
    if net.hardware is not None:
        raise ValueError(
            "the event engine does not model hardware constraints "
            f"({net.hardware}); set net.hardware = None to simulate the exact network"
        )
    lib = _library()
    threads = int(threads or torch.get_num_threads())
    neuron = net.neuron
    widths = [float(v) for v in net.windows.widths.tolist()]
    with torch.no_grad():
        t_in = net.encode(x, clip)
        t64 = _f64(t_in)
        if t64.numel() and float(t64.max()) > 1.0:
            raise ValueError("input spike times after the input window (t > 1)")
        values = (1.0 - t64)[..., None]  # x = t_min(1) - t, window-relative
        result = EngineResult(logits=t_in, input_times=t_in)
        edges = net.windows.edges()
        n_hidden = len(widths)
        for n, (layer, win) in enumerate(zip(net.layers, net.windows.layers(), strict=True)):
            derived = getattr(layer, "derived_for", None)
            if derived is not None and derived != win:
                raise ValueError(
                    f"layer {n + 1} ({layer.path}): its alpha1 parameters were derived for the "
                    f"window {derived}, the network's windows now give {win}; change windows "
                    "with net.windows.set_widths(...), which re-derives them"
                )
        width_prev = 1.0
        for n, layer in enumerate(net.layers):
            readout = n == n_hidden
            width = 0.0 if readout else widths[n]
            out, early, events, scans = _layer(
                lib, layer, neuron, readout, values, width_prev, width, threads, always_scan
            )
            result.synaptic_events.append(events)
            result.scanned_neurons.append(scans)
            if readout:
                result.logits = out.flatten(1) if net.flatten_output else out
                break
            result.hidden_values.append(out)
            result.hidden_times.append(edges[n + 2] - out)  # t = t_max - y
            result.early_spikes.append(early)
            values = out[..., None]
            width_prev = width
        return result


__all__ = ["LIBRARY", "EngineResult", "is_available", "simulate", "unavailable_reason"]
