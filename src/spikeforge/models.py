"""Reference ReLU architectures used by the demos, reproductions and benchmarks.

All take batch-first images ``[B, C, H, W]`` and return logits ``[B, classes]``.
"""

from __future__ import annotations

from torch import nn


def fc2(in_features: int = 784, hidden: int = 600, classes: int = 10) -> nn.Sequential:
    """FC2 of the TTFS papers: Flatten, 784-600 ReLU, Dropout 0.08, 600-10."""
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(in_features, hidden),
        nn.ReLU(),
        nn.Dropout(0.08),
        nn.Linear(hidden, classes),
    )


def lenet5(in_channels: int = 1, classes: int = 10) -> nn.Sequential:
    """LeNet5 of P1 for 28x28 inputs, BatchNorm before ReLU.

    conv6 5x5 same -> BN -> ReLU -> pool; conv16 5x5 -> BN -> ReLU -> pool; conv120 5x5 -> BN ->
    ReLU; FC84 -> BN -> ReLU; FC10.
    """
    return nn.Sequential(
        nn.Conv2d(in_channels, 6, 5, padding=2),
        nn.BatchNorm2d(6),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(16, 120, 5),
        nn.BatchNorm2d(120),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(120, 84),
        nn.BatchNorm1d(84),
        nn.ReLU(),
        nn.Linear(84, classes),
    )


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


ARCHITECTURES = {"fc2": fc2, "lenet5": lenet5, "digits-cnn": digits_cnn}
