"""Memristive synapse model (spec file-classification.md §3.11, tests §5.5)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from spikeforge.files.memristive import DifferentialArray, MemristiveArray, MemristiveSynapse


def _levels(g: torch.Tensor, cfg: MemristiveSynapse) -> torch.Tensor:
    return (g - cfg.g_min) / cfg.delta


def test_config_validation_and_frozen() -> None:
    cfg = MemristiveSynapse()
    assert cfg.n_levels == 32 and cfg.delta == pytest.approx(1 / 31)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.n_levels = 4  # type: ignore[misc]
    for bad in (
        {"n_levels": 1},
        {"g_min": 1.0, "g_max": 1.0},
        {"w_scale": 0.0},
        {"gamma_p": -1.0},
        {"max_pulses": 0},
        {"mode": "bogus"},
        {"mode": "mixed_precision", "quantize": False},
        {"write_noise": -0.1},
    ):
        with pytest.raises(ValueError):
            MemristiveSynapse(**bad)


@pytest.mark.parametrize("n_levels", [16, 32, 128])
def test_levels_and_bounds_linear(n_levels: int) -> None:
    cfg = MemristiveSynapse(n_levels=n_levels, g_min=0.1, g_max=0.9)
    gen = torch.Generator().manual_seed(0)
    arr = MemristiveArray(cfg, torch.rand(50, 20, generator=gen, dtype=torch.float64))
    for _ in range(30):
        arr.apply((torch.rand(50, 20, generator=gen, dtype=torch.float64) - 0.5) * 0.8)
        g = arr.conductance()
        assert g.min() >= cfg.g_min - 1e-12 and g.max() <= cfg.g_max + 1e-12
        k = _levels(g, cfg)
        assert torch.allclose(k, k.round(), atol=1e-9)
        assert k.min() >= 0 and k.max() <= n_levels - 1
    # distinct levels reached: at most n_levels, and both bounds are reachable
    arr.apply(torch.full((50, 20), 10.0, dtype=torch.float64))
    assert torch.allclose(arr.conductance(), torch.full((50, 20), 0.9, dtype=torch.float64))
    arr.apply(torch.full((50, 20), -10.0, dtype=torch.float64))
    assert torch.allclose(arr.conductance(), torch.full((50, 20), 0.1, dtype=torch.float64))


def test_pulse_counts_round_and_cap() -> None:
    cfg = MemristiveSynapse(n_levels=11, w_scale=2.0)  # δ = 0.1, one pulse = Δw 0.2
    w0 = torch.full((6,), 1.0, dtype=torch.float64)  # G = 0.5, level 5
    arr = MemristiveArray(cfg, w0)
    dw = torch.tensor([0.0, 0.09, 0.11, 0.5, -0.31, -0.45], dtype=torch.float64)
    arr.apply(dw)
    # x = dw/0.2 = 0, .45, .55, 2.5, -1.55, -2.25 -> round (half to even): 0, 0, 1, 2, -2, -2
    expected_levels = torch.tensor([5, 5, 6, 7, 3, 3], dtype=torch.float64)
    assert torch.allclose(_levels(arr.conductance(), cfg), expected_levels)
    assert arr.pulses == 0 + 0 + 1 + 2 + 2 + 2
    capped = MemristiveArray(dataclasses.replace(cfg, max_pulses=1), w0)
    capped.apply(dw)
    assert torch.allclose(
        _levels(capped.conductance(), cfg),
        torch.tensor([5, 5, 6, 6, 4, 4], dtype=torch.float64),
    )
    assert torch.allclose(capped.weight(), 2.0 * capped.conductance())


def test_stochastic_rounding_expectation() -> None:
    cfg = MemristiveSynapse(n_levels=101, stochastic_rounding=True)  # δ = 0.01
    n = 200_000
    arr = MemristiveArray(
        cfg, torch.full((n,), 0.5, dtype=torch.float64), generator=torch.Generator().manual_seed(3)
    )
    arr.apply(torch.full((n,), 0.0137, dtype=torch.float64))  # 1.37 pulses
    pulses = torch.round(_levels(arr.conductance(), cfg) - 50)
    assert set(pulses.unique().tolist()) == {1.0, 2.0}
    mean = pulses.mean().item()
    # std of the mean = sqrt(.37*.63/n) ~ 0.0011
    assert abs(mean - 1.37) < 0.006
    # deterministic rounding would give exactly one pulse everywhere
    det = MemristiveArray(
        dataclasses.replace(cfg, stochastic_rounding=False), torch.full((4,), 0.5)
    )
    det.apply(torch.full((4,), 0.0137))
    assert torch.allclose(det.conductance(), torch.full((4,), 0.51))


def test_stochastic_rounding_reproducible_with_generator() -> None:
    cfg = MemristiveSynapse(stochastic_rounding=True)
    outs = []
    for _ in range(2):
        arr = MemristiveArray(
            cfg, torch.full((100,), 0.5), generator=torch.Generator().manual_seed(7)
        )
        arr.apply(torch.full((100,), 0.01))
        outs.append(arr.conductance())
    assert torch.equal(outs[0], outs[1])


def test_nonlinearity_gamma() -> None:
    cfg = MemristiveSynapse(n_levels=11, gamma_p=1.0, gamma_d=2.0)  # δ = 0.1, R = 1
    arr = MemristiveArray(cfg, torch.tensor([0.0, 0.6, 1.0], dtype=torch.float64))
    arr.apply(torch.tensor([0.1, 0.1, -0.1], dtype=torch.float64))  # one pulse each
    g = arr.conductance()
    # potentiation from 0: +0.1·1; from 0.6: +0.1·0.4; depression from 1: −0.1·1²
    assert torch.allclose(g, torch.tensor([0.1, 0.64, 0.9], dtype=torch.float64))
    arr.apply(torch.tensor([0.2, 0.0, -0.1], dtype=torch.float64))  # 2 pulses on the first
    g2 = arr.conductance()
    g_a = 0.1 + 0.1 * 0.9
    g_a = g_a + 0.1 * (1 - g_a)
    assert g2[0].item() == pytest.approx(g_a)
    assert g2[2].item() == pytest.approx(0.9 - 0.1 * 0.81)
    # a nonlinear device saturates asymptotically but never leaves the bounds
    arr.apply(torch.tensor([100.0, 100.0, -100.0], dtype=torch.float64))
    g3 = arr.conductance()
    assert g3.max() <= 1.0 and g3.min() >= 0.0
    assert g3[0] > 0.99 and g3[2] < 0.2  # γd = 2 slows depression near g_min strongly


def test_gamma_zero_is_linear() -> None:
    cfg = MemristiveSynapse(n_levels=11, gamma_p=0.0)
    arr = MemristiveArray(cfg, torch.tensor([0.0, 0.5], dtype=torch.float64))
    arr.apply(torch.tensor([0.3, 0.3], dtype=torch.float64))
    assert torch.allclose(arr.conductance(), torch.tensor([0.3, 0.8], dtype=torch.float64))


def test_differential_set_only_and_refresh() -> None:
    cfg = MemristiveSynapse(n_levels=11, w_scale=1.0)  # δ = 0.1
    arr = DifferentialArray(cfg, torch.tensor([0.3, -0.2], dtype=torch.float64))
    gp, gn = arr.conductance()
    assert torch.allclose(gp, torch.tensor([0.3, 0.0], dtype=torch.float64))
    assert torch.allclose(gn, torch.tensor([0.0, 0.2], dtype=torch.float64))
    # negative update on the first pair pulses G⁻ (SET only: no conductance decreases)
    arr.apply(torch.tensor([-0.1, 0.1], dtype=torch.float64))
    gp2, gn2 = arr.conductance()
    assert torch.all(gp2 >= gp - 1e-12) and torch.all(gn2 >= gn - 1e-12)
    assert torch.allclose(arr.weight(), torch.tensor([0.2, -0.1], dtype=torch.float64))
    assert arr.refreshes == 0
    # drive G⁺ of the first pair up and G⁻ alternately until a device saturates -> refresh
    for _ in range(9):
        arr.apply(torch.tensor([0.1, 0.0], dtype=torch.float64))
        arr.apply(torch.tensor([-0.1, 0.0], dtype=torch.float64))
    assert arr.refreshes >= 1
    gp3, gn3 = arr.conductance()
    assert gp3.max() <= 1.0 and gn3.max() <= 1.0
    # after the refresh the weight is still the accumulated difference, on one device only
    assert arr.weight()[0].item() == pytest.approx(0.2)
    assert min(gp3[0].item(), gn3[0].item()) < 0.95


def test_differential_refresh_keeps_difference_nonlinear() -> None:
    cfg = MemristiveSynapse(n_levels=33, gamma_p=0.5)
    arr = DifferentialArray(cfg, torch.zeros(1, dtype=torch.float64))
    for _ in range(200):
        arr.apply(torch.tensor([1 / 32], dtype=torch.float64))
        arr.apply(torch.tensor([-1 / 32], dtype=torch.float64))
    assert arr.refreshes >= 1
    gp, gn = arr.conductance()
    assert gp.item() <= 1.0 and gn.item() <= 1.0
    assert abs(arr.weight().item()) < 0.2


def test_noise_and_drift_off_by_default() -> None:
    cfg = MemristiveSynapse()
    arr = MemristiveArray(cfg, torch.rand(30, 30, generator=torch.Generator().manual_seed(1)))
    w1, w2 = arr.weight(), arr.weight()
    assert torch.equal(w1, w2)
    arr.advance(1e6)
    assert torch.equal(arr.weight(), w1)
    a = MemristiveArray(cfg, torch.full((100,), 0.5))
    b = MemristiveArray(cfg, torch.full((100,), 0.5))
    torch.manual_seed(0)
    a.apply(torch.full((100,), 0.1))
    torch.manual_seed(1)
    b.apply(torch.full((100,), 0.1))
    assert torch.equal(a.weight(), b.weight())


def test_noise_and_drift_when_enabled() -> None:
    gen = torch.Generator().manual_seed(0)
    cfg = MemristiveSynapse(write_noise=0.5, read_noise=0.05, drift_nu=0.1)
    g0 = 16 * cfg.delta  # a level
    arr = MemristiveArray(cfg, torch.full((5000,), g0, dtype=torch.float64), generator=gen)
    arr.apply(torch.full((5000,), cfg.delta, dtype=torch.float64))  # one pulse
    g = arr.conductance()
    # write noise: std σ_w·δ around g0 + δ
    assert g.std().item() == pytest.approx(0.5 * cfg.delta, rel=0.1)
    assert g.mean().item() == pytest.approx(g0 + cfg.delta, abs=0.002)
    r1, r2 = arr.weight(), arr.weight()
    assert not torch.equal(r1, r2)
    arr.advance(100.0)
    drifted = arr.weight(noisy=True).mean().item()
    assert drifted == pytest.approx(g.mean().item() * 100.0**-0.1, rel=0.01)
    assert torch.equal(arr.weight(noisy=False), g)


def test_mixed_precision_accumulates() -> None:
    cfg = MemristiveSynapse(n_levels=11, mode="mixed_precision")  # one pulse = 0.1
    arr = MemristiveArray(cfg, torch.full((2,), 0.5, dtype=torch.float64))
    for i in range(9):
        arr.apply(torch.tensor([0.011, -0.03], dtype=torch.float64))
        if i < 8:
            # 0.011·(i+1) < 0.1: nothing programmed on the first element yet
            assert arr.conductance()[0].item() == pytest.approx(0.5)
    # after 9 updates χ₀ = 0.099 (< 0.1, no pulse); χ₁ = −0.27 -> two pulses, χ₁ = −0.07
    assert arr.conductance()[0].item() == pytest.approx(0.5)
    assert arr.conductance()[1].item() == pytest.approx(0.3)
    assert arr.chi[0].item() == pytest.approx(0.099)
    assert arr.chi[1].item() == pytest.approx(-0.07)
    arr.apply(torch.tensor([0.002, 0.0], dtype=torch.float64))
    assert arr.conductance()[0].item() == pytest.approx(0.6)
    assert arr.chi[0].item() == pytest.approx(0.001)
    # in-situ deterministic rounding of the same small updates never programs anything
    insitu = MemristiveArray(dataclasses.replace(cfg, mode="in_situ"), torch.full((1,), 0.5))
    for _ in range(20):
        insitu.apply(torch.tensor([0.011]))
    assert insitu.conductance().item() == pytest.approx(0.5)


def test_ideal_mode_equals_float_updates_exactly() -> None:
    gen = torch.Generator().manual_seed(5)
    for w_scale in (1.0, 0.25, 4.0):
        cfg = MemristiveSynapse(quantize=False, w_scale=w_scale)
        w = (0.3 + 0.4 * torch.rand(40, 30, generator=gen, dtype=torch.float64)) * w_scale
        arr = MemristiveArray(cfg, w)
        assert torch.equal(arr.weight(), w)
        for _ in range(20):
            dw = (torch.rand(40, 30, generator=gen, dtype=torch.float64) - 0.5) * 0.01 * w_scale
            w = w + dw
            arr.apply(dw)
            assert torch.equal(arr.weight(), w)  # bit for bit (w_scale a power of two)
    # float32 too
    cfg = MemristiveSynapse(quantize=False)
    w32 = 0.5 * torch.ones(100)
    arr32 = MemristiveArray(cfg, w32)
    for _ in range(10):
        dw = (torch.rand(100, generator=gen) - 0.5) * 0.01
        w32 = w32 + dw
        arr32.apply(dw)
    assert torch.equal(arr32.weight(), w32)
    # differential pair: equal to float rounding (one extra addition)
    cfgp = MemristiveSynapse(quantize=False, w_scale=0.5)
    wp = (torch.rand(20, 20, generator=gen, dtype=torch.float64) - 0.5) * 0.2
    pair = DifferentialArray(cfgp, wp)
    for _ in range(50):
        dw = (torch.rand(20, 20, generator=gen, dtype=torch.float64) - 0.5) * 0.004
        wp = wp + dw
        pair.apply(dw)
    assert torch.allclose(pair.weight(), wp, rtol=0, atol=1e-14)
    assert pair.refreshes == 0


def test_ideal_mode_clips_at_bounds() -> None:
    arr = MemristiveArray(MemristiveSynapse(quantize=False), torch.tensor([0.95, 0.05]))
    arr.apply(torch.tensor([0.2, -0.2]))
    assert torch.equal(arr.weight(), torch.tensor([1.0, 0.0]))


def test_program_parameter_and_state_dict_roundtrip() -> None:
    cfg = MemristiveSynapse(n_levels=11, w_scale=0.5)
    layer = torch.nn.Linear(4, 3, bias=False)
    pair = DifferentialArray(cfg, layer.weight.detach())
    with torch.no_grad():
        layer.weight.copy_(pair.weight())
        layer.weight.add_(0.2)  # desired: +0.2 = 4 pulses of 0.05
    before = pair.weight().clone()
    pair.program_parameter(layer.weight)
    assert torch.allclose(layer.weight.detach(), pair.weight())
    assert torch.allclose(pair.weight() - before, torch.full((3, 4), 0.2), atol=1e-6)
    state = pair.state_dict()
    other = DifferentialArray(cfg, torch.zeros(3, 4))
    other.load_state_dict(state)
    assert torch.equal(other.weight(), pair.weight())
    assert other.pulses == pair.pulses
    with pytest.raises(ValueError):
        MemristiveArray(cfg, torch.zeros(2)).load_state_dict(
            MemristiveArray(cfg, torch.zeros(3)).state_dict()
        )
    with pytest.raises(ValueError):
        pair.apply(torch.zeros(2, 2))


def test_config_array_factory() -> None:
    cfg = MemristiveSynapse()
    assert isinstance(cfg.array(torch.zeros(2)), MemristiveArray)
    assert isinstance(cfg.array(torch.zeros(2), differential=True), DifferentialArray)
