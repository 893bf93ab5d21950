"""Saved TTFS networks (``TTFSNetwork.save`` / ``spikeforge.ttfs.load``): a loaded network is
bit-identical to the saved one (closed form, event simulator, hidden times, hardware model,
mapping information, further training), and unreadable files raise clear errors."""

from __future__ import annotations

import copy
import re
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from torch import Tensor, nn

from spikeforge.data import load_digits_split
from spikeforge.io import content_digest
from spikeforge.training import TrainConfig
from spikeforge.ttfs import (
    Hardware,
    TTFSNetwork,
    b1_from_scratch,
    from_relu,
    load,
    quantile_windows,
    train_b1,
)
from spikeforge.ttfs.saving import FORMAT, FORMAT_VERSION

NEURONS = ["b1", "alpha1"]


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def digits() -> tuple[Tensor, Tensor]:
    """300 training digits ``[300, 1, 8, 8]`` in [0, 1] and their labels."""
    split = load_digits_split()
    return torch.from_numpy(split.x_train[:300]), torch.from_numpy(split.y_train[:300])


def dense_relu(seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Flatten(), nn.Linear(64, 24), nn.ReLU(), nn.Linear(24, 16), nn.ReLU(), nn.Linear(16, 10)
    ).double()


def conv_relu(seed: int = 0) -> nn.Module:
    """Conv net with BatchNorm (random statistics, about half the scales negative, so the max
    pool becomes a max/min pool with a sign buffer), max pooling, flatten and a dense readout."""
    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Conv2d(2, 4, 3, padding="same"),
        nn.MaxPool2d(2),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.Conv2d(4, 5, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.BatchNorm2d(5),
        nn.Flatten(),
        nn.Linear(20, 3),
    ).double()
    gen = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            c = m.num_features
            m.running_mean.copy_(torch.randn(c, generator=gen, dtype=torch.float64) * 0.5)
            m.running_var.copy_(torch.rand(c, generator=gen, dtype=torch.float64) + 0.3)
            sign = torch.where(torch.arange(c) % 2 == 0, -1.0, 1.0).double()
            m.weight.data.copy_(sign * (torch.rand(c, generator=gen, dtype=torch.float64) + 0.5))
            m.bias.data.copy_(torch.randn(c, generator=gen, dtype=torch.float64) * 0.3)
    return model.eval()


def conv_inputs(n: int = 6) -> Tensor:
    """``[n, 2, 8, 8]`` in the input range (-1, 2)."""
    gen = torch.Generator().manual_seed(1)
    return -1.0 + 3.0 * torch.rand((n, 2, 8, 8), generator=gen, dtype=torch.float64)


def round_trip(net: TTFSNetwork, tmp_path: Path, name: str = "snn.pt") -> TTFSNetwork:
    path = net.save(tmp_path / name)
    assert path == tmp_path / name
    return load(path)


def assert_same_tensors(a: dict[str, Tensor], b: dict[str, Tensor]) -> None:
    assert list(a) == list(b)
    for key in a:
        assert a[key].dtype == b[key].dtype, key
        assert torch.equal(a[key], b[key]), key


def assert_same_network(net: TTFSNetwork, loaded: TTFSNetwork, x: Tensor) -> None:
    """Same structure, tensors, settings and bit-identical outputs on ``x``."""
    assert [type(layer) for layer in loaded.layers] == [type(layer) for layer in net.layers]
    assert [layer.path for layer in loaded.layers] == [layer.path for layer in net.layers]
    assert_same_tensors(net.state_dict(), loaded.state_dict())
    assert all(p.requires_grad for p in loaded.parameters())
    assert loaded.neuron == net.neuron
    assert loaded.input_range == net.input_range
    assert loaded.in_shape == net.in_shape
    assert loaded.flatten_output == net.flatten_output
    assert loaded.hardware == net.hardware
    assert loaded.latency == net.latency
    assert loaded.windows.layers() == net.windows.layers()
    for a, b in zip(net.layers, loaded.layers, strict=True):
        assert a.synapses.weight_quantization == b.synapses.weight_quantization
        assert repr(a) == repr(b)
    with torch.no_grad():
        gen_a = torch.Generator().manual_seed(3)
        gen_b = torch.Generator().manual_seed(3)
        out_a, out_b = net.run(x, generator=gen_a), loaded.run(x, generator=gen_b)
        assert out_a.logits.dtype == out_b.logits.dtype
        assert torch.equal(out_a.logits, out_b.logits)
        assert torch.equal(out_a.input_times, out_b.input_times)
        assert len(out_a.hidden_times) == len(out_b.hidden_times)
        for ta, tb in zip(out_a.hidden_times, out_b.hidden_times, strict=True):
            assert torch.equal(ta, tb)
        if net.hardware is None:
            assert torch.equal(net(x), loaded(x))
            assert torch.equal(net.simulate(x), loaded.simulate(x))


def assert_same_mapping(net: TTFSNetwork, loaded: TTFSNetwork, x: Tensor) -> None:
    a, b = net.mapping, loaded.mapping
    assert a is not None and b is not None
    assert (b.max_activations, b.zeta, b.weight_sum_scaled) == (
        a.max_activations,
        a.zeta,
        a.weight_sum_scaled,
    )
    assert b.chain.in_shape == a.chain.in_shape
    assert repr(b.chain) == repr(a.chain)  # every op, field and tensor value
    p, q = net.input_range
    unit = (x - p) / (q - p)
    rec_a: list[Tensor] = []
    rec_b: list[Tensor] = []
    assert torch.equal(a.chain.forward(unit, rec_a), b.chain.forward(unit, rec_b))
    for ra, rb in zip(rec_a, rec_b, strict=True):
        assert torch.equal(ra, rb)


# --- round trips --------------------------------------------------------------------------------


@pytest.mark.parametrize("neuron", NEURONS)
def test_round_trip_conv_batchnorm_maxpool(neuron: str, tmp_path: Path) -> None:
    x = conv_inputs()
    net = from_relu(conv_relu(), x, neuron=neuron, input_range=(-1.0, 2.0))
    assert any(getattr(op, "sign", None) is not None for layer in net.layers for op in layer.pre)
    loaded = round_trip(net, tmp_path)
    assert_same_network(net, loaded, x)
    assert_same_mapping(net, loaded, x)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("neuron", NEURONS)
def test_round_trip_dense(neuron: str, dtype: torch.dtype, digits, tmp_path: Path) -> None:
    x, _ = digits
    net = from_relu(dense_relu(), x, neuron=neuron).to(dtype)
    loaded = round_trip(net, tmp_path)
    assert loaded.layers[0].synapses.weight.dtype == dtype
    assert loaded.windows.widths.dtype == net.windows.widths.dtype
    assert_same_network(net, loaded, x[:40])
    assert_same_mapping(net, loaded, x[:40])
    moved = load(tmp_path / "snn.pt", map_location="cpu")
    assert_same_network(net, moved, x[:40])


def test_round_trip_hardware(digits, tmp_path: Path) -> None:
    x, _ = digits
    net = from_relu(dense_relu(), x, neuron="b1")
    quantile_windows(net, x, rho=0.9)  # latency budget: saturating clamp, smaller windows
    assert net.hardware is not None
    net.hardware = replace(
        net.hardware, noise_std=0.05, time_bits=4, weight_bits=5, weight_range=(-0.8, 0.7)
    )
    loaded = round_trip(net, tmp_path)
    assert loaded.hardware == Hardware(0.05, 4, 5, (-0.8, 0.7), saturate=True)
    assert loaded.layers[0].synapses.weight_quantization == (-0.8, 0.7, 5)
    assert_same_network(net, loaded, x[:40])
    net.hardware = loaded.hardware = None  # the exact networks agree too
    assert_same_network(net, loaded, x[:40])


def test_round_trip_without_mapping_or_windows_change(tmp_path: Path) -> None:
    net = b1_from_scratch(dense_relu(1), in_shape=(1, 8, 8), x_n=10.0)
    net.mapping = None
    loaded = round_trip(net, tmp_path)
    assert loaded.mapping is None
    x = torch.rand((5, 1, 8, 8), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert_same_network(net, loaded, x)


# --- training continues identically -------------------------------------------------------------


def train_steps(net: TTFSNetwork, x: Tensor, y: Tensor, seed: int) -> None:
    cfg = TrainConfig(epochs=1, batch_size=60, lr=2e-3, seed=seed, progress=False)
    train_b1(net, x, y, cfg)


@pytest.mark.parametrize("hardware", [False, True])
def test_training_continues_identically(hardware: bool, digits, tmp_path: Path) -> None:
    x, y = digits
    net = b1_from_scratch(dense_relu(2), in_shape=(1, 8, 8), x_n=0.5, zeta=0.0)
    if hardware:  # float32 under noise and weight quantisation
        net = net.to(torch.float32)
        net.hardware = Hardware(noise_std=0.01, weight_bits=6, weight_range=(-1.0, 1.0))
    widths = net.windows.widths.clone()
    train_steps(net, x, y, seed=0)
    assert bool((net.windows.widths > widths).any())  # the windows grew while training
    loaded = round_trip(net, tmp_path)
    assert_same_network(net, loaded, x[:40])
    before = copy.deepcopy(net.state_dict())
    train_steps(net, x, y, seed=1)
    train_steps(loaded, x, y, seed=1)
    assert not torch.equal(before["layers.0.synapses.weight"], net.layers[0].synapses.weight)
    assert_same_tensors(net.state_dict(), loaded.state_dict())


# --- the file -----------------------------------------------------------------------------------


def _plain(value: object) -> bool:
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_plain(v) for v in value)
    return value is None or isinstance(value, str | int | float | bool | Tensor)


def test_file_is_plain_data(tmp_path: Path) -> None:
    x = conv_inputs()
    net = from_relu(conv_relu(), x, neuron="alpha1", input_range=(-1.0, 2.0))
    net.hardware = Hardware(time_bits=3)
    net.save(tmp_path / "snn.pt")
    data = torch.load(tmp_path / "snn.pt", weights_only=True)
    assert data["format"] == FORMAT == "spikeforge.ttfs.network"
    assert data["version"] == FORMAT_VERSION == 1
    assert set(data) == {"format", "version", "written_by", "network", "state_dict", "sha256"}
    assert data.pop("sha256") == content_digest(data)
    assert [layer["kind"] for layer in data["network"]["layers"]] == [
        "Alpha1Layer",
        "Alpha1Layer",
        "Alpha1Readout",
    ]
    assert data["network"]["hardware"]["time_bits"] == 3
    assert _plain(data)
    assert not [p for p in tmp_path.iterdir() if p.name != "snn.pt"]  # no temporary left


# --- errors -------------------------------------------------------------------------------------


@pytest.fixture
def saved(tmp_path: Path) -> tuple[Path, dict]:
    """A saved network and its decoded content without the checksum."""
    net = from_relu(dense_relu(), torch.rand((20, 1, 8, 8), dtype=torch.float64), neuron="b1")
    path = net.save(tmp_path / "snn.pt")
    data = torch.load(path, weights_only=True)
    del data["sha256"]
    return path, data


def _resave(data: dict, path: Path) -> None:
    """Write edited content with a matching checksum (to reach the checks behind it)."""
    torch.save({**data, "sha256": content_digest(data)}, path)


def test_changed_content_fails_the_checksum(saved) -> None:
    path, data = saved
    data["state_dict"]["layers.0.bias"][0] += 1e-12
    torch.save({**data, "sha256": content_digest({**data, "version": 1, "extra": 0})}, path)
    with pytest.raises(ValueError, match=r"snn\.pt is corrupt: its content does not match"):
        load(path)
    torch.save(data, path)
    with pytest.raises(ValueError, match=r"snn\.pt: missing entry 'sha256'"):
        load(path)


def test_flipped_bytes_raise_or_leave_the_content_intact(saved) -> None:
    """Every byte position of the file flipped in turn (a stride of them): loading raises a
    ValueError naming the file, or the corruption hit bytes that do not carry content (zip
    metadata torch ignores) and the network loads bit for bit."""
    path, _ = saved
    original = path.read_bytes()
    reference = load(path).state_dict()
    raised = 0
    for pos in range(0, len(original), max(1, len(original) // 300)):
        corrupt = bytearray(original)
        corrupt[pos] ^= 0xFF
        path.write_bytes(bytes(corrupt))
        try:
            state = load(path).state_dict()
        except ValueError as exc:
            assert "snn.pt" in str(exc)
            raised += 1
            continue
        assert all(torch.equal(state[k], v) for k, v in reference.items()), pos
    assert raised > 0


def test_newer_format_version(saved) -> None:
    path, data = saved
    _resave({**data, "version": FORMAT_VERSION + 1}, path)
    with pytest.raises(ValueError) as err:
        load(path)
    assert str(err.value) == (
        f"{path} was written by format version 2; this spikeforge reads up to version 1: "
        "upgrade spikeforge"
    )


def test_truncated_file(saved) -> None:
    path, _ = saved
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ValueError, match=re.escape(f"cannot read checkpoint {path}")):
        load(path)


@pytest.mark.parametrize(
    "garbage", [bytes(range(256)) * 4, b"hello world" * 10, b"", b"PK\x03\x04"]
)
def test_garbage_bytes(garbage: bytes, tmp_path: Path) -> None:
    path = tmp_path / "garbage.pt"
    path.write_bytes(garbage)
    with pytest.raises(ValueError, match=r"garbage\.pt"):
        load(path)


def test_pickled_module_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "module.pt"
    torch.save(nn.Linear(2, 2), path)
    with pytest.raises(ValueError, match=r"module\.pt"):
        load(path)


@pytest.mark.parametrize("content", ["state_dict", "list"])
def test_not_a_ttfs_network(content: str, tmp_path: Path) -> None:
    path = tmp_path / "other.pt"
    torch.save(dense_relu().state_dict() if content == "state_dict" else [1, 2], path)
    with pytest.raises(ValueError, match=r"other\.pt is not a saved spikeforge TTFS network"):
        load(path)


def test_unknown_layer_kind(saved) -> None:
    path, data = saved
    data["network"]["layers"][1]["kind"] = "LIFLayer"
    _resave(data, path)
    with pytest.raises(ValueError, match=r"snn\.pt: network.layers\[1\] has unknown layer kind"):
        load(path)


def test_missing_entries(saved) -> None:
    path, data = saved
    broken = copy.deepcopy(data)
    del broken["network"]["in_shape"]
    _resave(broken, path)
    with pytest.raises(ValueError, match=r"snn\.pt: missing entry 'network\.in_shape'"):
        load(path)
    broken = copy.deepcopy(data)
    del broken["state_dict"]["layers.0.bias"]
    _resave(broken, path)
    with pytest.raises(ValueError, match=r"snn\.pt: missing tensor 'layers\.0\.bias'"):
        load(path)
    broken = copy.deepcopy(data)
    broken["state_dict"]["extra"] = torch.zeros(1)
    _resave(broken, path)
    with pytest.raises(ValueError, match=r"snn\.pt: cannot rebuild the network"):
        load(path)
    broken = copy.deepcopy(data)
    del broken["network"]
    _resave(broken, path)
    with pytest.raises(ValueError, match=r"snn\.pt: missing entry 'file\.network'"):
        load(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load(tmp_path / "nothing.pt")
