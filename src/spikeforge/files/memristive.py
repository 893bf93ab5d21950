"""Memristive synapse model: bounded, quantised, optionally noisy conductance updates (spec
``file-classification.md`` §3.11).

The device model of the paper is unknown; this is a generic, parameterised model. Nothing in it
is specific to one technology (no PCM claims).

Quick start
-----------

::

    cfg = MemristiveSynapse(n_levels=32, w_scale=0.5)          # frozen config
    arr = DifferentialArray(cfg, layer.weight.detach())         # program the initial weight
    ...
    # after optimiser.step() has moved ``layer.weight`` by the desired Δw:
    arr.program_parameter(layer.weight)  # Δw = param − arr.weight(); apply; param ← arr.weight()

or explicitly: ``arr.apply(delta_w)`` then ``layer.weight.data.copy_(arr.weight())``.

Configuration (:class:`MemristiveSynapse`, frozen dataclass)
------------------------------------------------------------

* ``g_min``, ``g_max`` (default 0, 1): conductance bounds (normalised units); ``R = g_max − g_min``.
* ``n_levels`` (default 32): ``δ = R/(n_levels − 1)``, the nominal (linear) step of one pulse.
* ``quantize`` (default True). ``False`` is the **ideal mode**: continuous conductance, an update
  Δw changes G by exactly ``Δw/w_scale`` (no pulses, no rounding, no nonlinearity), then G is
  clipped to the bounds. Noise and drift still apply if enabled (they are off by default).
* ``gamma_p``, ``gamma_d`` (default 0): pulse nonlinearity. One potentiation pulse:
  ``ΔG = +δ·((g_max − G)/R)^gamma_p``; one depression pulse: ``ΔG = −δ·((G − g_min)/R)^gamma_d``.
  With γ = 0 every pulse is exactly δ and a device initialised on a level stays on the
  ``n_levels`` levels ``g_min + k·δ`` (the level index is recomputed after every update, so no
  floating-point drift accumulates).
* ``w_scale`` (default 1): weight per unit conductance.
* ``stochastic_rounding`` (default False), ``max_pulses`` (default None = no cap),
  ``mode`` (``"in_situ"`` default, or ``"mixed_precision"``): see *Applying Δw*.
* ``write_noise`` σ_w (default 0): every pulse adds ``N(0, (σ_w·δ)²)``.
* ``read_noise`` σ_r (default 0): every :meth:`weight` read sees ``G + N(0, (σ_r·G)²)`` (fresh
  each read; the stored G is unchanged).
* ``drift_nu`` ν (default 0), ``drift_t0`` t₀ (default 1): a device programmed at clock time
  ``t_p`` reads ``G₀·(max(t − t_p, t₀)/t₀)^(−ν)`` at clock time ``t`` (the clock is advanced by
  :meth:`advance`, in arbitrary units). When a device is programmed again, its drifted value
  becomes the new G₀ before the pulses act.
* ``refresh_margin`` (default 0.5): a device of a differential pair counts as saturated when
  ``G ≥ g_max − refresh_margin·δ`` (in quantised linear mode: at the top level).

Applying Δw (:meth:`MemristiveArray.apply`, ``delta_w`` has the array's shape)
------------------------------------------------------------------------------

* **in-situ** (``mode="in_situ"``): every call programs the devices. Pulse count per element:
  ``x = Δw/(w_scale·δ)``; ``n = round(x)`` (``torch.round``, half to even) or, with
  ``stochastic_rounding``, ``n = floor(x) + Bernoulli(x − floor(x))`` drawn from the array's
  ``torch.Generator`` (so ``E[n] = x``); then ``n`` is clipped to ``[−max_pulses, max_pulses]``.
  The ``|n|`` pulses are applied one after the other (each pulse sees the conductance left by
  the previous one), and G is clipped to ``[g_min, g_max]`` after every pulse.
* **mixed precision** (``mode="mixed_precision"``): Δw is added to a float accumulator χ (one per
  synapse, kept in the array). Where ``|χ| ≥ w_scale·δ``, ``n = trunc(χ/(w_scale·δ))`` pulses
  (capped by ``max_pulses``) are applied and ``χ ← χ − n·w_scale·δ`` (the nominal amount is
  removed, whatever the device did). ``stochastic_rounding`` is ignored in this mode.
  Requires ``quantize=True``.

Single device (:class:`MemristiveArray`): ``w = w_scale·G`` (non-negative; for STDP).
Positive ``n`` = potentiation pulses, negative ``n`` = depression pulses.

Differential pair (:class:`DifferentialArray`): ``w = w_scale·(G⁺ − G⁻)`` with **SET-only**
devices: ``n > 0`` potentiation pulses on G⁺, ``n < 0`` potentiation pulses (``gamma_p``) on G⁻.
``gamma_d`` is not used by pairs. After the pulses, every pair in which either device is
saturated is **refreshed**: both devices are reset to ``g_min`` and the difference
``D = G⁺ − G⁻`` is re-programmed on one device (G⁺ if D > 0, else G⁻) by program-and-verify
pulses (pulses are applied while one more pulse brings G closer to ``g_min + |D|``; with γ = 0
this is exactly ``round(|D|/δ)`` pulses; write noise applies to these pulses). In ideal mode the
refresh sets ``g_min + |D|`` exactly. The number of refreshes is counted in ``refreshes``.

Initial programming (constructors): a given initial weight is written exactly (no noise) as the
nearest reachable conductance: ``G = clip(w/w_scale)`` for a single device, ``G⁺ = g_min +
max(w, 0)/w_scale``, ``G⁻ = g_min + max(−w, 0)/w_scale`` for a pair (clipped), snapped to the
nearest level when quantised.

Ideal mode reproduces float updates: with ``quantize=False``, no noise, no drift, and no bound
reached, ``weight()`` after ``apply(Δw)`` equals ``w + Δw``: bit for bit for a single device
when ``w_scale`` is a power of two (scaling by a power of two commutes with rounding), and to
floating-point rounding (one extra addition) for a pair.

State (``state_dict``): ``g`` (single) or ``g_pos``/``g_neg`` (pair), ``chi`` (the mixed-precision
accumulator), ``t_prog`` (the clock time each device was last programmed; single devices track it
only when ``drift_nu > 0``, where it matters), ``clock``, and the
counters ``pulses`` (total pulses applied, all devices) and ``refreshes``. The config is not part
of the state; :meth:`load_state_dict` checks shapes.

Layout: the arrays hold tensors of any shape (e.g. a Linear weight ``[out, in]``); all
operations are elementwise. dtype and device follow the initial weight tensor.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor

__all__ = [
    "MODES",
    "DifferentialArray",
    "MemristiveArray",
    "MemristiveSynapse",
    "Mode",
]

Mode = Literal["in_situ", "mixed_precision"]
MODES: tuple[str, ...] = ("in_situ", "mixed_precision")


@dataclass(frozen=True)
class MemristiveSynapse:
    """Device and programming parameters (see the module docstring for the exact semantics)."""

    n_levels: int = 32
    g_min: float = 0.0
    g_max: float = 1.0
    quantize: bool = True
    gamma_p: float = 0.0
    gamma_d: float = 0.0
    w_scale: float = 1.0
    stochastic_rounding: bool = False
    max_pulses: int | None = None
    mode: Mode = "in_situ"
    write_noise: float = 0.0
    read_noise: float = 0.0
    drift_nu: float = 0.0
    drift_t0: float = 1.0
    refresh_margin: float = 0.5

    def __post_init__(self) -> None:
        if int(self.n_levels) != self.n_levels or self.n_levels < 2:
            raise ValueError(f"n_levels must be an integer >= 2, got {self.n_levels!r}")
        if not self.g_max > self.g_min:
            raise ValueError(f"need g_max > g_min, got [{self.g_min}, {self.g_max}]")
        if not self.w_scale > 0:
            raise ValueError(f"w_scale must be > 0, got {self.w_scale}")
        if self.gamma_p < 0 or self.gamma_d < 0:
            raise ValueError("gamma_p and gamma_d must be >= 0")
        if self.max_pulses is not None and (
            int(self.max_pulses) != self.max_pulses or self.max_pulses < 1
        ):
            raise ValueError(f"max_pulses must be None or an integer >= 1, got {self.max_pulses}")
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        if self.mode == "mixed_precision" and not self.quantize:
            raise ValueError("mode='mixed_precision' needs quantize=True")
        for name in ("write_noise", "read_noise", "drift_nu", "refresh_margin"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")
        if not self.drift_t0 > 0:
            raise ValueError("drift_t0 must be > 0")

    @property
    def g_range(self) -> float:
        """``R = g_max − g_min``."""
        return self.g_max - self.g_min

    @property
    def delta(self) -> float:
        """``δ = R/(n_levels − 1)``: the nominal conductance step of one pulse."""
        return self.g_range / (self.n_levels - 1)

    @property
    def dw_min(self) -> float:
        """``w_scale·δ``: the nominal weight change of one pulse."""
        return self.w_scale * self.delta

    def array(
        self,
        weight: Tensor,
        *,
        differential: bool = False,
        generator: torch.Generator | None = None,
    ) -> MemristiveArray | DifferentialArray:
        """A :class:`MemristiveArray` (or, with ``differential``, a :class:`DifferentialArray`)
        programmed with ``weight``."""
        cls = DifferentialArray if differential else MemristiveArray
        return cls(self, weight, generator=generator)


class _Base:
    """Shared machinery: pulse counting, pulse application, noise, drift, accumulator."""

    config: MemristiveSynapse

    def __init__(
        self, config: MemristiveSynapse, weight: Tensor, generator: torch.Generator | None
    ) -> None:
        if not isinstance(config, MemristiveSynapse):
            raise TypeError("config must be a MemristiveSynapse")
        weight = torch.as_tensor(weight)
        if not weight.is_floating_point():
            weight = weight.to(torch.get_default_dtype())
        self.config = config
        self.generator = generator
        self._like = weight.detach()
        self.chi = torch.zeros_like(self._like)
        self.clock = 0.0
        self.pulses = 0
        self.refreshes = 0

    # -- helpers ---------------------------------------------------------------------------
    def _randn(self, like: Tensor) -> Tensor:
        return torch.randn(
            like.shape, generator=self.generator, dtype=like.dtype, device=like.device
        )

    def _rand(self, like: Tensor) -> Tensor:
        return torch.rand(
            like.shape, generator=self.generator, dtype=like.dtype, device=like.device
        )

    def _snap(self, g: Tensor) -> Tensor:
        """Linear noiseless pulses: clip to the bounds and snap to the nearest level."""
        c = self.config
        if c.quantize and c.write_noise == 0:
            k = torch.round((g - c.g_min) / c.delta).clamp_(0, c.n_levels - 1)
            return k.mul_(c.delta).add_(c.g_min)
        return g.clamp(c.g_min, c.g_max)

    def _initial(self, g: Tensor) -> Tensor:
        c = self.config
        g = g.clamp(c.g_min, c.g_max)
        if c.quantize:
            k = torch.round((g - c.g_min) / c.delta).clamp(0, c.n_levels - 1)
            g = c.g_min + k * c.delta
        return g

    def _pulse_counts(self, delta_w: Tensor) -> Tensor:
        """Signed pulse counts for a desired Δw (in-situ rounding or mixed-precision χ)."""
        c = self.config
        if c.mode == "mixed_precision":
            self.chi = self.chi + delta_w
            n = torch.trunc(self.chi / c.dw_min)
        else:
            x = delta_w / c.dw_min
            if c.stochastic_rounding:
                fl = torch.floor(x)
                n = fl.add_((self._rand(x) < x.sub_(fl)).to(x.dtype))
            else:
                n = torch.round(x)
        if c.max_pulses is not None:
            n = n.clamp(-c.max_pulses, c.max_pulses)
        if c.mode == "mixed_precision":
            self.chi = self.chi - n * c.dw_min
        return n

    def _pulse(self, g: Tensor, n: Tensor, allow_depression: bool = True) -> Tensor:
        """Apply ``n`` (signed, integer-valued) pulses elementwise to ``g``; returns the new G.

        Linear noiseless devices take the closed form ``g + n·δ`` (then level snapping); otherwise
        the pulses are applied one at a time, ``max|n|`` vectorised iterations.
        """
        c = self.config
        linear = c.gamma_p == 0 and (c.gamma_d == 0 or not allow_depression)
        if linear and c.write_noise == 0:
            if not allow_depression:
                n = n.clamp(min=0)
            self.pulses += int(n.abs().sum().item())
            return self._snap(g + n * c.delta)
        npos = n.clamp(min=0)
        nneg = (-n).clamp(min=0) if allow_depression else torch.zeros_like(n)
        self.pulses += int(npos.sum().item() + nneg.sum().item())
        steps = int(
            max(npos.max().item() if npos.numel() else 0, nneg.max().item() if nneg.numel() else 0)
        )
        r = c.g_range
        for k in range(steps):
            up = npos > k
            down = nneg > k
            dg = torch.zeros_like(g)
            if bool(up.any()):
                dp = c.delta * ((c.g_max - g) / r).clamp(min=0) ** c.gamma_p
                dg = torch.where(up, dp, dg)
            if bool(down.any()):
                dd = -c.delta * ((g - c.g_min) / r).clamp(min=0) ** c.gamma_d
                dg = torch.where(down, dd, dg)
            if c.write_noise > 0:
                dg = dg + torch.where(up | down, c.write_noise * c.delta * self._randn(g), 0.0)
            g = (g + dg).clamp(c.g_min, c.g_max)
        return g

    def _program_to(self, target: Tensor, mask: Tensor) -> Tensor:
        """Program-and-verify from ``g_min`` towards ``target`` on the elements in ``mask``
        (SET pulses while one more pulse brings G closer); returns the new G there (g_min
        elsewhere)."""
        c = self.config
        g = torch.full_like(target, c.g_min)
        if not c.quantize:
            return torch.where(mask, target.clamp(c.g_min, c.g_max), g)
        if c.gamma_p == 0 and c.write_noise == 0:
            n = torch.round((target - c.g_min) / c.delta).clamp(0, c.n_levels - 1)
            n = torch.where(mask, n, 0.0)
            self.pulses += int(n.sum().item())
            return self._snap(g + n * c.delta)
        active = mask.clone()
        r = c.g_range
        for _ in range(4 * (c.n_levels - 1)):
            if not bool(active.any()):
                break
            dp = c.delta * ((c.g_max - g) / r).clamp(min=0) ** c.gamma_p
            better = (target - (g + dp)).abs() < (target - g).abs()
            go = active & better
            active = go
            self.pulses += int(go.sum().item())
            step = dp
            if c.write_noise > 0:
                step = step + c.write_noise * c.delta * self._randn(g)
            g = torch.where(go, (g + step).clamp(c.g_min, c.g_max), g)
        return g

    def _drifted(self, g: Tensor) -> Tensor:
        c = self.config
        if c.drift_nu == 0:
            return g
        elapsed = (self.clock - self.t_prog).clamp(min=c.drift_t0)
        return g * (elapsed / c.drift_t0) ** (-c.drift_nu)

    def _read(self, g: Tensor) -> Tensor:
        g = self._drifted(g)
        if self.config.read_noise > 0:
            g = g + self.config.read_noise * g * self._randn(g)
        return g

    # -- public ----------------------------------------------------------------------------
    def advance(self, dt: float = 1.0) -> None:
        """Advance the drift clock by ``dt`` (no effect unless ``drift_nu > 0``)."""
        self.clock += float(dt)

    def reset_accumulator(self) -> None:
        """Zero the mixed-precision accumulator χ."""
        self.chi = torch.zeros_like(self.chi)

    def program_parameter(self, param: Tensor) -> None:
        """Treat ``param``'s current value as the desired weight: apply
        ``Δw = param − weight(read_noise=False)`` and copy the realised weight back into
        ``param`` (in place, without autograd)."""
        with torch.no_grad():
            desired = param.detach().to(self._like.dtype)
            self.apply(desired - self.weight(noisy=False))
            param.copy_(self.weight(noisy=False).to(param.dtype))

    def apply(self, delta_w: Tensor) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def weight(self, noisy: bool = True) -> Tensor:  # pragma: no cover - overridden
        raise NotImplementedError

    def _check(self, delta_w: Tensor) -> Tensor:
        delta_w = torch.as_tensor(delta_w, dtype=self._like.dtype, device=self._like.device)
        if delta_w.shape != self._like.shape:
            raise ValueError(
                f"delta_w has shape {tuple(delta_w.shape)}, array {tuple(self._like.shape)}"
            )
        return delta_w.detach()

    def _common_state(self) -> dict[str, Any]:
        return {
            "chi": self.chi.clone(),
            "t_prog": self.t_prog.clone(),
            "clock": self.clock,
            "pulses": self.pulses,
            "refreshes": self.refreshes,
        }

    def _load_common(self, state: dict[str, Any]) -> None:
        for key in ("chi", "t_prog"):
            if tuple(state[key].shape) != tuple(self._like.shape):
                raise ValueError(f"state {key!r} has shape {tuple(state[key].shape)}")
        self.chi = state["chi"].to(self._like).clone()
        self.t_prog = state["t_prog"].to(self._like).clone()
        self.clock = float(state["clock"])
        self.pulses = int(state["pulses"])
        self.refreshes = int(state["refreshes"])


class MemristiveArray(_Base):
    """Single devices, one per synapse: ``w = w_scale·G`` (non-negative weights, e.g. STDP).

    Args:
        config: the device parameters.
        weight: initial weight (any shape); programmed exactly to the nearest reachable level.
        generator: ``torch.Generator`` for stochastic rounding and noise (None: the global one).
    """

    def __init__(
        self,
        config: MemristiveSynapse,
        weight: Tensor,
        *,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__(config, weight, generator)
        self.g = self._initial(self._like / config.w_scale)
        self.t_prog = torch.zeros_like(self.g)

    def conductance(self) -> Tensor:
        """The stored (programmed, undrifted, noiseless) conductance G, same shape as the weight."""
        return self.g

    def apply(self, delta_w: Tensor) -> None:
        """Program the devices with the desired weight change ``delta_w`` (module docstring)."""
        c = self.config
        delta_w = self._check(delta_w)
        if not c.quantize:
            touched = delta_w != 0
            g = self._drifted(self.g) if c.drift_nu > 0 else self.g
            self.g = torch.where(touched, (g + delta_w / c.w_scale).clamp(c.g_min, c.g_max), g)
            if c.drift_nu > 0:
                self.t_prog = torch.where(touched, self.clock, self.t_prog)
            return
        n = self._pulse_counts(delta_w)
        touched = n != 0
        if not bool(touched.any()):
            return
        g = torch.where(touched, self._drifted(self.g), self.g) if c.drift_nu > 0 else self.g
        self.g = self._pulse(g, n, allow_depression=True)
        if c.drift_nu > 0:
            self.t_prog = torch.where(touched, self.clock, self.t_prog)

    def weight(self, noisy: bool = True) -> Tensor:
        """``w_scale·G`` as read now (read noise and drift if enabled; ``noisy=False``: the
        stored conductance, no read noise, no drift)."""
        g = self._read(self.g) if noisy else self.g
        return self.config.w_scale * g

    def state_dict(self) -> dict[str, Any]:
        """``{"g", "chi", "t_prog", "clock", "pulses", "refreshes"}`` (tensors cloned)."""
        return {"g": self.g.clone(), **self._common_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict` (shapes must match)."""
        if tuple(state["g"].shape) != tuple(self._like.shape):
            raise ValueError(f"state 'g' has shape {tuple(state['g'].shape)}")
        self._load_common(state)
        self.g = state["g"].to(self._like).clone()


class DifferentialArray(_Base):
    """Differential pairs of SET-only devices: ``w = w_scale·(G⁺ − G⁻)`` (signed weights), with
    refresh on saturation (module docstring).

    Args:
        config: the device parameters.
        weight: initial weight (any shape); ``G⁺``/``G⁻`` programmed exactly to the nearest
            reachable levels (positive part on ``G⁺``, negative part on ``G⁻``).
        generator: ``torch.Generator`` for stochastic rounding and noise (None: the global one).
    """

    def __init__(
        self,
        config: MemristiveSynapse,
        weight: Tensor,
        *,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__(config, weight, generator)
        w = self._like / config.w_scale
        self.g_pos = self._initial(config.g_min + w.clamp(min=0))
        self.g_neg = self._initial(config.g_min + (-w).clamp(min=0))
        self.t_prog = torch.zeros_like(self.g_pos)

    def conductance(self) -> tuple[Tensor, Tensor]:
        """The stored conductances ``(G⁺, G⁻)``."""
        return self.g_pos, self.g_neg

    def _saturated(self, g: Tensor) -> Tensor:
        c = self.config
        if not c.quantize:
            return g >= c.g_max
        return g >= c.g_max - c.refresh_margin * c.delta

    def apply(self, delta_w: Tensor) -> None:
        """Program the pairs with the desired weight change ``delta_w`` (module docstring)."""
        c = self.config
        delta_w = self._check(delta_w)
        if not c.quantize:
            touched = delta_w != 0
            gp, gn = self.g_pos, self.g_neg
            if c.drift_nu > 0:
                gp = torch.where(touched, self._drifted(gp), gp)
                gn = torch.where(touched, self._drifted(gn), gn)
            step = delta_w / c.w_scale
            self.g_pos = torch.where(delta_w > 0, (gp + step).clamp(c.g_min, c.g_max), gp)
            self.g_neg = torch.where(delta_w < 0, (gn - step).clamp(c.g_min, c.g_max), gn)
        else:
            n = self._pulse_counts(delta_w)
            touched = n != 0
            if not bool(touched.any()):
                return
            gp, gn = self.g_pos, self.g_neg
            if c.drift_nu > 0:
                gp = torch.where(touched, self._drifted(gp), gp)
                gn = torch.where(touched, self._drifted(gn), gn)
            self.g_pos = self._pulse(gp, n.clamp(min=0), allow_depression=False)
            self.g_neg = self._pulse(gn, (-n).clamp(min=0), allow_depression=False)
        self.t_prog = torch.where(touched, self.clock, self.t_prog)
        self._refresh()

    def _refresh(self) -> None:
        c = self.config
        sat = self._saturated(self.g_pos) | self._saturated(self.g_neg)
        if not bool(sat.any()):
            return
        self.refreshes += int(sat.sum().item())
        d = self.g_pos - self.g_neg
        target = c.g_min + d.abs()
        new_pos = self._program_to(target, sat & (d > 0))
        new_neg = self._program_to(target, sat & (d < 0))
        self.g_pos = torch.where(sat, new_pos, self.g_pos)
        self.g_neg = torch.where(sat, new_neg, self.g_neg)
        self.t_prog = torch.where(sat, self.clock, self.t_prog)

    def weight(self, noisy: bool = True) -> Tensor:
        """``w_scale·(G⁺ − G⁻)`` as read now (read noise and drift on each device if enabled)."""
        if noisy:
            return self.config.w_scale * (self._read(self.g_pos) - self._read(self.g_neg))
        return self.config.w_scale * (self.g_pos - self.g_neg)

    def state_dict(self) -> dict[str, Any]:
        """``{"g_pos", "g_neg", "chi", "t_prog", "clock", "pulses", "refreshes"}``."""
        return {"g_pos": self.g_pos.clone(), "g_neg": self.g_neg.clone(), **self._common_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict` (shapes must match)."""
        for key in ("g_pos", "g_neg"):
            if tuple(state[key].shape) != tuple(self._like.shape):
                raise ValueError(f"state {key!r} has shape {tuple(state[key].shape)}")
        self._load_common(state)
        self.g_pos = state["g_pos"].to(self._like).clone()
        self.g_neg = state["g_neg"].to(self._like).clone()
