"""Small multi-step SNNs for the IMP / LTS / TET experiments, driven by static inputs.

:class:`StaticSNN` takes a batch-first static input ``x [B, ...]`` (an image, a feature vector),
repeats it over ``T`` time steps (direct encoding) and returns per-step logits ``[T, B, C]``
(time-first). Its optional ``stem`` (stateless layers before the first spiking neuron) runs once
on ``[B, ...]`` and its output is repeated, which is exactly the same as running it on every
repeated step (the input is identical at every step) but ``T`` times cheaper. The ``body`` runs on
``[T, B, ...]``: :class:`~spikeforge.core.neurons.IF` / ``LIF`` neurons and
:class:`~spikeforge.core.neurons.MultiStep`-wrapped stateless layers; the last layer is a
non-spiking readout applied per step.

The builders create every learnable initial potential (IMP) at construction (``shape=``), so
the optimiser can be built right away, and draw the IMPs **after** all weights from the global
RNG: with the same seed, a network with and without IMP starts from the same weights.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Literal

from torch import Tensor, nn

from spikeforge.core.neurons import IF, LIF, MultiStep

__all__ = ["StaticSNN", "conv_snn", "if_mlp", "imp_parameters"]

Neuron = Literal["if", "lif"]


class StaticSNN(nn.Module):
    """Static input ``[B, ...]`` repeated over ``time_steps`` -> per-step logits ``[T, B, C]``.

    ``stem``: stateless layers applied once to ``[B, ...]`` (``None``: identity) before the
    repetition; ``body``: the time-first network ``[T, B, ...] -> [T, B, C]``.
    """

    def __init__(self, body: nn.Module, time_steps: int, stem: nn.Module | None = None) -> None:
        super().__init__()
        if time_steps < 1:
            raise ValueError(f"time_steps must be >= 1, got {time_steps}")
        self.time_steps = int(time_steps)
        self.stem = stem if stem is not None else nn.Identity()
        self.body = body

    def forward(self, x: Tensor) -> Tensor:
        """``x [B, ...]`` -> logits ``[T, B, C]``."""
        h = self.stem(x)
        h_seq = h.unsqueeze(0).expand(self.time_steps, *h.shape)
        return self.body(h_seq)

    def extra_repr(self) -> str:
        return f"time_steps={self.time_steps}"


def _neuron(kind: Neuron, imp: bool, shape: tuple[int, ...], surrogate: str) -> nn.Module:
    kwargs = {"surrogate": surrogate, "reset": "subtract", "learnable_init": imp}
    if imp:
        kwargs["shape"] = shape
    if kind == "if":
        return IF(**kwargs)  # type: ignore[arg-type]
    if kind == "lif":
        return LIF(**kwargs)  # type: ignore[arg-type]
    raise ValueError(f"unknown neuron {kind!r}; choose 'if' or 'lif'")


def if_mlp(
    sizes: Sequence[int],
    *,
    time_steps: int = 4,
    imp: bool = False,
    bias: bool = True,
    surrogate: str = "atan",
    neuron: Neuron = "if",
) -> StaticSNN:
    """``sizes[0] -> sizes[1] -> ... -> sizes[-1]`` MLP on static inputs ``[B, sizes[0]]``.

    ``Linear`` layers, each hidden one followed by an IF neuron (soft reset, threshold 1, fires
    at ``H >= 1``; ``neuron="lif"``: LIF τ = 2); the last ``Linear`` is the non-spiking per-step
    readout. The first ``Linear`` is the stem (run once, module docstring). ``imp``: learnable
    initial potentials ``(1, width)`` created now, drawn after the weights. Returns a
    :class:`StaticSNN` mapping ``[B, sizes[0]]`` to ``[T, B, sizes[-1]]``.
    """
    sizes = [int(s) for s in sizes]
    if len(sizes) < 3:
        raise ValueError(f"an MLP needs at least one hidden layer, got sizes {sizes}")
    if min(sizes) < 1:
        raise ValueError(f"layer sizes must be >= 1, got {sizes}")
    linears = [nn.Linear(a, b, bias=bias) for a, b in itertools.pairwise(sizes)]
    neurons = [_neuron(neuron, imp, (n,), surrogate) for n in sizes[1:-1]]
    body: list[nn.Module] = []
    for k, lin in enumerate(linears[1:]):
        body += [neurons[k], MultiStep(lin)]
    return StaticSNN(nn.Sequential(*body), time_steps, stem=linears[0])


def conv_snn(
    *,
    in_shape: tuple[int, int, int] = (1, 28, 28),
    classes: int = 10,
    time_steps: int = 4,
    imp: bool = False,
    neuron: Neuron = "if",
    surrogate: str = "atan",
) -> StaticSNN:
    """Conv SNN on images ``[B, C, H, W]``: ``Conv(C->32, 3x3, pad 1)``, neuron,
    ``Conv(32->64, 3x3, stride 2, pad 1)``, neuron, ``Flatten``, ``Linear(-> classes)`` (the
    non-spiking per-step readout). The first convolution is the stem (run once). Neurons: IF
    (``"if"``) or LIF τ = 2 (``"lif"``), soft reset, ``>=``; ``imp``: per-neuron learnable
    initial potentials ``(1, 32, H, W)`` and ``(1, 64, H', W')``, drawn after the weights.
    Returns a :class:`StaticSNN` mapping ``[B, C, H, W]`` to ``[T, B, classes]``.
    """
    c, h, w = in_shape
    if min(c, h, w, classes) < 1:
        raise ValueError(f"bad input shape {in_shape} or classes {classes}")
    h2, w2 = (h + 1) // 2, (w + 1) // 2  # 3x3, stride 2, padding 1
    conv1 = nn.Conv2d(c, 32, 3, padding=1)
    conv2 = nn.Conv2d(32, 64, 3, stride=2, padding=1)
    fc = nn.Linear(64 * h2 * w2, classes)
    n1 = _neuron(neuron, imp, (32, h, w), surrogate)
    n2 = _neuron(neuron, imp, (64, h2, w2), surrogate)
    body = nn.Sequential(n1, MultiStep(conv2), n2, MultiStep(nn.Flatten(), fc))
    return StaticSNN(body, time_steps, stem=conv1)


def imp_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The learnable initial potentials (``init_state``) of ``model``, in module order."""
    return [p for name, p in model.named_parameters() if name.rsplit(".", 1)[-1] == "init_state"]
