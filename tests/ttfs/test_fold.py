"""Folding: position-dependent border biases, max/min pool signs, weight-sum scaling."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from spikeforge.ttfs.fold import (
    WEIGHT_SUM_LOWER,
    WEIGHT_SUM_UPPER,
    canonicalize,
    scale_weight_sums,
)
from spikeforge.ttfs.trace import trace_chain


def _bn(c: int, scale: torch.Tensor | None = None) -> nn.BatchNorm2d:
    bn = nn.BatchNorm2d(c).double().eval()
    with torch.no_grad():
        bn.bias.copy_(torch.linspace(0.5, 1.5, c))
        if scale is not None:
            bn.weight.copy_(scale)
    return bn


@pytest.mark.parametrize(
    ("kernel", "stride", "padding", "distinct"),
    [(3, 1, 1, 9), (5, 1, 2, 25), (5, 2, 2, 9), (3, 1, 0, 1)],
)
def test_border_bias_count(kernel: int, stride: int, padding: int, distinct: int) -> None:
    """BN after ReLU folded across zero padding: one bias per distinct border situation."""
    conv = nn.Conv2d(3, 2, kernel, stride=stride, padding=padding).double()
    model = nn.Sequential(nn.Conv2d(1, 3, 1), nn.ReLU(), _bn(3), conv, nn.Flatten()).double()
    model = model.eval()
    x = torch.rand(2, 1, 11, 11, dtype=torch.float64)
    chain = canonicalize(trace_chain(model), x, (0.0, 1.0))
    bias = chain.stages[1].affine.bias
    for o in range(2):
        assert torch.unique(bias[o]).numel() == distinct
    assert torch.allclose(chain.forward(x), model(x), atol=1e-12, rtol=0)


def test_negative_scale_turns_max_pool_into_min_pool() -> None:
    model = (
        nn.Sequential(
            nn.Conv2d(1, 3, 3, padding=1),
            nn.ReLU(),
            _bn(3, torch.tensor([1.0, -2.0, 0.5])),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(3 * 4 * 4, 2),
        )
        .double()
        .eval()
    )
    x = torch.rand(4, 1, 8, 8, dtype=torch.float64)
    chain = canonicalize(trace_chain(model), x, (0.0, 1.0))
    pool = chain.stages[1].pre[0]
    assert pool.sign.tolist() == [1.0, -1.0, 1.0]
    assert torch.allclose(chain.forward(x), model(x), atol=1e-12, rtol=0)


def test_input_range_fold_with_nonzero_p_has_border_biases() -> None:
    model = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.Flatten()).double().eval()
    p, q = -3.0, 3.0
    x = torch.rand(3, 1, 6, 6, dtype=torch.float64) * (q - p) + p
    chain = canonicalize(trace_chain(model), (x - p) / (q - p), (p, q))
    assert torch.unique(chain.stages[0].affine.bias[0]).numel() == 9
    assert torch.allclose(chain.forward((x - p) / (q - p)), model(x), atol=1e-12, rtol=0)


def test_weight_sum_scaling_bounds_and_preserves_the_function() -> None:
    torch.manual_seed(0)
    model = (
        nn.Sequential(
            nn.Conv2d(1, 4, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(64, 16),
            nn.ReLU(),
            nn.Linear(16, 3),
        )
        .double()
        .eval()
    )
    with torch.no_grad():  # push weight sums far outside [-10, 0.99] in both directions
        model[0].weight[:2].abs_().mul_(3.0)
        model[0].weight[2:].abs_().mul_(-40.0)
        model[4].weight.mul_(20.0)
    x = torch.rand(16, 1, 8, 8, dtype=torch.float64)
    chain = canonicalize(trace_chain(model), x, (0.0, 1.0))
    before = chain.forward(x)
    scale_weight_sums(chain)
    for stage in chain.hidden:
        sums = stage.affine.fan_in_sum().flatten()
        assert float(sums.max()) <= WEIGHT_SUM_UPPER + 1e-12
        assert float(sums.min()) >= WEIGHT_SUM_LOWER - 1e-12
    assert torch.allclose(chain.forward(x), before, atol=1e-12, rtol=0)
    out_sums = chain.stages[-1].affine.fan_in_sum()
    assert float(out_sums.abs().max()) > 1.0  # the output layer is never row-scaled
