"""The QCFS activation (spec §1, §9.7) and to_qcfs (ReLU -> QCFS, MaxPool -> AvgPool)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from spikeforge.convert import QCFS, qcfs, qcfs_sites, set_levels, to_qcfs

pytestmark = pytest.mark.usefixtures("one_thread")


def _definition(z: Tensor, lam: float, levels: int) -> Tensor:
    """Spec §1.1: lambda / L * clip(floor(z L / lambda + 1/2), 0, L)."""
    return lam / levels * torch.clamp(torch.floor(z * levels / lam + 0.5), 0, levels)


@pytest.mark.parametrize("levels", [1, 2, 4, 8, 16])
def test_forward_is_the_definition(levels: int) -> None:
    g = torch.Generator().manual_seed(levels)
    lam = 1.7
    z = lam * (2 * torch.rand(10_000, generator=g, dtype=torch.float64) - 0.5)
    h = qcfs(z, lam, levels)
    assert torch.allclose(h, _definition(z, lam, levels), atol=1e-12)
    assert torch.equal(h[z <= 0], torch.zeros_like(h[z <= 0]))
    assert torch.allclose(h[z >= lam], torch.full_like(h[z >= lam], lam))
    assert (h * levels / lam).round().unique().numel() == levels + 1


def _gradients(z: Tensor, lam: float, levels: int) -> tuple[Tensor, Tensor]:
    """Per-element dh/dz and dh/dlambda by autograd."""
    z = z.clone().requires_grad_(True)
    lam_t = torch.tensor(lam, dtype=torch.float64, requires_grad=True)
    (dz,) = torch.autograd.grad(qcfs(z, lam_t, levels).sum(), z)
    dlam = torch.autograd.functional.jacobian(lambda t: qcfs(z.detach(), t, levels), lam_t)
    return dz, dlam


@pytest.mark.parametrize("levels", [1, 3, 8])
def test_gradients_match_the_spec_formulas(levels: int) -> None:
    """dh/dz = 1[0 < z < lambda], dh/dlambda = h/lambda - (z/lambda) 1[0 < z < lambda]."""
    g = torch.Generator().manual_seed(levels)
    lam = 1.3
    z = lam * (2 * torch.rand(2_000, generator=g, dtype=torch.float64) - 0.5)
    dz, dlam = _gradients(z, lam, levels)
    inside = ((z > 0) & (z < lam)).double()
    h = _definition(z, lam, levels)
    assert torch.equal(dz, inside)
    assert torch.allclose(dlam, h / lam - z / lam * inside, atol=1e-12)
    assert torch.equal(dlam[z > lam], torch.ones_like(dlam[z > lam]))
    assert torch.equal(dlam[z < 0], torch.zeros_like(dlam[z < 0]))


def test_gradient_convention_at_the_bounds() -> None:
    """Documented convention (PyTorch clamp, inclusive): at z = 0 and z = lambda the gradient to z
    is 1 and the gradient to lambda is 0."""
    lam = 1.3
    dz, dlam = _gradients(torch.tensor([0.0, lam], dtype=torch.float64), lam, 4)
    assert dz.tolist() == [1.0, 1.0]
    assert dlam.tolist() == [0.0, 0.0]


def test_module_parameters_and_checks() -> None:
    act = QCFS(4, init_lambda=2.0)
    assert act.lam.shape == () and act.lam.requires_grad and act.lam.item() == 2.0
    assert [name for name, _ in act.named_parameters()] == ["lam"]
    assert "levels=4" in repr(act)
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="levels"):
            QCFS(bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="init_lambda"):
        QCFS(4, init_lambda=0.0)


class Functional(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(4, 8)
        self.b = nn.Linear(8, 8)
        self.c = nn.Linear(8, 8)
        self.d = nn.Linear(8, 2)
        self.act = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        x = F.relu(self.a(x))
        x = torch.relu(self.b(x))
        x = self.act(self.c(x).relu())  # method, then a module
        return self.d(x)


def test_every_kind_of_relu_becomes_its_own_qcfs() -> None:
    model = Functional()
    qnet = to_qcfs(model, [1, 2, 3, 4], init_lambda=1.5)
    sites = qcfs_sites(qnet)
    assert [path for path, _ in sites] == ["qcfs_relu", "qcfs_relu_1", "qcfs_relu_2", "act"]
    assert [m.levels for _, m in sites] == [1, 2, 3, 4]
    assert all(m.lam.item() == 1.5 for _, m in sites)
    assert len({id(m) for _, m in sites}) == 4
    assert isinstance(model.act, nn.ReLU)  # the model is untouched
    x = torch.randn(5, 4)
    with torch.no_grad():
        h = qcfs(F.relu(model.a(x)), 1.5, 1)
        h = qcfs(model.b(h), 1.5, 2)
        h = qcfs(qcfs(model.c(h), 1.5, 3), 1.5, 4)
        assert torch.allclose(qnet(x), model.d(h))


def test_a_shared_relu_module_gets_one_qcfs_per_call() -> None:
    class Shared(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc1 = nn.Linear(3, 3)
            self.fc2 = nn.Linear(3, 3)
            self.relu = nn.ReLU()

        def forward(self, x: Tensor) -> Tensor:
            return self.fc2(self.relu(self.fc2(self.relu(self.fc1(x)))))

    qnet = to_qcfs(Shared(), [2, 5])
    assert [(p, m.levels) for p, m in qcfs_sites(qnet)] == [("relu", 2), ("relu_1", 5)]


def test_levels_list_must_match_the_sites() -> None:
    model = nn.Sequential(nn.Linear(3, 3), nn.ReLU(), nn.Linear(3, 2))
    with pytest.raises(ValueError, match="2 entries but the network has 1"):
        to_qcfs(model, [4, 4])
    with pytest.raises(ValueError, match=r"levels\[0\]"):
        to_qcfs(model, [0])


def test_max_pooling_becomes_average_pooling_with_a_warning() -> None:
    class Pools(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(1, 2, 3, padding=1)
            self.pool = nn.MaxPool2d(2)
            self.fc = nn.Linear(2 * 2 * 2, 2)

        def forward(self, x: Tensor) -> Tensor:
            x = self.pool(F.relu(self.conv(x)))
            x = F.max_pool2d(x, kernel_size=2)
            return self.fc(x.flatten(1))

    model = Pools()
    with pytest.warns(UserWarning, match="average pooling") as record:
        qnet = to_qcfs(model, 4)
    assert len(record) == 2
    assert isinstance(qnet.pool, nn.AvgPool2d) and isinstance(model.pool, nn.MaxPool2d)
    x = torch.randn(3, 1, 8, 8)
    with torch.no_grad():
        h = F.avg_pool2d(qcfs(model.conv(x), 8.0, 4), 2)
        expected = model.fc(F.avg_pool2d(h, 2).flatten(1))
        assert torch.allclose(qnet(x), expected)


def test_the_qcfs_network_trains_with_a_plain_loop() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 2))
    qnet = to_qcfs(model, 4, init_lambda=1.0)
    assert qnet.training
    ((_, act),) = qcfs_sites(qnet)
    optimiser = torch.optim.SGD(qnet.parameters(), lr=0.1, momentum=0.9)
    x, y = torch.randn(64, 4), torch.randint(0, 2, (64,))
    losses = []
    for _ in range(30):
        optimiser.zero_grad()
        loss = F.cross_entropy(qnet(x), y)
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert act.lam.item() != 1.0  # lambda learns
    assert losses[-1] < losses[0]


def test_to_qcfs_keeps_dtype_and_mode() -> None:
    model = nn.Sequential(nn.Linear(3, 3), nn.ReLU(), nn.Linear(3, 2)).double().eval()
    qnet = to_qcfs(model)
    assert not qnet.training
    ((_, act),) = qcfs_sites(qnet)
    assert act.lam.dtype == torch.float64


def test_set_levels() -> None:
    qnet = to_qcfs(nn.Sequential(nn.Linear(3, 3), nn.ReLU(), nn.Linear(3, 3), nn.ReLU()), 4)
    assert set_levels(qnet, [2, 8]) == [2, 8]
    assert [m.levels for _, m in qcfs_sites(qnet)] == [2, 8]
    assert set_levels(qnet, 1) == [1, 1]
    with pytest.raises(ValueError, match="2 ReLU / QCFS sites"):
        set_levels(qnet, [1, 2, 3])

    class Twice(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.act = QCFS(4)

        def forward(self, x: Tensor) -> Tensor:
            return self.act(self.act(x))

    with pytest.raises(ValueError, match="called at several places"):
        set_levels(Twice(), [1, 2])
    assert set_levels(Twice(), [3, 3]) == [3, 3]
