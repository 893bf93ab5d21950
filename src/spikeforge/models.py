"""Reference ReLU architectures used by the demos, reproductions and benchmarks.

All take batch-first images ``[B, C, H, W]`` and return logits ``[B, classes]``.
"""

from __future__ import annotations

from torch import nn


def fc2(
    in_features: int = 784, hidden: int = 600, classes: int = 10, dropout: float = 0.08
) -> nn.Sequential:
    """FC2 of the TTFS papers: Flatten, 784-600 ReLU, Dropout 0.08, 600-10 (P1). P2 trains
    784-340-10 without dropout from scratch (:func:`fc2_p2`)."""
    layers: list[nn.Module] = [nn.Flatten(), nn.Linear(in_features, hidden), nn.ReLU()]
    if dropout:
        layers.append(nn.Dropout(dropout))
    layers.append(nn.Linear(hidden, classes))
    return nn.Sequential(*layers)


def fc2_p2(in_features: int = 784, classes: int = 10) -> nn.Sequential:
    """P2's from-scratch FC2: 784-340 ReLU-10, no dropout."""
    return fc2(in_features, 340, classes, dropout=0.0)


def _bn(kind: type[nn.Module], channels: int, batch_norm: bool) -> list[nn.Module]:
    return [kind(channels)] if batch_norm else []


def lenet5(in_channels: int = 1, classes: int = 10, batch_norm: bool = True) -> nn.Sequential:
    """LeNet5 of P1 for 28x28 inputs, BatchNorm before ReLU (left out with
    ``batch_norm=False``, for training as a TTFS network from scratch).

    conv6 5x5 same -> BN -> ReLU -> pool; conv16 5x5 -> BN -> ReLU -> pool; conv120 5x5 -> BN ->
    ReLU; FC84 -> BN -> ReLU; FC10.
    """
    return nn.Sequential(
        nn.Conv2d(in_channels, 6, 5, padding=2),
        *_bn(nn.BatchNorm2d, 6, batch_norm),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5),
        *_bn(nn.BatchNorm2d, 16, batch_norm),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(16, 120, 5),
        *_bn(nn.BatchNorm2d, 120, batch_norm),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(120, 84),
        *_bn(nn.BatchNorm1d, 84, batch_norm),
        nn.ReLU(),
        nn.Linear(84, classes),
    )


def vgg_small(in_channels: int = 1, classes: int = 10, batch_norm: bool = True) -> nn.Sequential:
    """A small VGG for 28x28 inputs in the papers' VGG style (3x3 'same' convs, Conv -> ReLU ->
    BN, max pooling): convs [32, 32, P, 64, 64, P] -> FC 256 -> FC classes. ``batch_norm=False``
    leaves the BatchNorms out (for training as a TTFS network from scratch)."""
    layers: list[nn.Module] = []
    channels = in_channels
    for block in ((32, 32), (64, 64)):
        for out in block:
            layers += [nn.Conv2d(channels, out, 3, padding=1), nn.ReLU()]
            layers += _bn(nn.BatchNorm2d, out, batch_norm)
            channels = out
        layers.append(nn.MaxPool2d(2))
    layers += [nn.Flatten(), nn.Linear(channels * 7 * 7, 256), nn.ReLU()]
    layers += _bn(nn.BatchNorm1d, 256, batch_norm)
    layers.append(nn.Linear(256, classes))
    return nn.Sequential(*layers)


def digits_cnn(classes: int = 10) -> nn.Sequential:
    """Small CNN for 8x8 sklearn digits with BatchNorm before *and* after ReLU and max pooling.

    The second block's BatchNorm sits after its ReLU and before a max pool, so mapping it
    exercises border biases and max/min pooling for negative BatchNorm scales.
    """
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1),
        nn.ReLU(),
        nn.BatchNorm2d(32),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(32 * 2 * 2, classes),
    )


ARCHITECTURES = {"fc2": fc2, "lenet5": lenet5, "vgg-small": vgg_small, "digits-cnn": digits_cnn}


__all__ = [
    "ARCHITECTURES",
    "digits_cnn",
    "fc2",
    "fc2_p2",
    "lenet5",
    "vgg_small",
]
