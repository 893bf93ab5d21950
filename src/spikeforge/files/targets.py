"""Per-class target spike patterns and the nearest-target readout (spec file-classification §3.7).

A supervised spikeforge file classifier is trained to emit the target pattern of the record's
class at its output neurons; it predicts the class whose target is nearest in van Rossum distance
(:func:`spikeforge.losses.van_rossum_cdist`, ties -> lowest class index).

Layout: targets are ``[T, C, N_out]`` (time, class, output neuron) 0/1 tensors, so
``targets[:, c]`` is class ``c``'s raster ``[T, N_out]``; outputs are ``[T, B, N_out]``.

* ``"groups"`` (default, :func:`group_targets`): ``N_out = C·g`` (g = 2 neurons per class). The g
  neurons of class ``c`` (``c·g .. c·g + g − 1``) spike at ``n_t`` (default 4) evenly spaced
  times in the second half of the window, ``t_k = T/2 + k·T/(2·n_t)`` (rounded down),
  ``k = 0..n_t−1`` (T = 64: 32, 40, 48, 56); all other output neurons are silent.
* ``"random"`` (:func:`random_targets`): every output neuron spikes ``n_t`` times (distinct times
  drawn uniformly in the window) in every class's target; among ``n_candidates`` (default 100)
  random candidate sets the one with the largest minimum pairwise van Rossum distance is kept.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

from spikeforge.losses import van_rossum_cdist

__all__ = [
    "TARGET_KINDS",
    "class_targets",
    "group_targets",
    "nearest_target",
    "pairwise_target_distances",
    "random_targets",
]

TARGET_KINDS = ("groups", "random")


def _check(n_classes: int, n_steps: int, n_spikes: int) -> None:
    if n_classes < 1 or n_steps < 1 or n_spikes < 1:
        raise ValueError(
            f"need n_classes, n_steps, n_spikes >= 1, got {n_classes}, {n_steps}, {n_spikes}"
        )


def group_targets(
    n_classes: int,
    n_steps: int = 64,
    group_size: int = 2,
    n_spikes: int = 4,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """Group targets ``[T, C, C·g]`` (module docstring): class ``c``'s ``g = group_size``
    neurons spike at ``T//2 + (k·T)//(2·n_t)``, ``k = 0..n_t−1``; the rest is silent."""
    _check(n_classes, n_steps, n_spikes)
    if group_size < 1:
        raise ValueError(f"group_size must be >= 1, got {group_size}")
    if 2 * n_spikes > n_steps:
        raise ValueError(
            f"{n_spikes} spikes do not fit in the second half of a window of {n_steps} steps"
        )
    times = [n_steps // 2 + (k * n_steps) // (2 * n_spikes) for k in range(n_spikes)]
    out = torch.zeros(n_steps, n_classes, n_classes * group_size, dtype=dtype)
    for c in range(n_classes):
        out[times, c, c * group_size : (c + 1) * group_size] = 1.0
    return out


def pairwise_target_distances(targets: Tensor, tau: float = 5.0) -> Tensor:
    """Squared van Rossum distances ``[C, C]`` (float64) between the classes of ``targets``
    ``[T, C, N]``."""
    t64 = targets.double()
    return van_rossum_cdist(t64, t64, tau=tau)


def random_targets(
    n_classes: int,
    n_outputs: int,
    n_steps: int = 64,
    n_spikes: int = 4,
    n_candidates: int = 100,
    tau: float = 5.0,
    random_state: int | np.random.Generator | None = None,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """Random targets ``[T, C, n_outputs]``: each output neuron spikes at ``n_spikes`` distinct
    times drawn uniformly in ``0..T−1`` in each class's target; of ``n_candidates`` random sets
    the one whose smallest pairwise (between classes) van Rossum distance is largest is returned
    (the first such set on ties)."""
    _check(n_classes, n_steps, n_spikes)
    if n_outputs < 1 or n_candidates < 1 or n_spikes > n_steps:
        raise ValueError("need n_outputs >= 1, n_candidates >= 1 and n_spikes <= n_steps")
    rng = (
        random_state
        if isinstance(random_state, np.random.Generator)
        else np.random.default_rng(random_state)
    )
    best, best_score = None, -np.inf
    off_diagonal = ~np.eye(n_classes, dtype=bool)
    for _ in range(n_candidates):
        # n_spikes distinct times per (class, neuron): the first n_spikes of a random permutation
        keys = rng.random((n_steps, n_classes, n_outputs))
        ranks = keys.argsort(axis=0).argsort(axis=0)
        cand = torch.from_numpy((ranks < n_spikes).astype(np.float64))
        if n_classes == 1:
            return cand.to(dtype)
        score = float(pairwise_target_distances(cand, tau).numpy()[off_diagonal].min())
        if score > best_score:
            best, best_score = cand, score
    assert best is not None
    return best.to(dtype)


def class_targets(
    n_classes: int,
    n_steps: int = 64,
    kind: Literal["groups", "random"] = "groups",
    group_size: int = 2,
    n_spikes: int = 4,
    n_candidates: int = 100,
    tau: float = 5.0,
    random_state: Any = None,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """Targets ``[T, C, C·g]`` of spec §3.7: ``kind="groups"`` (:func:`group_targets`) or
    ``"random"`` (:func:`random_targets` on the same ``C·g`` output neurons)."""
    if kind == "groups":
        return group_targets(n_classes, n_steps, group_size, n_spikes, dtype)
    if kind == "random":
        if group_size < 1:
            raise ValueError(f"group_size must be >= 1, got {group_size}")
        return random_targets(
            n_classes,
            n_classes * group_size,
            n_steps,
            n_spikes,
            n_candidates,
            tau,
            random_state,
            dtype,
        )
    raise ValueError(f"kind must be one of {TARGET_KINDS}, got {kind!r}")


def nearest_target(
    outputs: Tensor, targets: Tensor, tau: float = 5.0, rtol: float = 1e-9
) -> tuple[Tensor, Tensor]:
    """``(classes [B] int64, D² [B, C] float64)``: the class of the target nearest to each output
    raster ``outputs [T, B, N]`` (``targets [T, C, N]``), by squared van Rossum distance in
    float64. Distances within ``rtol`` (relative, at least ``rtol`` absolute) of the minimum count
    as ties, resolved to the lowest class index (rounding cannot break an exact tie)."""
    d2 = van_rossum_cdist(outputs.detach().double(), targets.double(), tau=tau)
    best = d2.min(dim=1, keepdim=True).values
    tied = d2 <= best + rtol * best.clamp(min=1.0)
    return tied.to(torch.uint8).argmax(dim=1), d2
