"""spikeforge.files.targets: per-class target patterns and the nearest-target readout (spec
file-classification §3.7, §5.4)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from spikeforge.files.targets import (
    class_targets,
    group_targets,
    nearest_target,
    pairwise_target_distances,
    random_targets,
)


def test_group_targets_layout() -> None:
    t = group_targets(3)
    assert t.shape == (64, 3, 6) and t.dtype == torch.float32
    for c in range(3):
        on = torch.nonzero(t[:, c]).tolist()
        assert on == [[time, n] for time in (32, 40, 48, 56) for n in (2 * c, 2 * c + 1)]
    assert int(t.sum()) == 3 * 2 * 4
    t2 = group_targets(2, n_steps=16, group_size=1, n_spikes=2)
    assert torch.nonzero(t2[:, 1]).tolist() == [[8, 1], [12, 1]]
    with pytest.raises(ValueError, match="second half"):
        group_targets(2, n_steps=6, n_spikes=4)


@pytest.mark.parametrize("kind", ["groups", "random"])
def test_pairwise_distances_positive_and_argmin_returns_the_class(kind: str) -> None:
    targets = class_targets(7, n_steps=32, kind=kind, random_state=0)  # type: ignore[arg-type]
    d = pairwise_target_distances(targets)
    off = ~torch.eye(7, dtype=torch.bool)
    assert bool((d[off] > 0).all()) and float(d.diagonal().abs().max()) < 1e-9
    classes, d2 = nearest_target(targets, targets)
    assert classes.tolist() == list(range(7)) and d2.shape == (7, 7)
    # a slightly perturbed target still maps to its class
    noisy = targets.clone()
    noisy[0, :, 0] = 1.0 - noisy[0, :, 0]
    assert nearest_target(noisy, targets)[0].tolist() == list(range(7))


def test_group_target_distance_value() -> None:
    # two groups of g = 2 neurons, spikes 8 steps apart with tau = 5: all neurons of two groups
    # differ; D^2 = 2 groups * 2 neurons * single-train self term
    t = group_targets(2)
    q = np.exp(-8 / 5)
    times = np.arange(4)
    self_term = 0.5 * sum(q ** abs(i - j) for i in times for j in times)
    assert float(pairwise_target_distances(t)[0, 1]) == pytest.approx(4 * self_term, rel=1e-12)


def test_random_targets_max_min_selection() -> None:
    n_classes, n_out = 4, 3
    best = random_targets(n_classes, n_out, n_steps=16, n_candidates=20, random_state=1)
    assert best.shape == (16, 4, 3)
    assert torch.equal(best.sum(0), torch.full((4, 3), 4.0))  # n_t distinct spikes per neuron
    off = ~np.eye(n_classes, dtype=bool)
    best_min = pairwise_target_distances(best).numpy()[off].min()
    # every single candidate (n_candidates=1) drawn from the same stream is not better
    rng = np.random.default_rng(1)
    for _ in range(20):
        one = random_targets(n_classes, n_out, n_steps=16, n_candidates=1, random_state=rng)
        assert pairwise_target_distances(one).numpy()[off].min() <= best_min + 1e-12
    again = random_targets(n_classes, n_out, n_steps=16, n_candidates=20, random_state=1)
    assert torch.equal(best, again)


def test_ties_go_to_the_lowest_class() -> None:
    targets = group_targets(5)
    silent = torch.zeros(64, 2, 10)
    classes, d2 = nearest_target(silent, targets)  # equally far from every group target
    assert classes.tolist() == [0, 0]
    assert torch.allclose(d2, d2[:, :1].expand_as(d2))
    out = targets[:, [3, 1]].clone()
    out[:, :, :] += targets[:, [4, 4]]  # half-way between two classes: 3 vs 4, 1 vs 4
    assert nearest_target(out, targets)[0].tolist() == [3, 1]
    with pytest.raises(ValueError, match="kind"):
        class_targets(3, kind="other")  # type: ignore[arg-type]
