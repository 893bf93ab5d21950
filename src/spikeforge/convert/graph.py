"""Trace a QCFS network into a graph of per-time-step operations, shared by the IF and PASCAL
conversions.

Every value the network computes becomes a **stream**: a time-first tensor ``[T, B, ...]``
whose sum over time equals the ANN's value (``T`` is the stream's *step count*). Node kinds:

* ``input``: the analog input, one step (``T = 1``, direct encoding for PASCAL; the IF
  conversion repeats it);
* ``affine``: Linear, Conv1d/2d/3d (any padding mode): ``y_t = W x_t + b_t``;
* ``norm``: BatchNorm1d/2d/3d with running statistics (inference form): ``y_t = s x_t + c_t``;
* ``linear``: parameter-free linear maps applied at every step: AvgPool, AdaptiveAvgPool,
  Flatten / Unflatten, ``view`` / ``reshape`` / ``flatten`` / ``mean`` over non-batch dimensions,
  slicing of non-batch dimensions, scaling by a number, Dropout / Identity (inactive), and the
  joins ``a + b``, ``a - b``, ``torch.cat`` (residual connections);
* ``static``: shape values (``x.size(0)``, ``x.shape[1]``) that feed ``view`` / ``reshape``;
* ``neuron``: a QCFS activation (threshold ``theta = lambda``, ``L`` levels).

Step counts: the input has 1 step, a neuron's output has ``L`` (PASCAL) steps, every other node
keeps its input's count. A join of streams with different step counts takes the count of its
*main* input (the one behind most neuron layers, its ``depth``; ties: the larger count, then the
first operand); the other inputs are summed over their steps and added at the **first** step
(spec §4: valid because the next neuron depends only on its total input).

Anything else raises :class:`~spikeforge.convert.errors.UnsupportedLayerError` naming the
layer's path (the ``torch.fx`` node name for functions) and type.
"""

from __future__ import annotations

import copy
import operator
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
import torch.fx
import torch.nn.functional as F
from torch import Tensor, nn
from torch.fx.node import map_aggregate

from spikeforge.convert.errors import UnsupportedLayerError
from spikeforge.convert.qcfs import QCFS, trace_qcfs_graph

Kind = Literal["input", "affine", "norm", "linear", "static", "neuron"]
STREAM_KINDS = ("input", "affine", "norm", "linear", "neuron")

_AFFINE = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
_LINEAR_MODULES = (
    nn.AvgPool1d,
    nn.AvgPool2d,
    nn.AvgPool3d,
    nn.AdaptiveAvgPool1d,
    nn.AdaptiveAvgPool2d,
    nn.AdaptiveAvgPool3d,
    nn.Flatten,
    nn.Unflatten,
)
_DROPPED_MODULES = (
    nn.Identity,
    nn.Dropout,
    nn.Dropout1d,
    nn.Dropout2d,
    nn.Dropout3d,
    nn.AlphaDropout,
)
_LINEAR_MODULES += _DROPPED_MODULES
_RELU_LIKE_MODULES = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.GELU, nn.SiLU, nn.ELU)
_MAX_POOLS = (
    nn.MaxPool1d,
    nn.MaxPool2d,
    nn.MaxPool3d,
    nn.AdaptiveMaxPool1d,
    nn.AdaptiveMaxPool2d,
    nn.AdaptiveMaxPool3d,
)
_JOINS = {operator.add, operator.sub, torch.add, torch.sub, torch.subtract}
_CATS = {torch.cat, torch.concat}
_SCALINGS = {operator.mul, torch.mul, torch.multiply, operator.truediv, torch.div, torch.divide}
_NEGATIONS = {operator.neg, torch.neg, torch.negative}
_POOL_FUNCTIONS = {
    F.avg_pool1d,
    F.avg_pool2d,
    F.avg_pool3d,
    F.adaptive_avg_pool1d,
    F.adaptive_avg_pool2d,
    F.adaptive_avg_pool3d,
}
_DROPOUT_FUNCTIONS = {F.dropout, F.dropout1d, F.dropout2d, F.dropout3d, F.alpha_dropout}
_RELU_FUNCTIONS = {F.relu, F.relu_, torch.relu, torch.relu_, F.relu6, F.leaky_relu, F.gelu}
_MAX_POOL_FUNCTIONS = {
    F.max_pool1d,
    F.max_pool2d,
    F.max_pool3d,
    F.adaptive_max_pool1d,
    F.adaptive_max_pool2d,
    F.adaptive_max_pool3d,
}
_SHAPE_METHODS = {"size", "dim"}
_SHAPE_ATTRIBUTES = {"shape", "ndim"}
_RESHAPE_METHODS = {"view", "reshape", "unflatten", "contiguous"}


@dataclass(frozen=True)
class Ref:
    """A reference to the value of graph node ``index`` inside an argument template."""

    index: int


@dataclass(eq=False)
class Node:
    """One operation of the traced network (see the module docstring for the kinds).

    ``args`` / ``kwargs`` are the call's arguments with node values replaced by :class:`Ref`.
    ``module`` is a private copy of the layer (``affine``: without its bias; ``linear``:
    pooling / flatten modules); ``bias`` is the affine bias ``[O]`` (zeros without one) or the
    BatchNorm shift ``beta - s * mean`` ``[C]``; ``scale`` the BatchNorm scale
    ``gamma / sqrt(var + eps)`` ``[C]``; ``theta`` (0-dim) and ``levels`` describe a neuron.
    """

    index: int
    kind: Kind
    path: str
    what: str
    streams: tuple[int, ...] = ()
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    fn: Callable[..., Any] | None = None
    method: str | None = None
    module: nn.Module | None = None
    bias: Tensor | None = None
    scale: Tensor | None = None
    theta: Tensor | None = None
    levels: int = 0
    fan_in: int = 0
    depth: int = 0
    main: int = -1
    spiking: bool = False

    @property
    def key(self) -> str:
        """Name of the node's operation module in a converted network's ``ops``."""
        return f"n{self.index}"


@dataclass
class Graph:
    """The traced network: ``nodes`` in execution order and the index of the output node."""

    nodes: list[Node]
    output: int

    @property
    def neurons(self) -> list[Node]:
        """The QCFS sites (``neuron`` nodes) in execution order."""
        return [n for n in self.nodes if n.kind == "neuron"]

    def feeding_affine(self, node: Node) -> Node | None:
        """The Linear / Conv layer on the main path into ``node`` (through norms and linear maps,
        never through a neuron), or ``None``."""
        current = self.nodes[node.main]
        while current.kind in ("norm", "linear"):
            current = self.nodes[current.main]
        return current if current.kind == "affine" else None


def _unsupported(path: str, what: str, why: str = "") -> UnsupportedLayerError:
    extra = f": {why}" if why else ""
    return UnsupportedLayerError(f"{what} at {path} cannot be converted{extra}")


def _detached(t: Tensor) -> Tensor:
    return t.detach().clone()


def _affine_node(index: int, path: str, module: nn.Module) -> Node:
    name = type(module).__name__
    if any(isinstance(p, nn.parameter.UninitializedParameter) for p in module.parameters()):
        raise _unsupported(path, name, "its parameters are not initialised (lazy module)")
    layer = copy.deepcopy(module)
    weight = layer.weight
    out_features = weight.shape[0]
    bias = layer.bias if layer.bias is not None else torch.zeros(out_features)
    bias = _detached(bias).to(weight.dtype)
    layer.bias = None
    layer.requires_grad_(False)
    fan_in = int(weight[0].numel())
    return Node(index, "affine", path, name, module=layer, bias=bias, fan_in=fan_in)


def _norm_node(index: int, path: str, module: nn.Module) -> Node:
    name = type(module).__name__
    if module.running_mean is None or module.running_var is None:
        raise _unsupported(path, name, "it has no running statistics (track_running_stats=False)")
    var = _detached(module.running_var)
    scale = 1.0 / torch.sqrt(var + module.eps)
    if module.weight is not None:
        scale = _detached(module.weight) * scale
    shift = -scale * _detached(module.running_mean)
    if module.bias is not None:
        shift = shift + _detached(module.bias)
    return Node(index, "norm", path, name, scale=scale, bias=shift)


def _module_node(index: int, path: str, module: nn.Module) -> Node:
    name = type(module).__name__
    if isinstance(module, QCFS):
        theta = _detached(module.lam)
        if not bool(theta > 0):
            raise ValueError(
                f"QCFS at {path} has lambda = {float(theta):.6g} <= 0; a spiking threshold must be "
                "positive"
            )
        return Node(index, "neuron", path, name, theta=theta, levels=int(module.levels))
    if isinstance(module, _AFFINE):
        return _affine_node(index, path, module)
    if isinstance(module, _NORMS):
        return _norm_node(index, path, module)
    if isinstance(module, nn.Flatten) and module.start_dim == 0:
        raise _unsupported(path, name, "start_dim=0 flattens the batch dimension")
    if isinstance(module, nn.Unflatten) and module.dim == 0:
        raise _unsupported(path, name, "dim=0 is the batch dimension")
    if isinstance(module, _LINEAR_MODULES):
        kept = None if isinstance(module, _DROPPED_MODULES) else copy.deepcopy(module)
        return Node(index, "linear", path, name, module=kept)
    if isinstance(module, _RELU_LIKE_MODULES):
        raise _unsupported(
            path, name, "convert the network with to_qcfs first (it replaces ReLU by QCFS)"
        )
    if isinstance(module, _MAX_POOLS):
        raise _unsupported(
            path, name, "max pooling is not linear (to_qcfs replaces MaxPool by AvgPool)"
        )
    raise _unsupported(path, name)


def _dims(value: Any) -> tuple[int, ...]:
    if isinstance(value, int):
        return (value,)
    if isinstance(value, tuple | list) and all(isinstance(v, int) for v in value):
        return tuple(value)
    raise TypeError


def _argument(node: torch.fx.Node, position: int, name: str, default: Any) -> Any:
    if name in node.kwargs:
        return node.kwargs[name]
    return node.args[position] if len(node.args) > position else default


def _check_function(node: torch.fx.Node, stream_args: list[bool], path: str, what: str) -> None:
    """Reject linear-looking calls that would mix the batch dimension or add constants."""
    target = node.target
    n_streams = sum(stream_args)
    if target in _JOINS:
        alpha = node.kwargs.get("alpha", 1)
        if len(node.args) != 2 or not all(stream_args) or not isinstance(alpha, int | float):
            raise _unsupported(
                path,
                what,
                "adding a constant or a tensor created in forward() is an "
                "unconvertible bias; only sums of layer outputs are supported",
            )
        return
    if target in _SCALINGS:
        ok = n_streams == 1 and len(node.args) == 2 and not node.kwargs
        if ok and target in (operator.truediv, torch.div, torch.divide):
            ok = stream_args[0]
        other = node.args[1] if ok and stream_args[0] else node.args[0] if ok else None
        if not ok or not isinstance(other, int | float):
            raise _unsupported(path, what, "only scaling a layer output by a number is linear")
        return
    if target in _NEGATIONS:
        if n_streams != 1:
            raise _unsupported(path, what)
        return
    if target in _CATS:
        tensors = node.args[0] if node.args else node.kwargs.get("tensors")
        dim = _argument(node, 1, "dim", 0)
        if not isinstance(tensors, tuple | list) or not all(
            isinstance(t, torch.fx.Node) for t in tensors
        ):
            raise _unsupported(path, what, "only concatenation of layer outputs is supported")
        if dim == 0:
            raise _unsupported(path, what, "dim=0 concatenates along the batch dimension")
        return
    if target is torch.flatten:
        _check_flatten(node, path, what)
        return
    if target is torch.mean:
        _check_mean(node, path, what)
        return
    if target is operator.getitem:
        index = node.args[1]
        if not (isinstance(index, tuple) and index and index[0] == slice(None)):
            raise _unsupported(path, what, "indexing must keep the batch dimension (x[:, ...])")
        return


def _check_flatten(node: torch.fx.Node, path: str, what: str) -> None:
    """``torch.flatten`` / ``Tensor.flatten`` must keep the batch dimension."""
    if _argument(node, 1, "start_dim", 0) == 0:
        raise _unsupported(path, what, "start_dim=0 flattens the batch dimension")


def _check_mean(node: torch.fx.Node, path: str, what: str) -> None:
    """``torch.mean`` / ``Tensor.mean`` must average over non-batch dimensions only."""
    dim = _argument(node, 1, "dim", None)
    try:
        if dim is None or 0 in _dims(dim):
            raise TypeError
    except TypeError:
        raise _unsupported(path, what, "only a mean over non-batch dimensions") from None


def _check_method(node: torch.fx.Node, path: str, what: str) -> None:
    name = str(node.target)
    if name == "flatten":
        _check_flatten(node, path, what)
    if name == "mean":
        _check_mean(node, path, what)
    if name == "unflatten" and _argument(node, 1, "dim", 0) == 0:
        raise _unsupported(path, what, "dim=0 is the batch dimension")


def _linear_function_ok(target: Any) -> bool:
    return (
        target in _JOINS
        or target in _CATS
        or target in _SCALINGS
        or target in _NEGATIONS
        or target in _POOL_FUNCTIONS
        or target in _DROPOUT_FUNCTIONS
        or target in (torch.flatten, torch.reshape, torch.mean, operator.getitem)
    )


def _function_node(
    index: int, node: torch.fx.Node, is_stream: list[bool], any_static: bool
) -> Node:
    path = node.name
    target = node.target
    if node.op == "call_method":
        what = f"method .{target}()"
        name = str(target)
        receiver_stream = is_stream[0] if is_stream else False
        if name in _SHAPE_METHODS:
            return Node(index, "static", path, what, method=name)
        if name in ("relu", "relu_"):
            raise _unsupported(path, what, "convert the network with to_qcfs first")
        if name in _RESHAPE_METHODS | {"flatten", "mean"} and receiver_stream:
            _check_method(node, path, what)
            return Node(index, "linear", path, what, method=name)
        raise _unsupported(path, what)
    name = getattr(target, "__name__", str(target))
    what = f"function {name}"
    if target is getattr:
        if node.args[1] in _SHAPE_ATTRIBUTES:
            return Node(index, "static", path, what, fn=getattr)
        raise _unsupported(path, what, f"attribute {node.args[1]!r}")
    if target is operator.getitem and not any(is_stream):
        return Node(index, "static", path, what, fn=operator.getitem)
    if target in _RELU_FUNCTIONS:
        raise _unsupported(path, what, "convert the network with to_qcfs first")
    if target in _MAX_POOL_FUNCTIONS:
        raise _unsupported(
            path, what, "max pooling is not linear (to_qcfs replaces it by average pooling)"
        )
    if not any(is_stream):
        if any_static:
            raise _unsupported(path, what, "only shape values may be computed from shapes")
        raise _unsupported(path, what, "a tensor created inside forward() has no spiking form")
    if not _linear_function_ok(target):
        raise _unsupported(path, what)
    _check_function(node, [_is_stream_arg(a, is_stream, node) for a in node.args], path, what)
    if target in _DROPOUT_FUNCTIONS:
        return Node(index, "linear", path, what, fn=None)
    return Node(index, "linear", path, what, fn=target)


def _is_stream_arg(arg: Any, is_stream: list[bool], node: torch.fx.Node) -> bool:
    if not isinstance(arg, torch.fx.Node):
        return False
    return is_stream[node.all_input_nodes.index(arg)]


def trace_network(model: nn.Module) -> Graph:
    """Trace a QCFS network (or any ReLU-free network of supported layers) into a :class:`Graph`.

    Parameters are copied (detached); ``model`` is untouched. BatchNorm uses its running
    statistics (inference semantics, as ``model.eval()``). Raises
    :class:`~spikeforge.convert.errors.UnsupportedLayerError` for unsupported layers, functions,
    parameter accesses in ``forward``, several inputs or outputs, or untraceable code, and
    ``ValueError`` for a QCFS layer whose ``lambda <= 0``.
    """
    root = model
    if not list(model.children()):  # a single layer: trace it inside a container
        root = nn.Sequential(model)
    try:
        fx_graph = trace_qcfs_graph(root)
    except Exception as exc:  # fx raises many types for untraceable code
        raise UnsupportedLayerError(
            f"cannot trace {type(model).__name__} with torch.fx (data-dependent control flow or "
            f"an untraceable call): {exc}"
        ) from exc
    nodes: list[Node] = []
    index_of: dict[torch.fx.Node, int] = {}
    calls: dict[str, int] = {}
    output = -1
    for fx_node in fx_graph.nodes:
        index = len(nodes)
        if fx_node.op == "placeholder":
            if any(n.kind == "input" for n in nodes):
                raise UnsupportedLayerError("the network must take exactly one input tensor")
            node = Node(index, "input", fx_node.name, "input")
        elif fx_node.op == "output":
            result = fx_node.args[0]
            if not isinstance(result, torch.fx.Node) or nodes[index_of[result]].kind == "static":
                raise UnsupportedLayerError("the network must return exactly one tensor")
            output = index_of[result]
            break
        elif fx_node.op == "get_attr":
            raise _unsupported(
                fx_node.name,
                f"parameter or buffer access {fx_node.target!r}",
                "use it through a module (e.g. nn.Linear) so it can be converted",
            )
        else:
            inputs = [nodes[index_of[a]] for a in fx_node.all_input_nodes]
            is_stream = [n.kind in STREAM_KINDS for n in inputs]
            if fx_node.op == "call_module":
                path = str(fx_node.target)
                module = root.get_submodule(path)
                if len(fx_node.args) != 1 or fx_node.kwargs or not all(is_stream):
                    raise _unsupported(path, type(module).__name__, "expects one layer input")
                node = _module_node(index, path, module)
            else:
                node = _function_node(index, fx_node, is_stream, not all(is_stream))
            calls[node.path] = calls.get(node.path, 0) + 1
            if calls[node.path] > 1:  # a module called again: its own name for statistics
                node.path = f"{node.path}#{calls[node.path]}"
            node.streams = tuple(n.index for n, s in zip(inputs, is_stream, strict=True) if s)
            node.args = map_aggregate(fx_node.args, lambda a: _ref(a, index_of))
            node.kwargs = map_aggregate(dict(fx_node.kwargs), lambda a: _ref(a, index_of))
            _set_depth(node, nodes)
        nodes.append(node)
        index_of[fx_node] = index
    if output < 0:
        raise UnsupportedLayerError("the traced network has no output")
    return Graph(nodes, output)


def _ref(arg: Any, index_of: dict[torch.fx.Node, int]) -> Any:
    return Ref(index_of[arg]) if isinstance(arg, torch.fx.Node) else arg


def _set_depth(node: Node, nodes: list[Node]) -> None:
    """Depth (neuron layers on the longest path from the input), main input, spiking flag."""
    if node.kind == "static":
        return
    inputs = [nodes[i] for i in node.streams]
    depth = max(n.depth for n in inputs)
    node.depth = depth + (1 if node.kind == "neuron" else 0)
    deepest = [n for n in inputs if n.depth == depth]
    # ties between equally deep inputs: the larger step count wins, which is only known for
    # a given set of levels; main is resolved again by resolve_main
    node.main = deepest[0].index
    node.spiking = node.kind == "neuron" or (
        node.kind == "linear" and all(n.spiking for n in inputs)
    )


def resolve_main(graph: Graph, steps_of_neurons: dict[int, int]) -> dict[int, int]:
    """Set every node's main input for the given neuron step counts (by node index) and return
    the step count of every stream node (module docstring: deepest input, then the larger step
    count, then the first operand)."""
    steps: dict[int, int] = {}
    for node in graph.nodes:
        if node.kind == "static":
            continue
        if node.kind == "input":
            steps[node.index] = 1
            continue
        inputs = [graph.nodes[i] for i in node.streams]
        depth = max(n.depth for n in inputs)
        best = max((n for n in inputs if n.depth == depth), key=lambda n: steps[n.index])
        node.main = best.index
        steps[node.index] = (
            steps_of_neurons[node.index] if node.kind == "neuron" else steps[best.index]
        )
    return steps


def align(stream: Tensor, steps: int) -> Tensor:
    """A stream ``[T, B, ...]`` as ``steps`` steps: unchanged if ``T == steps``, else its sum
    over time at the first step and zeros after (the sum over time is preserved)."""
    if stream.shape[0] == steps:
        return stream
    total = stream.sum(0, keepdim=True)
    return torch.cat([total, total.new_zeros((steps - 1, *total.shape[1:]))])


def call_node(node: Node, value: Callable[[int], Any], module: nn.Module | None) -> Any:
    """Evaluate a ``linear`` or ``static`` node on values given by ``value(index)``.

    ``module``: the network's copy of the node's module (pooling / flatten), if any.
    """
    args = map_aggregate(node.args, lambda a: value(a.index) if isinstance(a, Ref) else a)
    kwargs = map_aggregate(node.kwargs, lambda a: value(a.index) if isinstance(a, Ref) else a)
    if node.method is not None:
        return getattr(args[0], node.method)(*args[1:], **kwargs)
    if module is not None:
        return module(*args, **kwargs)
    if node.fn is None:  # Identity / Dropout (inactive at inference)
        return args[0]
    return node.fn(*args, **kwargs)


def fanout(layer: nn.Module, in_shape: tuple[int, ...]) -> Tensor:
    """Synapses leaving each input position of a Linear / Conv layer, ``in_shape`` (per-sample
    input shape) as ``float64``: the number of (output, kernel tap) pairs it reaches, computed
    as the gradient of the sum of the layer's output with all weights set to 1."""
    x = torch.ones((1, *in_shape), dtype=torch.float64, requires_grad=True)
    weight = torch.ones(layer.weight.shape, dtype=torch.float64)
    with torch.enable_grad():
        if isinstance(layer, nn.Linear):
            y = F.linear(x, weight)
        else:
            y = layer._conv_forward(x, weight, None)
        (grad,) = torch.autograd.grad(y.sum(), x)
    return grad[0]


class AffineStep(nn.Module):
    """A Linear / Conv layer applied per time step with a per-step bias: ``y_t = W x_t + b``.

    ``layer``: the layer without bias; ``bias_step``: ``[O]`` (stored broadcastable: ``[O]``
    for Linear, ``[O, 1, ...]`` for Conv). Input and output ``[N, ...]`` (``N`` = batch, or
    time x batch flattened).
    """

    def __init__(self, layer: nn.Module, bias_step: Tensor) -> None:
        super().__init__()
        self.layer = layer
        if not isinstance(layer, nn.Linear):
            spatial = layer.weight.dim() - 2
            bias_step = bias_step.reshape((-1,) + (1,) * spatial)
        self.register_buffer("bias_step", bias_step)

    def weights(self, x: Tensor) -> Tensor:
        """The synaptic part ``W x`` (no bias)."""
        return self.layer(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.layer(x) + self.bias_step

    def summed(self, x_total: Tensor, steps: int) -> Tensor:
        """The sum of ``forward`` over ``steps`` steps whose inputs sum to ``x_total``:
        ``W x_total + steps * bias_step`` (linearity)."""
        return self.layer(x_total) + steps * self.bias_step


class NormStep(nn.Module):
    """Inference BatchNorm per time step: ``y_t = scale * x_t + shift_step`` (channel dim 1).

    Buffers ``scale`` and ``shift_step`` are ``[C]``; input and output ``[N, C, ...]``.
    """

    def __init__(self, scale: Tensor, shift_step: Tensor) -> None:
        super().__init__()
        self.register_buffer("scale", scale)
        self.register_buffer("shift_step", shift_step)

    @staticmethod
    def _view(t: Tensor, x: Tensor) -> Tensor:
        return t.reshape((-1,) + (1,) * (x.dim() - 2))

    def weights(self, x: Tensor) -> Tensor:
        """The scaling ``scale * x`` (no shift)."""
        return x * self._view(self.scale, x)

    def forward(self, x: Tensor) -> Tensor:
        return x * self._view(self.scale, x) + self._view(self.shift_step, x)

    def summed(self, x_total: Tensor, steps: int) -> Tensor:
        """The sum of ``forward`` over ``steps`` steps whose inputs sum to ``x_total``:
        ``scale * x_total + steps * shift_step``."""
        return x_total * self._view(self.scale, x_total) + steps * self._view(
            self.shift_step, x_total
        )


class Threshold(nn.Module):
    """A neuron layer's threshold ``theta`` (0-dim buffer) and its number of levels ``L``."""

    def __init__(self, theta: Tensor, levels: int) -> None:
        super().__init__()
        self.register_buffer("theta", theta)
        self.levels = int(levels)

    def extra_repr(self) -> str:
        return f"theta={float(self.theta):.6g}, levels={self.levels}"


def build_ops(graph: Graph, bias_divisor: Callable[[Node], int]) -> nn.ModuleDict:
    """The per-step operation modules of a converted network, keyed by :attr:`Node.key`.

    Affine biases and BatchNorm shifts are divided by ``bias_divisor(node)`` (the node's input
    step count for PASCAL, 1 for plain IF conversion).
    """
    ops = nn.ModuleDict()
    for node in graph.nodes:
        if node.kind == "affine":
            assert node.module is not None and node.bias is not None
            divisor = bias_divisor(node)
            ops[node.key] = AffineStep(copy.deepcopy(node.module), node.bias / divisor)
        elif node.kind == "norm":
            assert node.scale is not None and node.bias is not None
            ops[node.key] = NormStep(node.scale.clone(), node.bias / bias_divisor(node))
        elif node.kind == "neuron":
            assert node.theta is not None
            ops[node.key] = Threshold(node.theta.clone(), node.levels)
        elif node.kind == "linear" and node.module is not None:
            ops[node.key] = copy.deepcopy(node.module)
    return ops


__all__ = [
    "STREAM_KINDS",
    "AffineStep",
    "Graph",
    "Kind",
    "Node",
    "NormStep",
    "Ref",
    "Threshold",
    "align",
    "build_ops",
    "call_node",
    "fanout",
    "resolve_main",
    "trace_network",
]
