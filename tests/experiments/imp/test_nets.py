"""Static-input SNNs: layouts, IMP created at construction, same weights with and without IMP."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from spikeforge.core.neurons import IF, param_groups
from spikeforge.experiments.imp.nets import StaticSNN, conv_snn, if_mlp, imp_parameters


def _weights(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v for k, v in model.state_dict().items() if not k.endswith("init_state")}


def test_mlp_layout_and_imp() -> None:
    torch.manual_seed(0)
    plain = if_mlp([64, 32, 16, 10], time_steps=4)
    torch.manual_seed(0)
    imp = if_mlp([64, 32, 16, 10], time_steps=4, imp=True)
    x = torch.rand(5, 64)
    assert tuple(plain(x).shape) == (4, 5, 10)  # [T, B, C]
    assert imp_parameters(plain) == []
    assert [tuple(p.shape) for p in imp_parameters(imp)] == [(1, 32), (1, 16)]
    values = torch.cat([p.detach().flatten() for p in imp_parameters(imp)])
    assert 0.4 <= float(values.min()) and float(values.max()) <= 0.6  # U(0.4, 0.6)
    a, b = _weights(plain), _weights(imp)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    groups = param_groups(imp, weight_decay=0.1)  # the IMPs exist: no dummy forward needed
    assert {id(p) for p in groups[1]["params"]} == {id(p) for p in imp_parameters(imp)}
    assert not torch.equal(plain(x), imp(x))


def test_stem_runs_once_and_equals_the_repeated_layer() -> None:
    torch.manual_seed(1)
    model = if_mlp([8, 6, 3], time_steps=3)
    x = torch.rand(4, 8)
    stem = model.stem
    body = model.body
    repeated = body(stem(x.unsqueeze(0).expand(3, 4, 8)))  # the stem on every repeated step
    torch.testing.assert_close(model(x), repeated)
    bias_free = if_mlp([8, 6, 3], bias=False)
    assert all(m.bias is None for m in bias_free.modules() if isinstance(m, nn.Linear))


def test_conv_snn_shapes() -> None:
    torch.manual_seed(0)
    net = conv_snn(in_shape=(1, 9, 9), classes=4, time_steps=2, imp=True)
    assert tuple(net(torch.rand(3, 1, 9, 9)).shape) == (2, 3, 4)
    assert [tuple(p.shape) for p in imp_parameters(net)] == [(1, 32, 9, 9), (1, 64, 5, 5)]
    lif = conv_snn(in_shape=(1, 8, 8), neuron="lif")
    assert tuple(lif(torch.rand(2, 1, 8, 8)).shape) == (4, 2, 10)
    assert sum(isinstance(m, IF) for m in net.modules()) == 2


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="hidden layer"):
        if_mlp([4, 2])
    with pytest.raises(ValueError, match=">= 1"):
        if_mlp([4, 0, 2])
    with pytest.raises(ValueError, match="time_steps"):
        StaticSNN(nn.Identity(), 0)
    with pytest.raises(ValueError, match="neuron"):
        if_mlp([4, 3, 2], neuron="alif")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="input shape"):
        conv_snn(in_shape=(0, 8, 8))
