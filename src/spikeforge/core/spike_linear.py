"""Event-driven linear layer for spike inputs: add the weights of the inputs that spiked.

A linear layer fed by spikes ``S ∈ {0, 1}`` needs no multiplications: ``y[n] = b + Σ_{i: S[n,i]=1}
W[:, i]`` (the synaptic operations of an SNN happen only for spikes). :class:`SpikeLinear` is a
drop-in :class:`torch.nn.Linear` that, for binary CPU inputs, computes exactly that with compiled
kernels (:mod:`spikeforge.core.kernels`):

* **forward**: one pass over the input finds the spiking inputs of every row and checks that the
  input is binary; the rows of ``Wᵀ`` of the active inputs are summed with the running sums
  held in vector registers (OpenMP over rows). Cost ∝ number of spikes instead of ``N·in·out``.
* **saved for backward**: the spike indices (CSR: int64 row pointers ``[N + 1]``, int32 column
  indices ``[nnz]``) instead of the dense input: at 20 % activity, 0.8 bytes per input element
  instead of 4 (float32).
* **backward**: ``dW[:, i] = Σ_{n: S[n,i]=1} dY[n]`` from the same indices (OpenMP over disjoint
  blocks of inputs, no atomics); ``dX = dY W`` and ``db = Σ_n dY[n]`` are dense torch ops.

The result equals ``F.linear`` up to summation order (float rounding; the tests compare to
1e-5 relative in float32 and 1e-12 in float64). Any other input takes ``F.linear``: non-binary
values (found by the same scan), activity above ``max_density`` (default 0.3) or above the
density up to which the event path was **measured** faster than the dense one for the layer's
shape, dtype and thread count on this machine (``path="auto"``, the default; measured once per
shape and cached: :mod:`spikeforge.core.spike_linear_paths`), fewer than 256 (float32) / 128
(float64) output features (a narrow layer is cheap for BLAS and leaves the kernel's registers
idle), CUDA or other devices, dtypes other than float32 / float64, ``torch.compile`` tracing,
saved-tensor hooks active while gradients are on (a user's ``saved_tensors_hooks``,
``torch.utils.checkpoint``: they see what ``F.linear`` saves), or when the kernels are
unavailable.

:class:`SpikeLinear` is called like any module, so its hooks, parametrizations and pruning work
as on ``nn.Linear``. **Double backward** (``create_graph=True``) is exact: the input is saved as a
reference to the spike indices (:func:`spikeforge.core.spike_saving.saved_as_recomputed`) and,
only in a backward that builds a graph, rebuilt as a dense tensor connected to its producer; that
backward then computes ``F.linear``'s gradients with differentiable torch ops.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from spikeforge.core import spike_linear_paths as paths
from spikeforge.core.fused import foreign_saved_tensors_hooks
from spikeforge.core.kernels import KernelLibrary, kernel_source
from spikeforge.core.spike_saving import saved_as_recomputed

__all__ = ["PATHS", "SpikeLinear", "is_available", "spike_linear"]

#: ``path`` choices of :func:`spike_linear`
PATHS = ("auto", "event", "dense")

_DTYPES = {torch.float32: "f32", torch.float64: "f64"}

_SOURCE = kernel_source("spike_linear.cpp")


def _declare(lib: ctypes.CDLL) -> None:
    p, i64, i32 = ctypes.c_void_p, ctypes.c_int64, ctypes.c_int
    for suffix in ("f32", "f64"):
        getattr(lib, f"sl_scan_{suffix}").argtypes = [p, i64, i64, p, i32]
        getattr(lib, f"sl_scan_{suffix}").restype = i32
        getattr(lib, f"sl_fill_{suffix}").argtypes = [p, i64, i64, p, p, i32]
        getattr(lib, f"sl_forward_{suffix}").argtypes = [p, p, p, p, p, i64, i64, i32]
        getattr(lib, f"sl_wgrad_{suffix}").argtypes = [p, p, p, p, i64, i64, i64, i32]
        for name in ("fill", "forward", "wgrad"):
            getattr(lib, f"sl_{name}_{suffix}").restype = None
    if lib.sl_abi_version() != 1:
        raise RuntimeError("stale kernel library (ABI mismatch)")


LIBRARY = KernelLibrary("spike_linear", _SOURCE, _declare)


def is_available() -> bool:
    """Whether the event-driven kernels are usable (builds them on the first call)."""
    return LIBRARY.get() is not None


def _spike_indices(x2d: Tensor, max_density: float) -> tuple[Tensor, Tensor] | None:
    """CSR indices ``(ptr [N + 1] int64, idx [nnz] int32)`` of a binary ``x2d [N, I]``, or
    ``None`` if it is not binary or denser than ``max_density``."""
    lib = LIBRARY.get()
    assert lib is not None
    suffix, n, width, threads = (
        _DTYPES[x2d.dtype],
        x2d.shape[0],
        x2d.shape[1],
        torch.get_num_threads(),
    )
    counts = torch.empty(n, dtype=torch.int64)
    if getattr(lib, f"sl_scan_{suffix}")(x2d.data_ptr(), n, width, counts.data_ptr(), threads):
        return None
    ptr = torch.zeros(n + 1, dtype=torch.int64)
    torch.cumsum(counts, 0, out=ptr[1:])
    nnz = int(ptr[-1])
    if nnz > max_density * n * width:
        return None
    idx = torch.empty(nnz, dtype=torch.int32)
    getattr(lib, f"sl_fill_{suffix}")(
        x2d.data_ptr(), n, width, ptr.data_ptr(), idx.data_ptr(), threads
    )
    return ptr, idx


def _dense(ptr: Tensor, idx: Tensor, width: int, dtype: torch.dtype) -> Tensor:
    """The binary ``[N, width]`` tensor whose CSR indices are ``ptr, idx``."""
    n = ptr.shape[0] - 1
    rows = torch.repeat_interleave(torch.arange(n), ptr[1:] - ptr[:-1], output_size=idx.numel())
    out = torch.zeros(n, width, dtype=dtype)
    out[rows, idx.long()] = 1
    return out


def _event_forward(ptr: Tensor, idx: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    """``y [N, O]``: the bias plus the columns of ``weight [O, I]`` of each row's spikes."""
    lib = LIBRARY.get()
    assert lib is not None
    n, out = ptr.shape[0] - 1, weight.shape[0]
    wt = weight.t().contiguous()
    b = None if bias is None else bias.contiguous()
    y = torch.empty(n, out, dtype=weight.dtype)
    getattr(lib, f"sl_forward_{_DTYPES[weight.dtype]}")(
        ptr.data_ptr(),
        idx.data_ptr(),
        wt.data_ptr(),
        None if b is None else b.data_ptr(),
        y.data_ptr(),
        n,
        out,
        torch.get_num_threads(),
    )
    return y


def _event_weight_grad(ptr: Tensor, idx: Tensor, g: Tensor, width: int) -> Tensor:
    """``dW [O, width]`` with ``dW[:, i] = Σ_{n: S[n, i] = 1} g[n]`` for ``g [N, O]``."""
    lib = LIBRARY.get()
    assert lib is not None
    n, out = g.shape
    g_wt = torch.empty(width, out, dtype=g.dtype)
    getattr(lib, f"sl_wgrad_{_DTYPES[g.dtype]}")(
        ptr.data_ptr(),
        idx.data_ptr(),
        g.data_ptr(),
        g_wt.data_ptr(),
        n,
        width,
        out,
        torch.get_num_threads(),
    )
    return g_wt.t().contiguous()


class _SpikeLinear(torch.autograd.Function):
    """``(x2d [N, I] binary, weight [O, I], bias [O] | None, ptr, idx) -> y [N, O]``.

    Call under :func:`saved_as_recomputed` of ``x2d`` (:func:`spike_linear`): ``x2d`` is saved
    only to be rebuilt, connected, for a backward with ``create_graph=True``.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, x2d: Tensor, weight: Tensor, bias: Tensor | None, ptr: Tensor, idx: Tensor
    ) -> Tensor:
        y = _event_forward(ptr, idx, weight.detach(), None if bias is None else bias.detach())
        ctx.save_for_backward(x2d, weight, ptr, idx)
        ctx.width = x2d.shape[1]
        ctx.has_bias = bias is not None
        return y

    @staticmethod
    def backward(  # type: ignore[override]
        ctx: Any, g: Tensor
    ) -> tuple[Tensor | None, Tensor | None, Tensor | None, None, None]:
        x2d, weight, ptr, idx = ctx.saved_tensors
        width = ctx.width
        g = g.to(weight.dtype).contiguous()
        if torch.is_grad_enabled():
            # create_graph=True: x2d is the input rebuilt and connected to its producer; the
            # gradients of F.linear (addmm) in differentiable torch ops
            return (
                g.mm(weight) if ctx.needs_input_grad[0] else None,
                x2d.t().mm(g).t() if ctx.needs_input_grad[1] else None,
                g.sum(0) if ctx.has_bias and ctx.needs_input_grad[2] else None,
                None,
                None,
            )
        g_x = g @ weight if ctx.needs_input_grad[0] else None
        g_w = None
        if ctx.needs_input_grad[1]:
            g_w = _event_weight_grad(ptr, idx, g, width)
        g_b = g.sum(0) if ctx.has_bias and ctx.needs_input_grad[2] else None
        return g_x, g_w, g_b, None, None


def _eligible(x: Tensor, weight: Tensor) -> bool:
    return (
        x.dtype in _DTYPES
        and x.dtype == weight.dtype
        and x.is_cpu
        and weight.is_cpu
        and weight.shape[0] >= 1024 // x.element_size()  # one full chunk of 8 vectors (kernel)
        and x.dim() >= 1
        and x.numel() > 0
        and not torch.compiler.is_compiling()
        and is_available()
    )


def _measure(key: paths.LayerKey) -> Callable[[float | None], float]:
    """Random inputs of ``key``'s shape; ``run(density)`` times one call of :func:`spike_linear`
    on the event path on spikes of that density (``None``: one ``F.linear``), autograd included:
    in training the forward and the backward to the weight and the bias (what a layer costs)."""
    dtype = getattr(torch, key.dtype)
    rows = min(key.rows, paths.MAX_ROWS)
    gen = torch.Generator().manual_seed(0)
    weight = torch.randn(key.out, key.width, generator=gen, dtype=dtype, device="cpu")
    bias = torch.randn(key.out, generator=gen, dtype=dtype, device="cpu")
    grad = torch.randn(rows, key.out, generator=gen, dtype=dtype, device="cpu")
    noise = torch.rand(rows, key.width, generator=gen, device="cpu")
    spikes = {d: (noise < d).to(dtype) for d in paths.CALIBRATION_DENSITIES}
    weight.requires_grad_(key.train)
    bias.requires_grad_(key.train)

    def step(x2d: Tensor, event: bool) -> None:
        with torch.set_grad_enabled(key.train):
            if event:
                y = spike_linear(x2d, weight, bias, max_density=1.0, path="event")
            else:
                y = F.linear(x2d, weight, bias)
            if key.train:
                weight.grad = bias.grad = None
                y.backward(grad)

    def run(density: float | None) -> float:
        if density is None:
            return paths.seconds(lambda: step(spikes[paths.CALIBRATION_DENSITIES[-1]], False))
        return paths.seconds(lambda: step(spikes[density], True))

    return run


#: rows of the sample :func:`_clearly_denser` counts, and its margin over the limit
SAMPLE_ROWS, SAMPLE_MARGIN = 64, 1.1


def _clearly_denser(x2d: Tensor, limit: float) -> bool:
    """Whether :data:`SAMPLE_ROWS` evenly spaced rows of ``x2d [N, I]`` sum to more than
    :data:`SAMPLE_MARGIN` times ``limit`` ones, so that the full scan would only find out that the
    input takes the dense path (a scan costs 1.5-3 % of a forward). The rows are spread over
    ``N`` (the ``T·B`` samples of all time steps). A sample below the margin goes on to the exact
    scan (which also rejects non-binary inputs). The margin only absorbs the sample's noise: a
    wrong call sends an input just below the limit to ``F.linear``, forgoing part of the event
    path's gain where it is smallest, never making the call slower than ``F.linear``; the result
    is the same either way."""
    rows = x2d.shape[0]
    if rows <= SAMPLE_ROWS:
        return False
    sample = x2d[:: rows // SAMPLE_ROWS][:SAMPLE_ROWS]
    return float(sample.sum()) > SAMPLE_MARGIN * limit * sample.numel()


def _event_limit(rows: int, weight: Tensor, train: bool) -> float:
    """The measured density up to which the event path is faster (:mod:`spike_linear_paths`)."""
    out, width = weight.shape
    shape = (rows, width, out, weight.dtype, torch.get_num_threads(), train)
    limit = paths.known.get(shape)
    if limit is None:
        key = paths.LayerKey.of(rows, width, out, weight.dtype, train)
        store = None if LIBRARY.path is None else LIBRARY.path.with_suffix(".paths.json")
        limit = paths.known[shape] = paths.event_limit(key, _measure, store)
    return limit


def spike_linear(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    *,
    max_density: float = 0.3,
    path: str = "auto",
) -> Tensor:
    """``F.linear(x, weight, bias)`` for ``x [..., in]``; event-driven when ``x`` is binary.

    ``path``: ``"auto"`` takes the event path for binary inputs whose density is at most both
    ``max_density`` and the limit measured for the layer on this machine
    (:mod:`spikeforge.core.spike_linear_paths`); ``"event"`` for binary inputs up to
    ``max_density``; ``"dense"`` never. The module docstring lists the inputs that always take
    ``F.linear``; the result is the same either way (up to summation order).
    """
    if path not in PATHS:
        raise ValueError(f"path must be one of {PATHS}, got {path!r}")
    if x.shape[-1:] != weight.shape[1:]:
        raise ValueError(
            f"input of shape {list(x.shape)} does not match a weight of shape {list(weight.shape)}"
        )
    if (
        path == "dense"
        or not _eligible(x, weight)
        or (torch.is_grad_enabled() and foreign_saved_tensors_hooks())
    ):
        return F.linear(x, weight, bias)
    limit = max_density
    if path == "auto":
        train = torch.is_grad_enabled() and weight.requires_grad
        limit = min(limit, _event_limit(x.numel() // x.shape[-1], weight, train))
        if limit <= 0.0:  # the dense kernel is faster at any density: not even a scan
            return F.linear(x, weight, bias)
    x2d = x.detach().reshape(-1, x.shape[-1]).contiguous()
    if path == "auto" and _clearly_denser(x2d, limit):  # dense: no full scan either
        return F.linear(x, weight, bias)
    csr = _spike_indices(x2d, limit)
    if csr is None:
        return F.linear(x, weight, bias)
    ptr, idx = csr
    width, dtype = x.shape[-1], x.dtype
    # x itself (not x2d) goes in so that autograd reaches the spikes' producer; it is saved as
    # a way to rebuild it from the indices (for a double backward only)
    x_in = x.reshape(-1, width)
    if torch.is_grad_enabled():
        with saved_as_recomputed(x_in, lambda: _dense(ptr, idx, width, dtype)):
            y = _SpikeLinear.apply(x_in, weight, bias, ptr, idx)
    else:  # nothing is saved (inference tensors have no version counter to check)
        y = _SpikeLinear.apply(x_in, weight, bias, ptr, idx)
    return y.reshape(*x.shape[:-1], weight.shape[0])


class SpikeLinear(nn.Linear):
    """:class:`torch.nn.Linear` for spike inputs ``[..., in_features]`` (event-driven on CPU).

    Same parameters, initialisation and results as ``nn.Linear`` (``state_dict``-compatible);
    binary inputs are computed by accumulating the weights of the inputs that spiked (module
    docstring). ``max_density``: above this fraction of ones the dense kernel is used;
    ``path``: ``"auto"`` (default: the event path only where it was measured faster for the
    layer's shape on this machine), ``"event"`` or ``"dense"`` (see :func:`spike_linear`).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        *,
        max_density: float = 0.3,
        path: str = "auto",
        device: Any = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        if not 0.0 <= max_density <= 1.0:
            raise ValueError(f"max_density must be in [0, 1], got {max_density}")
        if path not in PATHS:
            raise ValueError(f"path must be one of {PATHS}, got {path!r}")
        super().__init__(in_features, out_features, bias, device=device, dtype=dtype)
        self.max_density = float(max_density)
        self.path = path

    def forward(self, x: Tensor) -> Tensor:
        """``[..., in_features]`` -> ``[..., out_features]``."""
        return spike_linear(x, self.weight, self.bias, max_density=self.max_density, path=self.path)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", max_density={self.max_density}, path={self.path!r}"
