"""Saved TTFS networks: :meth:`TTFSNetwork.save <spikeforge.ttfs.network.TTFSNetwork.save>`
writes a file, :func:`load` reads it back.

The file is a ``torch.save`` of plain dicts, lists, strings, numbers, booleans, ``None`` and
tensors only (no pickled classes or code), so ``torch.load(path, weights_only=True)`` reads it.
Format ``"spikeforge.ttfs.network"``, version 1 (:data:`FORMAT`, :data:`FORMAT_VERSION`)::

    {
      "format": "spikeforge.ttfs.network",
      "version": 1,
      "written_by": "spikeforge <version>",          # informational
      "network": {
        "neuron": "b1" | "alpha1",
        "input_range": [p, q],
        "in_shape": [...],                            # without the batch dimension
        "flatten_output": bool,
        "layers": [                                   # layers 1 .. N, the readout last
          {"kind": "B1Layer" | "Alpha1Layer" | "B1Readout" | "Alpha1Readout",
           "path": str,                               # the ReLU layer it came from
           "pre": [                                   # pre-operations, in order
             {"op": "Pool", "kind": "max" | "avg", "path", "kernel_size", "stride",
              "padding", "dilation", "ceil_mode", "in_shape", "out_shape",
              "sign": None, "signed": bool},          # the sign is a buffer (state dict)
             {"op": "Flatten"}],
           "synapses": {"kind": "linear" | "conv", "stride", "padding", "dilation",
                        "groups", "in_shape", "out_shape"}}],
        "hardware": None | {"noise_std", "time_bits", "weight_bits", "weight_range",
                            "saturate"},              # the Hardware fields
        "mapping": None | {
          "chain": {"in_shape": [...],
                    "stages": [{"pre": [Pool / Flatten records], "affine": Affine record}],
                    "post": [Flatten records]},
          "max_activations": [X_1, ...], "zeta": float, "weight_sum_scaled": bool}},
      "state_dict": {name: tensor},                   # TTFSNetwork.state_dict(), on the CPU
      "sha256": str                                   # spikeforge.io.content_digest of the rest
    }

Tuples are stored as lists. An IR record (``Affine``, ``Pool``, ``Flatten`` of
:mod:`spikeforge.ttfs.ir`) is ``{"op": class name, field: value, ...}`` with every dataclass
field; tensors keep their dtype. The state dict holds every parameter and buffer: the synapse
weights ``layers.<n>.synapses.weight`` (``[O, K]`` linear, ``[O, C/groups, kh, kw]`` conv),
``layers.<n>.bias`` (B1, ``[O]`` or ``[O, 1, 1]`` / ``[O, H, W]``), ``layers.<n>.alpha`` and
``layers.<n>.theta`` (alpha1, same shapes), the max/min pool signs ``layers.<n>.pre.<k>.sign``
(``[C]``) and the window widths ``windows.widths`` (``[N - 1]``).

The writer is in :mod:`spikeforge.ttfs.network` (this module imports it, so the network module
cannot import this one). A newer format version, a file that is not a saved TTFS network, a
corrupt file (unreadable, or content not matching its checksum), missing entries or an unknown
layer kind raise ``ValueError`` naming the file.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, NoReturn

import torch
from torch import Tensor

from spikeforge.io import content_digest, load_torch
from spikeforge.ttfs.fold import Chain, Stage
from spikeforge.ttfs.hardware import Hardware
from spikeforge.ttfs.ir import Affine, Flatten, Pool
from spikeforge.ttfs.layers import (
    Alpha1Layer,
    Alpha1Readout,
    B1Layer,
    B1Readout,
    Synapses,
    TTFSLayer,
)
from spikeforge.ttfs.network import SAVE_FORMAT, SAVE_VERSION, MappingInfo, TTFSNetwork
from spikeforge.ttfs.windows import Windows

FORMAT = SAVE_FORMAT
FORMAT_VERSION = SAVE_VERSION

# layer kind -> (class, its parameters besides the synapse weight, in constructor order)
_LAYER_KINDS: dict[str, tuple[type[TTFSLayer], tuple[str, ...]]] = {
    "B1Layer": (B1Layer, ("bias",)),
    "Alpha1Layer": (Alpha1Layer, ("alpha", "theta")),
    "B1Readout": (B1Readout, ("bias",)),
    "Alpha1Readout": (Alpha1Readout, ("alpha",)),
}
_READOUTS = {"B1Readout", "Alpha1Readout"}
_IR_OPS: dict[str, type] = {"Affine": Affine, "Pool": Pool, "Flatten": Flatten}


class _InvalidFile(ValueError):
    """A saved network that cannot be read (the message names the file)."""


class _Reader:
    """Checked access to the decoded file; every failure is a ``ValueError`` naming it."""

    def __init__(self, path: str | os.PathLike[str], state: dict[str, Tensor]) -> None:
        self.path = path
        self.state = state

    def fail(self, what: str) -> NoReturn:
        raise _InvalidFile(f"{self.path}: {what}")

    def get(self, record: Any, key: str, types: type | tuple[type, ...], where: str) -> Any:
        if not isinstance(record, dict):
            self.fail(f"'{where}' is {type(record).__name__}, expected a dict")
        if key not in record:
            self.fail(f"missing entry '{where}.{key}'")
        value = record[key]
        if not isinstance(value, types):
            self.fail(f"'{where}.{key}' is {type(value).__name__}, expected {_names(types)}")
        return value

    def tensor(self, name: str) -> Tensor:
        value = self.state.get(name)
        if not isinstance(value, Tensor):
            self.fail(f"missing tensor '{name}' in the state dict")
        return value

    def ir_op(self, record: Any, where: str, allowed: tuple[str, ...]) -> Any:
        """An IR operation from ``{"op": name, field: value, ...}`` (lists -> tuples)."""
        name = self.get(record, "op", str, where)
        if name not in allowed:
            self.fail(f"'{where}' is a {name!r} operation, expected one of {list(allowed)}")
        cls = _IR_OPS[name]
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(record) - known - {"op", "signed"})
        if unknown:
            self.fail(f"'{where}' has unknown {name} fields {unknown}")
        try:
            return cls(**{k: _tuples(v) for k, v in record.items() if k in known})
        except TypeError as exc:
            self.fail(f"'{where}' is not a valid {name}: {exc}")


def _names(types: type | tuple[type, ...]) -> str:
    types = types if isinstance(types, tuple) else (types,)
    return " or ".join("None" if t is type(None) else t.__name__ for t in types)


def _tuples(value: Any) -> Any:
    """Lists -> tuples, recursively (the IR stores shapes and geometry as tuples)."""
    if isinstance(value, list):
        return tuple(_tuples(v) for v in value)
    return value


def _layer(r: _Reader, n: int, record: Any) -> TTFSLayer:
    where = f"network.layers[{n}]"
    kind = r.get(record, "kind", str, where)
    if kind not in _LAYER_KINDS:
        r.fail(f"{where} has unknown layer kind {kind!r} (known: {sorted(_LAYER_KINDS)})")
    cls, param_names = _LAYER_KINDS[kind]
    path = r.get(record, "path", str, where)
    pre: list[Pool | Flatten] = []
    for k, op in enumerate(r.get(record, "pre", list, where)):
        op_where = f"{where}.pre[{k}]"
        if r.get(op, "op", str, op_where) == "Flatten":  # the layers keep no flatten details
            pre.append(Flatten(""))
            continue
        pool = r.ir_op(op, op_where, ("Pool",))
        if r.get(op, "signed", bool, op_where):
            pool.sign = r.tensor(f"layers.{n}.pre.{k}.sign")
        pre.append(pool)
    syn = r.get(record, "synapses", dict, where)
    syn_where = f"{where}.synapses"
    syn_kind = r.get(syn, "kind", str, syn_where)
    if syn_kind not in ("linear", "conv"):
        r.fail(f"'{syn_where}.kind' is {syn_kind!r}, expected 'linear' or 'conv'")
    geometry = {
        key: _tuples(r.get(syn, key, types, syn_where))
        for key, types in (
            ("stride", list),
            ("padding", (list, str)),
            ("dilation", list),
            ("groups", int),
            ("in_shape", list),
            ("out_shape", list),
        )
    }
    weight = r.tensor(f"layers.{n}.synapses.weight")
    affine = Affine(path, syn_kind, weight, weight.new_zeros(0), **geometry)
    params = [r.tensor(f"layers.{n}.{name}") for name in param_names]
    return cls(pre, Synapses(affine, weight), *params, path)


def _mapping(r: _Reader, record: Any) -> MappingInfo:
    where = "network.mapping"
    chain_record = r.get(record, "chain", dict, where)
    stages = []
    for i, s in enumerate(r.get(chain_record, "stages", list, f"{where}.chain")):
        s_where = f"{where}.chain.stages[{i}]"
        pre = [
            r.ir_op(op, f"{s_where}.pre[{k}]", ("Pool", "Flatten"))
            for k, op in enumerate(r.get(s, "pre", list, s_where))
        ]
        stages.append(Stage(pre, r.ir_op(r.get(s, "affine", dict, s_where), s_where, ("Affine",))))
    post = [
        r.ir_op(op, f"{where}.chain.post[{k}]", ("Flatten",))
        for k, op in enumerate(r.get(chain_record, "post", list, f"{where}.chain"))
    ]
    in_shape = _tuples(r.get(chain_record, "in_shape", list, f"{where}.chain"))
    maxima = r.get(record, "max_activations", list, where)
    if not all(isinstance(m, int | float) and not isinstance(m, bool) for m in maxima):
        r.fail(f"'{where}.max_activations' must be a list of numbers")
    return MappingInfo(
        Chain(stages, post, in_shape),
        maxima,
        r.get(record, "zeta", (int, float), where),
        r.get(record, "weight_sum_scaled", bool, where),
    )


def _hardware(r: _Reader, record: dict) -> Hardware:
    known = {f.name for f in dataclasses.fields(Hardware)}
    unknown = sorted(set(record) - known)
    if unknown:
        r.fail(f"'network.hardware' has unknown fields {unknown}")
    fields = {k: _tuples(v) for k, v in record.items()}
    try:
        return Hardware(**fields)
    except (TypeError, ValueError) as exc:
        r.fail(f"'network.hardware' is not a valid Hardware: {exc}")


def _check_header(path: str | os.PathLike[str], data: Any) -> None:
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        if isinstance(data, dict):
            keys = [repr(k) for k in list(data)[:5]]
            found = f"a dict with keys {', '.join(keys)}{', ...' if len(data) > 5 else ''}"
        else:
            found = f"a {type(data).__name__}"
        raise ValueError(
            f"{path} is not a saved spikeforge TTFS network (no 'format': {FORMAT!r} entry; "
            f"it holds {found})"
        )
    version = data.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ValueError(f"{path}: invalid format version {version!r}")
    if version > FORMAT_VERSION:
        raise ValueError(
            f"{path} was written by format version {version}; this spikeforge reads up to "
            f"version {FORMAT_VERSION}: upgrade spikeforge"
        )


def _network(r: _Reader, record: dict) -> TTFSNetwork:
    layers = [
        _layer(r, n, layer) for n, layer in enumerate(r.get(record, "layers", list, "network"))
    ]
    kinds = [type(layer).__name__ for layer in layers]
    if not kinds or kinds[-1] not in _READOUTS or any(k in _READOUTS for k in kinds[:-1]):
        r.fail(f"layer kinds {kinds}: the last layer, and only it, must be a readout")
    neuron = r.get(record, "neuron", str, "network")
    if any(layer.neuron != neuron for layer in layers):
        r.fail(f"layer kinds {kinds} do not all use neuron {neuron!r}")
    input_range = r.get(record, "input_range", list, "network")
    if len(input_range) != 2 or not all(isinstance(v, int | float) for v in input_range):
        r.fail(f"'network.input_range' must be [p, q], got {input_range!r}")
    hardware = r.get(record, "hardware", (dict, type(None)), "network")
    mapping = r.get(record, "mapping", (dict, type(None)), "network")
    return TTFSNetwork(
        layers,
        Windows(r.tensor("windows.widths")),
        (input_range[0], input_range[1]),
        _tuples(r.get(record, "in_shape", list, "network")),
        r.get(record, "flatten_output", bool, "network"),
        None if mapping is None else _mapping(r, mapping),
        None if hardware is None else _hardware(r, hardware),
    )


def load(
    path: str | os.PathLike[str], map_location: str | torch.device | None = None
) -> TTFSNetwork:
    """Read a network written by :meth:`TTFSNetwork.save
    <spikeforge.ttfs.network.TTFSNetwork.save>`.

    The result has the saved layers, parameters and buffers (bit for bit, with their dtypes),
    windows, input range, shapes, hardware model and :class:`MappingInfo` (its canonical ReLU
    chain included), so ``net(x)``, ``net.run(x)``, ``net.simulate(x)`` and further training
    behave exactly as on the saved network. Tensors are read to the CPU; ``map_location``
    then moves the network (``net.to(map_location)``; the mapping chain stays on the CPU, as
    :func:`~spikeforge.ttfs.mapping.from_relu` builds it). Not saved: optimiser state, the
    ``requires_grad`` flags (every parameter is trainable again) and ``training`` mode.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: the file is corrupt or truncated, is not a saved TTFS network, was written
            by a newer format version, lacks an entry or has an unknown layer kind (the message
            names the file and the problem).
    """
    data = load_torch(path)
    _check_header(path, data)
    digest = data.pop("sha256", None)
    if digest != content_digest(data):
        raise ValueError(
            f"{path} is corrupt: its content does not match the SHA-256 stored in it"
            if digest
            else f"{path}: missing entry 'sha256' (the checksum of the content)"
        )
    state = data.get("state_dict")
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise ValueError(f"{path}: missing or invalid entry 'state_dict'")
    r = _Reader(path, state)
    try:
        net = _network(r, r.get(data, "network", dict, "file"))
        # assign: keep the saved tensors (and dtypes: a float32 network has float32 windows)
        net.load_state_dict(state, strict=True, assign=True)
    except _InvalidFile:
        raise
    except (RuntimeError, ValueError, TypeError) as exc:
        r.fail(f"cannot rebuild the network: {exc}")
    if map_location is not None:
        net.to(map_location)
    return net


__all__ = ["FORMAT", "FORMAT_VERSION", "load"]
