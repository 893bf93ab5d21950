"""The QCFS activation (quantisation-clip-floor-shift, Bu et al., ICLR 2022; spec §1).

.. math::

    h(z) = \\frac{\\lambda}{L}\\,\\mathrm{clip}\\Big(\\Big\\lfloor \\frac{zL}{\\lambda} + \\varphi
    \\Big\\rfloor, 0, L\\Big),\\qquad \\varphi = \\tfrac12,

with ``L`` quantisation levels and a learnable per-layer clip level ``lambda`` (the later SNN
threshold). Computation order as in the official code: ``x = clamp(z / lambda, 0, 1)``,
``x = floor_ste(x * L + 1/2) / L``, ``h = x * lambda`` (straight-through floor: its gradient
is 1).

Gradient convention (PyTorch ``clamp`` passes the gradient at its bounds, **inclusive**):

* ``dh/dz = 1[0 <= z <= lambda]``;
* ``dh/dlambda = h/lambda - (z/lambda) * 1[0 <= z <= lambda]`` (= 1 for ``z > lambda``, 0 for
  ``z < 0``).

So at ``z = 0`` both the gradient to ``z`` (1) and to ``lambda`` (0) follow the inner branch,
and at ``z = lambda`` the gradient to ``z`` is 1 and the gradient to ``lambda`` is
``1 - 1 = 0`` (just above ``lambda`` it is 1). Away from the two bounds this is the spec's
``1[0 < z < lambda]`` form.

Layouts: any shape; ``lambda`` is a 0-dim parameter shared by the whole layer.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.fx
from torch import Tensor, nn

#: QCFS's shift phi (spec §1.1): 1/2 makes the expected conversion error zero
SHIFT = 0.5


class _FloorSTE(torch.autograd.Function):
    """``floor`` forward, identity backward (straight-through estimator)."""

    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, x: Tensor) -> Tensor:
        return torch.floor(x)

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad: Tensor) -> Tensor:
        return grad


def floor_ste(x: Tensor) -> Tensor:
    """``floor(x)`` with a straight-through gradient (``d floor(x) / dx := 1``)."""
    return _FloorSTE.apply(x)


def qcfs(z: Tensor, lam: Tensor | float, levels: int) -> Tensor:
    """The QCFS activation ``h(z)`` of the module docstring (same shape as ``z``).

    ``lam``: the clip level (a positive scalar, tensor or number); ``levels``: ``L >= 1``.
    """
    x = torch.clamp(z / lam, 0.0, 1.0)
    x = floor_ste(x * levels + SHIFT) / levels
    return x * lam


def check_levels(levels: int, what: str = "levels") -> int:
    """Validate a number of quantisation levels (an integer >= 1) and return it as ``int``."""
    if isinstance(levels, bool) or not isinstance(levels, int) or levels < 1:
        raise ValueError(f"{what} must be an integer >= 1, got {levels!r}")
    return int(levels)


class QCFS(nn.Module):
    """QCFS activation with ``levels`` quantisation levels and a learnable clip level ``lam``.

    ``lam`` is a 0-dim parameter initialised to ``init_lambda`` (8.0 in the QCFS code, 1.0 in
    PASCAL's). ``levels`` is a plain attribute (a hyper-parameter, not saved in the
    ``state_dict``; :func:`set_levels` changes it, e.g. after choosing AL levels). Forward:
    ``[...] -> [...]`` (elementwise); gradients as in the module docstring.
    """

    def __init__(self, levels: int = 4, init_lambda: float = 8.0) -> None:
        super().__init__()
        self.levels = check_levels(levels)
        if not init_lambda > 0:
            raise ValueError(f"init_lambda must be positive, got {init_lambda}")
        self.lam = nn.Parameter(torch.tensor(float(init_lambda)))

    def forward(self, z: Tensor) -> Tensor:
        return qcfs(z, self.lam, self.levels)

    def extra_repr(self) -> str:
        return f"levels={self.levels}, lam={self.lam.item():.4g}"


class QCFSTracer(torch.fx.Tracer):
    """A ``torch.fx`` tracer that keeps :class:`QCFS` modules as leaves (one graph node each)."""

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return isinstance(m, QCFS) or super().is_leaf_module(m, module_qualified_name)


def trace_qcfs_graph(model: nn.Module) -> torch.fx.Graph:
    """Trace ``model`` with :class:`QCFSTracer`; call-module targets resolve against ``model``.

    Raises whatever ``torch.fx`` raises for untraceable code (callers wrap it).
    """
    return QCFSTracer().trace(model)


def qcfs_sites(model: nn.Module) -> list[tuple[str, QCFS]]:
    """The QCFS activations of ``model`` in execution order, as ``(path, module)`` pairs.

    One entry per call (a module called twice appears twice). This is the order of the
    per-layer ``levels`` lists of :func:`~spikeforge.convert.to_qcfs`, :func:`set_levels` and the
    AL helpers. A single :class:`QCFS` module is its own only site (path ``""``).
    """
    if isinstance(model, QCFS):
        return [("", model)]
    graph = trace_qcfs_graph(model)
    sites = []
    for node in graph.nodes:
        if node.op == "call_module":
            module = model.get_submodule(str(node.target))
            if isinstance(module, QCFS):
                sites.append((str(node.target), module))
    return sites


def set_levels(model: nn.Module, levels: int | Sequence[int]) -> list[int]:
    """Set the levels of every QCFS site of ``model`` (one int, or one per site in execution
    order, see :func:`qcfs_sites`) and return the per-site list.

    Raises ``ValueError`` if the list length differs from the number of sites, or a module called
    at several sites would get different levels.
    """
    sites = qcfs_sites(model)
    per_site = expand_levels(levels, len(sites))
    chosen: dict[int, int] = {}
    for (path, module), value in zip(sites, per_site, strict=True):
        if chosen.setdefault(id(module), value) != value:
            raise ValueError(
                f"the QCFS module at {path} is called at several places and cannot take "
                f"different levels ({chosen[id(module)]} and {value})"
            )
    for (_, module), value in zip(sites, per_site, strict=True):
        module.levels = value
    return per_site


def expand_levels(levels: int | Sequence[int], count: int) -> list[int]:
    """``levels`` (one int, or a sequence of ``count`` ints) as a validated list of ``count``."""
    if isinstance(levels, int) and not isinstance(levels, bool):
        return [check_levels(levels)] * count
    values = list(levels)
    if len(values) != count:
        raise ValueError(
            f"levels has {len(values)} entries but the network has {count} ReLU / QCFS sites "
            "(one entry per site, in execution order)"
        )
    return [check_levels(v, f"levels[{i}]") for i, v in enumerate(values)]


__all__ = [
    "QCFS",
    "SHIFT",
    "QCFSTracer",
    "check_levels",
    "expand_levels",
    "floor_ste",
    "qcfs",
    "qcfs_sites",
    "set_levels",
    "trace_qcfs_graph",
]
