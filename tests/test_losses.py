"""Readouts and losses (SDT, LTS, TET, TET-S, van Rossum) against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from spikeforge.losses import (
    last_readout,
    lts_loss,
    mean_readout,
    readout,
    sdt_loss,
    smooth_labels,
    tet_loss,
    tet_s_loss,
    van_rossum_distance,
)

LN3 = math.log(3.0)


def tiny() -> tuple[torch.Tensor, torch.Tensor]:
    """T = 2, B = 1, C = 2: O[1] = (0, 0), O[2] = (ln 3, 0), label 0."""
    outputs = torch.tensor([[[0.0, 0.0]], [[LN3, 0.0]]], dtype=torch.float64)
    return outputs, torch.tensor([0])


def test_readouts() -> None:
    o, _ = tiny()
    assert mean_readout(o).tolist() == [[LN3 / 2, 0.0]]
    assert last_readout(o).tolist() == [[LN3, 0.0]]
    assert torch.equal(readout(o, "last"), last_readout(o))
    assert torch.equal(readout(o), mean_readout(o))
    with pytest.raises(ValueError, match="unknown readout"):
        readout(o, "max")  # type: ignore[arg-type]


def test_sdt_and_lts_hand_computed() -> None:
    o, y = tiny()
    # mean logits (ln3/2, 0): p0 = sqrt3 / (sqrt3 + 1)
    assert float(sdt_loss(o, y)) == pytest.approx(math.log(1 + 1 / math.sqrt(3)), rel=1e-12)
    # last step: p0 = 3/4
    assert float(lts_loss(o, y)) == pytest.approx(math.log(4 / 3), rel=1e-12)


def test_lts_gradient_only_reaches_the_last_step() -> None:
    o = torch.randn(4, 3, 5, requires_grad=True)
    lts_loss(o, torch.tensor([0, 4, 2])).backward()
    assert o.grad[:-1].abs().sum() == 0 and o.grad[-1].abs().sum() > 0


def test_tet_hand_computed() -> None:
    o, y = tiny()
    ce = (math.log(2) + math.log(4 / 3)) / 2  # per-step CE averaged over T
    mse = (3 * 1.0 + (LN3 - 1) ** 2) / 4  # (O - 1)^2 over all T*B*C = 4 elements
    assert float(tet_loss(o, y, lamb=0.0)) == pytest.approx(ce, rel=1e-12)
    assert float(tet_loss(o, y, lamb=0.5)) == pytest.approx(0.5 * ce + 0.5 * mse, rel=1e-12)
    assert float(tet_loss(o, y, lamb=1.0)) == pytest.approx(mse, rel=1e-12)
    assert float(tet_loss(o, y)) == pytest.approx(0.999 * ce + 0.001 * mse, rel=1e-12)
    mse_phi0 = (LN3**2) / 4
    assert float(tet_loss(o, y, lamb=1.0, phi=0.0)) == pytest.approx(mse_phi0, rel=1e-12)


def test_tet_ce_equals_loop_over_steps_and_soft_labels_work() -> None:
    g = torch.Generator().manual_seed(0)
    o = torch.randn(5, 4, 3, generator=g, dtype=torch.float64)
    y = torch.tensor([0, 2, 1, 2])
    loop = sum(F.cross_entropy(o_t, y) for o_t in o.unbind(0)) / 5
    torch.testing.assert_close(tet_loss(o, y, lamb=0.0), loop)
    soft = torch.softmax(torch.randn(4, 3, generator=g, dtype=torch.float64), -1)
    loop = sum(-(soft * o_t.log_softmax(-1)).sum(-1).mean() for o_t in o.unbind(0)) / 5
    torch.testing.assert_close(tet_loss(o, soft, lamb=0.0), loop)


def test_tet_mse_term_pulls_logits_towards_phi() -> None:
    o = torch.tensor([[[3.0, -2.0]]], requires_grad=True)
    tet_loss(o, torch.tensor([0]), lamb=1.0, phi=1.0).backward()
    assert o.grad[0, 0, 0] > 0 and o.grad[0, 0, 1] < 0  # descent moves 3 down, -2 up


def test_smooth_labels() -> None:
    s = smooth_labels(torch.tensor([1, 0]), 4, 0.1)
    torch.testing.assert_close(s.sum(-1), torch.ones(2))
    assert s[0].tolist() == pytest.approx([0.025, 0.925, 0.025, 0.025])
    soft = torch.tensor([[0.5, 0.5, 0.0, 0.0]])
    assert smooth_labels(soft, 4, 0.1)[0].tolist() == pytest.approx([0.475, 0.475, 0.025, 0.025])
    with pytest.raises(ValueError, match="epsilon"):
        smooth_labels(soft, 4, 1.5)


def test_tet_s_hand_computed_and_reductions() -> None:
    o, y = tiny()
    # eps = .1, K = 2: target (.95, .05); step 1 is uniform (CE = ln 2), step 2 p = (3/4, 1/4)
    step2 = -(0.95 * math.log(0.75) + 0.05 * math.log(0.25))
    expected = (math.log(2) + step2) / 2
    assert float(tet_s_loss(o, y, epsilon=0.1)) == pytest.approx(expected, rel=1e-12)
    # eps = 0 is the CE part of TET
    torch.testing.assert_close(tet_s_loss(o, y, epsilon=0.0), tet_loss(o, y, lamb=0.0))
    # soft labels (Mixup): ((.5, .5) smoothed stays (.5, .5))
    soft = torch.tensor([[0.5, 0.5]], dtype=torch.float64)
    step2_soft = -(0.5 * math.log(0.75) + 0.5 * math.log(0.25))
    assert float(tet_s_loss(o, soft, epsilon=0.1)) == pytest.approx(
        (math.log(2) + step2_soft) / 2, rel=1e-12
    )


def test_target_checks() -> None:
    o, _ = tiny()
    with pytest.raises(ValueError, match=r"\[T, B, C\]"):
        sdt_loss(o[0], torch.tensor([0]))
    with pytest.raises(ValueError, match="2 labels for a batch of 1"):
        tet_loss(o, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match=r"expected \[1, 2\]"):
        tet_s_loss(o, torch.ones(1, 3))
    with pytest.raises(ValueError, match="class indices"):
        lts_loss(o, torch.tensor([0.0]))


def test_van_rossum_hand_computed() -> None:
    one = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64).reshape(3, 1, 1)
    none = torch.zeros_like(one)
    # tau = dt = 1: f = (1, e^-1, e^-2), D^2 = 1 + e^-2 + e^-4
    d2 = 1 + math.exp(-2) + math.exp(-4)
    assert float(van_rossum_distance(one, none, tau=1.0, squared=True)) == pytest.approx(d2)
    assert float(van_rossum_distance(one, none, tau=1.0)) == pytest.approx(math.sqrt(d2))
    assert float(van_rossum_distance(one, one, tau=1.0)) == 0.0
    # a spike at t = 0 against one at t = 1, tau = 2: diff f = (1, q - 1), q = e^-1/2
    a = torch.tensor([1.0, 0.0]).reshape(2, 1, 1)
    b = torch.tensor([0.0, 1.0]).reshape(2, 1, 1)
    q = math.exp(-0.5)
    expected = 0.5 * (1 + (q - 1) ** 2)
    assert float(van_rossum_distance(a, b, tau=2.0, squared=True)) == pytest.approx(expected)


def test_van_rossum_large_tau_single_spike_tends_to_half_and_reductions() -> None:
    t = 4000
    a = torch.zeros(t, 1, 1, dtype=torch.float64)
    a[0] = 1.0
    d2 = van_rossum_distance(a, torch.zeros_like(a), tau=200.0, squared=True)
    assert float(d2) == pytest.approx(0.5, rel=1e-2)
    # [T, B, N]: per-sample sums over neurons; reductions over the batch
    s = torch.zeros(3, 2, 2, dtype=torch.float64)
    s[0, 0, 0] = s[0, 0, 1] = s[1, 1, 0] = 1.0
    per = van_rossum_distance(s, torch.zeros_like(s), tau=1.0, squared=True, reduction="none")
    one = 1 + math.exp(-2) + math.exp(-4)
    assert per.tolist() == pytest.approx([2 * one, 1 + math.exp(-2)])
    total = van_rossum_distance(s, torch.zeros_like(s), tau=1.0, squared=True, reduction="sum")
    assert float(total) == pytest.approx(sum(per.tolist()))


def test_van_rossum_gradient_and_checks() -> None:
    a = torch.tensor([0.0, 1.0, 0.0]).reshape(3, 1, 1).requires_grad_(True)
    van_rossum_distance(a, torch.zeros(3, 1, 1), tau=1.0, squared=True).backward()
    # d/ds[t] of sum_k f[k]^2 with f[k] = sum_{j<=k} e^-(k-j) s[j]: 2 * sum_{k>=t} f[k] e^-(k-t)
    e = math.exp(-1)
    f = [0.0, 1.0, e]
    expected = [2 * sum(f[k] * e ** (k - t) for k in range(t, 3)) for t in range(3)]
    assert a.grad.flatten().tolist() == pytest.approx(expected)
    with pytest.raises(ValueError, match="shapes"):
        van_rossum_distance(torch.zeros(2, 1), torch.zeros(3, 1))
    with pytest.raises(ValueError, match="positive"):
        van_rossum_distance(torch.zeros(2, 1), torch.zeros(2, 1), tau=0.0)
