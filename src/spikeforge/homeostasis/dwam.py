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

* rates average over the batch as well as over time (the weights are shared by the batch, so
  one rate per neuron); the pre-synaptic "rate" is the mean of the layer's input values (the
  spikes of the previous population; for a first layer fed with currents, their mean);
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
* the model's output with DWAM is computed by a forward hook that recomputes each plastic
  layer with its working weight (``F.linear``), so the plastic layers cost twice their plain
  cost; the hooks exist only during a DWAM call, so the model is untouched outside it.

Layouts: the model takes ``[T, B, ...]`` and every plastic layer's input ``[T, B, N_in]`` (or
``[T·B, N_in]`` inside ``MultiStep``) and output ``[..., N_out]`` are time-first; rates and
thresholds are ``[N_out]`` / ``[N_in]``, working weights ``[N_out, N_in]``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from spikeforge.core.neurons import IF, LIF, DecayLIF, MultiStep
from spikeforge.homeostasis.adaptive_threshold import AdaptiveLIF

__all__ = ["DWAM", "UnsupportedLayerError"]

NEURON_TYPES: tuple[type[nn.Module], ...] = (IF, LIF, DecayLIF, AdaptiveLIF)
_STATE_FIELDS = ("weight", "c_pre", "c_post", "theta_m", "window", "c_ref")


class UnsupportedLayerError(TypeError):
    """A layer DWAM cannot adapt (names the layer path and type)."""


@dataclass
class _Plastic:
    """State of one plastic layer (tensors on the weight's device and dtype)."""

    path: str
    neuron_path: str
    linear: nn.Linear
    trained: Tensor  # the trained parameter (never written)
    weight: Tensor  # working copy [N_out, N_in]
    c_ref: Tensor  # [N_out]
    c_pre: Tensor  # [N_in]
    c_post: Tensor  # [N_out]
    theta_m: Tensor  # [N_out]
    window: Tensor  # [W, N_out]
    acc_pre: Tensor  # [N_in], sum over steps of the per-step mean input
    acc_post: Tensor  # [N_out]
    seen_pre: int = 0  # steps accumulated (pre), since the last update
    seen_post: int = 0
    updates: int = 0  # updates since reset (window fill = min(updates, W))
    last_gate: Tensor | None = field(default=None)


def _check_positive(name: str, value: float, minimum: float = 0.0, strict: bool = True) -> float:
    value = float(value)
    ok = math.isfinite(value) and (value > minimum if strict else value >= minimum)
    if not ok:
        cmp = ">" if strict else ">="
        raise ValueError(f"{name} must be finite and {cmp} {minimum}, got {value}")
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
        clip_sign: keep every working weight on the sign of its trained value (0 if it would
            cross).
        w_range: ``(w_min, w_max)`` clip of the working weights, or ``None``.
        sign: ``+1`` is BCM (spec §4.1 step 5); ``-1`` flips the rule (an ablation: rates
            collapse, spec §6.7.4).
        keep_weights: keep the adapted weights and adaptation state across :meth:`reset`.
        stream_state: carry every spikeforge neuron's membrane state across calls.
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
    ) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
        self.model = model
        self.eta = _check_positive("eta", eta)
        self.tau_theta = _check_positive("tau_theta", tau_theta, 1.0, strict=False)
        self.zeta = _check_positive("zeta", zeta, strict=False)
        if isinstance(window, bool) or not isinstance(window, int) or window < 2:
            raise ValueError(f"window (W, in updates) must be an int >= 2, got {window!r}")
        self.window = window
        self.tau_c = _check_positive("tau_c", tau_c, 1.0, strict=False)
        if update_every is not None and (
            isinstance(update_every, bool) or not isinstance(update_every, int) or update_every < 1
        ):
            raise ValueError(
                f"update_every (K, in SNN steps) must be an int >= 1 or None, got {update_every!r}"
            )
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
        self.episode_seed: int | None = None
        self._neuron_state: dict[str, Any] = {}
        self._has_ref = False

        modules = dict(model.named_modules())
        pairs = (
            dict(layers)
            if isinstance(layers, Mapping)
            else {p: self._find_neuron(model, modules, p) for p in _as_paths(layers)}
        )
        if not pairs:
            raise ValueError("layers is empty: name at least one plastic layer")
        self._layers: dict[str, _Plastic] = {}
        for path, neuron_path in pairs.items():
            linear = self._resolve_linear(modules, path)
            if neuron_path not in modules:
                raise UnsupportedLayerError(
                    f"no module at {neuron_path!r} (the post-synaptic neuron of {path!r})"
                )
            w = linear.weight.detach()
            n_out, n_in = w.shape
            z_out, z_in = w.new_zeros(n_out), w.new_zeros(n_in)
            self._layers[path] = _Plastic(
                path=path,
                neuron_path=neuron_path,
                linear=linear,
                trained=linear.weight,
                weight=w.clone(),
                c_ref=z_out.clone(),
                c_pre=z_in.clone(),
                c_post=z_out.clone(),
                theta_m=z_out.clone(),
                window=w.new_zeros(self.window, n_out),
                acc_pre=z_in.clone(),
                acc_post=z_out.clone(),
            )
        self._post_of: dict[str, list[_Plastic]] = {}
        for pl in self._layers.values():
            self._post_of.setdefault(pl.neuron_path, []).append(pl)
        if c_ref is not None:
            self.set_reference(c_ref)

    # -- construction helpers ----------------------------------------------------------------

    @staticmethod
    def _resolve_linear(modules: dict[str, nn.Module], path: str) -> nn.Linear:
        if path not in modules:
            raise UnsupportedLayerError(f"no module at {path!r} in the model")
        m = modules[path]
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

    @staticmethod
    def _find_neuron(model: nn.Module, modules: dict[str, nn.Module], path: str) -> str:
        """The path of the first spikeforge neuron after ``path`` in its parent container."""
        if path not in modules:
            raise UnsupportedLayerError(f"no module at {path!r} in the model")
        parent_path, _, name = path.rpartition(".")
        parent = modules[parent_path] if parent_path else model
        names = [n for n, _ in parent.named_children()]
        if path == "" or name not in names:
            raise UnsupportedLayerError(f"cannot locate the layer {path!r} in its parent")
        for sibling in names[names.index(name) + 1 :]:
            if isinstance(getattr(parent, sibling), NEURON_TYPES):
                return f"{parent_path}.{sibling}" if parent_path else sibling
        raise UnsupportedLayerError(
            f"no spikeforge neuron follows {type(modules[path]).__name__} at {path!r} in its "
            f"container; pass layers={{{path!r}: 'path.of.its.neuron'}}"
        )

    # -- reference rates -------------------------------------------------------------------

    def set_reference(self, c_ref: float | Mapping[str, Tensor]) -> None:
        """Set the nominal rates ``c_ref`` (float: global target; or ``{layer: [N_out]}``) and
        reset the adaptation state (``θ_M := c_ref``, trained weights restored)."""
        for path, pl in self._layers.items():
            if isinstance(c_ref, Mapping):
                if path not in c_ref:
                    raise ValueError(f"c_ref has no rates for the plastic layer {path!r}")
                ref = torch.as_tensor(c_ref[path], dtype=pl.weight.dtype)
                if ref.shape != pl.c_ref.shape:
                    raise ValueError(
                        f"c_ref[{path!r}] has shape {list(ref.shape)}, expected "
                        f"[N_out] = {list(pl.c_ref.shape)}"
                    )
                ref = ref.to(pl.weight.device)
            else:
                ref = torch.full_like(pl.c_ref, float(c_ref))
            if not torch.isfinite(ref).all() or (ref < 0).any() or (ref > 1).any():
                raise ValueError(f"c_ref for {path!r} must be rates in [0, 1] (spikes per step)")
            pl.c_ref = ref.clone()
        self._has_ref = True
        self._reset_adaptation(restore_weights=True)

    def record_reference(self, inputs: Tensor | Iterable[Tensor]) -> dict[str, Tensor]:
        """Record ``c_ref`` on nominal inputs (one ``[T, B, ...]`` tensor or an iterable of them)
        with the trained weights and no adaptation: the mean post-synaptic rate per neuron over
        all steps and samples. Sets it (as :meth:`set_reference`) and returns
        ``{layer: [N_out]}``."""
        batches = [inputs] if isinstance(inputs, Tensor) else list(inputs)
        if not batches:
            raise ValueError("record_reference needs at least one input batch")
        saved_state, self._neuron_state = self._neuron_state, {}
        for pl in self._layers.values():
            pl.acc_post.zero_()
            pl.seen_post = 0
        try:
            for x in batches:
                self._run(x, weights={p: pl.trained.detach() for p, pl in self._layers.items()})
            refs = {p: pl.acc_post / max(pl.seen_post, 1) for p, pl in self._layers.items()}
        finally:
            self._neuron_state = saved_state
        self.set_reference(refs)
        return {p: r.clone() for p, r in refs.items()}

    # -- running ---------------------------------------------------------------------------

    def __call__(self, x_seq: Tensor) -> Any:
        """Run the model on ``x_seq [T, B, ...]`` with the working weights (no autograd), then
        update the weights if ``K`` SNN steps have accumulated. Returns the model's output."""
        if not self._has_ref:
            raise RuntimeError(
                "DWAM has no reference rates: call record_reference(nominal inputs) or pass c_ref"
            )
        out = self._run(x_seq, weights={p: pl.weight for p, pl in self._layers.items()})
        k = self.update_every
        for pl in self._layers.values():
            if pl.seen_post != pl.seen_pre:
                raise RuntimeError(
                    f"the plastic layer {pl.path!r} and its neuron {pl.neuron_path!r} saw "
                    f"different numbers of steps ({pl.seen_pre} vs {pl.seen_post}); is the "
                    "neuron fed by this layer?"
                )
        if all(pl.seen_post >= (k or 1) for pl in self._layers.values()):
            self.step()
        return out

    forward = __call__

    @torch.no_grad()
    def step(self) -> bool:
        """One DWAM update (spec §4.1 steps 1-5) from the spikes accumulated since the last one;
        returns ``False`` (and does nothing) if nothing has been accumulated."""
        if any(pl.seen_post == 0 or pl.seen_pre == 0 for pl in self._layers.values()):
            return False
        for pl in self._layers.values():
            self._update(pl)
        return True

    def _update(self, pl: _Plastic) -> None:
        s_pre = pl.acc_pre / pl.seen_pre
        s_post = pl.acc_post / pl.seen_post
        pl.acc_pre.zero_()
        pl.acc_post.zero_()
        pl.seen_pre = pl.seen_post = 0
        # 1. rates (EMA seeded with the first observation)
        if pl.updates == 0:
            pl.c_pre.copy_(s_pre)
            pl.c_post.copy_(s_post)
        else:
            pl.c_pre.add_((s_pre - pl.c_pre) / self.tau_c)
            pl.c_post.add_((s_post - pl.c_post) / self.tau_c)
        c = pl.c_post
        # 2. CV over the last W updates (temporal, per neuron)
        pl.window[pl.updates % self.window] = c
        pl.updates += 1
        if pl.updates >= self.window:
            mean = pl.window.mean(0)
            std = pl.window.std(0, unbiased=False)
            cv = torch.where(mean > 0, std / mean.clamp_min(1e-12), torch.zeros_like(mean))
        else:
            cv = torch.zeros_like(c)
        # 3. sliding threshold towards c²/c_ref
        ref = pl.c_ref.clamp_min(self.min_ref_rate)
        pl.theta_m.add_((c * c / ref - pl.theta_m) / self.tau_theta)
        # 4. gate and blend
        g = (self.zeta * cv).clamp(0.0, 1.0)
        theta = pl.theta_m * g + c * (1.0 - g)
        phi = c * (c - theta)
        pl.last_gate = g
        # 5. weight update on the working copy
        pl.weight.add_(torch.outer(phi, pl.c_pre), alpha=self.sign * self.eta)
        if self.clip_sign:
            crossed = pl.weight * pl.trained.detach() < 0
            pl.weight.masked_fill_(crossed, 0.0)
        if self.w_range is not None:
            pl.weight.clamp_(*self.w_range)
        if not torch.isfinite(pl.weight).all():
            raise FloatingPointError(f"DWAM produced non-finite weights in {pl.path!r}")

    @torch.no_grad()
    def _run(self, x_seq: Tensor, weights: dict[str, Tensor]) -> Any:
        if not isinstance(x_seq, Tensor) or x_seq.dim() < 2:
            shape = list(x_seq.shape) if isinstance(x_seq, Tensor) else type(x_seq).__name__
            raise ValueError(f"DWAM expects a time-first input [T, B, ...], got {shape}")
        if x_seq.is_floating_point() and not torch.isfinite(x_seq).all():
            raise ValueError("the input x_seq contains NaN or infinite values")
        t = x_seq.shape[0]
        handles = []
        modules = dict(self.model.named_modules())
        try:
            for path, pl in self._layers.items():
                handles.append(
                    pl.linear.register_forward_hook(self._synapse_hook(pl, weights[path], t))
                )
            neuron_paths = set(self._post_of)
            if self.stream_state:
                neuron_paths |= {n for n, m in modules.items() if isinstance(m, NEURON_TYPES)}
            for npath in neuron_paths:
                m = modules[npath]
                if self.stream_state and isinstance(m, NEURON_TYPES):
                    handles.append(
                        m.register_forward_pre_hook(self._state_pre_hook(npath), with_kwargs=True)
                    )
                handles.append(m.register_forward_hook(self._neuron_hook(npath, t)))
            return self.model(x_seq)
        finally:
            for h in handles:
                h.remove()

    def _synapse_hook(self, pl: _Plastic, weight: Tensor, t: int) -> Any:
        def hook(module: nn.Module, args: tuple[Any, ...], out: Tensor) -> Tensor:
            x = args[0]
            n_in = pl.weight.shape[1]
            if x.shape[-1] != n_in or x.numel() % (t * n_in):
                raise ValueError(
                    f"plastic layer {pl.path!r} got an input {list(x.shape)} that is not a "
                    f"time-first [T = {t}, B, {n_in}] (or [T·B, {n_in}]) tensor"
                )
            if not torch.isfinite(x).all():
                raise ValueError(f"the input of the plastic layer {pl.path!r} contains NaN/inf")
            flat = x.reshape(-1, n_in).to(pl.acc_pre.dtype)
            pl.acc_pre.add_(flat.mean(0), alpha=t)
            pl.seen_pre += t
            return F.linear(x, weight.to(x.dtype), module.bias)

        return hook

    def _state_pre_hook(self, npath: str) -> Any:
        def hook(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            if len(args) != 1 or "state" in kwargs or "return_state" in kwargs:
                return None  # the caller manages the state itself
            kwargs = {**kwargs, "return_state": True}
            if npath in self._neuron_state:
                state = self._neuron_state[npath]
                v = state[0] if isinstance(state, tuple) else state
                x = args[0]
                if v.shape != x.shape[1:]:
                    raise ValueError(
                        f"stream_state: the neuron {npath!r} carries a state of shape "
                        f"{list(v.shape)} but now gets [T, B, ...] = {list(x.shape)} (batch or "
                        "neuron shape changed); call reset() between streams"
                    )
                kwargs["state"] = state
            return args, kwargs

        return hook

    def _neuron_hook(self, npath: str, t: int) -> Any:
        def hook(module: nn.Module, args: tuple[Any, ...], out: Any) -> Any:
            spikes = out
            if isinstance(out, tuple) and self.stream_state and isinstance(module, NEURON_TYPES):
                spikes, state = out
                self._neuron_state[npath] = state
            for pl in self._post_of.get(npath, []):
                n_out = pl.c_post.shape[0]
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
                if not torch.isfinite(spikes).all():
                    raise ValueError(f"the neuron {npath!r} returned NaN/inf")
                pl.acc_post.add_(spikes.reshape(-1, n_out).to(pl.acc_post.dtype).mean(0), alpha=t)
                pl.seen_post += t
            return spikes

        return hook

    # -- episodes and state ----------------------------------------------------------------

    def reset(self, seed: int | None = None) -> None:
        """Start an episode / evaluation: restore the trained weights (unless ``keep_weights``),
        clear rates, CV window, ``θ_M := c_ref``, the pending spike counts and the streamed
        neuron state. DWAM is deterministic; ``seed`` is only recorded (``episode_seed``)."""
        self.episode_seed = seed
        self._neuron_state = {}
        self._reset_adaptation(restore_weights=not self.keep_weights)

    def _reset_adaptation(self, restore_weights: bool) -> None:
        for pl in self._layers.values():
            pl.acc_pre.zero_()
            pl.acc_post.zero_()
            pl.seen_pre = pl.seen_post = 0
            if restore_weights:
                pl.weight.copy_(pl.trained.detach())
                pl.c_pre.zero_()
                pl.c_post.zero_()
                pl.window.zero_()
                pl.theta_m.copy_(pl.c_ref)
                pl.updates = 0
                pl.last_gate = None

    @property
    def weights(self) -> dict[str, Tensor]:
        """The working weights ``{layer: [N_out, N_in]}`` (live tensors; do not write)."""
        return {p: pl.weight for p, pl in self._layers.items()}

    def rates(self) -> dict[str, Tensor]:
        """The current post-synaptic rate estimates ``c`` ``{layer: [N_out]}`` (copies)."""
        return {p: pl.c_post.clone() for p, pl in self._layers.items()}

    def gates(self) -> dict[str, Tensor]:
        """The gate ``g = clip(ζ·CV, 0, 1)`` of the last update ``{layer: [N_out]}`` (zeros
        before the first update)."""
        return {
            p: (pl.last_gate if pl.last_gate is not None else torch.zeros_like(pl.c_post)).clone()
            for p, pl in self._layers.items()
        }

    def weight_change(self) -> dict[str, float]:
        """``‖W − W_0‖_F / ‖W_0‖_F`` per layer (spec §6.4)."""
        out = {}
        for p, pl in self._layers.items():
            w0 = pl.trained.detach()
            out[p] = float((pl.weight - w0).norm() / w0.norm().clamp_min(1e-12))
        return out

    def state_dict(self) -> dict[str, Any]:
        """DWAM's own state (not the model's): per layer ``{layer}.{weight, c_pre, c_post,
        theta_m, window, c_ref}`` tensors and ``{layer}.updates``, plus ``episode_seed`` and
        ``has_reference``. Pending spike counts and streamed neuron state are not saved (save
        at an update boundary)."""
        sd: dict[str, Any] = {"episode_seed": self.episode_seed, "has_reference": self._has_ref}
        for p, pl in self._layers.items():
            for name in _STATE_FIELDS:
                sd[f"{p}.{name}"] = getattr(pl, name).clone()
            sd[f"{p}.updates"] = pl.updates
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
        for p, pl in self._layers.items():
            for name in _STATE_FIELDS:
                value = state_dict[f"{p}.{name}"]
                cur = getattr(pl, name)
                if not isinstance(value, Tensor) or value.shape != cur.shape:
                    got = list(value.shape) if isinstance(value, Tensor) else type(value).__name__
                    raise ValueError(f"{p}.{name}: expected shape {list(cur.shape)}, got {got}")
                if not torch.isfinite(value).all():
                    raise ValueError(f"{p}.{name} contains NaN/inf")
        for p, pl in self._layers.items():
            for name in _STATE_FIELDS:
                getattr(pl, name).copy_(state_dict[f"{p}.{name}"])
            pl.updates = int(state_dict[f"{p}.updates"])
            pl.acc_pre.zero_()
            pl.acc_post.zero_()
            pl.seen_pre = pl.seen_post = 0
            pl.last_gate = None
        self.episode_seed = state_dict["episode_seed"]
        self._has_ref = bool(state_dict["has_reference"])
        self._neuron_state = {}

    def __repr__(self) -> str:
        return (
            f"DWAM(layers={ {p: pl.neuron_path for p, pl in self._layers.items()} }, "
            f"eta={self.eta}, tau_theta={self.tau_theta}, zeta={self.zeta}, "
            f"window={self.window}, tau_c={self.tau_c}, update_every={self.update_every})"
        )


def _as_paths(layers: Sequence[str]) -> list[str]:
    if isinstance(layers, str):
        return [layers]
    paths = list(layers)
    for p in paths:
        if not isinstance(p, str):
            raise TypeError(f"layers must be module paths (str), got {type(p).__name__}")
    return paths
