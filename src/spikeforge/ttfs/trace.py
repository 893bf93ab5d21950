"""Trace a PyTorch ReLU network into a chain of :mod:`spikeforge.ttfs.ir` operations.

Supported: ``nn.Sequential`` and nested containers (anything ``torch.fx`` can trace into a single
chain) of Linear, Conv2d (zero padding), BatchNorm1d/2d, ReLU (module, ``F.relu``,
``torch.relu`` or ``x.relu()``), MaxPool2d, AvgPool2d, Flatten (module, ``torch.flatten(x, 1)``
or ``x.flatten(1)``), Dropout and Identity (dropped). Anything else raises
:class:`~spikeforge.ttfs.errors.UnsupportedLayerError` naming the layer's path and type.
"""

from __future__ import annotations

import operator

import torch
import torch.fx
import torch.nn.functional as F
from torch import Tensor, nn

from spikeforge.ttfs.errors import UnsupportedLayerError
from spikeforge.ttfs.ir import Affine, Flatten, Op, Pool, Relu, ScaleShift

_DROPPED_MODULES = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.AlphaDropout, nn.Identity)
_RELU_FUNCTIONS = {F.relu, torch.relu, torch.relu_, F.relu_}
_DROPPED_FUNCTIONS = {F.dropout, F.dropout2d, F.dropout1d}


def _pair(v: int | tuple[int, ...]) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


def _f64(t: Tensor) -> Tensor:
    return t.detach().to(torch.float64).clone()


def _unsupported(path: str, what: str, why: str = "") -> UnsupportedLayerError:
    extra = f": {why}" if why else ""
    return UnsupportedLayerError(f"{what} at {path} cannot be mapped to TTFS{extra}")


def _from_module(path: str, mod: nn.Module) -> Op | None:
    name = type(mod).__name__
    if isinstance(mod, _DROPPED_MODULES):
        return None
    if isinstance(mod, nn.Linear):
        bias = mod.bias if mod.bias is not None else torch.zeros(mod.out_features)
        return Affine(path, "linear", _f64(mod.weight), _f64(bias))
    if isinstance(mod, nn.Conv2d):
        if mod.padding_mode != "zeros":
            raise _unsupported(path, name, f"padding_mode={mod.padding_mode!r} (only 'zeros')")
        bias = mod.bias if mod.bias is not None else torch.zeros(mod.out_channels)
        padding = mod.padding if isinstance(mod.padding, str) else _pair(mod.padding)
        return Affine(
            path,
            "conv",
            _f64(mod.weight),
            _f64(bias)[:, None, None],
            stride=_pair(mod.stride),
            padding=padding,
            dilation=_pair(mod.dilation),
            groups=mod.groups,
        )
    if isinstance(mod, nn.BatchNorm1d | nn.BatchNorm2d):
        if mod.running_mean is None or mod.running_var is None:
            raise _unsupported(path, name, "it has no running statistics to fold")
        scale = 1.0 / torch.sqrt(_f64(mod.running_var) + mod.eps)
        if mod.weight is not None:
            scale = _f64(mod.weight) * scale
        shift = -scale * _f64(mod.running_mean)
        if mod.bias is not None:
            shift = shift + _f64(mod.bias)
        return ScaleShift(path, scale, shift)
    if isinstance(mod, nn.ReLU):
        return Relu(path)
    if isinstance(mod, nn.MaxPool2d):
        if mod.return_indices:
            raise _unsupported(path, name, "return_indices=True")
        return Pool(
            path,
            "max",
            _pair(mod.kernel_size),
            _pair(mod.stride if mod.stride is not None else mod.kernel_size),
            _pair(mod.padding),
            _pair(mod.dilation),
            mod.ceil_mode,
        )
    if isinstance(mod, nn.AvgPool2d):
        padding = _pair(mod.padding)
        if mod.divisor_override is not None:
            raise _unsupported(path, name, "divisor_override is set")
        if mod.ceil_mode:
            raise _unsupported(path, name, "ceil_mode=True")
        if any(padding) and not mod.count_include_pad:
            raise _unsupported(path, name, "padding with count_include_pad=False")
        kernel = _pair(mod.kernel_size)
        stride = _pair(mod.stride if mod.stride is not None else mod.kernel_size)
        return Pool(path, "avg", kernel, stride, padding)
    if isinstance(mod, nn.Flatten):
        if mod.start_dim != 1 or mod.end_dim != -1:
            raise _unsupported(path, name, "only Flatten(start_dim=1, end_dim=-1)")
        return Flatten(path)
    raise _unsupported(path, name)


def _is_flatten_call(node: torch.fx.Node) -> bool:
    args = list(node.args[1:])
    start = node.kwargs.get("start_dim", args[0] if args else 0)
    end = node.kwargs.get("end_dim", args[1] if len(args) > 1 else -1)
    return start == 1 and end == -1


def _from_node(gm: torch.fx.GraphModule, node: torch.fx.Node) -> Op | None:
    path = str(node.target) if node.op == "call_module" else node.name
    if node.op == "call_module":
        return _from_module(path, gm.get_submodule(str(node.target)))
    if node.op == "call_function":
        if node.target in _RELU_FUNCTIONS:
            return Relu(path)
        if node.target in _DROPPED_FUNCTIONS:
            return None
        if node.target is torch.flatten and _is_flatten_call(node):
            return Flatten(path)
        name = getattr(node.target, "__name__", str(node.target))
        if node.target in (operator.add, operator.mul, torch.add, torch.cat):
            raise _unsupported(path, f"function {name}", "the network must be a single chain")
        raise _unsupported(path, f"function {name}")
    if node.op == "call_method":
        if node.target in ("relu", "relu_"):
            return Relu(path)
        if node.target == "flatten" and _is_flatten_call(node):
            return Flatten(path)
        raise _unsupported(path, f"method .{node.target}()")
    raise _unsupported(path, f"graph node {node.op}")


def trace_chain(model: nn.Module) -> list[Op]:
    """Trace ``model`` into a chain of IR operations (parameters copied, model untouched).

    Raises :class:`UnsupportedLayerError` for unsupported layers, functions, branches or models
    that ``torch.fx`` cannot trace.
    """
    if not list(model.children()):  # a single layer
        op = _from_module(type(model).__name__, model)
        return [] if op is None else [op]
    try:
        gm = torch.fx.symbolic_trace(model)
    except Exception as exc:  # fx raises many types for untraceable code
        raise UnsupportedLayerError(
            f"cannot trace {type(model).__name__} into a chain of layers: {exc}"
        ) from exc
    ops: list[Op] = []
    previous: torch.fx.Node | None = None
    for node in gm.graph.nodes:
        if node.op == "placeholder":
            if previous is not None:
                raise UnsupportedLayerError("the network must take exactly one input tensor")
            previous = node
            continue
        if node.op == "output":
            if node.args[0] is not previous:
                raise UnsupportedLayerError("the network's output must be its last layer's output")
            break
        if node.op == "get_attr":
            raise _unsupported(node.name, f"parameter access {node.target}")
        inputs = [a for a in node.all_input_nodes]
        if inputs != [previous] or len(previous.users) != 1:
            path = str(node.target) if node.op == "call_module" else node.name
            raise _unsupported(path, "a branching connection", "the network must be a single chain")
        op = _from_node(gm, node)
        if op is not None:
            ops.append(op)
        previous = node
    return ops


def infer_shapes(ops: list[Op], sample: Tensor) -> None:
    """Run ``sample`` (``[B, *in_shape]``) through the chain and record in/out shapes.

    Raises ``ValueError`` naming the first layer that rejects the input's shape.
    """
    x = sample
    for op in ops:
        op.in_shape = tuple(x.shape[1:])
        try:
            x = op.apply(x)
        except RuntimeError as exc:
            raise ValueError(
                f"layer at {op.path} cannot take input of shape {list(x.shape)}: {exc}"
            ) from exc
        op.out_shape = tuple(x.shape[1:])


__all__ = [
    "infer_shapes",
    "trace_chain",
]
