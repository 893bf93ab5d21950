"""Rewrite a traced ReLU network into the canonical form that maps to TTFS layers.

Steps (spec ``ttfs.md`` §3, in this order):

1. the input range ``[p, q]`` becomes an "imaginary BatchNorm" ``x = p + (q - p) x~`` at the input;
2. BatchNorm directly after a Linear/Conv (possibly across max pools, which then become
   max/min pools for channels with a negative scale) folds into that layer; any other BatchNorm
   (after a ReLU) folds forward into the next Linear/Conv across pools and flattens, with
   position-dependent border biases computed by running the original layer on a constant image;
3. ReLUs move before max pools and flattens they commute with;
4. the chain is split into stages ``[pre-ops] Affine`` (hidden stages followed by a ReLU);
5. (alpha1 only) weight-sum scaling keeps every hidden neuron's weight sum in [-10, 0.99] and
   compensates in the next layer.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from spikeforge.ttfs.errors import UnsupportedLayerError
from spikeforge.ttfs.ir import Affine, Flatten, Op, Pool, Relu, ScaleShift, describe
from spikeforge.ttfs.trace import infer_shapes

WEIGHT_SUM_UPPER = 0.99
WEIGHT_SUM_LOWER = -10.0

PreOp = Pool | Flatten


@dataclass
class Stage:
    """One weighted layer and the pooling / flatten operations applied to its input."""

    pre: list[PreOp]
    affine: Affine


@dataclass
class Chain:
    """A canonical ReLU network: ReLU after every stage but the last; ``post`` flattens the
    output layer's potentials."""

    stages: list[Stage]
    post: list[Flatten]
    in_shape: tuple[int, ...]

    @property
    def hidden(self) -> list[Stage]:
        return self.stages[:-1]

    def forward(self, x: Tensor, record: list[Tensor] | None = None) -> Tensor:
        """The ReLU network's logits for values ``[B, *in_shape]`` already mapped to [0, 1];
        ``record`` collects each hidden layer's ReLU output."""
        for i, stage in enumerate(self.stages):
            for op in stage.pre:
                x = op.apply(x)
            x = stage.affine.apply(x)
            if i < len(self.stages) - 1:
                x = torch.relu(x)
                if record is not None:
                    record.append(x)
        for op in self.post:
            x = op.apply(x)
        return x


def _sign(t: Tensor) -> Tensor:
    return torch.where(t < 0, -1.0, 1.0).to(t.dtype)


def _per_channel(full: Tensor) -> Tensor:
    """``[C, H, W]`` per-channel-constant tensor -> ``[C]``."""
    return full.reshape(full.shape[0], -1)[:, 0]


def _carry_forward(
    ops: list[Op], start: int, factor: Tensor, const: Tensor | None, who: str
) -> tuple[Affine, Tensor, Tensor | None]:
    """Carry a per-channel factor (feature-shaped ``factor``) and optionally a constant image
    ``[1, *shape]`` from position ``start`` through pools and flattens to the next Affine.

    Max pools crossed get their sign multiplied by the sign of the factor. Returns the Affine,
    the factor in the Affine's input shape and the constant image there.
    """
    for op in ops[start:]:
        if isinstance(op, Affine):
            return op, factor, const
        if isinstance(op, Pool):
            channel = _per_channel(factor)
            if op.kind == "max":
                sign = op.sign if op.sign is not None else torch.ones_like(channel)
                op.sign = sign * _sign(channel)
            factor = channel.reshape(-1, 1, 1).expand(op.out_shape)
        elif isinstance(op, Flatten):
            factor = factor.flatten()
        else:
            raise UnsupportedLayerError(
                f"{who} cannot be folded: {describe(op)} lies between it and the next Linear/Conv"
            )
        if const is not None:
            const = op.apply(const)
    raise UnsupportedLayerError(f"{who} has no following Linear/Conv to fold into")


def _fold_backward(ops: list[Op], i: int) -> bool:
    """Fold the ScaleShift at ``i`` into a preceding Affine (across max pools) if there is one."""
    bn = ops[i]
    assert isinstance(bn, ScaleShift)
    j = i - 1
    while j >= 0 and isinstance(ops[j], Pool) and ops[j].kind == "max":
        j -= 1
    if j < 0 or not isinstance(ops[j], Affine):
        return False
    affine = ops[j]
    for pool in ops[j + 1 : i]:
        sign = pool.sign if pool.sign is not None else torch.ones_like(bn.scale)
        pool.sign = sign * _sign(bn.scale)
    affine.scale_outputs(bn.scale)
    affine.bias = affine.bias + bn.shift.reshape((-1,) + (1,) * (affine.bias.dim() - 1))
    del ops[i]
    return True


def _fold_forward(ops: list[Op], i: int) -> None:
    """Fold the ScaleShift at ``i`` into the next Affine, with border biases."""
    bn = ops[i]
    assert isinstance(bn, ScaleShift)
    who = f"{bn.description} at {bn.path}"
    factor = bn.expand(bn.scale, bn.in_shape)
    const = bn.expand(bn.shift, bn.in_shape)[None]
    affine, factor, const = _carry_forward(ops, i + 1, factor, const, who)
    affine.bias = affine.bias + affine.apply_no_bias(const)[0]
    affine.scale_inputs(factor if affine.kind == "linear" else _per_channel(factor))
    affine.compact_bias()
    del ops[i]


def _merge_scale_shifts(ops: list[Op]) -> None:
    i = 0
    while i + 1 < len(ops):
        a, b = ops[i], ops[i + 1]
        if isinstance(a, ScaleShift) and isinstance(b, ScaleShift):
            ops[i] = ScaleShift(
                b.path,
                b.scale * a.scale,
                b.scale * a.shift + b.shift,
                a.in_shape,
                b.out_shape,
                f"{a.description} at {a.path} and {b.description}",
            )
            del ops[i + 1]
        else:
            i += 1


def _hoist_relus(ops: list[Op]) -> None:
    """Move each ReLU back over max pools and flattens to sit right after its Affine."""
    i = 0
    while i < len(ops):
        op = ops[i]
        if not isinstance(op, Relu):
            i += 1
            continue
        j = i - 1
        while j >= 0 and (
            isinstance(ops[j], Flatten) or (isinstance(ops[j], Pool) and ops[j].kind == "max")
        ):
            j -= 1
        if j < 0:
            raise UnsupportedLayerError(
                f"ReLU at {op.path} has no preceding Linear/Conv: a TTFS input layer cannot "
                "apply ReLU"
            )
        prev = ops[j]
        if isinstance(prev, Relu):
            del ops[i]  # ReLU is idempotent and commutes with max pools / flatten
            continue
        if not isinstance(prev, Affine):
            raise UnsupportedLayerError(
                f"ReLU at {op.path} follows {describe(prev)}: average pooling of "
                "pre-activations has no TTFS equivalent"
            )
        del ops[i]
        ops.insert(j + 1, op)
        i += 1


def _split_stages(ops: list[Op], in_shape: tuple[int, ...]) -> Chain:
    stages: list[Stage] = []
    pre: list[PreOp] = []
    post: list[Flatten] = []
    awaiting_relu = False  # the last weighted layer has no ReLU yet: it may be the output layer
    averaged = False
    for idx, op in enumerate(ops):
        if isinstance(op, Relu):
            awaiting_relu = False
        elif awaiting_relu:
            rest = ops[idx:]
            if all(isinstance(o, Flatten) for o in rest):
                post = list(rest)
                break
            raise UnsupportedLayerError(
                f"{describe(op)} follows {describe(stages[-1].affine)} without a ReLU: every "
                "hidden layer needs a ReLU and only Flatten may follow the output layer"
            )
        elif isinstance(op, Affine):
            stages.append(Stage(pre, op))
            pre, awaiting_relu, averaged = [], True, False
        elif isinstance(op, Pool):
            if op.kind == "max" and averaged:
                raise UnsupportedLayerError(
                    f"MaxPool2d at {op.path} follows an average pool: the maximum of averaged "
                    "spike times is not an event operation"
                )
            averaged = averaged or op.kind == "avg"
            pre.append(op)
        elif isinstance(op, Flatten):
            pre.append(op)
        else:  # pragma: no cover - ScaleShifts are folded before this
            raise UnsupportedLayerError(f"{describe(op)} is not expected here")
    if not stages:
        raise UnsupportedLayerError("the network has no Linear or Conv2d layer")
    if not awaiting_relu:
        raise UnsupportedLayerError(
            f"the network ends with a ReLU after {stages[-1].affine.path}: the output layer must "
            "give logits (a Linear/Conv without ReLU)"
        )
    return Chain(stages, post, in_shape)


def canonicalize(ops: list[Op], unit: Tensor, input_range: tuple[float, float]) -> Chain:
    """Fold BatchNorms and the input range, hoist ReLUs and split into stages.

    ``unit``: a float64 sample ``[B, *in_shape]`` already mapped to [0, 1] (used for shapes
    only). The returned chain takes inputs mapped to [0, 1], ``x~ = (x - p) / (q - p)``.
    """
    p, q = input_range
    if not q > p:
        raise ValueError(f"input_range must have q > p, got ({p}, {q})")
    if not any(isinstance(op, Affine) for op in ops):
        raise UnsupportedLayerError("the network has no Linear or Conv2d layer")
    channels = unit.shape[1]
    dtype = unit.dtype
    ops = [
        ScaleShift(
            "input",
            torch.full((channels,), float(q - p), dtype=dtype),
            torch.full((channels,), float(p), dtype=dtype),
            description="input range",
        ),
        *ops,
    ]
    infer_shapes(ops, unit)
    _merge_scale_shifts(ops)
    i = 0
    while i < len(ops):
        if isinstance(ops[i], ScaleShift):
            if not _fold_backward(ops, i):
                _fold_forward(ops, i)
            continue
        i += 1
    _hoist_relus(ops)
    infer_shapes(ops, unit)
    return _split_stages(ops, tuple(unit.shape[1:]))


def scale_weight_sums(chain: Chain) -> None:
    """Weight-sum scaling of P1 (spec §3.8), in place.

    Each hidden neuron with weight sum c > 0.99 (or c < -10) has its row and bias (map)
    multiplied by 0.99 / c (or -10 / c, positive); the next layer's weights from that neuron are
    divided by the same factor. ReLU and max/min/average pooling commute with positive
    per-channel scaling, so the network function is unchanged.
    """
    for i, stage in enumerate(chain.hidden):
        affine = stage.affine
        sums = affine.fan_in_sum().flatten()
        factor = torch.ones_like(sums)
        factor = torch.where(sums > WEIGHT_SUM_UPPER, WEIGHT_SUM_UPPER / sums, factor)
        factor = torch.where(sums < WEIGHT_SUM_LOWER, WEIGHT_SUM_LOWER / sums, factor)
        if bool((factor == 1).all()):
            continue
        affine.scale_outputs(factor)
        nxt = chain.stages[i + 1]
        inverse = (1.0 / factor).reshape((-1,) + (1,) * (len(affine.out_shape) - 1))
        inverse = inverse.expand(affine.out_shape)
        ops: list[Op] = [*nxt.pre, nxt.affine]
        _, inverse, _ = _carry_forward(ops, 0, inverse, None, f"layer {affine.path}")
        nxt.affine.scale_inputs(inverse if nxt.affine.kind == "linear" else _per_channel(inverse))


def max_activations(chain: Chain, batches: list[Tensor]) -> list[float]:
    """X_n: the largest ReLU output of each hidden layer over the calibration batches
    (values already mapped to [0, 1])."""
    maxima = [0.0] * len(chain.hidden)
    with torch.no_grad():
        for x in batches:
            record: list[Tensor] = []
            chain.forward(x, record)
            for n, act in enumerate(record):
                maxima[n] = max(maxima[n], float(act.max()))
    return maxima


__all__ = [
    "Chain",
    "Stage",
    "canonicalize",
    "max_activations",
    "scale_weight_sums",
]
