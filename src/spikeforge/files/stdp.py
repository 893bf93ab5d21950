"""Unsupervised STDP file classifier (spec ``file-classification.md`` §3.10).

Network (:class:`WTANetwork`, state = weights and adaptive thresholds)
---------------------------------------------------------------------

Input spikes ``[T, B, N_in]`` (time-first, float 0/1) drive ``N_exc`` (default 100) excitatory
LIF neurons through non-negative weights ``W [N_exc, N_in]`` (``weight``; row ``i`` = the input
weights of neuron ``i``) bounded to ``[w_lo, w_hi]`` (``[0, 1]`` without a memristive model).
Per step ``t`` and record ``b``:

1. charge: ``H = β·V + I``, ``I = W·s[t]``, ``β = exp(−1/τ_m)`` (the decay-factor LIF of
   :func:`spikeforge.core.functional.decay_lif_multistep`; written inline in
   :meth:`WTANetwork.lif_step` because the winner-take-all reset couples the neurons at every
   step; equality with the core function is tested);
2. candidates ``H_i ≥ ϑ + θ_i`` (``ϑ`` = ``threshold``, ``θ_i`` the adaptive threshold);
3. **k-WTA with k = 1**: the candidate with the largest margin ``H_i − ϑ − θ_i`` spikes (ties ->
   the lowest index), no other neuron of the record spikes in that step;
4. lateral inhibition: in a record with a winner **all** neurons are reset to 0 (the winner by
   its own reset, the others by inhibition); otherwise ``V = H``;
5. homeostasis: ``θ ← θ·exp(−1/τ_θ) + α_θ·ϑ·(spikes of the step)`` (α_θ = ``theta_plus`` is
   relative to the base threshold: the spec's α_θ = 0.05 at ϑ = 1).

Membrane potentials start at 0 for every record (per-record state); ``W`` and ``θ`` persist.

Plasticity (:class:`STDPRule` + :class:`TraceLearner`, state = traces only)
---------------------------------------------------------------------------

Pair-based trace STDP. The learner holds the pre traces ``x [B, N_in]`` and post traces
``y [B, N_exc]``, separate from the network state and **reset to zero at the start of every
record** (every call of :meth:`WTANetwork.run` resets them). Per step, with ``z`` the output
spikes of the step and ``W = W(t)`` the weights the step was computed with:

* ``x ← x·e^{−1/τ₊} + s[t]`` (pre spikes of this step included);
* depression on pre spikes, with the post trace **before** this step's post spikes are added
  (``y·e^{−1/τ₋}``): ``ΔW_ij −= η₋·y_i·s_j·(w_ij − w_lo)^μ``;
* potentiation on post spikes with the updated pre trace: ``ΔW_ij += η₊·z_i·x_j·(w_hi − w_ij)^μ``
  (a pre and a post spike in the same step count as causal: potentiation only);
* ``W(t+1) = clip(W(t) + ΔW, w_lo, w_hi)`` (μ = 0: additive with clipping; μ = 1: multiplicative
  soft bounds; any μ ≥ 0 is accepted), then ``y ← y·e^{−1/τ₋} + z``.

The bounds use ``(w_hi − w)^μ`` and ``(w − w_lo)^μ``, i.e. ``(1 − w)^μ`` and ``w^μ`` for ``[0, 1]``.
Optional normalisation (``norm=c``): after every mini-batch each row is scaled to ``Σ_j w_ij = c``
(then clipped).

Batched simulation and how it differs from sequential STDP
----------------------------------------------------------

Records are simulated ``B`` at a time (``batch_size``), **time-aligned**: step ``t`` of all ``B``
records is computed together with the same ``W(t)`` and ``θ(t)``; the ``B`` records' weight
changes of that step are **summed** into one ``ΔW`` applied before step ``t + 1``, and their
spikes summed into the θ update. Weights therefore still change every time step, as in
sequential STDP, and each record keeps its own membrane potentials and traces. The differences
from presenting the records one after the other:

* within a batch, record ``b`` sees the weight changes caused by the other records of the batch
  at the same time step, not those of its whole predecessors (all records of a batch start from
  the weights left by the previous batch);
* the adaptive thresholds likewise are shared and move by the summed spikes of the batch;
* normalisation is applied once per batch (sequentially: once per record).

With ``batch_size = 1`` it **is** strictly sequential STDP (record by record, weights updated every
step, normalisation after every record); tested against an independent scalar reference.

Memristive synapses: pass ``synapse=MemristiveSynapse(...)`` (single devices, ``w = w_scale·G``,
:class:`~spikeforge.files.memristive.MemristiveArray`). Every step's ``ΔW`` is then applied through
the device model (``mode="in_situ"``: each step programs; ``"mixed_precision"``: accumulated in χ);
the forward pass reads ``W`` from the devices (``weight()``, with read noise if enabled);
normalisation is programmed through the devices too. Per-step
STDP changes (≈ η·trace ≤ a few 0.01) are smaller than ``w_scale·δ`` (1/31 at 32 levels), so
in-situ mode needs ``stochastic_rounding=True`` (deterministic rounding would program nothing) or
mixed precision. ``w_lo, w_hi = w_scale·g_min, w_scale·g_max``.

Classifier (:class:`STDPClassifier`)
------------------------------------

scikit-learn estimator on :class:`~spikeforge.files.estimator_base.SpikingClassifierBase`
(records with a ``KeyValueEncoder`` or 2-D numeric arrays). ``fit``: unsupervised STDP for
``epochs`` passes over the (shuffled) training records, then the network is frozen (no
plasticity, ``θ`` fixed) and the training records are run once more to get the output spike
counts ``[n, N_exc]``. Readouts:

* ``readout="vote"``: each neuron is assigned the class with the highest mean count on the
  training records of that class (neurons that never fire get no class); a record's score for
  class ``c`` is the mean (``vote="mean"``, default, as Diehl & Cook) or the sum
  (``vote="sum"``) of the counts of the neurons assigned to ``c`` (0 if none); ``predict`` takes the
  largest (ties -> lowest class index; records without any vote, i.e. no spike of an assigned
  neuron -> the most frequent training class). ``predict_proba`` = the class scores normalised to
  sum 1 (for records without any vote: the training class frequencies). These are normalised
  votes, **not** calibrated probabilities.
* ``readout="logistic"``: multinomial logistic regression (L2, ``C``) on ``log1p`` spike counts;
  ``predict_proba`` is the regression's.

Measured (debfiles, feature set "full", train folds 1-4 = 32,654 records, test fold 0 = 7,382;
defaults, ``random_state=0``, one torch thread on a shared, loaded 2-core machine): fit 20.4 s
(encoding, one STDP epoch, the frozen pass and the readout), 13.8 output spikes per record;
``readout="logistic"`` accuracy 0.771, macro-F1 0.455; ``readout="vote"`` 0.167 / 0.095
(``vote="sum"`` 0.295 / 0.147), i.e. the label-free vote is **below** the majority-class baseline
(0.405): the neurons learn input clusters that do not follow the content label.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.utils.validation import check_is_fitted
from torch import Tensor
from torch.nn import functional as F

from spikeforge.files.estimator_base import EventCache, SpikingClassifierBase, iter_batches
from spikeforge.files.memristive import MemristiveArray, MemristiveSynapse

__all__ = ["READOUTS", "STDPClassifier", "STDPRule", "TraceLearner", "WTANetwork"]

READOUTS: tuple[str, ...] = ("vote", "logistic")


@dataclass(frozen=True)
class STDPRule:
    """Pair-based trace STDP parameters (module docstring). Time constants in steps."""

    tau_pre: float = 5.0
    tau_post: float = 5.0
    eta_plus: float = 0.01
    eta_minus: float = 0.0105
    mu: float = 0.0

    def __post_init__(self) -> None:
        if not (self.tau_pre > 0 and self.tau_post > 0):
            raise ValueError("tau_pre and tau_post must be > 0")
        if self.eta_plus < 0 or self.eta_minus < 0:
            raise ValueError("eta_plus and eta_minus must be >= 0")
        if not self.mu >= 0:
            raise ValueError(f"mu must be >= 0, got {self.mu}")


class TraceLearner:
    """The learner's state: pre traces ``x [B, N_in]`` and post traces ``y [B, N_out]``.

    Kept apart from the network (which holds only ``W`` and ``θ``); :meth:`reset` zeroes the traces
    for a new batch of records (called by :meth:`WTANetwork.run` before every batch).
    """

    def __init__(self, rule: STDPRule) -> None:
        self.rule = rule
        self.x: Tensor | None = None
        self.y: Tensor | None = None
        self.d_pre = math.exp(-1.0 / rule.tau_pre)
        self.d_post = math.exp(-1.0 / rule.tau_post)

    def reset(self, batch: int, n_pre: int, n_post: int, dtype: torch.dtype) -> None:
        """Zero traces ``x [batch, n_pre]``, ``y [batch, n_post]``."""
        self.x = torch.zeros(batch, n_pre, dtype=dtype)
        self.y = torch.zeros(batch, n_post, dtype=dtype)

    def step(
        self,
        pre_b: Tensor,
        pre_j: Tensor,
        post_b: Tensor,
        post_i: Tensor,
        w_t: Tensor,
        lo: float,
        hi: float,
        out: Tensor,
    ) -> None:
        """One time step of the rule (module docstring), for the batch.

        Args:
            pre_b, pre_j: the pre spikes of the step as (record, input) index pairs ``[E]``
                (no pair twice).
            post_b, post_i: the post spikes of the step as (record, neuron) index pairs ``[K]``.
            w_t: the weights the step was computed with, **transposed** ``[N_in, N_out]``.
            lo, hi: weight bounds.
            out: ``[N_in, N_out]``; the step's ``ΔWᵀ`` (summed over the batch) is **added** to it
                (``out`` may be ``w_t`` itself: the bound factors are read before any change).
        """
        assert self.x is not None and self.y is not None, "reset() first"
        r = self.rule
        self.x = self.x * self.d_pre
        self.x[pre_b, pre_j] += 1.0
        y_dec = self.y * self.d_post
        pb, pj = pre_b, pre_j
        dep = y_dec[pb]  # [E, N_out]: y_i of the record of each pre spike
        pot = self.x[post_b].t()  # [N_in, K]: x_j of the record of each post spike
        if r.mu != 0:
            dep = dep * (w_t[pj] - lo).clamp(min=0) ** r.mu
            pot = pot * (hi - w_t[:, post_i]).clamp(min=0) ** r.mu
        out.index_add_(0, pj, dep, alpha=-r.eta_minus)
        out.index_add_(1, post_i, pot, alpha=r.eta_plus)
        y_dec[post_b, post_i] += 1.0
        self.y = y_dec


class WTANetwork:
    """Excitatory LIF layer with k-WTA (k = 1) inhibition and adaptive thresholds (module
    docstring).

    Args:
        n_inputs: N_in.
        n_neurons: N_exc (default 100).
        tau_m: membrane time constant in steps (``β = exp(−1/τ_m)``).
        threshold: base threshold ϑ.
        theta_plus: α_θ, threshold increase per spike relative to ϑ (θ_i += α_θ·ϑ).
        tau_theta: decay time constant of θ in steps (``inf``: no decay); the default 300 steps is
            about 5 records of T = 64 (slow against τ_m and the STDP traces; with 10⁴ the
            thresholds outgrew the input on debfiles and the output fell to ~2 spikes a record).
        w_init: initial weights ``U(w_lo, w_lo + w_init·(w_hi − w_lo))``.
        norm: row sum after each batch (None: no normalisation).
        synapse: a :class:`MemristiveSynapse` for device-programmed weights (None: float).
        generator: ``torch.Generator`` (initial weights; the devices' randomness).
        dtype: float dtype of the state.

    State: ``weight [N_exc, N_in]`` (property; stored transposed, ``[N_in, N_exc]``, for the
    event-driven gathers), ``theta [N_exc]``.
    """

    def __init__(
        self,
        n_inputs: int,
        n_neurons: int = 100,
        *,
        tau_m: float = 10.0,
        threshold: float = 1.0,
        theta_plus: float = 0.05,
        tau_theta: float = 300.0,
        w_init: float = 0.3,
        norm: float | None = None,
        synapse: MemristiveSynapse | None = None,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        if n_inputs < 1 or n_neurons < 1:
            raise ValueError("n_inputs and n_neurons must be >= 1")
        if not tau_m > 0 or not tau_theta > 0:
            raise ValueError("tau_m and tau_theta must be > 0")
        if not threshold > 0:
            raise ValueError("threshold must be > 0")
        if theta_plus < 0 or not 0 <= w_init <= 1:
            raise ValueError("theta_plus must be >= 0 and w_init in [0, 1]")
        if norm is not None and not norm > 0:
            raise ValueError("norm must be None or > 0")
        self.n_inputs, self.n_neurons = int(n_inputs), int(n_neurons)
        self.beta = math.exp(-1.0 / tau_m)
        self.threshold = float(threshold)
        self.theta_plus = float(theta_plus)
        self.theta_decay = math.exp(-1.0 / tau_theta)
        self.norm = norm
        self.dtype = dtype
        if synapse is None:
            self.w_lo, self.w_hi = 0.0, 1.0
        else:
            self.w_lo = synapse.w_scale * synapse.g_min
            self.w_hi = synapse.w_scale * synapse.g_max
        u = torch.rand(n_neurons, n_inputs, generator=generator, dtype=dtype)
        w0 = (self.w_lo + w_init * (self.w_hi - self.w_lo) * u).t().contiguous()
        self.synapses: MemristiveArray | None = None
        if synapse is not None:
            self.synapses = MemristiveArray(synapse, w0, generator=generator)
            w0 = self.synapses.weight(noisy=False)
        self._wt = w0.clone()
        self.theta = torch.zeros(n_neurons, dtype=dtype)

    @property
    def weight(self) -> Tensor:
        """``W [N_exc, N_in]`` (a transposed view of the state; for memristive synapses the
        stored conductances × w_scale). Assigning programs it (clipped to the bounds)."""
        return self._wt.t()

    @weight.setter
    def weight(self, value: Tensor) -> None:
        value = torch.as_tensor(value, dtype=self.dtype)
        if value.shape != (self.n_neurons, self.n_inputs):
            raise ValueError(f"weight must be [{self.n_neurons}, {self.n_inputs}]")
        self._wt = value.t().clamp(self.w_lo, self.w_hi).contiguous()
        if self.synapses is not None:
            self.synapses = MemristiveArray(
                self.synapses.config, self._wt, generator=self.synapses.generator
            )
            self._wt = self.synapses.weight(noisy=False)

    def _read_weight_t(self) -> Tensor:
        return self._wt if self.synapses is None else self.synapses.weight()

    def lif_step(self, v: Tensor, current: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """One step of items 1-4 of the module docstring for ``v, current [B, N_exc]``.

        Returns ``(v_next [B, N_exc], winner_b [K], winner_i [K])``: the reset potentials and the
        (record, neuron) pairs that spiked (at most one per record). ``v`` is not modified.
        The charge ``H = β·V + I`` is the decay-factor LIF of
        :func:`spikeforge.core.functional.decay_lif_multistep` (with ``reset="none"``; equal
        to it, tested), written inline because the winner-take-all reset couples the neurons at
        every step, which the whole-sequence multi-step functions cannot express.
        """
        h = v * self.beta + current
        best, idx = (h - (self.threshold + self.theta)).max(dim=1)  # first max on ties
        has = best >= 0
        win_b = has.nonzero().squeeze(1)
        return h.masked_fill(has.unsqueeze(1), 0.0), win_b, idx[win_b]

    @torch.no_grad()
    def run(self, spikes: Tensor, learner: TraceLearner | None = None) -> Tensor:
        """Run a batch ``spikes [T, B, N_in]`` (0/1); returns output spikes ``[T, B, N_exc]``.

        With a ``learner`` the weights and θ are plastic (its traces are reset first); without,
        the network is frozen (``W`` and ``θ`` unchanged). Event-driven: input currents are sums
        of the weight rows of the inputs that spiked.
        """
        if spikes.dim() != 3 or spikes.shape[2] != self.n_inputs:
            raise ValueError(f"spikes must be [T, B, {self.n_inputs}], got {list(spikes.shape)}")
        ev_t, ev_b, ev_n = (spikes != 0).nonzero(as_tuple=True)
        return self.run_events(ev_t, ev_b, ev_n, spikes.shape[0], spikes.shape[1], learner)

    @torch.no_grad()
    def run_events(
        self,
        ev_t: Tensor,
        ev_b: Tensor,
        ev_n: Tensor,
        n_steps: int,
        batch: int,
        learner: TraceLearner | None = None,
    ) -> Tensor:
        """:meth:`run` on input spikes given as events: int64 ``(t, b, n) [E]``, sorted by
        ``(t, b)`` (no triple twice; the dense batch ``[T, B, N_in]`` is 1 exactly there)."""
        rows = ev_t * batch + ev_b  # bag t·B + b: the inputs spiking in record b at step t
        if rows.numel() and bool((rows[1:] < rows[:-1]).any()):
            raise ValueError("events must be sorted by (t, b)")
        offsets = torch.zeros(n_steps * batch + 1, dtype=torch.long)
        torch.cumsum(torch.bincount(rows, minlength=n_steps * batch), 0, out=offsets[1:])
        ptr = offsets[::batch].tolist()  # events of step t: ptr[t]:ptr[t + 1]
        v = torch.zeros(batch, self.n_neurons, dtype=self.dtype)
        out = torch.zeros(n_steps, batch, self.n_neurons, dtype=self.dtype)
        if learner is None:
            w = self._read_weight_t()
            currents = F.embedding_bag(ev_n, w, offsets[:-1], mode="sum")
            currents = currents.view(n_steps, batch, self.n_neurons)
            for t in range(n_steps):
                v, wb, wi = self.lif_step(v, currents[t])
                out[t, wb, wi] = 1.0
            return out
        learner.reset(batch, self.n_inputs, self.n_neurons, self.dtype)
        w = self._read_weight_t()
        dw = None if self.synapses is None else torch.zeros_like(self._wt)
        cfg = None if self.synapses is None else self.synapses.config
        exact_reads = cfg is None or (cfg.read_noise == 0 and cfg.drift_nu == 0)
        for t in range(n_steps):
            lo, hi = ptr[t], ptr[t + 1]
            b, n = ev_b[lo:hi], ev_n[lo:hi]
            bag_offsets = offsets[t * batch : (t + 1) * batch] - lo
            current = F.embedding_bag(n, w, bag_offsets, mode="sum")
            v, wb, wi = self.lif_step(v, current)
            out[t, wb, wi] = 1.0
            if self.synapses is None:
                learner.step(b, n, wb, wi, self._wt, self.w_lo, self.w_hi, self._wt)
                self._wt.clamp_(self.w_lo, self.w_hi)
                w = self._wt
            else:
                assert dw is not None
                dw.zero_()
                learner.step(b, n, wb, wi, self._wt, self.w_lo, self.w_hi, dw)
                self.synapses.apply(dw)
                self._wt = self.synapses.weight(noisy=False)
                w = self._wt if exact_reads else self.synapses.weight()
            self.theta = self.theta * self.theta_decay
            self.theta.index_add_(
                0, wi, torch.full(wi.shape, self.theta_plus * self.threshold, dtype=self.dtype)
            )
        if self.norm is not None:
            self._normalise()
        return out

    def _normalise(self) -> None:
        sums = self._wt.sum(0, keepdim=True).clamp(min=1e-12)
        target = (self._wt * (self.norm / sums)).clamp(self.w_lo, self.w_hi)
        if self.synapses is None:
            self._wt = target
        else:
            self.synapses.apply(target - self._wt)
            self._wt = self.synapses.weight(noisy=False)

    def state_dict(self) -> dict[str, Any]:
        """``{"weight" [N_exc, N_in], "theta"}`` (+ ``"synapses"``: the device state, in the
        transposed ``[N_in, N_exc]`` layout), cloned."""
        state: dict[str, Any] = {"weight": self.weight.clone(), "theta": self.theta.clone()}
        if self.synapses is not None:
            state["synapses"] = self.synapses.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict`."""
        self._wt = state["weight"].to(self.dtype).t().contiguous()
        self.theta = state["theta"].to(self.dtype).clone()
        if self.synapses is not None and "synapses" in state:
            self.synapses.load_state_dict(state["synapses"])
            self._wt = self.synapses.weight(noisy=False)

    def run_cache(
        self, cache: EventCache, idx: np.ndarray, learner: TraceLearner | None = None
    ) -> Tensor:
        """:meth:`run` on the records ``idx`` of an :class:`EventCache` (never densified)."""
        t, b, n = cache.coo(idx)  # record by record, so b ascends
        small = t.astype(np.int16) if cache.n_steps <= 32767 else t
        order = np.argsort(small, kind="stable")  # a radix sort for 16-bit keys
        ev = [torch.from_numpy(a[order]) for a in (t, b, n)]
        return self.run_events(*ev, cache.n_steps, len(idx), learner)

    @torch.no_grad()
    def counts(self, cache: EventCache, batch_size: int = 512) -> np.ndarray:
        """Frozen output spike counts ``[n, N_exc]`` float64 of all records of ``cache``."""
        rows = []
        for idx in iter_batches(len(cache), batch_size):
            rows.append(self.run_cache(cache, idx).sum(0).double().numpy())
        if not rows:
            return np.zeros((0, self.n_neurons))
        return np.concatenate(rows, axis=0)


class STDPClassifier(SpikingClassifierBase):
    """Unsupervised STDP network + post-hoc readout (module docstring), a scikit-learn
    classifier.

    Args:
        encoder: :class:`~spikeforge.encoding.KeyValueEncoder` for records (template for arrays).
        n_neurons: N_exc.
        epochs: passes of unsupervised STDP over the training records.
        batch_size: records simulated together (1 = strictly sequential STDP).
        threshold: base threshold ϑ of :class:`WTANetwork`, or ``"auto"`` (default): half the
            mean steady-state potential the training records would drive at the initial weights,
            ``ϑ = 0.5·r̄·w̄₀/(1 − β)`` with ``r̄`` the mean input spikes per step and record and
            ``w̄₀`` the mean initial weight (input scales differ by orders of magnitude between
            data sets; homeostasis can raise a threshold but never lower it). ``threshold_`` holds
            the value used.
        tau_m, theta_plus, tau_theta, w_init, norm: :class:`WTANetwork`.
        tau_pre, tau_post, eta_plus, eta_minus, mu: :class:`STDPRule`.
        synapse: :class:`MemristiveSynapse` (single devices) or None.
        readout: ``"vote"`` or ``"logistic"``.
        vote: how the vote readout aggregates the counts of a class's neurons: ``"mean"``
            (Diehl & Cook) or ``"sum"``.
        C: inverse L2 strength of the logistic readout.
        max_train_records: STDP on at most this many (randomly chosen) training records per
            epoch (None: all); the readout always uses all training records.
        random_state: None, int or RandomState.

    Fitted attributes (besides the base's): ``network_`` (:class:`WTANetwork`),
    ``assignments_ [N_exc]`` (class index, −1 = never fired), ``class_prior_ [C]``,
    ``logistic_`` (readout ``"logistic"``), ``train_spikes_per_record_`` (mean output spikes).
    """

    def __init__(
        self,
        encoder: Any = None,
        n_neurons: int = 100,
        epochs: int = 1,
        batch_size: int = 64,
        tau_m: float = 10.0,
        threshold: float | str = "auto",
        theta_plus: float = 0.05,
        tau_theta: float = 300.0,
        w_init: float = 0.3,
        norm: float | None = None,
        tau_pre: float = 5.0,
        tau_post: float = 5.0,
        eta_plus: float = 0.01,
        eta_minus: float = 0.0105,
        mu: float = 0.0,
        synapse: MemristiveSynapse | None = None,
        readout: str = "vote",
        vote: str = "mean",
        C: float = 1.0,
        max_train_records: int | None = None,
        random_state: Any = None,
    ) -> None:
        self.encoder = encoder
        self.n_neurons = n_neurons
        self.epochs = epochs
        self.batch_size = batch_size
        self.tau_m = tau_m
        self.threshold = threshold
        self.theta_plus = theta_plus
        self.tau_theta = tau_theta
        self.w_init = w_init
        self.norm = norm
        self.tau_pre = tau_pre
        self.tau_post = tau_post
        self.eta_plus = eta_plus
        self.eta_minus = eta_minus
        self.mu = mu
        self.synapse = synapse
        self.readout = readout
        self.vote = vote
        self.C = C
        self.max_train_records = max_train_records
        self.random_state = random_state

    def _check_params(self) -> None:
        if self.readout not in READOUTS:
            raise ValueError(f"readout must be one of {READOUTS}, got {self.readout!r}")
        if self.vote not in ("mean", "sum"):
            raise ValueError(f"vote must be 'mean' or 'sum', got {self.vote!r}")
        if int(self.epochs) != self.epochs or self.epochs < 0:
            raise ValueError(f"epochs must be an integer >= 0, got {self.epochs}")
        if int(self.batch_size) != self.batch_size or self.batch_size < 1:
            raise ValueError(f"batch_size must be an integer >= 1, got {self.batch_size}")
        if self.synapse is not None and not isinstance(self.synapse, MemristiveSynapse):
            raise TypeError("synapse must be a MemristiveSynapse or None")
        if not self.C > 0:
            raise ValueError("C must be > 0")
        if isinstance(self.threshold, str):
            if self.threshold != "auto":
                raise ValueError(
                    f"threshold must be a number > 0 or 'auto', got {self.threshold!r}"
                )
        elif not self.threshold > 0:
            raise ValueError(f"threshold must be > 0, got {self.threshold}")
        if self.max_train_records is not None and self.max_train_records < 1:
            raise ValueError("max_train_records must be None or >= 1")

    def fit(self, X: Any, y: Any) -> STDPClassifier:
        """Unsupervised STDP on ``X`` (``y`` is used only by the readout), then the readout."""
        self._check_params()
        rule = STDPRule(self.tau_pre, self.tau_post, self.eta_plus, self.eta_minus, self.mu)
        cache, y_enc = self._fit_inputs(X, y)
        rng, gen = self._generators()
        net = WTANetwork(
            self.n_inputs_,
            int(self.n_neurons),
            tau_m=self.tau_m,
            threshold=1.0,
            theta_plus=self.theta_plus,
            tau_theta=self.tau_theta,
            w_init=self.w_init,
            norm=self.norm,
            synapse=self.synapse,
            generator=gen,
        )
        learner = TraceLearner(rule)
        self.threshold_ = self._threshold(cache, net)
        net.threshold = self.threshold_
        n = len(cache)
        for _ in range(int(self.epochs)):
            pool = np.arange(n)
            if self.max_train_records is not None and self.max_train_records < n:
                pool = rng.choice(n, size=int(self.max_train_records), replace=False)
            for idx in iter_batches(pool.shape[0], int(self.batch_size), rng):
                net.run_cache(cache, pool[idx], learner)
        self.network_ = net
        counts = net.counts(cache)
        self.train_spikes_per_record_ = float(counts.sum(1).mean())
        n_classes = self.classes_.shape[0]
        self.class_prior_ = np.bincount(y_enc, minlength=n_classes) / y_enc.shape[0]
        # mean response of each neuron per class -> assignment (−1: never fired)
        means = np.zeros((n_classes, net.n_neurons))
        np.add.at(means, y_enc, counts)
        means /= np.maximum(np.bincount(y_enc, minlength=n_classes), 1)[:, None]
        assign = np.argmax(means, axis=0)
        assign[counts.sum(0) == 0] = -1
        self.assignments_ = assign
        if self.readout == "logistic":
            self.logistic_ = LogisticRegression(C=self.C, max_iter=2000)
            self.logistic_.fit(np.log1p(counts), y_enc)
        else:
            self.__dict__.pop("logistic_", None)
        return self

    # -- saving (spikeforge.files.persist) -------------------------------------------------

    def _fitted_state(self) -> dict[str, Any]:
        """Weights, thresholds, readout as tensors and plain values (for ``save_model``)."""
        check_is_fitted(self, ("network_", "assignments_"))
        state: dict[str, Any] = {
            "network": self.network_.state_dict(),
            "threshold": self.threshold_,
            "train_spikes_per_record": self.train_spikes_per_record_,
            "class_prior": torch.as_tensor(self.class_prior_),
            "assignments": torch.as_tensor(self.assignments_),
        }
        if self.readout == "logistic":
            lr = self.logistic_
            state["logistic"] = {
                "coef": torch.as_tensor(lr.coef_),
                "intercept": torch.as_tensor(lr.intercept_),
                "classes": torch.as_tensor(lr.classes_),
            }
        return state

    def _load_fitted_state(self, state: dict[str, Any]) -> None:
        """Rebuild ``network_`` and the readout from :meth:`_fitted_state` (the base attributes
        ``classes_``, ``n_inputs_`` ... are restored before)."""
        net = WTANetwork(
            self.n_inputs_,
            int(self.n_neurons),
            tau_m=self.tau_m,
            threshold=float(state["threshold"]),
            theta_plus=self.theta_plus,
            tau_theta=self.tau_theta,
            w_init=self.w_init,
            norm=self.norm,
            synapse=self.synapse,
            generator=torch.Generator(),
        )
        net.load_state_dict(state["network"])
        self.network_ = net
        self.threshold_ = float(state["threshold"])
        self.train_spikes_per_record_ = float(state["train_spikes_per_record"])
        self.class_prior_ = state["class_prior"].numpy()
        self.assignments_ = state["assignments"].numpy()
        if "logistic" in state:
            lr = LogisticRegression(C=self.C, max_iter=2000)
            lr.coef_ = state["logistic"]["coef"].numpy()
            lr.intercept_ = state["logistic"]["intercept"].numpy()
            lr.classes_ = state["logistic"]["classes"].numpy()
            lr.n_features_in_ = lr.coef_.shape[1]
            self.logistic_ = lr

    def _threshold(self, cache: EventCache, net: WTANetwork) -> float:
        if not isinstance(self.threshold, str):
            return float(self.threshold)
        rate = float(cache.n_events.mean()) / cache.n_steps if len(cache) else 0.0
        value = 0.5 * rate * float(net.weight.mean()) / (1.0 - net.beta)
        return value if value > 0 else 1.0

    def _votes(self, counts: np.ndarray) -> np.ndarray:
        n_classes = self.classes_.shape[0]
        scores = np.zeros((counts.shape[0], n_classes))
        for c in range(n_classes):
            members = self.assignments_ == c
            if members.any():
                sel = counts[:, members]
                scores[:, c] = sel.mean(1) if self.vote == "mean" else sel.sum(1)
        return scores

    def _proba_from_counts(self, counts: np.ndarray) -> np.ndarray:
        if self.readout == "logistic":
            proba = np.zeros((counts.shape[0], self.classes_.shape[0]))
            proba[:, self.logistic_.classes_] = self.logistic_.predict_proba(np.log1p(counts))
            return proba
        votes = self._votes(counts)
        total = votes.sum(1, keepdims=True)
        silent = total[:, 0] <= 0
        proba = np.where(
            silent[:, None],
            self.class_prior_[None, :],
            votes / np.where(silent[:, None], 1.0, total),
        )
        return proba

    def _scores(self, cache: EventCache) -> np.ndarray:
        return self._proba_from_counts(self.network_.counts(cache))

    def predict_proba(self, X: Any) -> np.ndarray:
        """``[n, C]``: normalised class votes (``readout="vote"``; see the module docstring) or
        the logistic readout's probabilities."""
        cache = self._predict_inputs(X)
        return self._scores(cache)

    def transform_counts(self, X: Any) -> np.ndarray:
        """Frozen output spike counts ``[n, N_exc]`` of ``X``."""
        return self.network_.counts(self._predict_inputs(X))
