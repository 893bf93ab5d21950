"""IF / LIF modules: no hidden state, streaming, learnable initial potential, param_groups."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from spikeforge.core.functional import decay_lif_multistep, if_multistep, lif_multistep
from spikeforge.core.neurons import IF, LIF, DecayLIF, MultiStep, param_groups


def rand(*shape: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(*shape, generator=g) * 1.2


@pytest.mark.parametrize("reset", ["subtract", "zero", "none"])
def test_modules_are_the_functional_reference(reset: str) -> None:
    x = rand(6, 3, 5)
    kw = {"reset": reset, "threshold": 0.9, "detach_reset": True, "surrogate": "sigmoid"}
    torch.testing.assert_close(IF(**kw)(x), if_multistep(x, **kw)[0])
    torch.testing.assert_close(
        LIF(tau=3.0, decay_input=False, **kw)(x),
        lif_multistep(x, tau=3.0, decay_input=False, **kw)[0],
    )
    torch.testing.assert_close(
        DecayLIF(decay=0.25, **kw)(x), decay_lif_multistep(x, decay=0.25, **kw)[0]
    )


@pytest.mark.parametrize("cls", [IF, LIF, DecayLIF])
def test_no_state_leaks_between_calls_or_instances(cls: type[nn.Module]) -> None:
    a, b = cls(), cls()
    xa, xb = rand(5, 2, 4, seed=1), rand(5, 2, 4, seed=2) * 3
    first = a(xa)
    b(xb)  # another instance, driven hard
    a(xb)  # the same instance on another batch
    torch.testing.assert_close(a(xa), first)
    assert list(a.buffers()) == [] and list(a.parameters()) == []


def test_two_imp_networks_have_their_own_parameters() -> None:
    torch.manual_seed(0)
    a, b = IF(learnable_init=True, shape=(4,)), IF(learnable_init=True, shape=(4,))
    assert a.init_state is not b.init_state
    x = rand(3, 2, 4)
    with torch.no_grad():
        a.init_state.fill_(0.9)
    out_b = b(x)
    a(x)
    torch.testing.assert_close(b(x), out_b)


@pytest.mark.parametrize("cls", [IF, LIF, DecayLIF])
def test_streaming_with_returned_state_equals_one_long_call(cls: type[nn.Module]) -> None:
    torch.manual_seed(0)
    neuron = cls(learnable_init=True, shape=(3,))
    x = rand(8, 2, 3)
    full, v_full = neuron(x, return_state=True)
    s1, v = neuron(x[:3], return_state=True)
    s2, v = neuron(x[3:], state=v, return_state=True)  # the IMP is not re-applied here
    torch.testing.assert_close(torch.cat([s1, s2]), full)
    torch.testing.assert_close(v, v_full)
    assert v.shape == (2, 3)


def test_batch_size_change_between_calls() -> None:
    torch.manual_seed(0)
    neuron = LIF(learnable_init=True)  # lazy IMP
    x = rand(4, 5, 2, 3, 3)
    out5 = neuron(x)
    assert neuron.init_state is not None and neuron.init_state.shape == (1, 2, 3, 3)
    out3 = neuron(x[:, :3])  # last, smaller batch
    torch.testing.assert_close(out3, out5[:, :3])
    assert neuron(x[:, :1], state=torch.zeros(1, 2, 3, 3)).shape == (4, 1, 2, 3, 3)


def test_imp_semantics_one_value_per_neuron_reapplied_every_forward() -> None:
    torch.manual_seed(0)
    neuron = IF(learnable_init=True)
    x = torch.full((2, 3, 4), 0.5)
    neuron(x)
    imp = neuron.init_state
    assert imp.shape == (1, 4) and imp.requires_grad
    assert bool(((imp >= 0.4) & (imp <= 0.6)).all())  # U(0.4, 0.6)
    with torch.no_grad():
        imp.copy_(torch.tensor([[0.5, 0.0, 0.5, 0.0]]))
    # H1 = IMP + .5: neurons 0 and 2 fire at once, 1 and 3 at step 2; same for every sample
    for _ in range(2):  # re-applied at every call, not carried over from the last one
        s = neuron(x)
        assert s[:, 0].tolist() == [[1, 0, 1, 0], [0, 1, 0, 1]]
        assert bool((s == s[:, :1]).all())


def test_imp_receives_gradients_and_is_decayed_by_lif_leak() -> None:
    neuron = LIF(tau=2.0, learnable_init=True, shape=(2,), surrogate="rectangle")
    with torch.no_grad():
        neuron.init_state.copy_(torch.tensor([[1.0, 0.0]]))
    x = torch.tensor([[[0.8, 0.8]]]).repeat(1, 3, 1).requires_grad_(True)  # [1, 3, 2]
    s = neuron(x)
    # H1 = v0/2 + x/2 = .9 (neuron 0) and .4 (neuron 1): no spikes with >= 1
    assert s.sum() == 0
    s.sum().backward()
    # dS/dv0 = g'(H - 1) / 2 summed over 3 samples; rectangle g' = 1 on |u| < .5
    assert neuron.init_state.grad.tolist() == [[1.5, 0.0]]


def test_lazy_imp_loads_from_state_dict_and_rejects_other_shapes() -> None:
    torch.manual_seed(0)
    trained = IF(learnable_init=True)
    trained(rand(2, 1, 6))
    fresh = IF(learnable_init=True)
    assert fresh.init_state is None and "lazy" in repr(fresh)
    fresh.load_state_dict(trained.state_dict())
    torch.testing.assert_close(fresh.init_state, trained.init_state)
    with pytest.raises(ValueError, match=r"neurons of shape \[6\].*\[2, 1, 5\]"):
        fresh(rand(2, 1, 5))


def test_constructor_checks() -> None:
    with pytest.raises(ValueError, match="learnable_init=True"):
        IF(shape=(3,))
    with pytest.raises(ValueError, match="unknown reset"):
        IF(reset="soft")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown surrogate"):
        LIF(surrogate="erf")
    with pytest.raises(ValueError, match="tau"):
        LIF(tau=0.5)


def make_net(lazy: bool) -> nn.Module:
    return nn.Sequential(
        MultiStep(nn.Linear(4, 6), nn.LayerNorm(6)),
        IF(learnable_init=True, shape=None if lazy else (6,)),
        MultiStep(nn.Linear(6, 3)),
        LIF(learnable_init=True, shape=None if lazy else (3,)),
    )


def test_param_groups_exclude_imp_from_weight_decay() -> None:
    net = make_net(lazy=False)
    imps = {id(net[1].init_state), id(net[3].init_state)}
    decay, no_decay = param_groups(net, 0.05)
    assert decay["weight_decay"] == 0.05 and no_decay["weight_decay"] == 0.0
    assert {id(p) for p in no_decay["params"]} == imps
    assert len(decay["params"]) == 6  # 2 Linear (w, b) + LayerNorm (w, b)
    decay, no_decay = param_groups(net, 0.05, exclude_bias_and_norm=True)
    assert [p.shape for p in decay["params"]] == [(6, 4), (3, 6)]
    assert len(no_decay["params"]) == 6
    # with AdamW, a zero-gradient IMP stays put while a zero-gradient weight decays
    opt = torch.optim.AdamW(param_groups(net, 0.5), lr=0.1)
    before_imp, before_w = net[1].init_state.detach().clone(), net[2].layer.weight.detach().clone()
    for p in net.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()
    torch.testing.assert_close(net[1].init_state.detach(), before_imp)
    torch.testing.assert_close(net[2].layer.weight.detach(), before_w * (1 - 0.1 * 0.5))


def test_param_groups_refuse_lazy_imp_before_first_forward() -> None:
    net = make_net(lazy=True)
    with pytest.raises(ValueError, match=r"'1'.*run one forward pass"):
        param_groups(net, 0.01)
    net(rand(2, 3, 4))
    assert len(param_groups(net, 0.01)[1]["params"]) == 2


def test_multistep_wrapper_flattens_time_and_batch() -> None:
    torch.manual_seed(0)
    conv = MultiStep(nn.Conv2d(2, 3, 3, padding=1), nn.BatchNorm2d(3).eval())
    x = rand(4, 5, 2, 6, 6)
    y = conv(x)
    assert y.shape == (4, 5, 3, 6, 6)
    torch.testing.assert_close(y[2], conv.layer(x[2]))
    with pytest.raises(ValueError, match="at least one layer"):
        MultiStep()


def test_imp_network_trains_end_to_end_and_compiles() -> None:
    """A tiny IMP network: the IMP moves under training; fullgraph tracing after the first call."""
    torch.manual_seed(0)
    net = make_net(lazy=True)
    x = rand(3, 8, 4)
    net(x)  # creates the IMPs
    compiled = torch.compile(net, fullgraph=True, backend="aot_eager")
    torch.testing.assert_close(compiled(x), net(x))
    opt = torch.optim.SGD(param_groups(net, 1e-4), lr=0.5)
    imp0 = net[1].init_state.detach().clone()
    loss = compiled(x).mean(0).sub(0.5).pow(2).sum()
    loss.backward()
    assert net[1].init_state.grad is not None and net[1].init_state.grad.abs().sum() > 0
    opt.step()
    assert not torch.equal(net[1].init_state.detach(), imp0)
