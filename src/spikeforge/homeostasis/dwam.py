"""DWAM: BCM-based dynamic weight adaptation of a trained SNN at inference time (spec §4).

:class:`DWAM` attaches to chosen synaptic layers of a trained multi-step network built from
:mod:`spikeforge.core` (an ``nn.Linear`` / :class:`~spikeforge.core.SpikeLinear`, bare or in a
:class:`~spikeforge.core.MultiStep`, feeding a spikeforge neuron) and adapts **working copies**
of their weights while the network runs; the trained parameters are never written.

Per plastic layer ``l`` (pre-synaptic inputs ``j``, post-synaptic neurons ``i``), every update
(spec §4.1, steps 1-5; rates are in spikes per SNN step):

1. rates: ``c ← c + (s − c)/τ_c`` for the post-synaptic spikes and for the layer's inputs, ``s``
   the mean per SNN step (and per sample of the batch) since the last update;
2. ``CV_i = std/mean`` of ``c_i`` over the last ``W`` updates (per neuron, temporal; population
   std); ``CV_i := 0`` while the window is not full or its mean is 0;
3. sliding threshold ``θ_M,i ← θ_M,i + (c_i²/c_ref,i − θ_M,i)/τ_θ``, ``θ_M`` initialised to
   ``c_ref`` (the nominal rates, :meth:`DWAM.record_reference`);
4. gate ``g_i = clip(ζ·CV_i, 0, 1)``, blend ``θ_i = θ_M,i·g_i + c_i·(1 − g_i)``,
   ``φ_i = c_i·(c_i − θ_i)`` (``= g_i·c_i·(c_i − θ_M,i)``, spec §2.1);
5. ``Δw_ij = η·φ_i·c_j`` (BCM sign: added when ``φ > 0``), then optionally clipped to the trained
   sign and to ``[w_min, w_max]``.

The fixed point with a fast ``θ_M`` is ``c = c_ref`` (spec §4.1 [der]). Defaults (spec §4.2):
``η = 0.01``, ``τ_θ = 10`` updates, ``ζ = 2``, ``W = 200`` updates; ``τ_c`` and the update period
``K`` are to be calibrated on the host (defaults here: ``τ_c = 1``, i.e. ``c = s``, and one update
per forward call, i.e. ``K = T`` SNN steps = one environment step, spec §4.2 / §5).

Choices the spec leaves open, made here (see ``docs/homeostasis.md``):

* by default (``per_sample=False``) the batch shares one set of working weights, so rates
  average over the batch as well as over time (one rate per neuron); with ``per_sample=True``
  every sample of the batch is an independent stream (e.g. one episode of a batch of episodes
  run in lockstep) with its own working weights, rates, CV window and threshold; the batch size
  is then fixed from the first call after :meth:`DWAM.reset` until the next reset;
* the pre-synaptic "rate" is the mean of the layer's input values (the spikes of the previous
  population; for a first layer fed with currents, their mean);
* an update happens at the end of the forward call in which ``K`` SNN steps have accumulated
  since the last one; weights are only changed between calls, so with calls of ``T > K`` steps
  the period is effectively ``T``; :meth:`DWAM.step` forces one;
* the rate EMA starts at the first observed ``s`` (no bias from zero);
* ``c_ref`` is floored at ``min_ref_rate`` (default ``1e-3``) so that nominally silent neurons
  get a finite target (near silence) instead of a division by zero;
* the bias is not adapted;
* the working weights are restored to the trained weights at :meth:`DWAM.reset` (one episode /
  evaluation); ``keep_weights=True`` keeps the adapted weights and the adaptation state across
  resets (only the streamed membrane state and the pending spike counts are cleared);
* ``stream_state=True`` carries the membrane state of **every** spikeforge neuron of the model
  from one call to the next (a continuous stream cut into chunks; the batch size must stay the
  same, and each neuron module must be called once per forward); by default each call starts
  from the neurons' initial state, as the host does;
* ``φ`` is computed in its gated form ``g·c·(c − θ_M)`` (spec §2.1), so a closed gate gives
  exactly no change; while the CV window is not full the gate is closed and the weight update
  is skipped altogether;
* the input of every call is checked for NaN/inf; with finite inputs and parameters the update
  stays finite by construction (rates are bounded), and the working weights are also checked
  every ``finite_check_every`` updates (a ``FloatingPointError`` names the layer);
* during a DWAM call (and only then) the ``forward`` of every plastic layer and of every
  post-synaptic neuron (with ``stream_state``: every spikeforge neuron) is patched on the
  instance (restored in ``finally``; the model carries no hook and no patch between calls, and
  the trained values are never written): a plastic layer's patch sums its input and computes
  the layer with the working weights, ``F.linear(x, W, b)`` when the batch shares them (the
  call ``nn.Linear`` makes) and the per-stream product (below) with ``per_sample``; a neuron's
  patch sums its spikes. Patching costs less than module hooks, which send every call of a
  hooked module through PyTorch's slow path, even outside DWAM calls;
* input sums are taken in one fixed order (per sample over the steps in order, then over the
  batch in order: :func:`_ordered_sum`), spike sums of spikeforge neurons in any order (0/1
  spikes: exact);
* the per-stream product is ``y[t, s] = b + Σ_i x[t, s, i]·W_s[:, i]`` in ascending ``i``, a
  term with ``x = 0`` skipped (the same as adding −0.0) and ``x = 1`` taken as the column
  (:func:`_stream_product`); per-sample working weights are stored transposed,
  ``[S, N_in, N_out]``;
* on CPU float32/float64 state the sums, the per-stream products and each update are calls of
  compiled C++ kernels (``csrc/dwam.cpp``, built and cached by :mod:`spikeforge.core.kernels`),
  else the same operations in torch (``backend``); the update kernel skips weight rows whose
  update is ±0 where that leaves the same bits, and computes silent neurons' subnormal θ_M
  without subnormal arithmetic (same bits);
* the per-neuron state of all plastic layers (rates, θ_M, CV window, gate) lives in one flat
  ``[S, ΣN_out]`` buffer (per-layer views), so one update costs the same few tensor operations
  however many layers are plastic, plus one weight update per layer (the plastic layers must
  share a dtype and device); the CV uses float64 running sums of the window.

Layouts: the model takes ``[T, B, ...]`` and every plastic layer's input ``[T, B, N_in]`` (or
``[T·B, N_in]`` inside ``MultiStep``) and output ``[..., N_out]`` are time-first; rates and
thresholds are ``[N_out]`` / ``[N_in]``, working weights ``[N_out, N_in]`` (with
``per_sample=True``: ``[B, N_out]``, ``[B, N_in]``, ``[B, N_out, N_in]``).
"""

from __future__ import annotations

import ctypes
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from spikeforge.core.kernels import KernelLibrary
from spikeforge.core.neurons import IF, LIF, DecayLIF, MultiStep
from spikeforge.homeostasis.adaptive_threshold import AdaptiveLIF

__all__ = ["DWAM", "UnsupportedLayerError"]

NEURON_TYPES: tuple[type[nn.Module], ...] = (IF, LIF, DecayLIF, AdaptiveLIF)
_STATE_FIELDS = ("weight", "c_pre", "c_post", "theta_m", "window", "c_ref")
BACKENDS = ("auto", "compiled", "torch")
_SOURCE_PATH = Path(__file__).with_name("csrc") / "dwam.cpp"
_ABI = 5
_NO_PATCH = object()  # marks a module without a ``forward`` of its own in its ``__dict__``
_KERNEL_DTYPES = (torch.float32, torch.float64)  # what the compiled kernels read


class _KernelArgs(ctypes.Structure):
    """``DwamArgs`` of ``csrc/dwam.cpp``: every argument of one update."""

    _fields_ = [
        *[(n, ctypes.c_int64) for n in ("is_double", "S", "P", "slot", "first", "full", "adapt")],
        *[
            (n, ctypes.c_double)
            for n in ("ema", "theta_rate", "inv_count_post", "zeta2", "zeta2_w", "alpha")
        ],
        *[
            (n, ctypes.c_void_p)
            for n in ("sum_post", "c_post", "theta", "inv_ref", "window", "win_sum", "win_sq")
        ],
        ("gate", ctypes.c_void_p),
        ("L", ctypes.c_int64),
        *[(n, ctypes.c_void_p) for n in ("col0", "n_out", "n_in", "weights", "c_pre", "sum_pre")],
        ("inv_count_pre", ctypes.c_void_p),
        ("plain_zeros", ctypes.c_void_p),
        ("transposed", ctypes.c_void_p),
    ]


class _SumArgs(ctypes.Structure):
    """``SumArgs`` of ``csrc/dwam.cpp``: a layer's input or output summed over the steps (and
    the batch); ``x`` is ``[steps, batch, n]`` with element strides ``(st, sb, 1)``."""

    _fields_ = [
        ("is_double", ctypes.c_int64),
        ("x", ctypes.c_void_p),
        *[(n, ctypes.c_int64) for n in ("steps", "batch", "n", "st", "sb", "per_stream")],
        ("out", ctypes.c_void_p),
        ("out_stride", ctypes.c_int64),
        ("accumulate", ctypes.c_int64),
    ]


class _FiniteArgs(ctypes.Structure):
    """``FiniteArgs`` of ``csrc/dwam.cpp``: whether ``n`` contiguous values are all finite."""

    _fields_ = [
        ("is_double", ctypes.c_int64),
        ("x", ctypes.c_void_p),
        ("n", ctypes.c_int64),
    ]


class _LinearArgs(ctypes.Structure):
    """``LinearArgs`` of ``csrc/dwam.cpp``: a layer with per-stream working weights; ``x`` is
    ``[steps, S, I]`` with element strides ``(st, ss, 1)``."""

    _fields_ = [
        ("is_double", ctypes.c_int64),
        ("x", ctypes.c_void_p),
        *[(n, ctypes.c_int64) for n in ("steps", "S", "I", "O", "st", "ss")],
        *[(n, ctypes.c_void_p) for n in ("wt", "bias", "y", "sum")],
        ("sum_stride", ctypes.c_int64),
        ("accumulate", ctypes.c_int64),
    ]


def _declare(lib: ctypes.CDLL) -> None:
    """Return types only: every call passes one ``ctypes.byref`` of its argument structure,
    built by this module (declared ``argtypes`` would check it again on every call, about
    0.4 µs each, a measurable share of DWAM's per-step cost)."""
    lib.dwam_abi.restype = ctypes.c_int
    for name in ("dwam_update", "dwam_sum", "dwam_linear"):
        getattr(lib, name).restype = None
    lib.dwam_finite.restype = ctypes.c_int
    if lib.dwam_abi() != _ABI:
        raise RuntimeError("stale DWAM kernel library (ABI mismatch)")


try:
    _SOURCE = _SOURCE_PATH.read_text()
except OSError:  # an installation without the package data: the torch path runs
    _SOURCE = ""
_LIBRARY = KernelLibrary("dwam", _SOURCE, _declare)


def _kernel() -> ctypes.CDLL | None:
    """The compiled DWAM update (built and cached on first use), or ``None``."""
    if not _SOURCE:
        _LIBRARY.reason = f"the kernel source {_SOURCE_PATH} is missing"
        return None
    return _LIBRARY.get()


class UnsupportedLayerError(TypeError):
    """A layer DWAM cannot adapt (names the layer path and type)."""


@dataclass
class _Plastic:
    """One plastic layer. Per-stream state has a leading stream dimension ``S`` (1 when the
    batch shares the weights, ``B`` with ``per_sample``); the post-synaptic tensors are views of
    the DWAM's flat buffers (columns ``cols``)."""

    path: str
    neuron_path: str
    linear: nn.Linear
    trained: Tensor  # the trained parameter [N_out, N_in] (never written)
    cols: slice  # this layer's columns of the flat post-synaptic buffers
    n_out: int = 0
    n_in: int = 0
    start: Tensor | None = None  # the episode's initial weights [S, N_out, N_in]; None: trained
    weight: Tensor | None = None  # working copies [S, N_out, N_in] (per_sample: a view of weight_t)
    weight0: Tensor | None = None  # view weight[0] (the working copy of stream 0)
    weight_t: Tensor | None = None  # per_sample: the storage [S, N_in, N_out] (dwam_linear's)
    c_pre: Tensor | None = None  # [S, N_in]
    sum_pre: Tensor | None = None  # input summed since the last update [S, N_in]
    sum_post: Tensor | None = None  # view [S, N_out]
    seen_pre: int = 0  # SNN steps since the last update
    seen_post: int = 0
    count_pre: int = 0  # values summed per stream (steps, times B when the batch is shared)
    count_post: int = 0
    # compiled calls' arguments (built at the first call after an allocation)
    sum_pre_args: Any = None
    sum_post_args: Any = None
    linear_args: Any = None

    def clear_pending(self) -> None:
        self.seen_pre = self.seen_post = self.count_pre = self.count_post = 0


def _check_positive(name: str, value: float, minimum: float = 0.0, strict: bool = True) -> float:
    value = float(value)
    ok = math.isfinite(value) and (value > minimum if strict else value >= minimum)
    if not ok:
        cmp = ">" if strict else ">="
        raise ValueError(f"{name} must be finite and {cmp} {minimum}, got {value}")
    return value


def _check_count(name: str, value: Any, minimum: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} ({what}) must be an int >= {minimum}, got {value!r}")
    return value


class DWAM:
    """BCM weight adaptation of chosen layers of a trained multi-step SNN (spec §4).

    Args:
        model: the trained network, ``model(x_seq [T, B, ...])``; its parameters are only read.
        layers: the plastic synaptic layers, as module paths (``"0"``, ``"net.fc1"``) of an
            ``nn.Linear`` (incl. ``SpikeLinear``) or a ``MultiStep`` wrapping one. The
            post-synaptic neuron is the next spikeforge neuron (IF, LIF, DecayLIF, AdaptiveLIF)
            after the layer in its parent container; or pass a mapping ``{layer: neuron_path}``
            (then any module whose output ``[..., N_out]`` is the spikes may serve).
        eta: learning rate ``η`` (spec §4.2: 0.005-0.02).
        tau_theta: ``τ_θ`` of the sliding threshold, in updates (spec §4.2: 5-20; must be much
            faster than the weights, spec §5).
        zeta: CV gain ``ζ`` of the gate (spec §4.2: 2).
        window: CV window ``W`` in updates (spec §4.2: 200).
        tau_c: rate EMA time constant ``τ_c`` in updates (>= 1; 1 means ``c = s``).
        update_every: ``K``, SNN steps between updates; ``None``: one update per call.
        c_ref: nominal post-synaptic rates: ``None`` (call :meth:`record_reference` before
            use), a float (a global target for every neuron), or ``{layer: Tensor [N_out]}``.
        min_ref_rate: floor of ``c_ref`` (see the module docstring).
        clip_sign: keep every working weight on the sign of its initial value (0 if it would
            cross).
        w_range: ``(w_min, w_max)`` clip of the working weights, or ``None``.
        sign: ``+1`` is BCM (spec §4.1 step 5); ``-1`` flips the rule (an ablation: rates
            collapse, spec §6.7.4).
        keep_weights: keep the adapted weights and adaptation state across :meth:`reset`.
        stream_state: carry every spikeforge neuron's membrane state across calls.
        adapt: ``False`` runs everything (weight substitution, rates, CV, ``θ_M``, gates) but
            never changes the weights: the control arm of a comparison, or a rate monitor.
        per_sample: adapt every sample of the batch independently (its own working weights and
            state; the batch size is fixed from the first call after a reset).
        finite_check_every: check the working weights for NaN/inf every this many updates.
        backend: ``"auto"`` runs each update as one call of a compiled C++ kernel on CPU
            float32/float64 state when it can be built (:mod:`spikeforge.core.kernels`), else
            the torch operations; ``"compiled"`` insists (raises if unavailable); ``"torch"``
            never compiles. Both give bit-identical states in float32 (tested); in float64 the
            gate's square root may differ in the last bit (torch's vectorised double square
            root is not correctly rounded, the kernel's is).
    """

    def __init__(
        self,
        model: nn.Module,
        layers: Sequence[str] | Mapping[str, str],
        *,
        eta: float = 0.01,
        tau_theta: float = 10.0,
        zeta: float = 2.0,
        window: int = 200,
        tau_c: float = 1.0,
        update_every: int | None = None,
        c_ref: float | Mapping[str, Tensor] | None = None,
        min_ref_rate: float = 1e-3,
        clip_sign: bool = False,
        w_range: tuple[float, float] | None = None,
        sign: int = 1,
        keep_weights: bool = False,
        stream_state: bool = False,
        adapt: bool = True,
        per_sample: bool = False,
        finite_check_every: int = 50,
        backend: str = "auto",
    ) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
        self.model = model
        self.eta = _check_positive("eta", eta)
        self.tau_theta = _check_positive("tau_theta", tau_theta, 1.0, strict=False)
        self.zeta = _check_positive("zeta", zeta, strict=False)
        self.window = _check_count("window", window, 2, "W, in updates")
        self.tau_c = _check_positive("tau_c", tau_c, 1.0, strict=False)
        if update_every is not None:
            _check_count("update_every", update_every, 1, "K, in SNN steps")
        self.update_every = update_every
        self.min_ref_rate = _check_positive("min_ref_rate", min_ref_rate)
        self.clip_sign = bool(clip_sign)
        if w_range is not None:
            lo, hi = float(w_range[0]), float(w_range[1])
            if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
                raise ValueError(
                    f"w_range must be finite (w_min, w_max) with w_min < w_max, got {w_range}"
                )
            w_range = (lo, hi)
        self.w_range = w_range
        if sign not in (1, -1):
            raise ValueError(f"sign must be +1 (BCM) or -1 (flipped), got {sign!r}")
        self.sign = int(sign)
        self.keep_weights = bool(keep_weights)
        self.stream_state = bool(stream_state)
        self.adapt = bool(adapt)
        self.per_sample = bool(per_sample)
        self.finite_check_every = _check_count("finite_check_every", finite_check_every, 1, "")
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        self.backend = backend
        self.episode_seed: int | None = None
        self._neuron_state: dict[str, Any] = {}
        self._has_ref = False
        self._streams: int | None = None if self.per_sample else 1
        self._recording: dict[str, list[Any]] | None = None
        self._call: tuple[int, bool] | None = None  # (T, shared) during a call
        self._working = True  # during a call: whether the working weights are substituted
        self._lib: Any = None  # the compiled kernels, once chosen
        self._kernel_ok: bool | None = None  # decided at the first call
        self._fast_ready = False  # the compiled calls' arguments are built
        # per input layout (shape, strides, dtype): the compiled finiteness check's arguments,
        # or None where torch checks
        self._finite: dict[tuple[Any, ...], tuple[_FiniteArgs, Any] | None] = {}
        self._removed = False
        self._updates = 0  # since reset (the CV window holds min(updates, W) entries)

        self._modules = dict(model.named_modules())
        pairs = (
            dict(layers)
            if isinstance(layers, Mapping)
            else {p: self._find_neuron(model, p) for p in _as_paths(layers)}
        )
        if not pairs:
            raise ValueError("layers is empty: name at least one plastic layer")
        self._layers: dict[str, _Plastic] = {}
        offset = 0
        for path, neuron_path in pairs.items():
            linear = self._resolve_linear(path)
            if neuron_path not in self._modules:
                raise UnsupportedLayerError(
                    f"no module at {neuron_path!r} (the post-synaptic neuron of {path!r})"
                )
            n_out = linear.weight.shape[0]
            cols = slice(offset, offset + n_out)
            offset += n_out
            self._layers[path] = _Plastic(
                path, neuron_path, linear, linear.weight, cols, n_out, linear.weight.shape[1]
            )
        first = next(iter(self._layers.values())).trained
        for pl in self._layers.values():
            if pl.trained.dtype != first.dtype or pl.trained.device != first.device:
                raise ValueError(
                    f"all plastic layers must share one dtype and device; {pl.path!r} has "
                    f"{pl.trained.dtype} on {pl.trained.device}, others {first.dtype} on "
                    f"{first.device}"
                )
        self._n_post = offset
        self._layer_list = list(self._layers.values())
        self._dtype = first.dtype  # of every state tensor
        self._c_ref = first.new_zeros(offset)  # [P]
        self._inv_ref = first.new_ones(offset)
        self._post_of: dict[str, list[_Plastic]] = {}
        for pl in self._layers.values():
            self._post_of.setdefault(pl.neuron_path, []).append(pl)
        self._allocate()
        self._targets = self._patch_targets()
        self._fast_call = False
        if c_ref is not None:
            self.set_reference(c_ref)

    # -- construction helpers ----------------------------------------------------------------

    def _resolve_linear(self, path: str) -> nn.Linear:
        if path not in self._modules:
            raise UnsupportedLayerError(f"no module at {path!r} in the model")
        m = self._modules[path]
        inner = m.layer if isinstance(m, MultiStep) else m
        if not isinstance(inner, nn.Linear):
            what = type(m).__name__
            if isinstance(m, MultiStep):
                what = f"MultiStep({type(inner).__name__})"
            raise UnsupportedLayerError(
                f"{what} at {path!r} cannot be adapted by DWAM: only nn.Linear (incl. "
                "SpikeLinear), bare or as the single layer of MultiStep, is supported"
            )
        return inner

    def _find_neuron(self, model: nn.Module, path: str) -> str:
        """The path of the first spikeforge neuron after ``path`` in its parent container."""
        if path not in self._modules:
            raise UnsupportedLayerError(f"no module at {path!r} in the model")
        parent_path, _, name = path.rpartition(".")
        parent = self._modules[parent_path] if parent_path else model
        names = [n for n, _ in parent.named_children()]
        if path == "" or name not in names:
            raise UnsupportedLayerError(f"cannot locate the layer {path!r} in its parent")
        for sibling in names[names.index(name) + 1 :]:
            if isinstance(getattr(parent, sibling), NEURON_TYPES):
                return f"{parent_path}.{sibling}" if parent_path else sibling
        raise UnsupportedLayerError(
            f"no spikeforge neuron follows {type(self._modules[path]).__name__} at {path!r} in "
            f"its container; pass layers={{{path!r}: 'path.of.its.neuron'}}"
        )

    def _allocate(self) -> None:
        """(Re)create the adaptation state for ``self._streams`` streams (none if unknown):
        initial weights, zero rates and window, ``θ_M := c_ref``, no gate."""
        s, p = self._streams, self._n_post
        self._updates = 0
        self._gate: Tensor | None = None
        self._kargs: dict[str, Any] | None = None
        self._fast_ready = False
        for pl in self._layers.values():
            pl.clear_pending()
        if s is None:
            self._c_post = self._theta_m = self._sum_post = self._window = None
            self._win_sum = self._win_sq = self._gate_buf = None
            for pl in self._layers.values():
                pl.weight = pl.weight0 = pl.weight_t = None
                pl.c_pre = pl.sum_pre = pl.sum_post = None
            return
        ref = self._c_ref
        self._c_post = ref.new_zeros(s, p)
        self._theta_m = ref.expand(s, p).clone()
        self._sum_post = ref.new_zeros(s, p)
        self._window = torch.zeros(self.window, s, p, dtype=torch.float64, device=ref.device)
        self._win_sum = torch.zeros(s, p, dtype=torch.float64, device=ref.device)
        self._win_sq = torch.zeros_like(self._win_sum)
        self._gate_buf = ref.new_zeros(s, p)
        for pl in self._layers.values():
            w = pl.trained.detach()
            n_out, n_in = w.shape
            initial = pl.start if pl.start is not None else w.expand(s, n_out, n_in)
            if self.per_sample:  # stored [S, N_in, N_out] for dwam_linear (and its reference)
                pl.weight_t = initial.transpose(1, 2).clone(memory_format=torch.contiguous_format)
                pl.weight = pl.weight_t.transpose(1, 2)
            else:
                pl.weight = initial.clone(memory_format=torch.contiguous_format)
                pl.weight_t = None
            pl.weight0 = pl.weight[0]
            pl.c_pre = w.new_zeros(s, n_in)
            pl.sum_pre = w.new_zeros(s, n_in)
            pl.sum_post = self._sum_post[:, pl.cols]
        self._kargs = self._kernel_arguments()
        self._note_plain_zeros()

    def _note_plain_zeros(self) -> None:
        """Tell the kernel which layers' working weights hold neither -0.0 nor NaN: there it
        skips the rows whose update is ±0 without scanning them (``csrc/dwam.cpp``, step 5).
        Updates never create either; a ``w_range`` bound of -0.0 could, so then never."""
        assert self._kargs is not None
        flags = self._kargs["keep"]["plain_zeros"]
        bounds = self.w_range or ()
        negative_bound = any(b == 0.0 and math.copysign(1.0, b) < 0 for b in bounds)
        for i, pl in enumerate(self._layer_list):
            w = pl.weight
            assert w is not None
            special = negative_bound or bool(((w == 0) & torch.signbit(w)).any())
            flags[i] = int(not (special or bool(torch.isnan(w).any())))

    def _kernel_arguments(self) -> dict[str, Any]:
        """The compiled update's arguments, filled once (every buffer is allocated once per
        :meth:`_allocate` and only written in place, so the pointers stay valid); each update
        only sets the fields that change."""
        layers = list(self._layers.values())
        n = len(layers)

        def ptrs(tensors: list[Tensor | None]) -> Any:
            return (ctypes.c_void_p * n)(*[t.data_ptr() for t in tensors if t is not None])

        keep = {
            "col0": (ctypes.c_int64 * n)(*[pl.cols.start for pl in layers]),
            "n_out": (ctypes.c_int64 * n)(*[pl.trained.shape[0] for pl in layers]),
            "n_in": (ctypes.c_int64 * n)(*[pl.trained.shape[1] for pl in layers]),
            "weights": ptrs([pl.weight for pl in layers]),
            "c_pre": ptrs([pl.c_pre for pl in layers]),
            "sum_pre": ptrs([pl.sum_pre for pl in layers]),
            "inv_count_pre": (ctypes.c_double * n)(),
            "plain_zeros": (ctypes.c_int64 * n)(),
            "transposed": (ctypes.c_int64 * n)(*[int(self.per_sample)] * n),
        }
        args = _KernelArgs()
        for name, tensor in (
            ("sum_post", self._sum_post),
            ("c_post", self._c_post),
            ("theta", self._theta_m),
            ("inv_ref", self._inv_ref),
            ("window", self._window),
            ("win_sum", self._win_sum),
            ("win_sq", self._win_sq),
            ("gate", self._gate_buf),
        ):
            assert tensor is not None and tensor.is_contiguous()
            setattr(args, name, tensor.data_ptr())
        for name, array in keep.items():
            setattr(args, name, ctypes.cast(array, ctypes.c_void_p))
        assert self._c_post is not None
        args.is_double = int(self._c_ref.dtype == torch.float64)
        args.S, args.P, args.L = self._c_post.shape[0], self._n_post, n
        args.adapt = int(self.adapt)
        args.ema, args.theta_rate = 1.0 / self.tau_c, 1.0 / self.tau_theta
        args.zeta2 = self.zeta * self.zeta
        args.zeta2_w = args.zeta2 * self.window
        args.alpha = float(self.sign * self.eta)
        return {"args": args, "ref": ctypes.byref(args), "keep": keep}

    # -- reference rates -------------------------------------------------------------------

    def set_reference(self, c_ref: float | Mapping[str, Tensor]) -> None:
        """Set the nominal rates ``c_ref`` (float: global target; or ``{layer: [N_out]}``) and
        reset the adaptation state (``θ_M := c_ref``, trained weights restored, any
        ``reset(weights=...)`` start forgotten)."""
        refs = self._c_ref.clone()
        for path, pl in self._layers.items():
            n_out = pl.cols.stop - pl.cols.start
            if isinstance(c_ref, Mapping):
                if path not in c_ref:
                    raise ValueError(f"c_ref has no rates for the plastic layer {path!r}")
                ref = torch.as_tensor(c_ref[path], dtype=refs.dtype)
                if ref.shape != (n_out,):
                    raise ValueError(
                        f"c_ref[{path!r}] has shape {list(ref.shape)}, expected [N_out] = [{n_out}]"
                    )
                ref = ref.to(refs.device)
            else:
                ref = torch.full((n_out,), float(c_ref), dtype=refs.dtype, device=refs.device)
            if not torch.isfinite(ref).all() or (ref < 0).any() or (ref > 1).any():
                raise ValueError(f"c_ref for {path!r} must be rates in [0, 1] (spikes per step)")
            refs[pl.cols] = ref
            pl.start = None
        self._c_ref = refs
        self._inv_ref = 1.0 / refs.clamp_min(self.min_ref_rate)
        self._has_ref = True
        self._streams = None if self.per_sample else 1
        self._allocate()

    def record_reference(self, inputs: Tensor | Iterable[Tensor]) -> dict[str, Tensor]:
        """Record ``c_ref`` on nominal inputs (one ``[T, B, ...]`` tensor or an iterable of them)
        with the trained weights and no adaptation: the mean post-synaptic rate per neuron over
        all steps and samples. Sets it (as :meth:`set_reference`) and returns
        ``{layer: [N_out]}``."""
        batches = [inputs] if isinstance(inputs, Tensor) else list(inputs)
        if not batches:
            raise ValueError("record_reference needs at least one input batch")
        saved_state, self._neuron_state = self._neuron_state, {}
        self._recording = {p: [0.0, 0] for p in self._layers}
        try:
            for x in batches:
                self._check_input(x)
                with torch.no_grad():
                    self._run(x, working=False, shared=True)
            for p, (_, count) in self._recording.items():
                if count == 0:
                    raise RuntimeError(f"the neuron {self._layers[p].neuron_path!r} was not called")
            refs = {p: total / count for p, (total, count) in self._recording.items()}
        finally:
            self._neuron_state = saved_state
            self._recording = None
            for pl in self._layers.values():
                pl.clear_pending()
        self.set_reference(refs)
        return {p: r.clone() for p, r in refs.items()}

    # -- running ---------------------------------------------------------------------------

    def _check_input(self, x_seq: Tensor) -> None:
        if not isinstance(x_seq, Tensor) or x_seq.dim() < 2 or not x_seq.shape[0]:
            shape = list(x_seq.shape) if isinstance(x_seq, Tensor) else type(x_seq).__name__
            raise ValueError(f"DWAM expects a time-first input [T >= 1, B, ...], got {shape}")
        if self._kernel_ok and x_seq.is_cpu:
            layout = (x_seq.shape, x_seq.stride(), x_seq.dtype)
            check = self._finite.get(layout, False)
            if check is False:
                if len(self._finite) >= 64:  # many layouts: start over
                    self._finite.clear()
                check = self._finite[layout] = self._finite_check(x_seq)
            if check is not None:  # the compiled check reads every value once
                args, ref = check
                args.x = x_seq.data_ptr()
                if self._lib.dwam_finite(ref):
                    return
                raise ValueError("the input x_seq contains NaN or infinite values")
        if not x_seq.is_floating_point():
            return
        # one reduction: a NaN or inf anywhere makes the sum non-finite (float32/64 sums of
        # finite inputs overflow only beyond ~1e38 / 1e308; half types take the exact check)
        if x_seq.dtype in _KERNEL_DTYPES:
            if math.isfinite(float(x_seq.sum())):
                return
        if not torch.isfinite(x_seq).all():
            raise ValueError("the input x_seq contains NaN or infinite values")

    @staticmethod
    def _finite_check(x_seq: Tensor) -> tuple[_FiniteArgs, Any] | None:
        """The compiled finiteness check's arguments for ``x_seq``'s layout (all but the data
        pointer), or ``None`` where it does not apply (not float32/64, not a dense span)."""
        n = _dense_span(x_seq) if x_seq.dtype in _KERNEL_DTYPES else 0
        if not n:
            return None
        args = _FiniteArgs(is_double=int(x_seq.dtype == torch.float64), n=n)
        return args, ctypes.byref(args)

    def __call__(self, x_seq: Tensor) -> Any:
        """Run the model on ``x_seq [T, B, ...]`` with the working weights (no autograd), then
        update the weights if ``K`` SNN steps have accumulated. Returns the model's output."""
        if not self._has_ref:
            raise RuntimeError(
                "DWAM has no reference rates: call record_reference(nominal inputs) or pass c_ref"
            )
        if self._kernel_ok is None:
            self._kernel_ok = self._use_kernel()
        self._check_input(x_seq)
        if self._streams is None:  # per_sample: the batch fixes the streams until reset
            self._streams = int(x_seq.shape[1])
            self._allocate()
        elif self.per_sample and x_seq.shape[1] != self._streams:
            raise ValueError(
                f"per_sample DWAM adapts {self._streams} independent streams, but this call has "
                f"a batch of {x_seq.shape[1]}; call reset() to start a new batch of streams"
            )
        if self._kernel_ok and not self._fast_ready:
            self._build_fast_arguments()
        if torch.is_grad_enabled():
            with torch.no_grad():
                return self._run_and_update(x_seq)
        return self._run_and_update(x_seq)

    forward = __call__

    def _run_and_update(self, x_seq: Tensor) -> Any:
        """:meth:`__call__` after the checks, under ``torch.no_grad()``."""
        out = self._run(x_seq, working=True, shared=False)
        k = self.update_every or 1
        due = True
        for pl in self._layer_list:
            if pl.seen_post != pl.seen_pre:
                raise RuntimeError(
                    f"the plastic layer {pl.path!r} and its neuron {pl.neuron_path!r} saw "
                    f"different numbers of steps ({pl.seen_pre} vs {pl.seen_post}); is the "
                    "neuron fed by this layer?"
                )
            due = due and pl.seen_post >= k
        if due:
            self._step()
        return out

    @torch.no_grad()
    def step(self) -> bool:
        """One DWAM update (spec §4.1 steps 1-5) of every plastic layer from the spikes
        accumulated since the last one; returns ``False`` (and does nothing) if some layer has
        accumulated nothing."""
        return self._step()

    def _step(self) -> bool:
        """:meth:`step` (the caller disables autograd)."""
        layers = self._layer_list
        count = layers[0].count_post
        for pl in layers:
            if pl.seen_post == 0 or pl.seen_pre == 0:
                return False
            if pl.count_post != count:
                count = 0
        if count == 0:  # layers fed with different numbers of steps: normalise apart
            for pl in layers:
                assert pl.sum_post is not None
                pl.sum_post.mul_(1.0 / pl.count_post)
            count = 1
        updates = self._updates + 1
        full = updates >= self.window  # after this update the CV window is full
        if self._kernel_ok:
            self._update_compiled(layers, 1.0 / count, full)
        else:
            self._update_torch(layers, 1.0 / count, full)
        for pl in layers:  # (clear_pending, inline)
            pl.seen_pre = pl.seen_post = pl.count_pre = pl.count_post = 0
        self._updates = updates
        self._gate = self._gate_buf if full else None
        if updates % self.window == 0:
            self._recompute_window_sums()
        if (
            full
            and self.adapt
            and (self.clip_sign or self.w_range or updates % self.finite_check_every == 0)
        ):
            for pl in layers:
                assert pl.weight is not None
                if self.clip_sign:
                    initial = pl.start if pl.start is not None else pl.trained.detach()
                    pl.weight.masked_fill_(pl.weight * initial < 0, 0.0)
                if self.w_range is not None:
                    pl.weight.clamp_(*self.w_range)
                if self._updates % self.finite_check_every == 0 and not bool(
                    torch.isfinite(pl.weight).all()
                ):
                    raise FloatingPointError(f"DWAM produced non-finite weights in {pl.path!r}")
        return True

    def _update_torch(self, layers: list[_Plastic], inv_count: float, full: bool) -> None:
        """Steps 1-5 with torch operations, each one IEEE rounding, in the order of the compiled
        kernel (``csrc/dwam.cpp``): bit-identical states in float32 (in float64, torch's
        vectorised square root is not correctly rounded)."""
        assert self._c_post is not None and self._sum_post is not None
        assert self._theta_m is not None and self._window is not None
        assert self._win_sum is not None and self._win_sq is not None
        assert self._gate_buf is not None
        first = self._updates == 0 or self.tau_c == 1.0
        ema = 1.0 / self.tau_c
        # 1. rates (EMA seeded with the first observation; tau_c = 1: c = s)
        for pl in layers:
            assert pl.c_pre is not None and pl.sum_pre is not None
            s_pre = pl.sum_pre.mul_(1.0 / pl.count_pre)
            if first:
                pl.c_pre.copy_(s_pre)
            else:
                pl.c_pre.add_((s_pre - pl.c_pre).mul_(ema))
        s_post = self._sum_post.mul_(inv_count)
        c = self._c_post
        if first:
            c.copy_(s_post)
        else:
            c.add_((s_post - c).mul_(ema))
        # 2. CV window: running sums of the window and of its squares
        old = self._window[self._updates % self.window]
        new = c.double()
        self._win_sum.add_(new).sub_(old)
        self._win_sq.add_(new * new).sub_(old * old)
        old.copy_(new)
        # 3. sliding threshold towards c²/c_ref
        target = (c * c).mul_(self._inv_ref)
        self._theta_m.add_((target - self._theta_m).mul_(1.0 / self.tau_theta))
        if not full:  # CV := 0 until the window is full: gate closed, φ = 0
            return
        # 4. gate g = clip(ζ·CV, 0, 1) = sqrt(clip(ζ²·(W·Σc²/(Σc)² − 1), 0, 1)), CV over the
        # last W updates (temporal, per neuron, population std; 0 where the mean is 0)
        z2 = self.zeta * self.zeta
        ratio = torch.div(self._win_sq, self._win_sum * self._win_sum)
        gate = ratio.mul_(z2 * self.window).sub_(z2).clamp_(0.0, 1.0).sqrt_().nan_to_num_(0.0)
        self._gate_buf.copy_(gate)
        if not self.adapt:
            return
        # 5. W += (sign·η·φ) ⊗ c_pre with φ = c·(c − θ), θ = θ_M·g + c·(1 − g), i.e.
        # φ = (c − θ_M)·c·g (spec §2.1)
        phi = (c - self._theta_m).mul_(c).mul_(self._gate_buf).mul_(self.sign * self.eta)
        for pl in layers:
            assert pl.weight is not None and pl.c_pre is not None
            pl.weight.add_(phi[:, pl.cols].unsqueeze(2) * pl.c_pre.unsqueeze(1))

    def _use_kernel(self) -> bool:
        """Whether the compiled update runs (``backend``, CPU, float32/64, kernel built)."""
        if self.backend == "torch":
            return False
        ok = self._c_ref.device.type == "cpu" and self._c_ref.dtype in _KERNEL_DTYPES
        lib = _kernel() if ok else None
        if lib is not None:
            self._lib = lib
            return True
        if self.backend == "compiled":
            why = _LIBRARY.reason if ok else "it runs on CPU float32/float64 tensors only"
            raise RuntimeError(f"DWAM backend='compiled' is unavailable: {why}")
        return False

    def _update_compiled(self, layers: list[_Plastic], inv_count: float, full: bool) -> None:
        """Steps 1-5 in one call of the compiled kernel (the same results as the torch path)."""
        kargs = self._kargs
        assert kargs is not None
        args, inv_pre = kargs["args"], kargs["keep"]["inv_count_pre"]
        inv_pre[:] = [1.0 / pl.count_pre for pl in layers]
        updates = self._updates
        args.slot = updates % self.window
        args.first = updates == 0 or self.tau_c == 1.0
        args.full = full
        args.inv_count_post = inv_count
        self._lib.dwam_update(kargs["ref"])

    def _recompute_window_sums(self) -> None:
        """The window's sums from the buffer itself (every W updates, so that the rounding of
        the running sums cannot accumulate), in place."""
        assert self._window is not None and self._win_sum is not None
        assert self._win_sq is not None
        torch.sum(self._window, 0, out=self._win_sum)
        torch.sum(self._window * self._window, 0, out=self._win_sq)

    def _patch_targets(self) -> list[list[Any]]:
        """What a call patches: every plastic layer and every post-synaptic neuron (with
        ``stream_state``: every spikeforge neuron), as ``[module, make_forward, cached]`` where
        ``cached`` is ``(class forward, the patch made around it)``, reused while the class
        ``forward`` stays the same."""
        targets: list[list[Any]] = [
            [pl.linear, self._synapse_forward(pl), None] for pl in self._layers.values()
        ]
        neuron_paths = set(self._post_of)
        if self.stream_state:
            neuron_paths |= {n for n, m in self._modules.items() if isinstance(m, NEURON_TYPES)}
        for npath in sorted(neuron_paths):
            m = self._modules[npath]
            targets.append([m, self._neuron_forward(npath, m), None])
        return targets

    def remove(self) -> None:
        """Detach DWAM from the model: its calls raise afterwards. (Between calls DWAM leaves
        no hook or patch on the model; this only marks the DWAM as finished.)"""
        self._removed = True

    def _run(self, x_seq: Tensor, working: bool, shared: bool) -> Any:
        """The model on ``x_seq`` with the working weights substituted (``working``; else the
        trained ones); the patched forwards accumulate the pre- and post-synaptic sums (over the
        batch too when ``shared``). See the module docstring for how the weights are
        substituted; every patch is taken off again before this returns or raises. The caller
        disables autograd."""
        if self._removed:
            raise RuntimeError("this DWAM was removed (remove()); build a new DWAM")
        self._working = working
        # the compiled fast paths: with the working weights, outside record_reference
        self._fast_call = working and self._fast_ready and self._recording is None
        self._call = (x_seq.shape[0], shared or not self.per_sample)
        patched: list[tuple[dict[str, Any], Any]] = []
        try:
            for target in self._targets:
                module, make_forward, cached = target
                slots = module.__dict__
                previous = slots.get("forward", _NO_PATCH)
                if previous is _NO_PATCH:  # the patch made around the class forward
                    if not (cached and cached[0] is type(module).forward):
                        target[2] = cached = (type(module).forward, make_forward(module.forward))
                    slots["forward"] = cached[1]
                else:  # a forward set on the instance: wrap that one
                    slots["forward"] = make_forward(previous)
                patched.append((slots, previous))
            return self.model(x_seq)
        finally:
            self._call = None
            for slots, previous in reversed(patched):
                if previous is _NO_PATCH:
                    del slots["forward"]
                else:
                    slots["forward"] = previous

    def _check_streams(self, pl: _Plastic, side: str, batch: int) -> None:
        if batch != self._streams:
            what = f"input of {pl.path!r}" if side == "pre" else f"output of {pl.neuron_path!r}"
            raise ValueError(
                f"per_sample DWAM adapts {self._streams} streams, but the {what} has a batch "
                f"of {batch} per step"
            )

    def _collect(self, pl: _Plastic, side: str, x: Tensor, t: int, shared: bool) -> None:
        """Add ``x`` (``[T, B, N]`` or ``[T·B, N]``) summed over steps (and over the batch when
        ``shared``) to the layer's pending ``side`` (``"pre"`` / ``"post"``) sums ``[S, N]``
        with torch: inputs in the fixed order of :func:`_ordered_sum` (the compiled
        ``dwam_sum``'s), spikes with ``torch.sum`` (exact in any order for 0/1 spikes; other
        post-synaptic modules' outputs always take this path)."""
        n = x.shape[-1]
        values = x if x.dim() == 3 and x.shape[0] == t else x.reshape(t, -1, n)
        batch = values.shape[1]
        if self._recording is not None:  # record_reference: totals per neuron, post side only
            if side == "post":
                entry = self._recording[pl.path]
                total = values.reshape(-1, n).sum(0).to(self._c_ref.dtype)
                entry[0] = entry[0] + total
                entry[1] += t * batch
            return
        if not shared:
            self._check_streams(pl, side, batch)
        pre = side == "pre"
        pending = pl.sum_pre if pre else pl.sum_post
        assert pending is not None
        if values.dtype != pending.dtype:
            values = values.to(pending.dtype)
        first = (pl.seen_pre if pre else pl.seen_post) == 0
        if pre:
            total = _ordered_sum(values, shared)
            if first:
                pending.copy_(total)
            else:
                pending.add_(total)
        elif first:
            torch.sum(values.reshape(-1, n) if shared else values, 0, keepdim=shared, out=pending)
        else:
            pending.add_((values.reshape(-1, n) if shared else values).sum(0, keepdim=shared))
        self._count(pl, pre, t, t * batch if shared else t)

    @staticmethod
    def _count(pl: _Plastic, pre: bool, steps: int, values: int) -> None:
        if pre:
            pl.seen_pre += steps
            pl.count_pre += values
        else:
            pl.seen_post += steps
            pl.count_post += values

    def _build_fast_arguments(self) -> None:
        """The compiled per-call kernels' arguments for the current buffers (after
        :meth:`_allocate`; every buffer is only written in place until the next one)."""
        is_double = int(self._c_ref.dtype == torch.float64)
        per_stream = int(self.per_sample)
        for pl in self._layer_list:
            assert pl.sum_pre is not None and pl.sum_post is not None
            n_out, n_in = pl.n_out, pl.n_in
            pre = _SumArgs(is_double=is_double, n=n_in, per_stream=per_stream, out_stride=n_in)
            pre.out = pl.sum_pre.data_ptr()
            post = _SumArgs(
                is_double=is_double, n=n_out, per_stream=per_stream, out_stride=self._n_post
            )
            post.out = pl.sum_post.data_ptr()
            pl.sum_pre_args = (pre, ctypes.byref(pre))
            pl.sum_post_args = (post, ctypes.byref(post))
            if pl.weight_t is not None:
                lin = _LinearArgs(is_double=is_double, S=self._streams, I=n_in, O=n_out)
                lin.wt = pl.weight_t.data_ptr()
                lin.sum = pl.sum_pre.data_ptr()
                lin.sum_stride = n_in
                pl.linear_args = (lin, ctypes.byref(lin))
        self._fast_ready = True

    def _sum_compiled(self, pl: _Plastic, pre: bool, x: Tensor, t: int, shared: bool) -> None:
        """:meth:`_collect` by the compiled ``dwam_sum`` (inputs: the same order as
        :func:`_ordered_sum`; spikes: exact), for CPU ``x`` of the state's dtype in any layout
        holding ``T·B·N`` values: read as ``[T, B, N]`` (a copy where that is no view with a
        unit-strided last dimension), then summed by :meth:`_sum_fast`."""
        n = pl.n_in if pre else pl.n_out
        batch = x.numel() // (t * n)
        if not shared:
            self._check_streams(pl, "pre" if pre else "post", batch)
        x = x.reshape(t, batch, n)
        if x.stride(2) != 1:
            x = x.contiguous()
        summed = self._sum_fast(pl, pre, x, t, shared)
        assert summed, "a [T, B, N] tensor with a unit-strided last dimension is always summed"

    def _sum_fast(self, pl: _Plastic, pre: bool, x: Tensor, t: int, shared: bool) -> bool:
        """The compiled ``dwam_sum`` of ``x`` in the fewest steps, for the common layouts (``x``
        a CPU tensor of the state's dtype, ``[T, B, N]`` or ``[T·B, N]`` with a unit-strided
        last dimension, and per-sample: ``B`` the number of streams); ``False``, having done
        nothing, for any other input (then the caller takes the general path, which also names
        what is wrong)."""
        shape = x.shape
        n = pl.n_in if pre else pl.n_out
        if len(shape) == 3:
            if shape[0] != t or shape[2] != n or not t:
                return False
            batch = shape[1]
            st, sb, sn = x.stride()
        elif len(shape) == 2 and shape[1] == n and t and not shape[0] % t:
            batch = shape[0] // t
            sb, sn = x.stride()
            st = sb * batch
        else:
            return False
        if (sn != 1 and n != 1) or (not shared and batch != self._streams):
            return False
        args, ref = pl.sum_pre_args if pre else pl.sum_post_args
        args.x = x.data_ptr()
        args.steps = t
        args.batch = batch
        args.st = st
        args.sb = sb
        count = t * batch if shared else t
        if pre:
            args.accumulate = pl.seen_pre
            self._lib.dwam_sum(ref)
            pl.seen_pre += t
            pl.count_pre += count
        else:
            args.accumulate = pl.seen_post
            self._lib.dwam_sum(ref)
            pl.seen_post += t
            pl.count_post += count
        return True

    def _stream_layer(self, pl: _Plastic, x: Tensor, t: int) -> Tensor:
        """The plastic layer on ``x`` (``[T, S, N_in]`` or ``[T·S, N_in]``) with each stream's
        working weights, collecting its input: the compiled ``dwam_linear`` where it applies,
        else :meth:`_collect` and :func:`_stream_product`, the same operations in torch."""
        assert pl.weight_t is not None
        bias = pl.linear.bias
        w = pl.weight_t
        if (
            self._fast_call
            and x.dtype == w.dtype
            and x.is_cpu
            and (bias is None or (bias.dtype == w.dtype and bias.is_contiguous()))
        ):
            args, ref = pl.linear_args
            batch = x.numel() // (t * pl.n_in)
            self._check_streams(pl, "pre", batch)
            x, args.st, args.ss = _as_steps(x, t, batch, pl.n_in)
            y = torch.empty((*x.shape[:-1], pl.n_out), dtype=x.dtype)
            args.x = x.data_ptr()
            args.y = y.data_ptr()
            args.steps = t
            args.bias = None if bias is None else bias.data_ptr()
            args.accumulate = pl.seen_pre != 0
            self._lib.dwam_linear(ref)
            self._count(pl, True, t, t)
            return y
        self._collect(pl, "pre", x, t, False)
        return _stream_product(x, t, w, bias)

    def _synapse_forward(self, pl: _Plastic) -> Any:
        """The plastic layer's forward during a call, given its own: collects the layer's input
        and, with the working weights, computes the layer with them instead (one stream:
        ``F.linear(x, W, b)``, the call ``nn.Linear`` makes; per-sample streams:
        :meth:`_stream_layer`)."""
        n_in = pl.n_in

        def make(original: Any) -> Any:
            def forward(*args: Any, **kwargs: Any) -> Any:
                x = args[0] if args else kwargs["input"]
                t, shared = self._call  # type: ignore[misc]
                if (  # the common case, in the fewest steps
                    self._fast_call
                    and pl.weight_t is None
                    and x.dtype == self._dtype
                    and x.is_cpu
                    and self._sum_fast(pl, True, x, t, shared)
                ):
                    return F.linear(x, pl.weight0, pl.linear.bias)
                if x.shape[-1] != n_in or x.numel() % (t * n_in):
                    original(*args, **kwargs)  # the layer's own error first, if it has one
                    raise ValueError(
                        f"plastic layer {pl.path!r} got an input {list(x.shape)} that is not a "
                        f"time-first [T = {t}, B, {n_in}] (or [T·B, {n_in}]) tensor"
                    )
                if not self._working:
                    self._collect(pl, "pre", x, t, shared)
                    return original(*args, **kwargs)
                if pl.weight_t is not None:
                    return self._stream_layer(pl, x, t)
                w0 = pl.weight0
                assert w0 is not None
                if self._fast_call and x.is_cpu:
                    self._sum_compiled(
                        pl, True, x if x.dtype == w0.dtype else x.to(w0.dtype), t, shared
                    )
                else:
                    self._collect(pl, "pre", x, t, shared)
                return F.linear(x, w0 if w0.dtype == x.dtype else w0.to(x.dtype), pl.linear.bias)

            return forward

        return make

    def _neuron_forward(self, npath: str, module: nn.Module) -> Any:
        """A post-synaptic (or, with ``stream_state``, any spikeforge) neuron's forward during a
        call, given its own: feeds the carried state (``stream_state``), collects the spikes."""
        binary = isinstance(module, NEURON_TYPES)  # 0/1 spikes
        streams = self.stream_state and binary
        posts = self._post_of.get(npath, [])
        plain = binary and not self.stream_state and len(posts) == 1  # the common case
        post = posts[0] if posts else None

        def make(original: Any) -> Any:
            def forward(*args: Any, **kwargs: Any) -> Any:
                if plain:  # the common case, in the fewest steps
                    out = original(*args, **kwargs)
                    if (
                        self._fast_call
                        and isinstance(out, Tensor)
                        and out.dtype == self._dtype
                        and out.is_cpu
                        and self._sum_fast(post, False, out, *self._call)  # type: ignore[misc]
                    ):
                        return out
                    return self._neuron_call(npath, binary, posts, out)
                if (
                    streams
                    and len(args) == 1
                    and not ("state" in kwargs or "return_state" in kwargs)
                ):
                    kwargs = {**kwargs, "return_state": True}
                    if npath in self._neuron_state:
                        state = self._neuron_state[npath]
                        v = state[0] if isinstance(state, tuple) else state
                        x = args[0]
                        if v.shape != x.shape[1:]:
                            raise ValueError(
                                f"stream_state: the neuron {npath!r} carries a state of shape "
                                f"{list(v.shape)} but now gets [T, B, ...] = {list(x.shape)} "
                                "(batch or neuron shape changed); call reset() between streams"
                            )
                        kwargs["state"] = state
                return self._neuron_call(npath, binary, posts, original(*args, **kwargs))

            return forward

        return make

    def _neuron_call(self, npath: str, binary: bool, posts: list[_Plastic], out: Any) -> Any:
        """Collects the spikes ``out`` of the neuron ``npath`` (``binary``: a spikeforge neuron,
        0/1 spikes) for the plastic layers it follows (``posts``)."""
        assert self._call is not None
        t, shared = self._call
        spikes = out
        if binary and self.stream_state and isinstance(out, tuple):
            spikes, state = out
            self._neuron_state[npath] = state
        for pl in posts:
            n_out = pl.n_out
            if (
                not isinstance(spikes, Tensor)
                or spikes.shape[-1] != n_out
                or (spikes.numel() % (t * n_out))
            ):
                shape = list(spikes.shape) if isinstance(spikes, Tensor) else type(spikes)
                raise ValueError(
                    f"the neuron {npath!r} after the plastic layer {pl.path!r} returned "
                    f"{shape}, not time-first spikes [T = {t}, B, {n_out}]"
                )
            if self._fast_call and binary and spikes.is_cpu and spikes.dtype == self._dtype:
                self._sum_compiled(pl, False, spikes, t, shared)
            else:
                self._collect(pl, "post", spikes, t, shared)
        return spikes

    # -- episodes and state ----------------------------------------------------------------

    def reset(self, seed: int | None = None, weights: Mapping[str, Tensor] | None = None) -> None:
        """Start an episode / evaluation: restore the initial weights (unless ``keep_weights``),
        clear rates, CV window, ``θ_M := c_ref``, the pending spike counts and the streamed
        neuron state (with ``per_sample``, the next call fixes the number of streams again).
        DWAM is deterministic; ``seed`` is only recorded (``episode_seed``).

        ``weights`` ``{layer: [N_out, N_in]}`` (or ``[B, N_out, N_in]`` per sample, which also
        fixes the number of streams) starts this episode from other weights than the trained
        ones, e.g. a per-episode degraded draw; they are the ``W_0`` of :meth:`weight_change`.
        Without it the episode starts from the trained weights.
        """
        self.episode_seed = seed
        self._neuron_state = {}
        if self.keep_weights:
            if weights is not None:
                raise ValueError("reset(weights=...) restarts the weights: not with keep_weights")
            for pl in self._layers.values():
                pl.clear_pending()
            return
        streams = None if self.per_sample else 1
        starts = dict.fromkeys(self._layers) if weights is None else dict(weights)
        if set(starts) != set(self._layers):
            raise ValueError(
                f"reset(weights=...) needs exactly the plastic layers {sorted(self._layers)}, got "
                f"{sorted(starts)}"
            )
        for p, pl in self._layers.items():
            w = starts[p]
            if w is None:
                pl.start = None
                continue
            w = torch.as_tensor(w).detach().to(pl.trained.dtype).to(pl.trained.device)
            if w.dim() == 2 and not self.per_sample:
                w = w.unsqueeze(0)
            if (
                w.dim() != 3
                or w.shape[1:] != pl.trained.shape
                or (not self.per_sample and w.shape[0] != 1)
            ):
                layout = "[B, N_out, N_in]" if self.per_sample else "[N_out, N_in]"
                raise ValueError(
                    f"reset weights[{p!r}] has shape {list(w.shape)}, expected {layout} with "
                    f"[N_out, N_in] = {list(pl.trained.shape)}"
                )
            if streams is not None and w.shape[0] != streams:
                raise ValueError(
                    f"reset weights give {w.shape[0]} streams for {p!r}, others {streams}"
                )
            if not torch.isfinite(w).all():
                raise ValueError(f"reset weights[{p!r}] contain NaN/inf")
            streams = w.shape[0]
            pl.start = w.clone()
        self._streams = streams
        self._allocate()

    def _require_streams(self) -> None:
        if self._streams is None:
            raise RuntimeError(
                "per_sample DWAM has no streams yet: call it on a batch first (the batch size "
                "fixes the number of independent streams)"
            )

    def _shown(self, value: Tensor) -> Tensor:
        """Drop the stream dimension (first) when the batch shares the weights."""
        return value if self.per_sample else value[0]

    @property
    def weights(self) -> dict[str, Tensor]:
        """The working weights ``{layer: [N_out, N_in]}`` (``[B, N_out, N_in]`` per sample;
        live tensors; do not write)."""
        self._require_streams()
        return {p: self._shown(pl.weight) for p, pl in self._layers.items()}  # type: ignore[arg-type]

    def rates(self) -> dict[str, Tensor]:
        """The post-synaptic rate estimates ``c`` ``{layer: [N_out]}`` (``[B, N_out]``)."""
        self._require_streams()
        assert self._c_post is not None
        return {p: self._shown(self._c_post[:, pl.cols]).clone() for p, pl in self._layers.items()}

    def gates(self) -> dict[str, Tensor]:
        """The gate ``g = clip(ζ·CV, 0, 1)`` of the last update ``{layer: [N_out]}``
        (``[B, N_out]``; zeros while the window is not full)."""
        self._require_streams()
        assert self._c_post is not None
        gate = self._gate if self._gate is not None else torch.zeros_like(self._c_post)
        return {p: self._shown(gate[:, pl.cols]).clone() for p, pl in self._layers.items()}

    def weight_change(self) -> dict[str, Any]:
        """``‖W − W_0‖_F / ‖W_0‖_F`` per layer (spec §6.4): a float, or a ``[B]`` tensor per
        sample."""
        self._require_streams()
        out: dict[str, Any] = {}
        for p, pl in self._layers.items():
            assert pl.weight is not None
            w0 = pl.start if pl.start is not None else pl.trained.detach().unsqueeze(0)
            norm0 = w0.flatten(-2).norm(dim=-1).clamp_min(1e-12)
            rel = (pl.weight - w0).flatten(-2).norm(dim=-1) / norm0
            out[p] = rel if self.per_sample else float(rel[0])
        return out

    def _field(self, pl: _Plastic, name: str) -> Tensor:
        """A layer's state tensor with the stream dimension first (``window``: second)."""
        if name == "c_ref":
            return self._c_ref[pl.cols]
        self._require_streams()
        if name in ("weight", "c_pre"):
            return getattr(pl, name)
        flat = {"c_post": self._c_post, "theta_m": self._theta_m, "window": self._window}[name]
        assert flat is not None
        return flat[..., pl.cols]

    def state_dict(self) -> dict[str, Any]:
        """DWAM's own state (not the model's): per layer ``{layer}.{weight, c_pre, c_post,
        theta_m, window, c_ref}`` tensors (shapes as the read-outs; ``window`` ``[W, N_out]``
        or ``[W, B, N_out]``, in the weights' dtype) and ``{layer}.updates``, plus
        ``episode_seed`` and ``has_reference``. Pending spike counts and streamed neuron state
        are not saved (save at an update boundary)."""
        sd: dict[str, Any] = {"episode_seed": self.episode_seed, "has_reference": self._has_ref}
        for p, pl in self._layers.items():
            for name in _STATE_FIELDS:
                value = self._field(pl, name)
                if name == "window":
                    value = value.to(pl.trained.dtype)
                    sd[f"{p}.{name}"] = (value if self.per_sample else value[:, 0]).clone()
                elif name == "c_ref":
                    sd[f"{p}.{name}"] = value.clone()
                else:
                    sd[f"{p}.{name}"] = self._shown(value).clone(
                        memory_format=torch.contiguous_format
                    )
            sd[f"{p}.updates"] = self._updates
        return sd

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore a :meth:`state_dict` (same layers and shapes; raises a ``KeyError`` /
        ``ValueError`` naming the offending entry otherwise)."""
        expected = {"episode_seed", "has_reference"} | {
            f"{p}.{n}" for p in self._layers for n in (*_STATE_FIELDS, "updates")
        }
        missing, unexpected = expected - set(state_dict), set(state_dict) - expected
        if missing or unexpected:
            raise KeyError(
                f"DWAM state_dict mismatch: missing {sorted(missing)}, unexpected "
                f"{sorted(unexpected)}"
            )
        streams = 1
        if self.per_sample:
            first = state_dict[f"{next(iter(self._layers))}.weight"]
            streams = first.shape[0] if isinstance(first, Tensor) and first.dim() == 3 else -1
        updates = {int(state_dict[f"{p}.updates"]) for p in self._layers}
        if len(updates) != 1:
            raise ValueError(f"the layers' update counts differ: {sorted(updates)}")
        for p, pl in self._layers.items():
            n_out, n_in = pl.trained.shape
            shapes = {
                "weight": (n_out, n_in),
                "c_pre": (n_in,),
                "c_post": (n_out,),
                "theta_m": (n_out,),
                "window": (self.window, n_out),
                "c_ref": (n_out,),
            }
            for name in _STATE_FIELDS:
                value = state_dict[f"{p}.{name}"]
                shape = list(shapes[name])
                if self.per_sample and name != "c_ref":
                    shape.insert(1 if name == "window" else 0, streams)
                if not isinstance(value, Tensor) or list(value.shape) != shape:
                    got = list(value.shape) if isinstance(value, Tensor) else type(value).__name__
                    raise ValueError(f"{p}.{name}: expected shape {shape}, got {got}")
                if not torch.isfinite(value).all():
                    raise ValueError(f"{p}.{name} contains NaN/inf")
        self.set_reference({p: state_dict[f"{p}.c_ref"] for p in self._layers})
        self._streams = streams
        self._allocate()
        for p, pl in self._layers.items():
            for name in ("weight", "c_pre", "c_post", "theta_m", "window"):
                value = state_dict[f"{p}.{name}"]
                if not self.per_sample:
                    value = value.unsqueeze(1 if name == "window" else 0)
                self._field(pl, name).copy_(value)
        self._updates = updates.pop()
        self._recompute_window_sums()
        self._note_plain_zeros()
        self.episode_seed = state_dict["episode_seed"]
        self._has_ref = bool(state_dict["has_reference"])
        self._neuron_state = {}

    def __repr__(self) -> str:
        return (
            f"DWAM(layers={ {p: pl.neuron_path for p, pl in self._layers.items()} }, "
            f"eta={self.eta}, tau_theta={self.tau_theta}, zeta={self.zeta}, "
            f"window={self.window}, tau_c={self.tau_c}, update_every={self.update_every}, "
            f"per_sample={self.per_sample})"
        )


def _as_paths(layers: Sequence[str]) -> list[str]:
    if isinstance(layers, str):
        return [layers]
    paths = list(layers)
    for p in paths:
        if not isinstance(p, str):
            raise TypeError(f"layers must be module paths (str), got {type(p).__name__}")
    return paths


def _stream_product(x: Tensor, t: int, weight_t: Tensor, bias: Tensor | None) -> Tensor:
    """``x`` ``[T, S, N_in]`` (or ``[T·S, N_in]``) through per-stream weights ``weight_t``
    ``[S, N_in, N_out]``: ``y[t, s] = b + Σ_i x[t, s, i]·W_t[s, i]`` in ascending ``i``, one
    rounding per operation, a term with ``x = 0`` replaced by −0.0 (adding it leaves every value
    unchanged, as the compiled ``dwam_linear`` skipping it does): the same bits as the kernel.
    Returns ``[..., N_out]`` in ``x``'s leading shape."""
    streams, n_in, n_out = weight_t.shape
    xs = x.reshape(t, -1, n_in)
    w = weight_t if weight_t.dtype == x.dtype else weight_t.to(x.dtype)
    if bias is None:
        y = xs.new_zeros(t, streams, n_out)
    else:
        y = bias.to(x.dtype).expand(t, streams, n_out).clone()
    for i in range(n_in):
        xi = xs[:, :, i : i + 1]
        y.add_(torch.where(xi != 0, xi * w[:, i], -0.0))
    return y.reshape(*x.shape[:-1], n_out)


def _ordered_sum(values: Tensor, shared: bool) -> Tensor:
    """``values`` ``[T, B, N]`` summed in the order of the compiled ``dwam_sum``: per sample
    over the steps in order, then (``shared``) over the batch in order; ``[B, N]`` (``[1, N]``
    when ``shared``). One rounding per addition, so the same bits as the kernel."""
    acc = values[0].clone()
    for t in range(1, values.shape[0]):
        acc.add_(values[t])
    if not shared:
        return acc
    total = acc[:1].clone()
    for b in range(1, acc.shape[0]):
        total.add_(acc[b : b + 1])
    return total


def _dense_span(x: Tensor) -> int:
    """How many elements, from ``x``'s first one on, hold every value of ``x`` contiguously, if
    ``x`` is contiguous or a contiguous tensor expanded along leading dimensions (stride 0, e.g.
    a constant input repeated over the steps); 0 otherwise (or if ``x`` is empty)."""
    span = 1
    expanded = False
    for size, stride in zip(reversed(x.shape), reversed(x.stride()), strict=True):
        if size == 1:
            continue
        if size == 0:
            return 0
        if stride == 0:
            expanded = True
        elif expanded or stride != span:
            return 0
        else:
            span *= size
    return span


def _as_steps(x: Tensor, t: int, batch: int, n: int) -> tuple[Tensor, int, int]:
    """``x`` (``[T, B, N]``, or ``[T·B, N]`` with evenly spaced rows; ``B = batch``, ``N = n``)
    and its element strides ``(step, sample)`` read as ``[T, B, N]``, for the compiled kernels:
    ``x`` itself when its last dimension is unit-strided, else a contiguous copy."""
    dims = x.dim()
    if dims == 3 and x.shape[0] == t:
        st, sb, sn = x.stride()
    elif dims == 2:
        sb, sn = x.stride()
        st = sb * batch
    else:
        return x.contiguous(), batch * n, n
    if sn == 1 or n == 1:
        return x, st, sb
    return x.contiguous(), batch * n, n
