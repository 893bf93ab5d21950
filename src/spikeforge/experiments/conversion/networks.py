"""The two source architectures of the conversion reproduction, plain ReLU networks for 28x28
grey images (``[B, 1, 28, 28]`` -> logits ``[B, classes]``).

Both use average pooling (spec ``conversion.md`` §1.3: QCFS trains with AvgPool, PASCAL needs a
pooling that commutes with summation over time) and one distinct ``nn.ReLU`` module per
activation, so that QCFS (:func:`spikeforge.convert.to_qcfs`), SpikingJelly's converter (which
replaces ``nn.ReLU`` call sites of an FX graph) and the max-norm IF conversion of
:mod:`.baselines` all see the same activation sites. BatchNorm sits between each convolution
and its activation, as in the QCFS / PASCAL VGG and ResNet code.

They are deliberately small: one reproduction line trains four networks and simulates four
spiking networks for 64 time steps on the whole test set within 20 minutes on 2 CPU cores.

* ``vgg-small`` (``w = 8``): conv(w) conv(w) pool conv(2w) conv(2w) pool fc(128) fc(classes);
  5 spiking layers, 3x3 'same' convolutions;
* ``resnet-small`` (``w = 16``): conv(w) pool, a basic residual block at ``w`` channels (identity
  shortcut), a basic block to ``2w`` channels with stride 2 (1x1 conv + BN shortcut), global
  average pooling, fc(classes); 5 spiking layers, two residual joins.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor, nn

__all__ = [
    "ARCHITECTURES",
    "DEFAULT_WIDTHS",
    "BasicBlock",
    "activation_count",
    "build",
    "resnet_small",
    "vgg_small",
]

DEFAULT_WIDTHS = {"vgg-small": 8, "resnet-small": 16}
"""Channels of the first convolutions (the second stage has twice as many) per architecture:
resnet-small ends in global average pooling over ``2w`` channels and needs the wider start."""


def _conv_bn(c_in: int, c_out: int, stride: int = 1) -> list[nn.Module]:
    return [
        nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
    ]


def vgg_small(
    width: int = 8, in_channels: int = 1, classes: int = 10, hidden: int = 128
) -> nn.Sequential:
    """conv(w)-BN-ReLU, conv(w)-BN-ReLU, AvgPool 2, conv(2w)-BN-ReLU, conv(2w)-BN-ReLU,
    AvgPool 2, Flatten, Linear(2w*7*7, hidden)-ReLU, Linear(hidden, classes)."""
    w1, w2 = width, 2 * width
    layers: list[nn.Module] = []
    channels = in_channels
    for out in (w1, w1):
        layers += [*_conv_bn(channels, out), nn.ReLU()]
        channels = out
    layers.append(nn.AvgPool2d(2))
    for out in (w2, w2):
        layers += [*_conv_bn(channels, out), nn.ReLU()]
        channels = out
    layers.append(nn.AvgPool2d(2))
    layers += [nn.Flatten(), nn.Linear(channels * 7 * 7, hidden), nn.ReLU()]
    layers.append(nn.Linear(hidden, classes))
    return nn.Sequential(*layers)


class BasicBlock(nn.Module):
    """ResNet basic block: ``relu2(bn2(conv2(relu1(bn1(conv1(x))))) + shortcut(x))``; the
    shortcut is the identity, or a 1x1 convolution + BN when the stride or width changes."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1, self.bn1 = _conv_bn(c_in, c_out, stride)
        self.relu1 = nn.ReLU()
        self.conv2, self.bn2 = _conv_bn(c_out, c_out)
        if stride != 1 or c_in != c_out:
            self.shortcut: nn.Module = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out)
            )
        else:
            self.shortcut = nn.Identity()
        self.relu2 = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        """``[B, c_in, H, W]`` -> ``[B, c_out, H / stride, W / stride]``."""
        out = self.bn2(self.conv2(self.relu1(self.bn1(self.conv1(x)))))
        return self.relu2(out + self.shortcut(x))


def resnet_small(width: int = 16, in_channels: int = 1, classes: int = 10) -> nn.Sequential:
    """conv(w)-BN-ReLU at 28x28, AvgPool 2, BasicBlock(w, w), BasicBlock(w, 2w, stride 2),
    AvgPool 7 (global), Flatten, Linear(2w, classes)."""
    return nn.Sequential(
        *_conv_bn(in_channels, width),
        nn.ReLU(),
        nn.AvgPool2d(2),
        BasicBlock(width, width),
        BasicBlock(width, 2 * width, stride=2),
        nn.AvgPool2d(7),
        nn.Flatten(),
        nn.Linear(2 * width, classes),
    )


ARCHITECTURES: dict[str, Callable[..., nn.Module]] = {
    "vgg-small": vgg_small,
    "resnet-small": resnet_small,
}


def build(arch: str, width: int | None = None, classes: int = 10) -> nn.Module:
    """A fresh ``arch`` network (``"vgg-small"`` or ``"resnet-small"``); ``width``: channels of
    the first stage (default :data:`DEFAULT_WIDTHS`)."""
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r}; choose from {sorted(ARCHITECTURES)}")
    return ARCHITECTURES[arch](width=width or DEFAULT_WIDTHS[arch], classes=classes)


def activation_count(model: nn.Module) -> int:
    """The number of ``nn.ReLU`` modules (= spiking layers after conversion)."""
    return sum(isinstance(m, nn.ReLU) for m in model.modules())
