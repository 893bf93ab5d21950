"""Supervised spiking file classifier (spec file-classification §3.1, §3.6-3.9, §3.11).

:class:`SNNClassifier` is a scikit-learn classifier: records (key -> value mappings, with a
:class:`~spikeforge.encoding.KeyValueEncoder`) or numeric arrays are encoded once into input spikes
(:mod:`spikeforge.files.estimator_base`), fed to a feed-forward LIF network

    input spikes [T, B, N_in] -> hidden LIF [T, B, n_hidden] -> output LIF [T, B, C·g]

trained by BPTT with surrogate gradients to emit the target pattern of the record's class
(:mod:`spikeforge.files.targets`), with the exact grid van Rossum distance as the loss
(:func:`spikeforge.losses.van_rossum_distance`), and predicting the class whose target is nearest
(argmin of the van Rossum distance, ties -> lowest class index).

Neurons (spec §3.6): ``H[t] = β·V[t−1] + I[t]``, ``β = exp(−1/τ_m)`` (τ_m = 10 steps), spike when
``H >= ϑ`` (ϑ = 1), subtractive reset ``V = H − ϑ·S``, ATan surrogate
(:class:`spikeforge.core.DecayLIF`).

The input layer is event-driven: the input current of step ``t`` is the bias plus the sum of the
weight rows of the input neurons that spiked at ``t`` (``F.embedding_bag`` over the cached
events; no dense ``[T, B, N_in]`` raster and no multiplications). The hidden -> output layer is a
:class:`spikeforge.core.SpikeLinear` (it takes its event path where it was measured faster; for
narrow outputs it is ``F.linear``).

Initialisation (data-driven, so that the LIF neurons start in their working range): the input
weights are ``N(0, σ₁²)`` with ``σ₁ = init_gain·sqrt((1 − β²)/r_in)``, where ``r_in`` is the mean
number of input spikes per step of a training record (the membrane potential then has about unit
standard deviation); the output weights likewise with the hidden spike rate measured on one
training batch. Biases start at 0.

Memristive mode (spec §3.11, ``synapse=`` a :class:`spikeforge.files.memristive.MemristiveSynapse`):
both weight matrices are held by differential pairs, ``w = w_scale·(G⁺ − G⁻)``; after every
optimiser step the desired weight change (Adam's Δw) is applied through the device model
(in-situ or mixed precision, as the config says) and the realised weights are copied back into
the network. Biases stay float (they are not synapses). With quantisation off, no noise and no
bound reached, this is float training: the weights agree to float rounding (a pair adds one
rounding per update; measured ≤ 3e-7 after 3 epochs in float32) and the outputs are identical
(tested). Choose ``w_scale`` so that the initial weights (about ``N(0, σ₁²)``) fit in
``±w_scale·(g_max − g_min)``. Note: with in-situ programming and round-to-nearest, Adam steps
smaller than half a pulse (``lr ≪ w_scale·δ``) never program a device; use
``mode="mixed_precision"`` or ``stochastic_rounding=True``.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Iterator
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import accuracy_score, f1_score
from sklearn.utils.validation import check_is_fitted
from torch import Tensor, nn

from spikeforge.core import DecayLIF, SpikeLinear
from spikeforge.files.estimator_base import (
    EventCache,
    SpikingClassifierBase,
    class_weight_vector,
    iter_batches,
    validation_split,
)
from spikeforge.files.targets import TARGET_KINDS, class_targets
from spikeforge.losses import van_rossum_cdist, van_rossum_distance

__all__ = ["SCORINGS", "SNNClassifier", "SpikingFileNet"]

SCORINGS = ("loss", "f1_macro", "accuracy")
_TIE_RTOL = 1e-9


def _event_batch(cache: EventCache, idx: np.ndarray) -> tuple[Tensor, Tensor, int, int]:
    """``(neurons [E] int64, offsets [T·B] int64, T, B)``: the events of records ``idx`` as bags
    for ``F.embedding_bag``, bag ``t·B + b`` = the inputs that spiked at step ``t`` in record
    ``b``."""
    t, b, n = cache.coo(idx)
    bsz = int(idx.shape[0])
    n_bags = cache.n_steps * bsz
    rows = t * bsz + b
    if n_bags <= 1 << 16:  # numpy's stable sort of 16-bit keys is a radix sort
        rows = rows.astype(np.uint16)
    order = np.argsort(rows, kind="stable")
    offsets = np.zeros(n_bags, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=n_bags)[:-1], out=offsets[1:])
    return torch.from_numpy(n[order]), torch.from_numpy(offsets), cache.n_steps, bsz


class SpikingFileNet(nn.Module):
    """input events -> hidden LIF -> output LIF (module docstring); spikes ``[T, B, ...]``.

    ``w_in [N_in, n_hidden]``: one row per input neuron (added when it spikes); ``b_in
    [n_hidden]``; ``fc_out``: :class:`SpikeLinear` ``n_hidden -> n_outputs``.
    """

    def __init__(
        self,
        n_inputs: int,
        n_hidden: int,
        n_outputs: int,
        beta: float,
        threshold: float = 1.0,
    ) -> None:
        super().__init__()
        self.w_in = nn.Parameter(torch.zeros(n_inputs, n_hidden))
        self.b_in = nn.Parameter(torch.zeros(n_hidden))
        lif = {"decay": beta, "threshold": threshold, "reset": "subtract", "surrogate": "atan"}
        self.hidden = DecayLIF(**lif)  # type: ignore[arg-type]
        self.fc_out = SpikeLinear(n_hidden, n_outputs)
        self.output = DecayLIF(**lif)  # type: ignore[arg-type]

    def input_current(self, neurons: Tensor, offsets: Tensor, n_steps: int, batch: int) -> Tensor:
        """``[T, B, n_hidden]``: bias + the rows of ``w_in`` of the inputs spiking per step."""
        cur = F.embedding_bag(neurons, self.w_in, offsets, mode="sum")
        return (cur + self.b_in).reshape(n_steps, batch, -1)

    def forward_dense(self, spikes: Tensor) -> tuple[Tensor, Tensor]:
        """``(output spikes [T, B, n_outputs], hidden spikes [T, B, n_hidden])`` for dense input
        spikes ``[T, B, N_in]``."""
        return self._rest(spikes @ self.w_in + self.b_in)

    def forward(
        self, neurons: Tensor, offsets: Tensor, n_steps: int, batch: int
    ) -> tuple[Tensor, Tensor]:
        """``(output spikes [T, B, n_outputs], hidden spikes [T, B, n_hidden])`` for the event
        bags of :func:`_event_batch`."""
        return self._rest(self.input_current(neurons, offsets, n_steps, batch))

    def _rest(self, current: Tensor) -> tuple[Tensor, Tensor]:
        hidden = self.hidden(current)
        return self.output(self.fc_out(hidden)), hidden


class SNNClassifier(SpikingClassifierBase):
    """Supervised spiking classifier of records or numeric arrays (module docstring).

    Parameters:
        encoder: :class:`~spikeforge.encoding.KeyValueEncoder` for records (cloned and fitted on
            the training records), or ``None`` / a template for numeric arrays
            (:mod:`spikeforge.files.estimator_base`). T is the encoder's ``n_steps``.
        n_hidden: hidden LIF neurons (128).
        group_size: output neurons per class ``g`` (2); ``N_out = C·g``.
        targets: ``"groups"`` (default) or ``"random"`` target patterns (spec §3.7).
        n_target_spikes: spikes per target neuron ``n_t`` (4).
        tau_m: membrane time constant in steps (10); ``β = exp(−1/τ_m)``.
        threshold: firing threshold ϑ (1.0).
        tau_vr: van Rossum time constant in steps (5).
        margin: ``m`` of the optional margin term
            ``max(0, m + D(out, target_y) − min_{c≠y} D(out, target_c))`` added to the loss
            (0 = off, the default).
        lr: Adam learning rate (1e-3).
        batch_size: training mini-batch (128).
        max_epochs: epochs at most (15; a full debfiles fit, ~32k records, takes ~50 s on
            2 threads).
        patience: stop after this many epochs without improvement of the validation score; the
            best epoch's weights are kept (3).
        validation_fraction: held out of the training data for early stopping (0.1; grouped when
            ``groups`` is passed to :meth:`fit`); 0 trains ``max_epochs`` on everything.
        scoring: early-stopping score: ``"loss"`` (validation loss, default), ``"f1_macro"`` or
            ``"accuracy"``.
        class_weight: ``None``, ``"balanced"`` (``n/(C·n_c)``, for imbalanced classes) or a dict
            label -> weight; weighs each sample's loss (the batch loss is the weighted mean).
        temperature: of :meth:`predict_proba`, ``softmax(−D²/temperature)`` over the classes
            (1.0). It changes the probabilities' sharpness, never the predicted class.
        init_gain: scale of the data-driven initial weights (1.0).
        synapse: ``None`` (float weights) or a memristive device config
            (:class:`spikeforge.files.memristive.MemristiveSynapse`).
        inference_batch_size: records per forward pass in prediction (1024).
        random_state: seed of initialisation, shuffling, the validation split and random
            targets (None, int or ``RandomState``).
        verbose: print one line per epoch when > 0.

    Fitted attributes: ``classes_``, ``encoder_``, ``network_`` (:class:`SpikingFileNet`),
    ``targets_ [T, C, N_out]``, ``n_epochs_``, ``best_epoch_``, ``history_`` (one dict per
    epoch: train loss, validation loss / F1 / accuracy, seconds), ``class_weight_ [C]``,
    ``synapses_`` (the device arrays, memristive mode only) and those of the base
    (``n_inputs_``, ``n_steps_``, ``input_kind_``, ``n_features_in_`` for arrays).
    """

    def __init__(
        self,
        encoder: Any = None,
        n_hidden: int = 128,
        group_size: int = 2,
        targets: Literal["groups", "random"] = "groups",
        n_target_spikes: int = 4,
        tau_m: float = 10.0,
        threshold: float = 1.0,
        tau_vr: float = 5.0,
        margin: float = 0.0,
        lr: float = 1e-3,
        batch_size: int = 128,
        max_epochs: int = 15,
        patience: int = 3,
        validation_fraction: float = 0.1,
        scoring: str = "loss",
        class_weight: Any = None,
        temperature: float = 1.0,
        init_gain: float = 1.0,
        synapse: Any = None,
        inference_batch_size: int = 1024,
        random_state: Any = None,
        verbose: int = 0,
    ) -> None:
        self.encoder = encoder
        self.n_hidden = n_hidden
        self.group_size = group_size
        self.targets = targets
        self.n_target_spikes = n_target_spikes
        self.tau_m = tau_m
        self.threshold = threshold
        self.tau_vr = tau_vr
        self.margin = margin
        self.lr = lr
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.scoring = scoring
        self.class_weight = class_weight
        self.temperature = temperature
        self.init_gain = init_gain
        self.synapse = synapse
        self.inference_batch_size = inference_batch_size
        self.random_state = random_state
        self.verbose = verbose

    # -- checks ----------------------------------------------------------------------------

    def _check_params(self) -> None:
        ints = ("n_hidden", "group_size", "n_target_spikes", "batch_size", "max_epochs")
        for name in (*ints, "inference_batch_size"):
            v = getattr(self, name)
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {v!r}")
        if not isinstance(self.patience, (int, np.integer)) or self.patience < 1:
            raise ValueError(f"patience must be an integer >= 1, got {self.patience!r}")
        for name in ("tau_m", "threshold", "tau_vr", "lr", "temperature", "init_gain"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise ValueError(f"{name} must be a positive number, got {v!r}")
        if not (isinstance(self.margin, (int, float)) and self.margin >= 0):
            raise ValueError(f"margin must be >= 0, got {self.margin!r}")
        if self.targets not in TARGET_KINDS:
            raise ValueError(f"targets must be one of {TARGET_KINDS}, got {self.targets!r}")
        if self.scoring not in SCORINGS:
            raise ValueError(f"scoring must be one of {SCORINGS}, got {self.scoring!r}")
        if self.synapse is not None:
            from spikeforge.files.memristive import MemristiveSynapse

            if not isinstance(self.synapse, MemristiveSynapse):
                raise TypeError(
                    f"synapse must be None or a MemristiveSynapse, got {type(self.synapse)}"
                )

    # -- training --------------------------------------------------------------------------

    def _init_network(
        self, cache: EventCache, train_idx: np.ndarray, gen: torch.Generator
    ) -> SpikingFileNet:
        beta = math.exp(-1.0 / self.tau_m)
        n_out = len(self.classes_) * self.group_size
        net = SpikingFileNet(self.n_inputs_, self.n_hidden, n_out, beta, self.threshold)
        spread = 1.0 - beta * beta
        r_in = float(cache.n_events[train_idx].mean()) / cache.n_steps
        with torch.no_grad():
            net.w_in.normal_(
                0.0, self.init_gain * math.sqrt(spread / max(r_in, 1e-3)), generator=gen
            )
            probe = train_idx[: min(len(train_idx), 256)]
            _, hidden = net(*_event_batch(cache, probe))
            r_hid = float(hidden.sum(-1).mean())
            std = self.init_gain * math.sqrt(spread / max(r_hid, 1.0))
            net.fc_out.weight.normal_(0.0, std, generator=gen)
            net.fc_out.bias.zero_()
        return net

    def _losses(
        self, out: Tensor, y: Tensor, weights: Tensor, targets: Tensor
    ) -> tuple[Tensor, Tensor]:
        """``(weighted mean loss, per-sample D² [B])`` of output spikes ``out [T, B, N_out]``."""
        d2 = van_rossum_distance(
            out, targets[:, y], tau=self.tau_vr, squared=True, reduction="none"
        )
        per = d2
        if self.margin > 0:
            dist = (van_rossum_cdist(out, targets, tau=self.tau_vr) + 1e-12).sqrt()  # [B, C]
            own = dist.gather(1, y[:, None])[:, 0]
            others = dist.scatter(1, y[:, None], float("inf")).min(1).values
            per = per + F.relu(self.margin + own - others)
        return (weights * per).sum() / weights.sum(), d2

    def _iter_outputs(
        self, cache: EventCache, idx: np.ndarray
    ) -> Iterator[tuple[np.ndarray, Tensor, Tensor]]:
        """``(batch idx, output spikes [T, B, N_out], hidden spikes)`` without gradients."""
        net = self.network_
        with torch.no_grad():
            for start in range(0, len(idx), self.inference_batch_size):
                part = idx[start : start + self.inference_batch_size]
                out, hidden = net(*_event_batch(cache, part))
                yield part, out, hidden

    def _distances(self, cache: EventCache, idx: np.ndarray | None = None) -> np.ndarray:
        """Squared van Rossum distances ``[n, C]`` (float64) of the outputs to the targets."""
        idx = np.arange(len(cache)) if idx is None else idx
        parts = [
            van_rossum_cdist(out.double(), self.targets_.double(), tau=self.tau_vr).numpy()
            for _, out, _ in self._iter_outputs(cache, idx)
        ]
        return np.concatenate(parts) if parts else np.zeros((0, len(self.classes_)))

    def _evaluate(
        self, cache: EventCache, idx: np.ndarray, y: np.ndarray, weights: np.ndarray
    ) -> dict[str, float]:
        d2 = self._distances(cache, idx)
        w = weights[y[idx]]
        loss = float((w * d2[np.arange(len(idx)), y[idx]]).sum() / w.sum())
        pred = _argmin_lowest(d2)
        return {
            "loss": loss,
            "f1_macro": float(f1_score(y[idx], pred, average="macro")),
            "accuracy": float(accuracy_score(y[idx], pred)),
        }

    def fit(self, X: Any, y: Any, groups: Any = None) -> SNNClassifier:
        """Train on ``X`` (records or a 2-D numeric array) and labels ``y``; ``groups`` (e.g. the
        owning package of each file) makes the early-stopping validation split grouped."""
        self._check_params()
        cache, y_enc = self._fit_inputs(X, y)
        if groups is not None and len(groups) != len(y_enc):
            raise ValueError(f"groups has {len(groups)} entries for {len(y_enc)} samples")
        rng, gen = self._generators()
        n_classes = len(self.classes_)
        train_idx, val_idx = validation_split(y_enc, self.validation_fraction, rng, groups)
        self.targets_ = class_targets(
            n_classes,
            self.n_steps_,
            kind=self.targets,
            group_size=self.group_size,
            n_spikes=self.n_target_spikes,
            tau=self.tau_vr,
            random_state=rng,
        )
        self.class_weight_ = class_weight_vector(self.class_weight, self.classes_, y_enc[train_idx])
        weights_t = torch.as_tensor(self.class_weight_, dtype=torch.float32)
        net = self.network_ = self._init_network(cache, train_idx, gen)
        opt = torch.optim.Adam(net.parameters(), lr=self.lr)
        synapses = self._make_synapses(net, gen)
        y_t = torch.from_numpy(y_enc)
        best_score, best_state, best_epoch, stale = math.inf, None, 0, 0
        self.history_ = []
        for epoch in range(1, self.max_epochs + 1):
            start, total, count = time.perf_counter(), 0.0, 0
            net.train()
            for part in iter_batches(len(train_idx), self.batch_size, rng):
                batch = train_idx[part]
                yb = y_t[batch]
                out, _ = net(*_event_batch(cache, batch))
                loss, _ = self._losses(out, yb, weights_t[yb], self.targets_)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                if synapses:
                    for param, array in synapses:
                        array.program_parameter(param)
                total += float(loss.detach()) * len(batch)
                count += len(batch)
            record: dict[str, float] = {"epoch": epoch, "train_loss": total / max(count, 1)}
            net.eval()
            if len(val_idx):
                scores = self._evaluate(cache, val_idx, y_enc, self.class_weight_)
                record.update({f"val_{k}": v for k, v in scores.items()})
                score = scores["loss"] if self.scoring == "loss" else -scores[self.scoring]
                if score < best_score:
                    best_score, best_epoch, stale = score, epoch, 0
                    best_state = copy.deepcopy(net.state_dict())
                    best_synapses = [a.state_dict() for _, a in synapses]
                else:
                    stale += 1
            else:
                best_epoch = epoch
            record["seconds"] = time.perf_counter() - start
            self.history_.append(record)
            if self.verbose:
                print(" ".join(f"{k}={v:.4g}" for k, v in record.items()))
            if len(val_idx) and stale >= self.patience:
                break
        if best_state is not None:
            net.load_state_dict(best_state)
            for (_, array), state in zip(synapses, best_synapses, strict=True):
                array.load_state_dict(state)
        self.n_epochs_ = len(self.history_)
        self.best_epoch_ = best_epoch
        self.synapses_ = [a for _, a in synapses] if synapses else None
        net.eval()
        return self

    def _make_synapses(self, net: SpikingFileNet, gen: torch.Generator) -> list[tuple[Tensor, Any]]:
        """``[(parameter, DifferentialArray)]`` for both weight matrices in memristive mode; the
        parameters are set to the weights the devices realise."""
        if self.synapse is None:
            return []
        out = []
        for param in (net.w_in, net.fc_out.weight):
            array = self.synapse.array(param.detach(), differential=True, generator=gen)
            with torch.no_grad():
                param.copy_(array.weight(noisy=False).to(param.dtype))
            out.append((param, array))
        return out

    # -- saving (spikeforge.files.persist) -------------------------------------------------

    def _fitted_state(self) -> dict[str, Any]:
        """The fitted network and targets as tensors and plain values (for ``save_model``)."""
        check_is_fitted(self, ("network_", "targets_"))
        return {
            "network": {k: v.detach().clone() for k, v in self.network_.state_dict().items()},
            "targets": self.targets_.detach().clone(),
            "class_weight": torch.as_tensor(self.class_weight_),
            "n_epochs": self.n_epochs_,
            "best_epoch": self.best_epoch_,
            "history": [dict(h) for h in self.history_],
        }

    def _load_fitted_state(self, state: dict[str, Any]) -> None:
        """Rebuild ``network_`` and the fitted attributes from :meth:`_fitted_state` (the base
        attributes ``classes_``, ``n_inputs_`` ... are restored before)."""
        beta = math.exp(-1.0 / self.tau_m)
        n_out = len(self.classes_) * self.group_size
        net = SpikingFileNet(self.n_inputs_, self.n_hidden, n_out, beta, self.threshold)
        net.load_state_dict(state["network"])
        self.network_ = net.eval()
        self.targets_ = state["targets"]
        self.class_weight_ = state["class_weight"].numpy()
        self.n_epochs_ = int(state["n_epochs"])
        self.best_epoch_ = int(state["best_epoch"])
        self.history_ = list(state["history"])
        self.synapses_ = None

    # -- prediction ------------------------------------------------------------------------

    def _scores(self, cache: EventCache) -> np.ndarray:
        """``−D² [n, C]``; distances within a relative 1e-9 of the row minimum are set to it, so
        exact ties (up to rounding) go to the lowest class index."""
        d2 = self._distances(cache)
        best = d2.min(axis=1, keepdims=True)
        d2 = np.where(d2 <= best + _TIE_RTOL * np.maximum(best, 1.0), best, d2)
        return -d2

    def predict_proba(self, X: Any) -> np.ndarray:
        """``softmax(−D²/temperature)`` over the classes ``[n, C]`` (``D²``: squared van Rossum
        distance of the output to each class target; near-ties equalised as in :meth:`predict`,
        so the most probable class is always the predicted one)."""
        z = self._scores(self._predict_inputs(X)) / self.temperature
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)

    def decision_distances(self, X: Any) -> np.ndarray:
        """Squared van Rossum distances ``[n, C]`` of the outputs to the class targets."""
        return self._distances(self._predict_inputs(X))

    def spike_counts(self, X: Any) -> dict[str, float]:
        """Mean spikes per record: ``{"input", "hidden", "output"}`` (spec §3.13 reporting)."""
        cache = self._predict_inputs(X)
        hid = outs = 0.0
        for _, out, hidden in self._iter_outputs(cache, np.arange(len(cache))):
            hid += float(hidden.sum())
            outs += float(out.sum())
        n = max(len(cache), 1)
        return {"input": float(cache.n_events.mean()), "hidden": hid / n, "output": outs / n}


def _argmin_lowest(d2: np.ndarray) -> np.ndarray:
    """Row-wise argmin with near-ties (relative 1e-9) going to the lowest index."""
    best = d2.min(axis=1, keepdims=True)
    return np.argmax(d2 <= best + _TIE_RTOL * np.maximum(best, 1.0), axis=1)
