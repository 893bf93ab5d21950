"""Save and load fitted spikeforge file classifiers in a plain format (no pickle of objects).

:func:`save_model` writes one file with :func:`torch.save` holding only tensors, strings, numbers,
lists and dicts; :func:`load_model` reads it with ``torch.load(weights_only=True)``, so loading a
model file cannot run code. The file holds::

    {"format": 1, "class": "SNNClassifier", "spikeforge": "<version>",
     "params": {...},                       # get_params(deep=False); the encoder and the
                                            # memristive synapse config as their own params
     "encoder": {"params": {...}, "state": {...}},   # the fitted encoder (fitted_state)
     "base": {...},                         # classes_, input kind, n_inputs_, n_steps_, ...
     "fitted": {...}}                       # the class's own (network weights, targets, ...)

A reloaded model predicts exactly as the saved one (tested). Writes are atomic (temporary file
and rename). Supported classes: :data:`CLASSES`. A memristive model reloads for inference: its
weights are those the devices realised; the device states themselves are not saved.
"""

from __future__ import annotations

import dataclasses
import os
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np
import torch

from spikeforge.encoding import KeyValueEncoder
from spikeforge.files.estimator_base import SpikingClassifierBase
from spikeforge.files.memristive import MemristiveSynapse
from spikeforge.files.stdp import STDPClassifier
from spikeforge.files.supervised import SNNClassifier
from spikeforge.io import atomic_write

__all__ = ["CLASSES", "FORMAT", "ModelFileError", "load_model", "save_model"]

FORMAT = 1
CLASSES: dict[str, type[SpikingClassifierBase]] = {
    "SNNClassifier": SNNClassifier,
    "STDPClassifier": STDPClassifier,
}
"""Classes :func:`save_model` and :func:`load_model` know, by name."""


class ModelFileError(ValueError):
    """A model file that is not a spikeforge model file, or is corrupt or of another format."""


def _spikeforge_version() -> str:
    try:
        return version("spikeforge")
    except PackageNotFoundError:  # pragma: no cover - source checkout without install
        return "unknown"


def _plain_params(model: SpikingClassifierBase) -> dict[str, Any]:
    params = model.get_params(deep=False)
    out: dict[str, Any] = {}
    for name, value in params.items():
        if isinstance(value, KeyValueEncoder):
            out[name] = {"KeyValueEncoder": _encoder_params(value)}
        elif isinstance(value, MemristiveSynapse):
            out[name] = {"MemristiveSynapse": dataclasses.asdict(value)}
        elif value is None or isinstance(value, (bool, int, float, str)):
            out[name] = value
        elif isinstance(value, dict) and all(isinstance(k, (str, int)) for k in value):
            out[name] = dict(value)
        else:
            raise ModelFileError(
                f"parameter {name}={value!r} ({type(value).__name__}) cannot be saved; use an "
                "int random_state and plain parameter values"
            )
    return out


def _encoder_params(encoder: KeyValueEncoder) -> dict[str, Any]:
    params = encoder.get_params()
    params["schema"] = dict(params["schema"])
    if params.get("numeric_transforms") is not None:
        params["numeric_transforms"] = dict(params["numeric_transforms"])
    return params


def _restore_params(params: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for name, value in params.items():
        if isinstance(value, dict) and set(value) == {"KeyValueEncoder"}:
            value = KeyValueEncoder(**value["KeyValueEncoder"])
        elif isinstance(value, dict) and set(value) == {"MemristiveSynapse"}:
            value = MemristiveSynapse(**value["MemristiveSynapse"])
        out[name] = value
    return out


def _base_state(model: SpikingClassifierBase) -> dict[str, Any]:
    classes = np.asarray(model.classes_)
    state = {
        "classes": classes.tolist(),
        "classes_dtype": classes.dtype.str,
        "input_kind": model.input_kind_,
        "n_inputs": model.n_inputs_,
        "n_steps": model.n_steps_,
    }
    if hasattr(model, "n_features_in_"):
        state["n_features_in"] = int(model.n_features_in_)
    if hasattr(model, "feature_names_in_"):
        state["feature_names_in"] = [str(n) for n in model.feature_names_in_]
    return state


def _restore_base(model: SpikingClassifierBase, state: dict[str, Any]) -> None:
    dtype = np.dtype(state["classes_dtype"])
    if dtype.kind == "O":
        model.classes_ = np.array(state["classes"], dtype=object)
    else:
        model.classes_ = np.array(state["classes"], dtype=dtype)
    model.input_kind_ = state["input_kind"]
    model.n_inputs_ = int(state["n_inputs"])
    model.n_steps_ = int(state["n_steps"])
    if "n_features_in" in state:
        model.n_features_in_ = int(state["n_features_in"])
    if "feature_names_in" in state:
        model.feature_names_in_ = np.array(state["feature_names_in"], dtype=object)


def save_model(model: SpikingClassifierBase, path: str | os.PathLike[str]) -> Path:
    """Write the fitted ``model`` to ``path`` atomically; returns the path.

    Raises ``sklearn.exceptions.NotFittedError`` for an unfitted model and
    :class:`ModelFileError` for a class not in :data:`CLASSES` or a parameter that has no plain
    form (e.g. a ``RandomState`` object as ``random_state``).
    """
    name = type(model).__name__
    if CLASSES.get(name) is not type(model):
        raise ModelFileError(f"cannot save a {name}; supported: {', '.join(CLASSES)}")
    fitted = model._fitted_state()  # raises NotFittedError first when unfitted
    payload = {
        "format": FORMAT,
        "class": name,
        "spikeforge": _spikeforge_version(),
        "params": _plain_params(model),
        "encoder": {
            "params": _encoder_params(model.encoder_),
            "state": model.encoder_.fitted_state(),
        },
        "base": _base_state(model),
        "fitted": fitted,
    }
    return atomic_write(path, lambda fh: torch.save(payload, fh))


def load_model(path: str | os.PathLike[str]) -> SpikingClassifierBase:
    """Read a model written by :func:`save_model` (``torch.load(weights_only=True)``).

    Raises ``FileNotFoundError`` for a missing file and :class:`ModelFileError` (naming the
    file) for anything that is not a complete spikeforge model file of this format.
    """
    path = Path(path)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as exc:  # torch raises many types for truncated or foreign files
        raise ModelFileError(f"{path} is not a readable spikeforge model file: {exc}") from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise ModelFileError(f"{path}: not a spikeforge model file of format {FORMAT} ({found})")
    cls = CLASSES.get(payload.get("class", ""))
    if cls is None:
        raise ModelFileError(f"{path}: unknown model class {payload.get('class')!r}")
    try:
        model = cls(**_restore_params(payload["params"]))
        encoder = KeyValueEncoder(**payload["encoder"]["params"])
        model.encoder_ = encoder.load_fitted_state(payload["encoder"]["state"])
        _restore_base(model, payload["base"])
        model._load_fitted_state(payload["fitted"])
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise ModelFileError(f"{path}: incomplete or inconsistent model file: {exc}") from exc
    return model
