"""ReLU network -> QCFS network (spec §1.3): :func:`to_qcfs`.

The model is traced with ``torch.fx`` (``nn.Sequential``, nested containers and any traceable
``forward``); every ReLU (``nn.ReLU`` modules, ``F.relu`` / ``torch.relu`` / ``x.relu()`` calls)
becomes its own :class:`~spikeforge.convert.qcfs.QCFS` module, and max pooling
(``nn.MaxPool1d/2d/3d``, ``F.max_pool1d/2d/3d``) becomes average pooling with the same kernel,
stride, padding and ``ceil_mode`` (with a ``UserWarning``: the network has to be trained with
it). The result is a ``torch.fx.GraphModule``: a plain ``nn.Module``, trainable with any loop.

QCFS module names: a replaced ``nn.ReLU`` keeps its path (``features.2``); a second call of the
same ``nn.ReLU`` instance (e.g. ``self.relu`` used twice in a residual block) gets its own module
``<path>_1``, ``<path>_2``, ...; a functional ReLU gets ``qcfs_<fx node name>`` (e.g.
``qcfs_relu_1``). Sites are numbered in execution order (the order of a ``levels`` list).

The result is checked for convertibility at once (the IF and PASCAL conversions accept it), so an
unsupported layer fails before training: :class:`~spikeforge.convert.errors.UnsupportedLayerError`
with the layer's path and type.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Sequence

import torch
import torch.fx
import torch.nn.functional as F
from torch import nn

from spikeforge.convert.errors import UnsupportedLayerError
from spikeforge.convert.graph import trace_network
from spikeforge.convert.qcfs import QCFS, expand_levels

_RELU_FUNCTIONS = {F.relu, F.relu_, torch.relu, torch.relu_}
_MAX_TO_AVG_MODULES = {
    nn.MaxPool1d: nn.AvgPool1d,
    nn.MaxPool2d: nn.AvgPool2d,
    nn.MaxPool3d: nn.AvgPool3d,
}
_MAX_TO_AVG_FUNCTIONS = {
    F.max_pool1d: F.avg_pool1d,
    F.max_pool2d: F.avg_pool2d,
    F.max_pool3d: F.avg_pool3d,
}
_POOL_ARGUMENTS = ("kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices")


def _is_relu(gm: torch.fx.GraphModule, node: torch.fx.Node) -> bool:
    if node.op == "call_module":
        return type(gm.get_submodule(str(node.target))) is nn.ReLU
    if node.op == "call_function":
        return node.target in _RELU_FUNCTIONS
    return node.op == "call_method" and node.target in ("relu", "relu_")


def _free_name(gm: torch.fx.GraphModule, name: str) -> str:
    candidate, k = name, 1
    while True:
        try:
            gm.get_submodule(candidate)
        except AttributeError:
            parent, _, leaf = candidate.rpartition(".")
            owner = gm.get_submodule(parent) if parent else gm
            if not hasattr(owner, leaf):
                return candidate
        candidate, k = f"{name}_{k}", k + 1


def _avg_pool_module(path: str, pool: nn.Module) -> nn.Module:
    name = type(pool).__name__
    if pool.return_indices:
        raise UnsupportedLayerError(f"{name} at {path} cannot be converted: return_indices=True")
    dilation = pool.dilation if isinstance(pool.dilation, tuple) else (pool.dilation,)
    if any(d != 1 for d in dilation):
        raise UnsupportedLayerError(
            f"{name} at {path} cannot be converted: dilation {pool.dilation} has no AvgPool form"
        )
    avg = _MAX_TO_AVG_MODULES[type(pool)]
    return avg(pool.kernel_size, pool.stride, pool.padding, ceil_mode=pool.ceil_mode)


def _replace_function_pool(node: torch.fx.Node) -> None:
    values = dict(zip(_POOL_ARGUMENTS, node.args[1:], strict=False))
    values.update(node.kwargs)
    dilation = values.get("dilation", 1)
    dilations = dilation if isinstance(dilation, tuple | list) else (dilation,)
    if values.get("return_indices", False) or any(d != 1 for d in dilations):
        raise UnsupportedLayerError(
            f"function {node.target.__name__} at {node.name} cannot be converted: dilation or "
            "return_indices has no AvgPool form"
        )
    node.target = _MAX_TO_AVG_FUNCTIONS[node.target]
    node.args = (node.args[0], values["kernel_size"])
    node.kwargs = {
        "stride": values.get("stride"),
        "padding": values.get("padding", 0),
        "ceil_mode": values.get("ceil_mode", False),
    }


def to_qcfs(
    model: nn.Module, levels: int | Sequence[int] = 4, *, init_lambda: float = 8.0
) -> torch.fx.GraphModule:
    """A copy of ``model`` with QCFS activations instead of ReLUs and AvgPool instead of MaxPool.

    ``levels``: one ``L`` for every site, or one per ReLU site in execution order;
    ``init_lambda``: initial clip level of every QCFS (8.0 as in the QCFS code; PASCAL's code
    uses 1.0), a parameter in the dtype and on the device of the model's first floating-point
    parameter or buffer. ``model`` is untouched; the result keeps its training mode. Warns
    (``UserWarning``) for every max pooling it replaces. Raises
    :class:`~spikeforge.convert.errors.UnsupportedLayerError` for untraceable models and layers
    without a spiking form, ``ValueError`` for a ``levels`` list of the wrong length.
    """
    source = copy.deepcopy(model)
    if not list(source.children()):
        source = nn.Sequential(source)
    try:
        gm = torch.fx.symbolic_trace(source)
    except Exception as exc:  # fx raises many types for untraceable code
        raise UnsupportedLayerError(
            f"cannot trace {type(model).__name__} with torch.fx (data-dependent control flow or "
            f"an untraceable call): {exc}"
        ) from exc
    sites = [node for node in gm.graph.nodes if _is_relu(gm, node)]
    per_site = expand_levels(levels, len(sites))
    reference = next(
        (t for t in (*source.parameters(), *source.buffers()) if t.is_floating_point()), None
    )
    used: set[str] = set()
    for node, value in zip(sites, per_site, strict=True):
        qcfs = QCFS(value, init_lambda)
        if reference is not None:  # lambda in the model's dtype and on its device
            qcfs = qcfs.to(device=reference.device, dtype=reference.dtype)
        if node.op == "call_module" and str(node.target) not in used:
            target = str(node.target)
            gm.add_submodule(target, qcfs)
            used.add(target)
            continue
        base = str(node.target) if node.op == "call_module" else f"qcfs_{node.name}"
        target = _free_name(gm, base if node.op != "call_module" else f"{base}_1")
        gm.add_submodule(target, qcfs)
        used.add(target)
        with gm.graph.inserting_after(node):
            replacement = gm.graph.call_module(target, (node.args[0],))
        node.replace_all_uses_with(replacement)
        gm.graph.erase_node(node)
    for node in list(gm.graph.nodes):
        if node.op == "call_module":
            module = gm.get_submodule(str(node.target))
            if type(module) in _MAX_TO_AVG_MODULES:
                gm.add_submodule(str(node.target), _avg_pool_module(str(node.target), module))
                warnings.warn(
                    f"{type(module).__name__} at {node.target} replaced by average pooling (QCFS "
                    "and its spiking forms need linear pooling)",
                    UserWarning,
                    stacklevel=2,
                )
        elif node.op == "call_function" and node.target in _MAX_TO_AVG_FUNCTIONS:
            name = node.target.__name__
            _replace_function_pool(node)
            warnings.warn(
                f"function {name} at {node.name} replaced by average pooling (QCFS and its "
                "spiking forms need linear pooling)",
                UserWarning,
                stacklevel=2,
            )
    gm.graph.lint()
    gm.delete_all_unused_submodules()
    gm.recompile()
    gm.train(model.training)
    trace_network(gm)  # fails now, not after training, if a layer cannot be converted
    return gm


__all__ = ["to_qcfs"]
