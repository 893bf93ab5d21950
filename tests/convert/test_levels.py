"""AL metric and rule (spec §5), T_eff (§5.4) and latency accounting (§6, §9.8)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from spikeforge.convert import (
    al_max,
    al_metric,
    al_metrics,
    chain_latency,
    levels_from_al,
    qcfs_sites,
    t_eff,
)
from spikeforge.convert.levels import al_metric_from_counts, histogram, r_from_fan_in, t_eff_layer

pytestmark = pytest.mark.usefixtures("one_thread")

Factory = Callable[..., tuple[nn.Module, Tensor]]


def _al_numpy(values: np.ndarray, bins: int = 5) -> float:
    """The metric as spec §5.2 states it, with numpy's histogram and population moments."""
    counts, _ = np.histogram(values, bins)
    k = int((counts >= counts.sum() / bins).sum())
    a = 1 - (k - 1) / (bins - 1)
    centred = counts - counts.mean()
    std = counts.std()
    g = (centred**3).mean() / std**3
    kappa = (centred**4).mean() / std**4 - 3
    return a * (g**2 + 1) * (kappa + 3 * bins**2 / ((bins - 2) * (bins - 3)))


def test_reference_histograms() -> None:
    one_bin = torch.tensor([100.0, 0, 0, 0, 0])
    assert al_metric_from_counts(one_bin) == pytest.approx(3.25 * 12.75)  # g^2 = 9/4, k = 1/4
    assert al_max() == pytest.approx(41.4375)
    two_ends = torch.tensor([50.0, 0, 0, 0, 50])  # A = 3/4, g^2 = 1/6, kappa = -11/6
    assert al_metric_from_counts(two_ends) == pytest.approx(0.75 * (7 / 6) * (-11 / 6 + 12.5))
    assert al_metric_from_counts(torch.full((5,), 7.0)) == 0.0
    with pytest.raises(ValueError, match="at least 4 bins"):
        al_metric_from_counts(torch.ones(3))


@pytest.mark.parametrize("seed", range(5))
def test_metric_matches_a_numpy_evaluation(seed: int) -> None:
    rng = np.random.default_rng(seed)
    values = rng.gamma(0.5 + seed, size=5_000)  # skewed, increasingly diffuse
    assert torch.equal(
        histogram(torch.from_numpy(values)), torch.from_numpy(np.histogram(values, 5)[0]).double()
    )
    assert al_metric(torch.from_numpy(values)) == pytest.approx(_al_numpy(values), rel=1e-9)


def test_constant_values_fall_in_the_middle_bin() -> None:
    assert histogram(torch.full((10,), 3.0)).tolist() == [0, 0, 10, 0, 0]


def test_al_metrics_of_a_qcfs_network_equal_the_metric_of_its_outputs(network: Factory) -> None:
    qnet, x = network("cnn")
    outputs: dict[str, Tensor] = {}
    handles = [
        m.register_forward_hook(lambda mod, a, out, p=p: outputs.__setitem__(p, out.detach()))
        for p, m in qcfs_sites(qnet)
    ]
    with torch.no_grad():
        qnet(x)
    for h in handles:
        h.remove()
    metrics = al_metrics(qnet, [x[:100], x[100:]])
    assert metrics == pytest.approx([al_metric(outputs[p]) for p, _ in qcfs_sites(qnet)])
    assert all(m > 0 for m in metrics)
    assert not qnet.training


def test_rule_from_metric_to_levels() -> None:
    top = al_max()
    metrics = [0.0, 0.2 * top, 0.3 * top, 0.6 * top, 0.8 * top, top]
    assert levels_from_al(metrics) == [8, 8, 4, 2, 1, 1]
    assert levels_from_al(metrics, choices=(16, 4), thresholds=(0.5,)) == [16, 16, 16, 4, 4, 4]
    with pytest.raises(ValueError, match="one more entry"):
        levels_from_al(metrics, choices=(4,), thresholds=(0.5,))
    with pytest.raises(ValueError, match="increase"):
        levels_from_al(metrics, choices=(8, 4, 2), thresholds=(0.5, 0.25))


def test_t_eff_formula_and_inferred_r() -> None:
    """r = 4 / (3 fan_in) reproduces get_Teff.py's listed constants (first VGG conv, fan-in 27;
    3x3x64 conv, fan-in 576; 512-input classifier)."""
    assert r_from_fan_in(27) == pytest.approx(0.04938271604938271)
    assert r_from_fan_in(576) == pytest.approx(0.0023148148148148147)
    assert r_from_fan_in(512) == pytest.approx(0.0026041666666666665)
    assert r_from_fan_in(0) == 0.0
    assert t_eff_layer(4, 0.0) == 4.0
    assert t_eff_layer(4, 1 / 432) == pytest.approx(4 * (1 + 18 / 432) / (1 + 4 / 432))
    result = t_eff([8, 1], [576, 27], ["a", "b"])
    assert list(result.per_layer) == ["a", "b"]
    assert result.per_layer["b"] == pytest.approx((1 + 3 * 4 / 81) / (1 + 4 / 81))
    assert result.mean == pytest.approx(sum(result.per_layer.values()) / 2)


def test_chain_latency_on_a_hand_made_list() -> None:
    """Levels [8, 4, 4, 1]: pipelined 8 + (7 + 4) + (3 + 4) + (3 + 1) = 30; sequential
    8 + (8 + 7 + 4) + (4 + 3 + 4) + (4 + 3 + 1) + 1 = 47."""
    latency = chain_latency([8, 4, 4, 1])
    assert (latency.pipelined, latency.sequential) == (30, 47)
    assert chain_latency([4]) == chain_latency((4,))
    assert (chain_latency([4]).pipelined, chain_latency([4]).sequential) == (4, 8)
    assert (chain_latency([]).pipelined, chain_latency([]).sequential) == (0, 0)
