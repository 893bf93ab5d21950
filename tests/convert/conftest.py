"""Random QCFS networks shared by the conversion tests (MLP, CNN with BatchNorm and AvgPool,
residual network with heterogeneous levels), calibrated so that every QCFS layer sees inputs
below 0, inside its range and above its clip level."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Sequence

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from spikeforge.convert import qcfs_sites, to_qcfs


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    """The networks are tiny: one thread avoids OpenMP contention on the shared machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def randomise_batchnorm(model: nn.Module, generator: torch.Generator) -> None:
    """Non-trivial running statistics and affine parameters for every BatchNorm."""
    for m in model.modules():
        if isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d):
            n = m.num_features
            with torch.no_grad():
                m.running_mean.copy_(0.3 * torch.randn(n, generator=generator))
                m.running_var.copy_(0.5 + torch.rand(n, generator=generator))
                m.weight.copy_(0.5 + torch.rand(n, generator=generator))
                m.bias.copy_(0.3 * torch.randn(n, generator=generator))


@torch.no_grad()
def calibrate(qnet: nn.Module, x: Tensor, generator: torch.Generator) -> None:
    """Set every QCFS lambda, in execution order, to a random multiple (0.6-1.2) of the 85th
    percentile of its input on ``x``, so inputs fall below 0, across the levels and above lambda;
    then standardise the logits (the last Linear) over ``x``."""
    for _, module in qcfs_sites(qnet):
        seen: list[Tensor] = []
        handle = module.register_forward_hook(lambda m, a, out, seen=seen: seen.append(a[0]))
        qnet(x)
        handle.remove()
        z = seen[0].flatten()
        level = torch.quantile(z[z > 0], 0.85) if bool((z > 0).any()) else torch.tensor(1.0)
        factor = 0.6 + 0.6 * torch.rand((), generator=generator, dtype=torch.float64)
        module.lam.copy_(level.to(module.lam.dtype) * factor.to(module.lam.dtype))
    # standardise the logits per class (last Linear) so that predictions vary between samples
    head = [m for m in qnet.modules() if isinstance(m, nn.Linear)][-1]
    y = qnet(x)
    std = y.std(0)
    head.weight.div_(std[:, None])
    head.bias.sub_(y.mean(0)).div_(std)


def mlp(widths: Sequence[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for a, b in itertools.pairwise(widths[:-1]):
        layers += [nn.Linear(a, b), nn.ReLU()]
    layers.append(nn.Linear(widths[-2], widths[-1]))
    return nn.Sequential(*layers)


def cnn() -> nn.Module:
    """Conv (with and without bias) + BatchNorm2d + ReLU + AvgPool; Flatten, Linear, BatchNorm1d."""
    return nn.Sequential(
        nn.Conv2d(2, 6, 3, padding=1),
        nn.BatchNorm2d(6),
        nn.ReLU(),
        nn.AvgPool2d(2),
        nn.Conv2d(6, 8, 3, padding=1, bias=False),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.AvgPool2d(2),
        nn.Flatten(),
        nn.Linear(8 * 2 * 2, 12),
        nn.BatchNorm1d(12),
        nn.ReLU(),
        nn.Linear(12, 5),
    )


class Block(nn.Module):
    """A residual basic block (conv-BN-ReLU-conv-BN + shortcut, then ReLU)."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.relu = nn.ReLU()  # called twice: two QCFS sites
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out)
            )

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += self.shortcut(x)
        return self.relu(out)


class ResNet(nn.Module):
    """Stem (functional ReLU), an identity-shortcut block, a strided block with a conv
    shortcut, global average pooling, ``view(x.size(0), -1)`` and a classifier."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.block1 = Block(4, 4, 1)
        self.block2 = Block(4, 6, 2)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(6, 5)

    def forward(self, x: Tensor) -> Tensor:
        x = F.relu(self.bn(self.conv(x)))
        x = self.block2(self.block1(x))
        x = self.pool(x)
        return self.fc(x.view(x.size(0), -1))


#: per-site levels of the residual network: stem, block1 (inner, out), block2 (inner, out); every
#: join adds streams of different step counts (block1: 2 vs 8 steps, block2: 1 vs 4 steps)
RESNET_LEVELS = [8, 2, 4, 1, 4]


def make(
    kind: str, dtype: torch.dtype, seed: int, levels: int | Sequence[int] | None = None
) -> tuple[nn.Module, Tensor]:
    """A calibrated QCFS network of ``kind`` ("mlp", "cnn", "resnet") in eval mode and inputs."""
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    if kind == "mlp":
        model, shape, default = mlp([10, 24, 20, 16, 4]), (10,), [8, 2, 4]
    elif kind == "cnn":
        model, shape, default = cnn(), (2, 8, 8), [8, 2, 4]
    else:
        model, shape, default = ResNet(), (2, 8, 8), RESNET_LEVELS
    randomise_batchnorm(model, g)
    model = model.to(dtype).eval()
    qnet = to_qcfs(model, default if levels is None else levels)
    x = (1.5 * torch.randn(256, *shape, generator=g, dtype=torch.float64)).to(dtype)
    calibrate(qnet, x, g)
    return qnet.eval(), x


@pytest.fixture
def network() -> Callable[..., tuple[nn.Module, Tensor]]:
    """``network(kind, dtype=torch.float64, seed=0, levels=None) -> (qnet, x)`` (see ``make``)."""

    def build(
        kind: str,
        dtype: torch.dtype = torch.float64,
        seed: int = 0,
        levels: int | Sequence[int] | None = None,
    ) -> tuple[nn.Module, Tensor]:
        return make(kind, dtype, seed, levels)

    return build
