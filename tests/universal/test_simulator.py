"""The circuit simulator against a scalar reference written from spec §1, float32 = float64,
the nn.Module bridge, input validation, and the semantics guards (``>=`` and the hard reset
are pinned: replacing them breaks the named tests)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from spikeforge import universal as U
from spikeforge.core import LIF, DecayLIF, MultiStep
from spikeforge.universal import simulate as sim

torch.set_num_threads(1)


def _scalar_reference(c: U.Circuit, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Spec §1 neuron by neuron in plain Python floats: x [T, B, d] -> spikes [T, B, N]."""
    steps, batch, _ = x.shape
    n = c.neurons
    spikes = np.zeros((steps, batch, n))
    final = np.zeros((batch, n))
    for b in range(batch):
        v = [float(c.v0[i]) for i in range(n)]
        s_prev = [0.0] * n
        x_prev = [0.0] * c.inputs
        for t in range(steps):
            s_now = []
            for i in range(n):
                h = c.beta[i] * v[i]
                h += sum(c.input_weights[i, k] * x_prev[k] for k in range(c.inputs))
                h += sum(c.weights[i, j] * s_prev[j] for j in range(n))
                h += c.bias[i]
                s = 1.0 if h >= c.threshold[i] else 0.0
                v[i] = 0.0 if s else h
                s_now.append(s)
            spikes[t, b] = s_now
            s_prev = s_now
            x_prev = list(x[t, b])
        final[b] = v
    return spikes, final


def _random_circuit(rng: np.random.Generator, n: int, d: int, integer: bool) -> U.Circuit:
    def weights(shape: tuple[int, ...]) -> np.ndarray:
        w = rng.integers(-2, 3, size=shape) if integer else rng.normal(0, 1, size=shape)
        return w * (rng.random(shape) < 0.6)

    return U.Circuit(
        beta=rng.choice([0.0, 0.5, 1.0], n) if integer else rng.random(n),
        threshold=rng.integers(1, 3, n) if integer else rng.uniform(0.2, 1.5, n),
        bias=rng.integers(-1, 2, n) if integer else rng.normal(0, 0.3, n),
        v0=rng.integers(0, 2, n) if integer else rng.normal(0, 0.5, n),
        input_weights=weights((n, d)),
        weights=weights((n, n)),
        output=n - 1,
    )


@pytest.mark.parametrize("integer", [True, False])
def test_simulator_matches_a_scalar_reference_on_random_recurrent_circuits(integer: bool) -> None:
    rng = np.random.default_rng(1 + integer)
    for _ in range(5):
        c = _random_circuit(rng, n=6, d=2, integer=integer)
        x = (rng.random((12, 7, 2)) < 0.5).astype(np.float64)
        spikes, v = c.simulate(torch.tensor(x))
        ref_spikes, ref_v = _scalar_reference(c, x)
        assert np.array_equal(spikes.numpy(), ref_spikes)
        np.testing.assert_allclose(v.numpy(), ref_v, rtol=0, atol=1e-12)
        assert spikes.sum() > 0 and (1 - spikes).sum() > 0  # not a degenerate circuit


def test_float32_and_float64_spikes_are_identical_for_integer_circuits() -> None:
    rng = np.random.default_rng(3)
    x = U.all_sequences(7, 2)
    for _ in range(10):
        c = _random_circuit(rng, n=8, d=2, integer=True)
        s64, _ = c.simulate(x)
        s32, _ = c.simulate(x.float())
        assert s32.dtype == torch.float32
        assert torch.equal(s32.double(), s64)


def test_module_equals_the_simulator_bit_for_bit() -> None:
    rng = np.random.default_rng(4)
    circuits = [_random_circuit(rng, 7, 2, integer) for integer in (True, False) for _ in range(4)]
    circuits += [
        U.compile(lambda w: int(w[0, 0] ^ w[1, -1]), inputs=2, memory=2),
        U.compose(
            U.and_gate(2), [U.compile(lambda w: int(w.sum() % 2), 1, 2), U.skip()], [[0], [1]]
        ),
    ]
    for c in circuits:
        x = U.all_sequences(6, c.inputs)
        module = c.to_module()
        counts = (module.neurons, module.synapses, module.biases, module.latency)
        assert counts == (c.neurons, c.synapses, c.biases, c.latency)
        for dtype in (torch.float32, torch.float64):
            xs = x.to(dtype)
            spikes, v = c.simulate(xs)
            got, got_v = module(xs, return_all=True, return_state=True)
            assert got.dtype == dtype and torch.equal(got, spikes)
            assert torch.equal(module(xs), c.run(xs))
            torch.testing.assert_close(
                got_v, v, rtol=0, atol=1e-5 if dtype == torch.float32 else 1e-12
            )


def test_module_runs_on_spikes_of_a_core_lif_layer() -> None:
    """A compiled circuit consumes the [T, B, d] spikes of a spikeforge.core layer."""
    torch.manual_seed(0)
    snn = torch.nn.Sequential(MultiStep(torch.nn.Linear(3, 2)), LIF(tau=2.0))
    x = torch.rand(20, 16, 3) * 3
    spikes = snn(x).detach()
    circuit = U.compile(lambda w: int(w[0, -1] and not w[1, -2]), inputs=2, memory=1)
    module = circuit.to_module()
    assert torch.equal(module(spikes), circuit.run(spikes))
    ref = U.reference_outputs(lambda w: int(w[0, -1] and not w[1, -2]), spikes, memory=1)
    assert np.array_equal(module(spikes)[2:].numpy(), ref[:-2])


def test_same_step_layers_equal_the_circuit_shifted_by_depth_without_biases() -> None:
    """Spec §1.5: a layered network with same-step propagation (spikeforge.core: Linear ->
    DecayLIF -> Linear -> DecayLIF, hard reset, no biases, v0 = 0) equals the unit-delay circuit
    with layer l's spikes shifted by l steps; with a bias it does not (the bias integrates while
    the pipeline fills). The two conventions differ, so the circuit has its own simulator."""
    rng = np.random.default_rng(7)
    w1, w2 = rng.normal(0.4, 1, (5, 3)), rng.normal(0.8, 1, (4, 5))
    beta1, beta2 = 0.7, 0.4
    x = torch.tensor((rng.random((15, 64, 3)) < 0.5).astype(np.float64))

    def layered(bias: float) -> tuple[torch.Tensor, torch.Tensor]:
        lin1 = torch.nn.Linear(3, 5).double()
        lin2 = torch.nn.Linear(5, 4).double()
        with torch.no_grad():
            lin1.weight.copy_(torch.tensor(w1))
            lin2.weight.copy_(torch.tensor(w2))
            lin1.bias.fill_(bias)
            lin2.bias.fill_(bias)
        s1 = DecayLIF(decay=beta1, reset="zero", backend="reference")(MultiStep(lin1)(x))
        s2 = DecayLIF(decay=beta2, reset="zero", backend="reference")(MultiStep(lin2)(s1))
        return s1.detach(), s2.detach()

    def circuit(bias: float) -> U.Circuit:
        n = 9
        u = np.zeros((n, 3))
        u[:5] = w1
        w = np.zeros((n, n))
        w[5:, :5] = w2
        beta = np.array([beta1] * 5 + [beta2] * 4)
        return U.Circuit(beta, np.ones(n), np.full(n, bias), np.zeros(n), u, w, output=8)

    s1, s2 = layered(0.0)
    spikes, _ = circuit(0.0).simulate(x)
    assert s1.sum() > 0 and s2.sum() > 0
    assert torch.equal(spikes[1:, :, :5], s1[:-1])  # layer 1: one step later
    assert torch.equal(spikes[2:, :, 5:], s2[:-2])  # layer 2: two steps later
    s1, s2 = layered(0.3)
    spikes, _ = circuit(0.3).simulate(x)
    assert not torch.equal(spikes[2:, :, 5:], s2[:-2])


def test_bad_inputs_raise_clear_errors() -> None:
    c = U.skip()
    with pytest.raises(ValueError, match="d = 1 channels"):
        c.run(torch.zeros(4, 2, 3))
    with pytest.raises(ValueError, match="0 or 1"):
        c.run(torch.full((4, 2, 1), 0.5))
    with pytest.raises(ValueError, match="floating-point"):
        c.run(torch.zeros(4, 2, 1, dtype=torch.int64))
    with pytest.raises(ValueError, match="0 or 1"):
        c.to_module()(torch.full((4, 2, 1), 2.0))
    with pytest.raises(ValueError, match="beta"):
        U.Circuit(
            np.array([1.5]),
            np.ones(1),
            np.zeros(1),
            np.zeros(1),
            np.zeros((1, 1)),
            np.zeros((1, 1)),
            0,
        )
    with pytest.raises(ValueError, match="output neuron 3"):
        U.Circuit(
            np.zeros(1), np.ones(1), np.zeros(1), np.zeros(1), np.zeros((1, 1)), np.zeros((1, 1)), 3
        )
    b = U.CircuitBuilder(1)
    n = b.add_neuron()
    b.connect(b.input(0), n, 1)
    with pytest.raises(ValueError, match="exists already"):
        b.connect(b.input(0), n, 2)
    with pytest.raises(ValueError, match="weight 0"):
        b.connect(n, n, 0)
    with pytest.raises(ValueError, match="input channel 1"):
        b.input(1)


# -- semantics guards --------------------------------------------------------------------------
# The named checks below are run as tests; the guard tests rerun them with ">" for ">=" or a
# subtractive reset in the simulator and require them to fail, so the convention is pinned.


def check_clock_every_phase() -> None:
    """CLOCK_m spikes exactly at t = m - phase + j m, for m in {1, 2, 3, 5, 7}, every phase."""
    for m in (1, 2, 3, 5, 7):
        for phase in range(m):
            out = U.clock(m, phase).run(torch.zeros(40, 1, 0))[:, 0].numpy()
            t = np.arange(1, 41)
            want = (t >= m - phase) & ((t - (m - phase)) % m == 0)
            assert np.array_equal(out, want.astype(float)), (m, phase)


def check_leaky_clock() -> None:
    """Leaky CLOCK_m with beta = 0.9 spikes exactly at t = m, 2m, ... for m = 1..10."""
    for m in range(1, 11):
        for dtype in (torch.float32, torch.float64):
            out = U.leaky_clock(m, 0.9).run(torch.zeros(60, 1, 0, dtype=dtype))[:, 0].numpy()
            want = (np.arange(1, 61) % m == 0).astype(float)
            assert np.array_equal(out, want), (m, dtype)


def test_clock_every_phase() -> None:
    check_clock_every_phase()


def test_leaky_clock() -> None:
    check_leaky_clock()


def test_guard_strict_comparison_breaks_test_clock_every_phase(monkeypatch) -> None:
    monkeypatch.setattr(sim, "fire", lambda h, theta: (h > theta).to(h.dtype))
    with pytest.raises(AssertionError):
        check_clock_every_phase()


def test_guard_subtractive_reset_breaks_test_leaky_clock(monkeypatch) -> None:
    monkeypatch.setattr(sim, "reset", lambda h, s, theta: h - theta * s)
    with pytest.raises(AssertionError):
        check_leaky_clock()


def test_guards_patch_the_simulator_they_claim_to(monkeypatch) -> None:
    """The patched functions are the ones the simulator calls (so the guards are not vacuous):
    with the original functions restored through the same patch mechanism, the checks pass."""
    monkeypatch.setattr(sim, "fire", sim.fire)
    monkeypatch.setattr(sim, "reset", sim.reset)
    check_clock_every_phase()
    check_leaky_clock()
    calls = []
    original = sim.fire
    monkeypatch.setattr(sim, "fire", lambda h, th: calls.append(1) or original(h, th))
    U.skip().run(torch.zeros(3, 1, 1))
    assert len(calls) == 3
