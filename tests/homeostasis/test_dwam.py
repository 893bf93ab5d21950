"""Layer-level tests of DWAM (spec dwam.md §6.7) on the §4.3 sketch: 100 Bernoulli input spike
trains -> 30 decay-factor LIF neurons (β = 0.8, soft reset), seeded."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

from spikeforge.core import LIF, DecayLIF, MultiStep, SpikeLinear
from spikeforge.homeostasis import DWAM, AdaptiveLIF, UnsupportedLayerError

N_IN, N_OUT, P_IN, T = 100, 30, 0.2, 5


def make_net(seed: int = 1) -> nn.Sequential:
    """The trained host of the sketch: nominal mean rate ~0.25 spikes per step."""
    g = torch.Generator().manual_seed(seed)
    lin = nn.Linear(N_IN, N_OUT, bias=False)
    with torch.no_grad():
        lin.weight.copy_(torch.rand(N_OUT, N_IN, generator=g) * 0.036)
    return nn.Sequential(MultiStep(lin), DecayLIF(decay=0.8, reset="subtract"))


def untouched(net: nn.Module, except_forward: nn.Module | None = None) -> bool:
    """No module of ``net`` has a hook or (but ``except_forward``) an instance ``forward``."""
    for m in net.modules():
        if m._forward_hooks or m._forward_pre_hooks:
            return False
        if "forward" in m.__dict__ and m is not except_forward:
            return False
    return True


def spikes_in(g: torch.Generator, steps: int = T, batch: int = 1) -> torch.Tensor:
    """Bernoulli input spikes ``[steps, batch, N_IN]``."""
    return (torch.rand(steps, batch, N_IN, generator=g) < P_IN).float()


def reference(net: nn.Module, seed: int = 2) -> dict[str, torch.Tensor]:
    probe = DWAM(net, ["0"], stream_state=True)
    return probe.record_reference(spikes_in(torch.Generator().manual_seed(seed), 2000))


def degrade(net: nn.Sequential, scale: float = 0.6) -> None:
    with torch.no_grad():
        net[0].layer.weight.mul_(scale)


def run(dwam: DWAM, updates: int, seed: int = 3) -> list[float]:
    """Mean output rate of every call (one update per call, K = T)."""
    g = torch.Generator().manual_seed(seed)
    return [float(dwam(spikes_in(g)).mean()) for _ in range(updates)]


def mean_last(rates: list[float], n: int = 500) -> float:
    return sum(rates[-n:]) / n


@pytest.fixture(scope="module")
def setup(one_thread) -> tuple[dict[str, torch.Tensor], float]:
    """Reference rates of the nominal host and its mean."""
    ref = reference(make_net())
    return ref, float(ref["0"].mean())


def test_recovers_nominal_rate_under_weight_scaling(setup):
    ref, nominal = setup
    assert 0.2 < nominal < 0.3
    net = make_net()
    degrade(net, 0.6)
    with torch.no_grad():
        plain = float(net(spikes_in(torch.Generator().manual_seed(4), 2000)).mean())
    assert plain < 0.4 * nominal  # the plain network stays ~65 % down
    dwam = DWAM(
        net, ["0"], eta=0.01, tau_theta=10, zeta=2, window=200, c_ref=ref, stream_state=True
    )
    rates = run(dwam, 2500)
    assert abs(mean_last(rates) - nominal) < 0.1 * nominal
    # the plain network (trained parameters, no DWAM) is still down afterwards
    with torch.no_grad():
        after = float(net(spikes_in(torch.Generator().manual_seed(4), 2000)).mean())
    assert after == plain


def test_no_adaptation_before_the_window_is_full(setup):
    ref, _ = setup
    net = make_net()
    degrade(net)
    dwam = DWAM(net, ["0"], window=200, c_ref=ref, stream_state=True)
    run(dwam, 199)
    assert torch.equal(dwam.weights["0"], net[0].layer.weight)
    assert float(dwam.gates()["0"].abs().max()) == 0.0


def test_closed_gate_constant_input_no_change(setup):
    """Constant input and no carried state: every call gives the same spikes, CV = 0, g = 0."""
    ref, _ = setup
    net = make_net()
    degrade(net)
    dwam = DWAM(net, ["0"], window=50, c_ref=ref)
    x = torch.full((20, 4, N_IN), P_IN)
    for _ in range(300):
        dwam(x)
    assert float(dwam.gates()["0"].max()) < 1e-5
    assert dwam.weight_change()["0"] < 1e-6
    # control: the same run with fluctuating input opens the gate and changes the weights
    noisy = DWAM(net, ["0"], window=50, c_ref=ref)
    g = torch.Generator().manual_seed(5)
    for _ in range(300):
        noisy(spikes_in(g, 20, 4))
    assert float(noisy.gates()["0"].mean()) > 0.1
    assert noisy.weight_change()["0"] > 1e-3


def test_silent_neuron_is_absorbing(setup):
    ref, nominal = setup
    net = make_net()
    degrade(net)
    with torch.no_grad():
        net[0].layer.weight[3] = 0.0  # neuron 3 silenced
    dwam = DWAM(net, ["0"], c_ref=ref, stream_state=True)
    run(dwam, 1500)
    assert float(dwam.rates()["0"][3]) == 0.0
    assert torch.equal(dwam.weights["0"][3], torch.zeros(N_IN))  # φ = 0: never recovers
    others = torch.cat([dwam.rates()["0"][:3], dwam.rates()["0"][4:]])
    assert float(others.mean()) > 0.8 * nominal  # the rest recovers


def _collapsed(rates: list[float], n: int = 200, floor: float = 0.01) -> bool:
    return any(sum(rates[i : i + n]) / n < floor for i in range(0, len(rates) - n, 50))


@pytest.mark.parametrize(
    ("tau_theta", "sign"),
    [(300.0, 1), (10.0, -1)],
    ids=["slow-theta", "flipped-sign"],
)
def test_slow_threshold_or_flipped_sign_collapses(setup, tau_theta, sign):
    ref, _ = setup
    net = make_net()
    degrade(net)
    dwam = DWAM(net, ["0"], tau_theta=tau_theta, sign=sign, c_ref=ref, stream_state=True)
    assert _collapsed(run(dwam, 2500))


def test_control_fast_threshold_never_collapses(setup):
    ref, _ = setup
    net = make_net()
    degrade(net)
    dwam = DWAM(net, ["0"], c_ref=ref, stream_state=True)
    rates = run(dwam, 2500)
    assert not _collapsed(rates[200:], floor=0.05)


def test_trained_weights_bit_identical_after_evaluation(setup):
    ref, _ = setup
    net = make_net()
    degrade(net)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    x = spikes_in(torch.Generator().manual_seed(6), 50, 2)
    out_before = net(x)
    dwam = DWAM(net, ["0"], c_ref=ref, stream_state=True)
    for episode in range(2):
        dwam.reset(episode)
        run(dwam, 600, seed=episode)
    assert dwam.weight_change()["0"] > 0.05  # the copies did adapt
    after = net.state_dict()
    assert before.keys() == after.keys()
    for k in before:
        assert torch.equal(before[k], after[k]), k
    assert torch.equal(net(x), out_before)  # no hooks left on the model
    dwam.reset(7)
    assert torch.equal(dwam.weights["0"], net[0].layer.weight)
    assert dwam.episode_seed == 7


def test_gate_always_in_unit_interval(setup):
    ref, _ = setup
    net = make_net()
    degrade(net)
    dwam = DWAM(net, ["0"], zeta=50.0, window=20, c_ref=ref, stream_state=True)
    g = torch.Generator().manual_seed(8)
    seen_one = False
    for _ in range(300):
        dwam(spikes_in(g))
        gate = dwam.gates()["0"]
        assert float(gate.min()) >= 0.0 and float(gate.max()) <= 1.0
        seen_one |= bool((gate == 1.0).any())
    assert seen_one  # ζ·CV > 1 did occur and was clipped


def test_state_dict_round_trip_and_reset(setup):
    ref, _ = setup
    net = make_net()
    degrade(net)
    a = DWAM(net, ["0"], window=20, c_ref=ref)
    g = torch.Generator().manual_seed(9)
    for _ in range(100):
        a(spikes_in(g))
    sd = a.state_dict()
    xs = [spikes_in(g) for _ in range(30)]
    outs_a = [a(x) for x in xs]
    b = DWAM(net, ["0"], window=20, c_ref=1.0)
    b.load_state_dict(sd)
    outs_b = [b(x) for x in xs]
    for oa, ob in zip(outs_a, outs_b, strict=True):
        assert torch.equal(oa, ob)
    assert torch.equal(a.weights["0"], b.weights["0"])
    assert torch.equal(a.rates()["0"], b.rates()["0"])
    # state_dict holds copies
    sd["0.weight"].zero_()
    assert not torch.equal(a.weights["0"], sd["0.weight"])
    # reset: trained weights, θ_M = c_ref, no updates
    a.reset()
    assert torch.equal(a.weights["0"], net[0].layer.weight)
    fresh = a.state_dict()
    assert torch.equal(fresh["0.theta_m"], ref["0"])
    assert fresh["0.updates"] == 0
    # keep_weights: adaptation survives a reset
    k = DWAM(net, ["0"], window=20, c_ref=ref, keep_weights=True)
    for _ in range(100):
        k(spikes_in(g))
    kept = k.weights["0"].clone()
    k.reset(1)
    assert torch.equal(k.weights["0"], kept)
    assert not torch.equal(kept, net[0].layer.weight)


def test_load_state_dict_rejects_mismatch(setup):
    ref, _ = setup
    dwam = DWAM(make_net(), ["0"], c_ref=ref)
    sd = dwam.state_dict()
    bad = dict(sd)
    del bad["0.theta_m"]
    with pytest.raises(KeyError, match=r"0\.theta_m"):
        dwam.load_state_dict(bad)
    bad = dict(sd)
    bad["0.weight"] = torch.zeros(3, 3)
    with pytest.raises(ValueError, match=r"0\.weight: expected shape \[30, 100\]"):
        dwam.load_state_dict(bad)
    bad = dict(sd)
    bad["0.c_post"] = torch.full((N_OUT,), float("nan"))
    with pytest.raises(ValueError, match="NaN"):
        dwam.load_state_dict(bad)


def test_streamed_chunks_equal_one_long_run_while_gate_closed(setup):
    """stream_state carries the membrane over calls; before the window fills, φ = 0 exactly."""
    ref, _ = setup
    net = make_net()
    x = spikes_in(torch.Generator().manual_seed(10), 10 * T, 3)
    whole = net(x)
    dwam = DWAM(net, ["0"], window=100, c_ref=ref, stream_state=True)
    chunks = torch.cat([dwam(c) for c in x.split(T)])
    assert torch.equal(chunks, whole)
    dwam.reset()
    restarted = dwam(x[:T])
    assert torch.equal(restarted, whole[:T])


def test_bare_linear_explicit_neuron_and_update_period():
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(8, 6)
            self.act = AdaptiveLIF(a=0.02)
            self.out = MultiStep(nn.Linear(6, 2))
            self.lif = LIF()

        def forward(self, x):
            return self.lif(self.out(self.act(self.fc(x))))

    net = Net()
    with torch.no_grad():
        net.fc.weight.uniform_(0.0, 0.5)
    dwam = DWAM(net, {"fc": "act", "out": "lif"}, update_every=10, window=5, stream_state=True)
    g = torch.Generator().manual_seed(11)
    x = torch.rand(4, 2, 8, generator=g)
    refs = dwam.record_reference([x, x])
    assert set(refs) == {"fc", "out"} and refs["fc"].shape == (6,)
    dwam(x)  # 4 steps < K = 10: no update yet
    assert dwam.state_dict()["fc.updates"] == 0
    dwam(x)
    dwam(x)  # 12 steps: one update
    assert dwam.state_dict()["fc.updates"] == 1
    assert dwam.state_dict()["out.updates"] == 1


def test_errors_name_the_layer():
    net = nn.Sequential(MultiStep(nn.Conv1d(2, 4, 3)), LIF())
    with pytest.raises(UnsupportedLayerError, match=r"MultiStep\(Conv1d\) at '0'"):
        DWAM(net, ["0"])
    net = nn.Sequential(MultiStep(nn.Linear(4, 3)), nn.ReLU())
    with pytest.raises(
        UnsupportedLayerError, match="no spikeforge neuron follows MultiStep at '0'"
    ):
        DWAM(net, ["0"])
    with pytest.raises(UnsupportedLayerError, match=r"no module at 'features\.3'"):
        DWAM(net, ["features.3"])
    with pytest.raises(UnsupportedLayerError, match="no module at 'nope'"):
        DWAM(net, {"0": "nope"})


def test_bad_inputs_and_parameters(setup):
    ref, _ = setup
    net = make_net()
    with pytest.raises(RuntimeError, match="no reference rates"):
        DWAM(net, ["0"])(spikes_in(torch.Generator().manual_seed(0)))
    dwam = DWAM(net, ["0"], c_ref=ref)
    x = spikes_in(torch.Generator().manual_seed(0))
    x[2, 0, 5] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        dwam(x)
    streaming = DWAM(net, ["0"], c_ref=ref, stream_state=True)
    streaming(spikes_in(torch.Generator().manual_seed(0), T, 2))
    with pytest.raises(ValueError, match=r"stream_state: the neuron '1' carries a state"):
        streaming(spikes_in(torch.Generator().manual_seed(0), T, 3))
    streaming.reset()
    streaming(spikes_in(torch.Generator().manual_seed(0), T, 3))
    with pytest.raises(ValueError, match=r"time-first input \[T >= 1, B, \.\.\.\], got \[100\]"):
        dwam(torch.zeros(N_IN))
    with pytest.raises(ValueError, match=r"\[T >= 1, B, \.\.\.\], got \[0, 2, 100\]"):
        dwam(torch.zeros(0, 2, N_IN))  # no time step
    with pytest.raises(RuntimeError, match=r"mat1 and mat2|shapes cannot|size"):
        dwam(torch.zeros(T, 1, 7))  # the model itself rejects a wrong feature size
    assert dwam._call is None  # the patches are off again after the error
    assert untouched(net)
    x = spikes_in(torch.Generator().manual_seed(1))
    with torch.no_grad():
        out = net(x)
    dwam.remove()
    with torch.no_grad():
        assert torch.equal(net(x), out)  # the DWAM calls left nothing behind
    with pytest.raises(RuntimeError, match="removed"):
        dwam(x)
    with pytest.raises(ValueError, match=r"c_ref\['0'\] has shape \[3\]"):
        DWAM(net, ["0"], c_ref={"0": torch.zeros(3)})
    with pytest.raises(ValueError, match="rates in"):
        DWAM(net, ["0"], c_ref=2.0)
    for kwargs, msg in [
        ({"eta": 0.0}, "eta"),
        ({"eta": float("nan")}, "eta"),
        ({"tau_theta": 0.5}, "tau_theta"),
        ({"window": 1}, "window"),
        ({"tau_c": 0.0}, "tau_c"),
        ({"update_every": 0}, "update_every"),
        ({"w_range": (1.0, -1.0)}, "w_range"),
        ({"sign": 0}, "sign"),
    ]:
        with pytest.raises(ValueError, match=msg):
            DWAM(net, ["0"], **kwargs)


def test_clipping_options(setup):
    ref, _ = setup
    net = make_net()
    degrade(net, 1.5)  # over-excited: depression drives weights down
    dwam = DWAM(
        net,
        ["0"],
        eta=0.05,
        window=20,
        c_ref=ref,
        clip_sign=True,
        w_range=(0.0, 0.03),
        stream_state=True,
    )
    run(dwam, 600)
    w = dwam.weights["0"]
    assert float(w.min()) >= 0.0 and float(w.max()) <= 0.03
    assert dwam.weight_change()["0"] > 0.01


def test_spike_linear_layer_is_supported():
    lin = SpikeLinear(N_IN, N_OUT, path="dense")
    with torch.no_grad():
        lin.weight.uniform_(0.0, 0.05)
    net = nn.Sequential(MultiStep(lin), LIF(tau=2.0))
    dwam = DWAM(net, ["0"], window=50, c_ref=0.2)
    g = torch.Generator().manual_seed(12)
    for _ in range(3):
        x = spikes_in(g, T, 2)
        with torch.no_grad():
            expected = net(x)
        torch.testing.assert_close(dwam(x), expected)  # the working copy, not yet adapted


def _double_net(seed: int = 1) -> nn.Sequential:
    net = make_net(seed).double()
    degrade(net, 0.7)
    return net


def test_per_sample_streams_equal_independent_single_runs(setup):
    """``per_sample=True`` on a batch of 3 streams = three per-sample DWAMs, each on its own
    stream at batch size 1: the same output bits (float64; the gate opens after 20 updates, so
    the weights do adapt); and = three shared DWAMs up to rounding (those compute the layer with
    ``F.linear``, whose summation order differs from the per-stream kernel's)."""
    ref, _ = setup
    ref64 = {k: v.double() for k, v in ref.items()}
    kwargs = dict(eta=0.02, window=20, c_ref=ref64, stream_state=True)
    batched = DWAM(_double_net(), ["0"], per_sample=True, **kwargs)
    singles = [DWAM(_double_net(), ["0"], per_sample=True, **kwargs) for _ in range(3)]
    shared = [DWAM(_double_net(), ["0"], **kwargs) for _ in range(3)]
    g = torch.Generator().manual_seed(13)
    for step in range(120):
        x = spikes_in(g, T, 3).double()
        out = batched(x)
        for b, single in enumerate(singles):
            assert torch.equal(out[:, b : b + 1], single(x[:, b : b + 1]))
            if step < 30:  # (later a rounding-level difference may flip a spike)
                torch.testing.assert_close(out[:, b : b + 1], shared[b](x[:, b : b + 1]))
    w = batched.weights["0"]
    assert w.shape == (3, N_OUT, N_IN)
    for b, single in enumerate(singles):  # (the window's periodic re-summation, torch.sum
        # over [W, S, N], may round differently for 3 streams than for 1)
        torch.testing.assert_close(w[b], single.weights["0"][0], rtol=1e-7, atol=1e-10)
        torch.testing.assert_close(batched.rates()["0"][b], single.rates()["0"][0])
    change = batched.weight_change()["0"]
    assert change.shape == (3,) and bool((change > 1e-3).all())
    assert len(set(change.tolist())) == 3  # the streams adapted differently


def test_per_sample_batch_is_fixed_until_reset(setup):
    ref, _ = setup
    dwam = DWAM(make_net(), ["0"], c_ref=ref, per_sample=True)
    with pytest.raises(RuntimeError, match="no streams yet"):
        dwam.rates()
    g = torch.Generator().manual_seed(14)
    dwam(spikes_in(g, T, 4))
    assert dwam.rates()["0"].shape == (4, N_OUT)
    with pytest.raises(ValueError, match="adapts 4 independent streams, but this call has a batch"):
        dwam(spikes_in(g, T, 2))
    dwam.reset()
    dwam(spikes_in(g, T, 2))
    sd = dwam.state_dict()
    assert sd["0.weight"].shape == (2, N_OUT, N_IN) and sd["0.window"].shape == (200, 2, N_OUT)
    other = DWAM(make_net(), ["0"], c_ref=0.5, per_sample=True)
    other.load_state_dict(sd)
    assert torch.equal(other.weights["0"], dwam.weights["0"])


def test_parametrised_layer_recomputes_with_the_working_copy(setup):
    """A parametrised weight cannot be swapped: the recompute path gives the plain result."""
    from torch.nn.utils import parametrize

    class Identity(nn.Module):
        def forward(self, w: torch.Tensor) -> torch.Tensor:
            return w

    ref, _ = setup
    plain, wrapped = make_net(), make_net()
    degrade(plain)
    degrade(wrapped)
    parametrize.register_parametrization(wrapped[0].layer, "weight", Identity())
    a = DWAM(plain, ["0"], window=20, c_ref=ref, stream_state=True)
    b = DWAM(wrapped, ["0"], window=20, c_ref=ref, stream_state=True)
    g = torch.Generator().manual_seed(15)
    for _ in range(80):
        x = spikes_in(g)
        assert torch.equal(a(x), b(x))
    torch.testing.assert_close(a.weights["0"], b.weights["0"])
    assert a.weight_change()["0"] > 1e-3


def test_weight_swap_is_undone_on_error(setup):
    ref, _ = setup
    net = make_net()
    param = net[0].layer.weight
    before, ptr = param.detach().clone(), param.data_ptr()
    dwam = DWAM(net, ["0"], window=5, c_ref=ref)
    g = torch.Generator().manual_seed(16)
    for _ in range(20):
        dwam(spikes_in(g))
    with pytest.raises(RuntimeError, match=r"mat1 and mat2|shapes cannot|size"):
        dwam(torch.zeros(T, 1, 7))
    assert net[0].layer.weight is param and param.data_ptr() == ptr
    assert torch.equal(param, before)


def test_reset_with_per_episode_weights_and_control_arm(setup):
    """``reset(weights=...)`` starts each stream from its own weights (W_0 of weight_change);
    ``adapt=False`` runs the same bookkeeping and never changes them."""
    ref, _ = setup
    net = make_net()
    w = net[0].layer.weight.detach()
    starts = torch.stack([w * 0.6, w * 1.0, w * 1.4])
    kwargs = dict(eta=0.02, window=20, c_ref=ref, per_sample=True, stream_state=True)
    dwam, control = DWAM(net, ["0"], **kwargs), DWAM(net, ["0"], adapt=False, **kwargs)
    for d in (dwam, control):
        d.reset(3, weights={"0": starts})
    g = torch.Generator().manual_seed(17)
    for _ in range(200):
        x = spikes_in(g, T, 3)
        out, plain = dwam(x), control(x)
    assert torch.equal(control.weights["0"], starts)
    assert float(control.weight_change()["0"].abs().max()) == 0.0
    assert float(control.gates()["0"].max()) > 0.0  # the gate is computed, only not applied
    change = dwam.weight_change()["0"]
    assert bool((change > 1e-3).all())
    # the under-excited stream moves up, the over-excited one down (towards c_ref)
    rates = dwam.rates()["0"].mean(1)
    nominal = float(ref["0"].mean())
    assert rates[0] > control.rates()["0"][0].mean() and rates[2] < control.rates()["0"][2].mean()
    assert abs(float(rates[0]) - nominal) < abs(float(control.rates()["0"][0].mean()) - nominal)
    assert out.shape == plain.shape == (T, 3, N_OUT)
    with pytest.raises(ValueError, match=r"expected \[B, N_out, N_in\]"):
        dwam.reset(weights={"0": w[:5]})
    with pytest.raises(ValueError, match="exactly the plastic layers"):
        dwam.reset(weights={"1": starts})
    shared = DWAM(net, ["0"], c_ref=ref)
    shared.reset(weights={"0": w * 0.5})
    torch.testing.assert_close(shared.weights["0"], w * 0.5)
    shared.set_reference(ref)
    assert torch.equal(shared.weights["0"], w)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(
    ("per_sample", "tau_c", "adapt"),
    [(False, 1.0, True), (True, 1.0, True), (True, 4.0, True), (False, 4.0, False)],
)
def test_compiled_update_is_bit_identical_to_the_torch_path(setup, dtype, per_sample, tau_c, adapt):
    """The fused C++ update (backend="compiled") against the torch operations, every state
    tensor and every output, through the gate opening and two window recomputations: bit for
    bit in float32; in float64 torch's vectorised square root is not correctly rounded (the
    kernel's is), so the gate may differ in the last bit."""
    from spikeforge.homeostasis import dwam as dwam_module

    if dwam_module._kernel() is None:
        pytest.fail(f"the DWAM kernel is unavailable: {dwam_module._LIBRARY.reason}")
    ref, _ = setup
    ref = {k: v.to(dtype) for k, v in ref.items()}
    kwargs = dict(
        eta=0.02,
        window=15,
        tau_c=tau_c,
        c_ref=ref,
        per_sample=per_sample,
        adapt=adapt,
        stream_state=True,
    )
    nets = [make_net().to(dtype) for _ in range(2)]
    for net in nets:
        degrade(net, 0.7)
    fast = DWAM(nets[0], ["0"], backend="compiled", **kwargs)
    slow = DWAM(nets[1], ["0"], backend="torch", **kwargs)
    g = torch.Generator().manual_seed(18)
    exact = dtype == torch.float32
    for _ in range(40):
        x = spikes_in(g, T, 3).to(dtype)
        out_fast, out_slow = fast(x), slow(x)
        if exact:
            assert torch.equal(out_fast, out_slow)
    a, b = fast.state_dict(), slow.state_dict()
    for key in a:
        if isinstance(a[key], torch.Tensor):
            if exact:
                assert torch.equal(a[key], b[key]), key
            else:
                torch.testing.assert_close(a[key], b[key], rtol=1e-12, atol=1e-15, msg=key)
        else:
            assert a[key] == b[key], key
    torch.testing.assert_close(
        fast.gates()["0"], slow.gates()["0"], rtol=0 if exact else 1e-15, atol=0
    )
    if adapt:
        assert float(torch.as_tensor(fast.weight_change()["0"]).min()) > 0  # the weights did move


def test_backend_choice_and_errors():
    with pytest.raises(ValueError, match="backend must be one of"):
        DWAM(make_net(), ["0"], backend="cuda")
    half = DWAM(make_net().half(), ["0"], c_ref=0.2, backend="compiled")
    with pytest.raises(RuntimeError, match="CPU float32/float64"):
        half(spikes_in(torch.Generator().manual_seed(0)).half())


def test_the_model_carries_nothing_between_calls():
    """No hook and no patched forward on the model outside DWAM calls (also after an error in
    the middle of a call), and a forward the user patched on a module is restored and used."""
    net = make_net()
    calls = []
    own = net[1].forward

    def users_forward(*args, **kwargs):
        calls.append(1)
        return own(*args, **kwargs)

    net[1].forward = users_forward
    dwam = DWAM(net, ["0"], c_ref=0.2, stream_state=True)
    assert untouched(net, except_forward=net[1])
    out = dwam(spikes_in(torch.Generator().manual_seed(0)))
    assert calls == [1] and out.shape == (T, 1, N_OUT)  # the user's forward ran inside DWAM
    assert untouched(net, except_forward=net[1]) and net[1].forward is users_forward

    def broken(*args, **kwargs):
        raise RuntimeError("neuron failed")

    net[1].forward = broken
    with pytest.raises(RuntimeError, match="neuron failed"):
        dwam(spikes_in(torch.Generator().manual_seed(1)))
    assert untouched(net, except_forward=net[1]) and net[1].forward is broken
    assert dwam._call is None


def _bits(t: torch.Tensor) -> torch.Tensor:
    """The bit patterns of a float tensor (``torch.equal`` alone takes -0.0 == +0.0)."""
    return t.view(torch.int32 if t.dtype == torch.float32 else torch.int64)


@pytest.mark.parametrize("per_sample", [False, True])
@pytest.mark.parametrize("sign", [1, -1])
def test_compiled_shortcuts_for_silent_neurons_are_bit_exact(one_thread, per_sample, sign):
    """Silent neurons (c = 0): their θ_M decays into the float32 subnormal range and stays
    there (τ_θ = 2.5: one unit of the smallest subnormal times 0.4 rounds to 0); the kernel
    computes θ_M and φ without subnormal arithmetic and skips rows whose update is ±0; a -0.0
    weight must stay -0.0 under -0 updates (sign = +1, θ_M > 0) and become +0.0 under a +0
    update (sign = -1). The compiled path gives the torch path's bits at every update."""
    net = make_net()
    with torch.no_grad():
        w = net[0].layer.weight
        w[:10] = -0.01  # neurons 0-9 never fire
        w[:5, :3] = -0.0  # negative zeros in silent rows
    kwargs = dict(window=5, tau_theta=2.5, sign=sign, eta=0.02, c_ref=0.2, per_sample=per_sample)
    fast = DWAM(net, ["0"], backend="compiled", **kwargs)
    slow = DWAM(net, ["0"], backend="torch", **kwargs)
    g = torch.Generator().manual_seed(21)
    subnormal = 0
    tiny = torch.finfo(torch.float32).tiny
    keys = ("0.weight", "0.c_pre", "0.c_post", "0.theta_m", "0.window")
    for _ in range(250):
        x = spikes_in(g, T, 3)
        assert torch.equal(_bits(fast(x)), _bits(slow(x)))
        assert torch.equal(_bits(fast.gates()["0"]), _bits(slow.gates()["0"]))
        a, b = fast.state_dict(), slow.state_dict()
        for key in keys:
            assert torch.equal(_bits(a[key]), _bits(b[key])), key
        subnormal = max(subnormal, int(((a["0.theta_m"] > 0) & (a["0.theta_m"] < tiny)).sum()))
    assert subnormal > 0  # the subnormal shortcut ran
    zeros = _bits(b["0.weight"][..., :5, :3])
    negative_zero = _bits(torch.tensor(-0.0))
    assert bool((zeros == (negative_zero if sign == 1 else 0)).all())
    assert float(torch.as_tensor(fast.weight_change()["0"]).min()) > 0  # other rows adapted


class _TwoLayers(nn.Module):
    """100 -> 30 -> 20 spiking layers (``MultiStep(nn.Linear)``); ``between`` runs on the first
    layer's spikes (a copy, an in-place change)."""

    def __init__(self, between: Any = None) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(5)
        fc1, fc2 = nn.Linear(N_IN, N_OUT), nn.Linear(N_OUT, 20)
        with torch.no_grad():
            fc1.weight.copy_(torch.rand(N_OUT, N_IN, generator=g) * 0.05)
            fc2.weight.copy_(torch.rand(20, N_OUT, generator=g) * 0.4)
            fc1.bias.copy_(torch.rand(N_OUT, generator=g) * 0.1)
            fc2.bias.copy_(torch.rand(20, generator=g) * 0.1 - 0.3)
        self.fc1, self.fc2 = MultiStep(fc1), MultiStep(fc2)
        self.lif1 = DecayLIF(decay=0.8, reset="subtract")
        self.lif2 = DecayLIF(decay=0.8, reset="subtract")
        self.between = between

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s1 = self.lif1(self.fc1(x))
        if self.between is not None:
            s1 = self.between(s1)
        return self.lif2(self.fc2(s1))


@pytest.mark.parametrize("per_sample", [False, True])
def test_spikes_copied_between_layers_give_the_same_bits(one_thread, per_sample):
    """A copy of the first neuron's spikes before the second layer changes no bit (the second
    layer's input sum and product read the copy; currents into the first layer, biases)."""
    layers = {"fc1": "lif1", "fc2": "lif2"}
    kwargs = dict(window=10, eta=0.02, c_ref=0.15, per_sample=per_sample)
    fast = DWAM(_TwoLayers(), layers, **kwargs)
    general = DWAM(_TwoLayers(between=torch.clone), layers, **kwargs)
    g = torch.Generator().manual_seed(22)
    fired = 0.0
    for _ in range(60):
        x = torch.rand(T, 3, N_IN, generator=g) * 0.8
        assert torch.equal(_bits(fast(x)), _bits(general(x)))
        a, b = fast.state_dict(), general.state_dict()
        for key in a:
            if isinstance(a[key], torch.Tensor):
                assert torch.equal(_bits(a[key]), _bits(b[key])), key
        fired = max(fired, float(a["fc2.c_pre"].max()))
    assert fired > 0  # the first layer did fire
    assert float(torch.as_tensor(fast.weight_change()["fc2"]).min()) > 0


def test_without_adaptation_the_outputs_are_the_hosts(one_thread):
    """``adapt=False``: with the batch sharing the weights, the host's outputs bit for bit (the
    layers are computed with ``F.linear``, as ``nn.Linear`` does); per sample, the same up to
    rounding (the per-stream product sums in its own order)."""
    host = _TwoLayers()
    layers = {"fc1": "lif1", "fc2": "lif2"}
    shared = DWAM(host, layers, window=5, c_ref=0.15, adapt=False)
    streams = DWAM(host, layers, window=5, c_ref=0.15, adapt=False, per_sample=True)
    g = torch.Generator().manual_seed(32)
    for _ in range(12):
        x = torch.rand(T, 3, N_IN, generator=g) * 0.8
        with torch.no_grad():
            expected = host(x)
        assert torch.equal(_bits(shared(x)), _bits(expected))
        torch.testing.assert_close(streams(x), expected)


class _Twice(nn.Module):
    """Doubles the batch: ``[T, B, N]`` -> ``[T, 2B, N]``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, x], dim=1)


@pytest.mark.parametrize("backend", ["compiled", "torch"])
def test_per_sample_layer_with_another_batch_is_refused(backend):
    """A plastic layer that sees another batch than the streams' (here doubled inside the
    model) gets a clear error before any kernel writes the per-stream buffers."""
    lin = make_net()[0]
    net = nn.Sequential(_Twice(), lin, DecayLIF(decay=0.8, reset="subtract"))
    dwam = DWAM(net, ["1"], per_sample=True, c_ref=0.2, backend=backend)
    with pytest.raises(ValueError, match="adapts 3 streams, but the input of '1' has a batch of 6"):
        dwam(spikes_in(torch.Generator().manual_seed(3), T, 3))


def _layouts(x: torch.Tensor) -> dict[str, torch.Tensor]:
    """``x`` ``[T, B, N]`` in several memory layouts with the same values."""
    return {
        "contiguous": x,
        "transposed": x.transpose(0, 1).contiguous().transpose(0, 1),
        "expanded": x[:1].expand_as(x),
        "strided": torch.cat([x, x], dim=2)[..., ::2],
    }


@pytest.mark.parametrize("per_sample", [False, True])
@pytest.mark.parametrize("layout", ["contiguous", "transposed", "expanded", "strided"])
def test_compiled_calls_match_the_torch_path_with_currents(one_thread, per_sample, layout):
    """The compiled per-call kernels (input sums in their fixed order, the per-stream product)
    against the torch path (_ordered_sum, _stream_product) on real-valued input currents with
    biases, in every input layout: the same bits in float32, outputs and states."""
    from spikeforge.homeostasis import dwam as dwam_module

    if dwam_module._kernel() is None:
        pytest.fail(f"the DWAM kernel is unavailable: {dwam_module._LIBRARY.reason}")
    layers = {"fc1": "lif1", "fc2": "lif2"}
    kwargs = dict(window=10, eta=0.02, c_ref=0.15, per_sample=per_sample, tau_c=2.0)
    fast = DWAM(_TwoLayers(), layers, backend="compiled", **kwargs)
    slow = DWAM(_TwoLayers(), layers, backend="torch", **kwargs)
    g = torch.Generator().manual_seed(31)
    for _ in range(30):
        x = _layouts(torch.rand(T, 3, N_IN, generator=g) * 0.8 - 0.1)[layout]
        assert torch.equal(_bits(fast(x)), _bits(slow(x)))
    assert fast._fast_ready and not slow._fast_ready
    a, b = fast.state_dict(), slow.state_dict()
    for key in a:
        if isinstance(a[key], torch.Tensor):
            assert torch.equal(_bits(a[key]), _bits(b[key])), key
    assert float(a["fc1.c_pre"].abs().max()) > 0 and float(a["fc2.c_pre"].max()) > 0
    assert float(torch.as_tensor(fast.weight_change()["fc1"]).min()) > 0  # (fc2 saturates)


@pytest.mark.parametrize("n_out", [7, 45])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_stream_kernel_matches_its_torch_reference(dtype, n_out):
    """``dwam_linear`` against ``_stream_product`` on inputs with zeros (±0), ones, negatives and
    a NaN, with and without a bias, through strided views: the same bits (NaN where the torch
    reference has NaN); and both equal a float64 ``einsum`` up to rounding. ``n_out = 45`` takes
    the kernel's blocks of four and of one SIMD vector and its scalar tail (float32 and 64)."""
    import ctypes

    from spikeforge.homeostasis import dwam as dwam_module

    lib = dwam_module._kernel()
    if lib is None:
        pytest.fail(f"the DWAM kernel is unavailable: {dwam_module._LIBRARY.reason}")
    g = torch.Generator().manual_seed(4)
    steps, streams, n_in = 4, 3, 9
    values = torch.tensor([0.0, -0.0, 1.0, 1.0, -0.7, 2.5, 0.3])
    x = values[torch.randint(len(values), (steps, streams, n_in), generator=g)].to(dtype)
    x[1, 2, 3] = float("nan")
    wt = torch.randn(streams, n_in, n_out, generator=g, dtype=dtype)
    for bias in (None, torch.randn(n_out, generator=g, dtype=dtype)):
        for name, xv in _layouts(x).items():
            read, st, ss = dwam_module._as_steps(xv, steps, streams, n_in)
            # (a non-unit last stride: the kernels read a contiguous copy)
            assert (read.data_ptr() == xv.data_ptr()) == (name != "strided")
            xv = read
            y = torch.empty(steps, streams, n_out, dtype=dtype)
            args = dwam_module._LinearArgs(
                is_double=int(dtype == torch.float64), S=streams, I=n_in, O=n_out
            )
            args.x, args.steps, args.st, args.ss = xv.data_ptr(), steps, st, ss
            args.wt, args.y, args.sum = wt.data_ptr(), y.data_ptr(), None
            args.bias = None if bias is None else bias.data_ptr()
            lib.dwam_linear(ctypes.byref(args))
            expected = dwam_module._stream_product(xv, steps, wt, bias)
            nan = expected.isnan()
            assert torch.equal(y.isnan(), nan)
            assert torch.equal(_bits(y)[~nan], _bits(expected)[~nan])
            if name != "expanded":  # (the expanded view repeats the first step)
                assert bool(nan[1, 2].all()) and int(nan.sum()) == n_out
            dense = torch.einsum("tsi,sio->tso", xv.double(), wt.double())
            if bias is not None:
                dense = dense + bias.double()
            torch.testing.assert_close(y[~nan].double(), dense[~nan], rtol=1e-5, atol=1e-5)


def test_spikes_changed_in_place_are_summed_again(one_thread):
    """Spikes halved in place between the neurons and the next layer: that layer's input rate
    is half the first neuron's rate (the neuron's spike sum must not be taken over)."""
    dwam = DWAM(
        _TwoLayers(between=lambda s: s.mul_(0.5)), {"fc1": "lif1", "fc2": "lif2"}, c_ref=0.1
    )
    dwam(torch.rand(T, 4, N_IN, generator=torch.Generator().manual_seed(23)))
    sd = dwam.state_dict()
    assert float(sd["fc1.c_post"].max()) > 0
    assert torch.equal(sd["fc2.c_pre"], 0.5 * sd["fc1.c_post"])


def test_weights_clamped_to_a_negative_zero_bound_stay_bit_exact(one_thread):
    """``w_range = (-0.0, 1)`` clamps negative weights to -0.0, which a +0 update must turn into
    +0.0 (sign = -1): the kernel may then not skip rows whose update is ±0 without a scan."""
    net = make_net()
    with torch.no_grad():
        net[0].layer.weight[:10] = -0.01  # silent neurons, no -0.0 at the start
    kwargs = dict(window=5, tau_theta=2.5, sign=-1, eta=0.02, c_ref=0.2, w_range=(-0.0, 1.0))
    fast = DWAM(net, ["0"], backend="compiled", **kwargs)
    slow = DWAM(net, ["0"], backend="torch", **kwargs)
    g = torch.Generator().manual_seed(24)
    negative_zero = _bits(torch.tensor(-0.0))
    seen = set()
    for _ in range(40):
        x = spikes_in(g, T, 2)
        assert torch.equal(_bits(fast(x)), _bits(slow(x)))
        a, b = _bits(fast.weights["0"]), _bits(slow.weights["0"])
        assert torch.equal(a, b)
        seen.add(bool((b[:10] == negative_zero).any()))
    assert seen == {True, False}  # -0.0 appeared (the clamp) and went (+0 updates)
