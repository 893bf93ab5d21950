"""Evaluation metrics shared by the method packages.

Conventions: ``logits`` are ``[B, classes]``; spike-time tensors are ``[B, *shape]`` per layer.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


def accuracy(logits: Tensor, labels: Tensor) -> float:
    """Fraction of samples whose arg-max class equals the label. ``[B, C]``, ``[B]``."""
    if logits.shape[0] != labels.shape[0]:
        raise ValueError(f"{logits.shape[0]} predictions for {labels.shape[0]} labels")
    if logits.shape[0] == 0:
        raise ValueError("accuracy of an empty batch is undefined")
    return float((logits.argmax(dim=1) == labels.to(logits.device)).double().mean())


def agreement(predictions: Tensor, reference: Tensor) -> float:
    """Fraction of samples on which two models predict the same class.

    Either argument may be logits ``[B, C]`` or class indices ``[B]``. For TTFS networks the
    reference is the *original* ReLU model's prediction, taken before any folding or scaling.
    """
    a = predictions.argmax(dim=1) if predictions.dim() == 2 else predictions
    b = reference.argmax(dim=1) if reference.dim() == 2 else reference
    if a.shape != b.shape:
        raise ValueError(f"cannot compare predictions of shapes {list(a.shape)}, {list(b.shape)}")
    return float((a == b.to(a.device)).double().mean())


def spike_counts(hidden_times: Sequence[Tensor], t_max: Sequence[float]) -> list[tuple[int, int]]:
    """Per layer, ``(spikes, neurons)``: spikes are times strictly before ``t_max`` of that layer
    (a neuron at ``t_max`` is silent), neurons are ``batch * neurons per sample``."""
    if len(hidden_times) != len(t_max):
        raise ValueError(f"{len(hidden_times)} layers of times but {len(t_max)} t_max values")
    return [(int((t < tm).sum()), t.numel()) for t, tm in zip(hidden_times, t_max, strict=True)]


def spikes_per_neuron(hidden_times: Sequence[Tensor], t_max: Sequence[float]) -> float:
    """Average number of spikes per **hidden** neuron and input sample.

    Input neurons (which encode the pixels) and output neurons (read out as potentials, they do
    not spike) are not counted. A hidden neuron spikes when its time is strictly before its
    layer's ``t_max``; with at most one spike per neuron this is the fraction of non-zero ReLU
    activations. Use noise-free times.
    """
    counts = spike_counts(hidden_times, t_max)
    total = sum(n for _, n in counts)
    return sum(s for s, _ in counts) / total if total else 0.0


def max_abs_difference(a: Sequence[Tensor] | Tensor, b: Sequence[Tensor] | Tensor) -> float:
    """Largest absolute elementwise difference between two tensors or lists of tensors."""
    pairs = [(a, b)] if isinstance(a, Tensor) else list(zip(a, b, strict=True))
    diffs = (float((x - y).detach().abs().max()) for x, y in pairs if x.numel())
    return max(diffs, default=0.0)


def predictions_in_batches(model: torch.nn.Module, x: Tensor, batch_size: int = 1024) -> Tensor:
    """Logits ``[B, C]`` of ``model`` on ``x`` computed batch by batch without gradients."""
    with torch.no_grad():
        return torch.cat([model(x[i : i + batch_size]) for i in range(0, x.shape[0], batch_size)])


__all__ = [
    "accuracy",
    "agreement",
    "max_abs_difference",
    "predictions_in_batches",
    "spike_counts",
    "spikes_per_neuron",
]
