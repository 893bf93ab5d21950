"""The fused whole-sequence kernels against the plain-torch reference, forward and backward."""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Callable
from typing import Any

import pytest
import torch

from spikeforge.core import functional as F
from spikeforge.core import fused
from spikeforge.core.kernels import KernelLibrary
from spikeforge.core.neurons import IF, LIF, DecayLIF

needs_kernels = pytest.mark.needs_kernels(fused.LIBRARY)  # see conftest.py

# (function, extra kwargs). τ and the decay factor are powers of two, so with dyadic inputs the
# potentials are exact and H lands exactly on the threshold often (the strict/non-strict case);
# the kernels multiply by 1/τ then. τ = 3 and 1.5 take their division path.
KINDS: dict[str, tuple[Callable[..., Any], dict[str, Any]]] = {
    "if": (F.if_multistep, {}),
    "lif": (F.lif_multistep, {"tau": 2.0}),
    "lif_nodecay_input": (F.lif_multistep, {"tau": 4.0, "decay_input": False}),
    "lif_tau3": (F.lif_multistep, {"tau": 3.0}),
    "lif_nodecay_input_tau1.5": (F.lif_multistep, {"tau": 1.5, "decay_input": False}),
    "decay_lif": (F.decay_lif_multistep, {"decay": 0.25}),
}
SURROGATES = ("atan", "sigmoid", "fast_sigmoid", "triangle", "rectangle")
TOL = {torch.float64: 1e-12, torch.float32: 1e-6}


def inputs(shape: tuple[int, ...], dtype: torch.dtype, seed: int, dyadic: bool) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(shape, generator=g, dtype=torch.float64) * 1.6 - 0.2
    if dyadic:
        x = torch.round(x * 8) / 8
    return x.to(dtype)


def run_both(
    kind: str,
    x: torch.Tensor,
    v0: torch.Tensor | None,
    seed: int,
    **kw: Any,
) -> list[tuple[torch.Tensor, ...]]:
    """``(spikes, v_final, dL/dx, dL/dv0)`` for the reference and the fused backend."""
    fn, extra = KINDS[kind]
    g = torch.Generator().manual_seed(seed + 1)
    w_s = torch.randn(x.shape, generator=g, dtype=torch.float64).to(x.dtype)
    w_v = torch.randn(x.shape[1:], generator=g, dtype=torch.float64).to(x.dtype)
    results = []
    for backend in ("reference", "fused"):
        xr = x.clone().requires_grad_()
        leaves = [xr]
        v0r = None
        if v0 is not None:
            v0r = v0.clone().requires_grad_()
            leaves.append(v0r)
        s, v = fn(xr, v0r, backend=backend, **extra, **kw)
        loss = (s * w_s).sum() + (v * w_v).sum()
        grads = torch.autograd.grad(loss, leaves)
        results.append((s.detach(), v.detach(), *grads))
    return results


def assert_parity(results: list[tuple[torch.Tensor, ...]], dtype: torch.dtype) -> None:
    ref, fus = results
    assert torch.equal(fus[0], ref[0]), "spikes differ"
    assert torch.equal(fus[1], ref[1]), "final potential differs"
    for a, b in zip(fus[2:], ref[2:], strict=True):
        torch.testing.assert_close(a, b, rtol=TOL[dtype], atol=TOL[dtype])


@needs_kernels
@pytest.mark.parametrize("surrogate", SURROGATES)
@pytest.mark.parametrize("detach_reset", [False, True])
@pytest.mark.parametrize("reset", ["subtract", "zero", "none"])
@pytest.mark.parametrize("kind", list(KINDS))
def test_fused_matches_reference(kind: str, reset: str, detach_reset: bool, surrogate: str) -> None:
    """Every strict x v0 x dtype, on [T, B, N] and [T, B, C, H, W], dyadic and continuous inputs.

    The layout and the input kind alternate over the 8 cases so that each strict, v0 and dtype
    value meets both of each (the full product would be 4x slower for little gain).
    """
    shapes = ((6, 3, 7), (3, 2, 3, 11, 9))  # [T, B, N]; [T, B, C, H, W]: 594 > 512 neurons/block
    cases = itertools.product((False, True), (False, True), enumerate(TOL))
    for i, (strict, with_v0, (d, dtype)) in enumerate(cases):
        shape = shapes[(strict + with_v0 + d) % 2]
        dyadic = (with_v0 + d) % 2 == 0
        x = inputs(shape, dtype, seed=i, dyadic=dyadic)
        v0 = inputs((1, *shape[2:]), dtype, seed=100 + i, dyadic=dyadic) if with_v0 else None
        kw = {
            "reset": reset,
            "detach_reset": detach_reset,
            "surrogate": surrogate,
            "strict": strict,
            "threshold": 0.75 if i % 2 else 1.0,
            "v_reset": 0.125 if reset == "zero" and i % 3 == 0 else 0.0,
        }
        results = run_both(kind, x, v0, seed=i, **kw)
        try:
            assert_parity(results, dtype)
        except AssertionError as e:
            raise AssertionError(f"case strict={strict} v0={with_v0} {dtype} {shape}: {e}") from e


@needs_kernels
@pytest.mark.parametrize("dtype", list(TOL))
def test_fused_sigmoid_surrogate_over_the_whole_range(dtype: torch.dtype) -> None:
    """The kernel's own exp: potentials from -400 to 400 (a d beyond exp's clamp at -708 / -87)."""
    x = torch.linspace(-400.0, 400.0, 4001, dtype=torch.float64)
    x = torch.cat([x, torch.linspace(-30.0, 30.0, 4001, dtype=torch.float64)]).to(dtype)
    x = x.reshape(1, 2, -1)  # one step: H = x / tau, the surrogate's argument spans the range
    results = run_both("lif", x, None, seed=7, surrogate="sigmoid", alpha=2.0)
    assert all(bool(torch.isfinite(t).all()) for t in results[1])
    assert_parity(results, dtype)


@needs_kernels
@pytest.mark.parametrize("strict", [False, True])
def test_fused_threshold_equality_follows_the_compare(strict: bool) -> None:
    # H = .5 | 1.0 (== threshold) | ... exact in binary; >= fires at step 2, > does not
    x = torch.tensor([0.5, 0.5, 0.25], dtype=torch.float32).reshape(3, 1, 1)
    s, v = F.if_multistep(x, strict=strict, backend="fused")
    if strict:
        assert s.flatten().tolist() == [0.0, 0.0, 1.0] and float(v) == 0.25
    else:
        assert s.flatten().tolist() == [0.0, 1.0, 0.0] and float(v) == 0.25
    # LIF, τ = 2: H1 = 1.0 exactly from v0 = 0 and x = 2
    s, _ = F.lif_multistep(2 * torch.ones(1, 1, 1), strict=strict, backend="fused")
    assert s.flatten().tolist() == ([0.0] if strict else [1.0])


@needs_kernels
def test_fused_only_one_output_used_and_noncontiguous_input() -> None:
    x = inputs((5, 6, 4), torch.float64, seed=3, dyadic=False).transpose(1, 2)  # [T, 4, 6]
    assert not x.is_contiguous()
    for use in ("spikes", "v"):
        grads = []
        for backend in ("reference", "fused"):
            xr = x.clone().requires_grad_()
            s, v = F.lif_multistep(xr, 0.3, backend=backend, surrogate="sigmoid")
            out = s.sum() if use == "spikes" else (v**2).sum()
            grads.append(torch.autograd.grad(out, xr)[0])
        torch.testing.assert_close(grads[1], grads[0], rtol=1e-12, atol=1e-12)


@needs_kernels
def test_fused_without_grad_saves_nothing_and_matches() -> None:
    x = inputs((8, 4, 16), torch.float32, seed=5, dyadic=False)
    with torch.no_grad():
        ref = F.lif_multistep(x, backend="reference")
        out = F.lif_multistep(x, backend="fused")
    assert torch.equal(out[0], ref[0]) and torch.equal(out[1], ref[1])
    assert not out[0].requires_grad


@needs_kernels
@pytest.mark.parametrize("cls", [IF, LIF, DecayLIF])
def test_modules_fused_match_reference_with_imp(cls: type[torch.nn.Module]) -> None:
    torch.manual_seed(0)
    mods = [cls(learnable_init=True, shape=(2, 3, 3), backend=b) for b in ("reference", "fused")]
    mods[1].load_state_dict(mods[0].state_dict())
    x = inputs((5, 4, 2, 3, 3), torch.float32, seed=9, dyadic=False)
    out = []
    for m in mods:
        s = m(x.clone().requires_grad_())
        (s * torch.arange(s.numel()).view_as(s)).sum().backward()
        out.append((s.detach(), m.init_state.grad))
    assert torch.equal(out[1][0], out[0][0])
    torch.testing.assert_close(out[1][1], out[0][1], rtol=1e-6, atol=1e-6)
    assert "backend='fused'" in repr(mods[1])


# --- dispatch and fallback (no compiler needed) ----------------------------------------------


@pytest.fixture
def fresh_warnings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(F, "_warned", set())


def _forbid_fused(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("the fused path must not be taken")


@pytest.mark.usefixtures("fresh_warnings")
def test_reference_used_when_fused_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fused, "is_available", lambda: False)
    monkeypatch.setattr(fused, "unavailable_reason", lambda: "test: disabled")
    monkeypatch.setattr(fused, "fused_multistep", _forbid_fused)
    x = inputs((4, 2, 3), torch.float64, seed=1, dyadic=False).requires_grad_()
    with pytest.warns(RuntimeWarning, match="test: disabled"):
        s, _ = F.lif_multistep(x, backend="auto")
    ref, _ = F.lif_multistep(x, backend="reference")
    assert torch.equal(s, ref) and s.requires_grad
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # warned once only
        F.if_multistep(x, backend="fused")
        LIF(backend="auto")(x)


@pytest.mark.usefixtures("fresh_warnings")
def test_reference_backend_and_unsupported_calls_never_take_the_fused_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(fused, "is_available", lambda: True)
    monkeypatch.setattr(fused, "fused_multistep", _forbid_fused)
    x = inputs((4, 2, 3), torch.float32, seed=1, dyadic=False)
    F.if_multistep(x, backend="reference")
    IF(backend="reference")(x)
    F.if_multistep(x.half(), backend="auto")  # unsupported dtype: silent reference
    with pytest.warns(RuntimeWarning, match="does not support"):
        F.if_multistep(x, threshold=torch.tensor(1.0), backend="fused")
    with pytest.raises(ValueError, match="unknown backend"):
        F.if_multistep(x, backend="cuda")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown backend"):
        IF(backend="numba")  # type: ignore[arg-type]


def test_env_var_disables_the_kernels(monkeypatch: pytest.MonkeyPatch) -> None:
    library = KernelLibrary("neurons", fused.LIBRARY.source, fused.LIBRARY.declare)
    monkeypatch.setattr(fused, "LIBRARY", library)
    monkeypatch.setenv("SPIKEFORGE_NO_FUSED", "1")
    assert not fused.is_available()
    assert "SPIKEFORGE_NO_FUSED" in fused.unavailable_reason()


@needs_kernels
def test_fused_supports() -> None:
    x = torch.zeros(2, 3, 4)
    assert fused.supports(x, None, 1.0)
    assert fused.supports(x.double(), torch.zeros(1, 4), 1.0)
    assert not fused.supports(x.half(), None, 1.0)
    assert not fused.supports(x, None, torch.tensor(1.0))
    assert not fused.supports(x.to(torch.int32), None, 1.0)
