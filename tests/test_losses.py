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
    van_rossum_cdist,
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


def closed_form(a: list[float], b: list[float], tau: float) -> float:
    """Spike-time formula of spec §3.8, independent of the grid implementation."""

    def k(xs: list[float], ys: list[float]) -> float:
        return sum(math.exp(-abs(x - y) / tau) for x in xs for y in ys)

    return 0.5 * (k(a, a) + k(b, b) - 2 * k(a, b))


def times_of(train: torch.Tensor, dt: float) -> list[float]:
    return [float(t) * dt for t in torch.nonzero(train).flatten().tolist()]


def test_van_rossum_spec_example_and_not_the_riemann_sum() -> None:
    # spec §3.8: spikes at 1, 5, 9 against 2, 6; tau = 3, dt = 1
    a = torch.zeros(12, 1, 1, dtype=torch.float64)
    b = torch.zeros_like(a)
    a[[1, 5, 9]] = 1.0
    b[[2, 6]] = 1.0
    d2 = float(van_rossum_distance(a, b, tau=3.0, squared=True))
    assert d2 == pytest.approx(closed_form([1, 5, 9], [2, 6], 3.0), abs=1e-14)
    # the biased rectangle rule sum tr^2 dt/tau differs a lot at dt = 1
    q, tr, riemann = math.exp(-1 / 3), 0.0, 0.0
    for t in range(12):
        tr = q * tr + float(a[t] - b[t])
        riemann += tr * tr / 3
    assert abs(riemann - d2) > 0.2


@pytest.mark.parametrize("seed", range(5))
def test_van_rossum_discrete_equals_closed_form_on_random_grids(seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    t_steps, batch, neurons = 40, 3, 4
    dt = [1.0, 0.5, 2.0, 1.0, 0.25][seed]
    tau = [5.0, 3.0, 1.0, 17.0, 0.7][seed]
    a = (torch.rand(t_steps, batch, neurons, generator=g) < 0.15).double()
    b = (torch.rand(t_steps, batch, neurons, generator=g) < 0.15).double()
    got = van_rossum_distance(a, b, tau=tau, dt=dt, squared=True, reduction="none")
    for i in range(batch):
        expected = sum(
            closed_form(times_of(a[:, i, n], dt), times_of(b[:, i, n], dt), tau)
            for n in range(neurons)
        )
        assert abs(float(got[i]) - expected) < 1e-12
    # the pairwise form agrees with the direct one
    cd = van_rossum_cdist(a, b, tau=tau, dt=dt)
    assert cd.shape == (batch, batch)
    torch.testing.assert_close(cd.diagonal(), got, rtol=1e-10, atol=1e-10)
    d_other = van_rossum_distance(
        a, b[:, [1, 2, 0]], tau=tau, dt=dt, squared=True, reduction="none"
    )
    torch.testing.assert_close(cd[[0, 1, 2], [1, 2, 0]], d_other, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize(("t_steps", "tau", "when"), [(1, 5.0, 0), (64, 5.0, 63), (8, 0.3, 2)])
def test_van_rossum_one_unmatched_spike_is_half(t_steps: int, tau: float, when: int) -> None:
    a = torch.zeros(t_steps, 1, 1, dtype=torch.float64)
    a[when] = 1.0
    none = torch.zeros_like(a)
    assert float(van_rossum_distance(a, none, tau=tau, squared=True)) == pytest.approx(
        0.5, abs=1e-14
    )
    assert float(van_rossum_distance(a, none, tau=tau)) == pytest.approx(math.sqrt(0.5))


def test_van_rossum_symmetric_zero_iff_identical_and_reductions() -> None:
    g = torch.Generator().manual_seed(3)
    a = (torch.rand(20, 6, 5, generator=g) < 0.2).double()
    b = (torch.rand(20, 6, 5, generator=g) < 0.2).double()
    b[:, 0] = a[:, 0]  # sample 0 identical
    ab = van_rossum_distance(a, b, squared=True, reduction="none")
    ba = van_rossum_distance(b, a, squared=True, reduction="none")
    torch.testing.assert_close(ab, ba, rtol=0, atol=1e-14)
    assert float(ab[0]) == 0.0
    assert bool((ab[1:] > 1e-6).all())  # differing rasters: strictly positive
    # any single moved spike is detected
    c = a.clone()
    c[0, 1, 2] = 1.0 - c[0, 1, 2]
    assert float(van_rossum_distance(a, c, squared=True, reduction="none")[1]) > 0.1
    assert float(van_rossum_distance(a, b, squared=True, reduction="sum")) == pytest.approx(
        float(ab.sum())
    )
    assert float(van_rossum_distance(a, b, squared=True)) == pytest.approx(float(ab.mean()))
    torch.testing.assert_close(van_rossum_distance(a, b, reduction="none"), ab.sqrt())
    with pytest.raises(ValueError, match="reduction"):
        van_rossum_distance(a, b, reduction="max")  # type: ignore[arg-type]


def test_van_rossum_gradient_and_checks() -> None:
    a = torch.tensor([0.0, 1.0, 0.0]).double().reshape(3, 1, 1).requires_grad_(True)
    van_rossum_distance(a, torch.zeros(3, 1, 1).double(), tau=1.0, squared=True).backward()
    # D^2 = sum_k w_k f[k]^2, f[k] = sum_{j<=k} q^(k-j) s[j]
    # dD^2/ds[t] = 2 sum_{k>=t} w_k f[k] q^(k-t)
    q = math.exp(-1)
    c = 1 - q * q
    w = [c / 2, c / 2, 0.5]
    f = [0.0, 1.0, q]
    expected = [2 * sum(w[k] * f[k] * q ** (k - t) for k in range(t, 3)) for t in range(3)]
    assert a.grad is not None
    assert a.grad.flatten().tolist() == pytest.approx(expected, abs=1e-14)
    # the gradient of the pairwise form flows too, and matches the direct one
    s = torch.rand(6, 2, 3, dtype=torch.float64, requires_grad=True)
    tgt = (torch.rand(6, 4, 3, dtype=torch.float64) < 0.3).double()
    van_rossum_cdist(s, tgt)[:, 1].sum().backward()
    g1 = s.grad.clone()
    s.grad = None
    van_rossum_distance(s, tgt[:, [1, 1]], squared=True, reduction="sum").backward()
    torch.testing.assert_close(g1, s.grad)
    with pytest.raises(ValueError, match="shapes"):
        van_rossum_distance(torch.zeros(2, 1), torch.zeros(3, 1))
    with pytest.raises(ValueError, match="positive"):
        van_rossum_distance(torch.zeros(2, 1), torch.zeros(2, 1), tau=0.0)
    with pytest.raises(ValueError, match="neuron shapes"):
        van_rossum_cdist(torch.zeros(2, 1, 3), torch.zeros(2, 1, 4))
