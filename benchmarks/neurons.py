"""Multi-step neuron engine cost against the same ReLU network run T times (issue 4).

Workloads (time-first inputs ``[T, B, ...]``, float32, CPU):

* **W1**: LIF MLP 784-512-512-10, T = 16, batch 128, forward + backward (sum-of-outputs loss,
  no optimiser step); target: at most 1.15x the ReLU baseline.
* **W2**: conv SNN of the issue, 1x28x28 input: Conv 1->32 3x3, LIF, Conv 32->64 3x3 stride 2,
  LIF, Flatten, Linear to 10 (padding 1, so 28x28 -> 28x28 -> 14x14), T = 8, batch 64, forward +
  backward; target 1.15x, and peak memory growth no more than the ReLU baseline.
* **W3**: W1 inference (``torch.inference_mode``), batch 256; target 1.1x.

Every spiking contender computes the same neuron on the same weights and inputs (LIF, tau 2,
threshold 1, hard reset to 0; see ``TAU`` below) and is checked to fire the same spikes as
``sf-reference`` before timing (:func:`spike_check`). The layers feeding a neuron have their
default initialisation scaled by :data:`GAIN` so that both LIF layers fire.

Contenders (a registry: :data:`CONTENDERS`, add more with :func:`register`):

* ``sf-fused``: spikeforge's fast path: fused neurons, :class:`SpikeLinear` for the linear layers
  fed by spikes, the spike-saving ``MultiStep``; ``sf-fused-dense``: the same with ``nn.Linear``;
  ``sf-reference``: the plain-torch neurons. Stateless layers run once on ``x.flatten(0, 1)``;
* ``spikingjelly`` / ``snntorch`` / ``norse``: the peers (:data:`PEERS`, installed by
  ``make bench-peers``; skipped with a note when missing), each on its fastest idiomatic CPU
  path with the same stateless-layer folding;
* ``relu-T``: the same network with ReLU instead of the neurons, run on all ``T·B`` samples as
  one batched call (the baseline of the targets);
* ``relu-1``: the ReLU network run once on ``B`` samples (the cost of one time step).

**Timing**: one process; after one warm-up call each, the contenders are interleaved in every
repeat (so load drift hits them alike) and the median over ``--repeats`` is reported.

**Memory**: each contender runs in a fresh subprocess (``--memory-child``): the network and the
input are built, then one step is run and its peak memory is the growth of the resident-set high
water mark over the resident set just before it (``peak_growth_kib``: live activations, saved
tensors, gradients and temporaries of one step). On Linux the high-water mark is ``VmHWM`` of
``/proc/self/status``, reset before the step by writing ``5`` to ``/proc/self/clear_refs``
(``ru_maxrss`` is unusable here: the kernel carries the parent's peak across ``fork``/``exec``);
elsewhere, the growth of ``ru_maxrss``. A second step is measured the same way
(``second_kib``). Torch's CPU allocator is plain ``malloc``; the memory children set glibc to
map every block of 64 KiB or more on its own and to trim the heap
(:func:`allocator.accounting_malloc`), so the resident set follows live memory and the figure is
the same from run to run (with heap reuse it moved by up to 90 MiB).

**Allocator** for the timings: glibc ``mallopt`` in this process before any tensor is allocated:
``M_MMAP_THRESHOLD = 1 GiB``, ``M_TRIM_THRESHOLD = 2^31 - 1``, ``M_TOP_PAD = 64 MiB`` (large
tensors come from the heap instead of fresh ``mmap`` pages that fault in on every call),
identically for every contender; ``--default-malloc`` turns both settings off.

**GPU** (``--device cuda``, issue 16): the same workloads, networks and inputs on the first CUDA
device. ``sf-fused`` / ``sf-fused-dense`` then run the Triton neurons
(:mod:`spikeforge.core.fused_triton`; ``SpikeLinear`` takes ``F.linear`` on CUDA, so the two
compute the same thing); SpikingJelly runs its CUDA implementations: ``spikingjelly`` is its
automatic choice (the native CUDA extension when it can be built, else Triton), and
``spikingjelly-triton`` / ``spikingjelly-cuda`` force one (:data:`SJ_IMPLEMENTATIONS`; one that
cannot run on the machine is dropped with a note); the fastest of them counts as SpikingJelly's
fastest GPU backend. Every step ends with ``torch.cuda.synchronize()``; peak memory is
``torch.cuda.max_memory_allocated()`` during a step minus ``torch.cuda.memory_allocated()``
before it (in this process, after a warm-up step; the first step, which includes the Triton
compile, is not measured). Targets (issue 16): training at most 1.2x ``relu-T`` on W1 / W2,
at least 1.3x faster than the fastest SpikingJelly implementation, memory at most
``relu-T``'s. Without a CUDA device ``--device cuda`` exits with a message saying so.

**Matrix** (``--matrix``, issue 10): every surrogate, linear or LIF readout, T, batch, input
spike density and thread count in a pairwise covering design, for the MLP (training and
inference) and a conv network with BatchNorm; see ``neuron_matrix.py``.

Run: ``python benchmarks/neurons.py [--repeats 20] [--threads 2] [--workloads W1,W2,W3]
[--contenders ...] [--json out.json]``; ``python benchmarks/neurons.py --matrix --json m.json``;
on a GPU: ``python benchmarks/neurons.py --device cuda --json gpu.json``.
"""

from __future__ import annotations

import argparse
import functools
import itertools
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from allocator import accounting_malloc, tune_malloc  # benchmarks/allocator.py, beside this script
from spikeforge.core import LIF, MultiStep, fused_triton
from spikeforge.core import fused as fused_kernels
from spikeforge.core.spike_linear import SpikeLinear
from spikeforge.io import code_version, write_json
from ttfs_inference import cpu_info, load_average  # beside this script


@dataclass(frozen=True)
class Workload:
    """One benchmark setting. ``arch``: ``"mlp"`` (784-512-512-10), ``"conv"`` (W2's network)
    or ``"conv-bn"`` (the same with BatchNorm after each convolution); ``readout``: ``"linear"``
    (the last layer's currents) or ``"lif"`` (a LIF layer on the output too); ``density``:
    ``None`` for analog inputs uniform in [0, 1) (W1-W3), else Bernoulli spikes with that
    probability (so the first layer is fed by spikes too)."""

    arch: str
    steps: int
    batch: int
    train: bool
    surrogate: str = "atan"
    readout: str = "linear"
    density: float | None = None

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return (784,) if self.arch == "mlp" else (1, 28, 28)

    def label(self) -> str:
        mode = "train" if self.train else "infer"
        inp = "analog" if self.density is None else f"p={self.density:g}"
        return (
            f"{self.arch} {mode} T={self.steps} B={self.batch} {inp} {self.surrogate} "
            f"{self.readout}"
        )


#: the named workloads of issue 4
NAMED: dict[str, Workload] = {
    "W1": Workload("mlp", 16, 128, True),
    "W2": Workload("conv", 8, 64, True),
    "W3": Workload("mlp", 16, 256, False),
}
TARGETS = {"W1": 1.15, "W2": 1.15, "W3": 1.10}
BASELINE = "relu-T"
#: gain on the default initialisation of the layers feeding neurons (see :func:`_layers`)
GAIN = 6.0

#: where the networks and inputs live (``--device``; :func:`use_device`)
DEVICE = torch.device("cpu")


def use_device(name: str) -> torch.device:
    """Select the benchmark's device (``"cpu"`` or ``"cuda"``); raises ``SystemExit`` with the
    reason when CUDA is asked for and unusable."""
    global DEVICE
    if name == "cuda":
        if not torch.cuda.is_available():
            raise SystemExit(
                f"--device cuda: no usable CUDA device (torch {torch.__version__}, "
                f"torch.version.cuda={torch.version.cuda}, torch.cuda.is_available() is False). "
                "Run it on a machine with an NVIDIA GPU and a CUDA build of torch; "
                "pip install triton for the fused GPU neurons."
            )
        DEVICE = torch.device("cuda", torch.cuda.current_device())
    elif name == "cpu":
        DEVICE = torch.device("cpu")
    else:
        raise SystemExit(f"--device must be cpu or cuda, got {name!r}")
    return DEVICE


def synchronize() -> None:
    """Wait for the device's queued work (a no-op on the CPU)."""
    if DEVICE.type == "cuda":
        torch.cuda.synchronize(DEVICE)


#: A contender: ``factory(workload) -> step``; ``step()`` runs one forward (+ backward).
Factory = Callable[[Workload], Callable[[], object]]
CONTENDERS: dict[str, Factory] = {}


def register(name: str) -> Callable[[Factory], Factory]:
    """Decorator adding a contender (peers: snnTorch, SpikingJelly, Norse go here)."""

    def deco(factory: Factory) -> Factory:
        CONTENDERS[name] = factory
        return factory

    return deco


# --- networks ------------------------------------------------------------------------------


def _mlp(act: Callable[[], nn.Module]) -> list[nn.Module]:
    return [nn.Linear(784, 512), act(), nn.Linear(512, 512), act(), nn.Linear(512, 10)]


def _conv(act: Callable[[], nn.Module], batch_norm: bool = False) -> list[nn.Module]:
    def norm(channels: int) -> list[nn.Module]:
        return [nn.BatchNorm2d(channels)] if batch_norm else []

    return [
        nn.Conv2d(1, 32, 3, padding=1),
        *norm(32),
        act(),
        nn.Conv2d(32, 64, 3, stride=2, padding=1),
        *norm(64),
        act(),
        nn.Flatten(),
        nn.Linear(64 * 14 * 14, 10),
    ]


def _scale_(layer: nn.Module, factor: float) -> None:
    with torch.no_grad():
        layer.weight.mul_(factor)  # type: ignore[operator]
        layer.bias.mul_(factor)  # type: ignore[operator]


def _layers(workload: Workload) -> list[nn.Module]:
    """The workload's layers with ``nn.ReLU`` marking the neurons; the same weights every call.

    The layers feeding a neuron have their default initialisation multiplied by :data:`GAIN`, so
    that each LIF layer fires on 9-20 % of its neurons per step (as trained networks do; with
    torch's default initialisation the second LIF layer would be silent). A BatchNorm between
    them normalises that gain away; it starts with the weight :data:`GAIN` instead.
    """
    torch.manual_seed(0)
    if workload.arch == "mlp":
        layers = _mlp(nn.ReLU)
    else:
        layers = _conv(nn.ReLU, batch_norm=workload.arch == "conv-bn")
    if workload.readout == "lif":
        layers.append(nn.ReLU())
    for layer, following in itertools.pairwise(layers):
        if isinstance(following, nn.ReLU):
            if isinstance(layer, nn.BatchNorm2d):
                nn.init.constant_(layer.weight, GAIN)
            else:
                _scale_(layer, GAIN)
    return layers


def relu_net(workload: Workload) -> nn.Module:
    """The ReLU network of a workload, on ``[N, ...]`` samples, on :data:`DEVICE`."""
    return nn.Sequential(*_layers(workload)).to(DEVICE)


def _event_driven(layer: nn.Module) -> nn.Module:
    """``nn.Linear`` -> :class:`SpikeLinear` with the same parameters (other layers as they are)."""
    if type(layer) is not nn.Linear:
        return layer
    spiking = SpikeLinear(layer.in_features, layer.out_features)
    spiking.load_state_dict(layer.state_dict())
    return spiking


def snn(
    workload: Workload,
    neuron: Callable[[str], nn.Module],
    input_scale: float = 1.0,
    event_driven: bool = False,
) -> nn.Sequential:
    """The spiking network on ``[T, B, ...]``: stateless runs of layers between neurons.

    ``neuron(surrogate)`` builds one multi-step neuron layer ``[T, B, ...] -> [T, B, ...]``
    (``surrogate``: spikeforge's name of the workload's surrogate gradient). The weights
    and bias of the layer feeding each neuron are multiplied by ``input_scale`` (exact for a
    power of two): snnTorch's ``Leaky`` has no ``1/tau`` input scaling, so it gets it folded into
    the weights and computes the same neuron. ``event_driven``: the linear layers fed by spikes
    are :class:`spikeforge.core.SpikeLinear` (same parameters; the first layer too when the
    input is spikes).
    """
    out: list[nn.Module] = []
    run: list[nn.Module] = []
    spikes_in = workload.density is not None
    for layer in _layers(workload):
        if isinstance(layer, nn.ReLU):
            if input_scale != 1.0:
                _scale_(run[-1], input_scale)
            out += [MultiStep(*run), neuron(workload.surrogate)]
            run = []
        else:
            fed_by_spikes = bool(out) or spikes_in
            run.append(_event_driven(layer) if event_driven and fed_by_spikes else layer)
    if run:
        out.append(MultiStep(*run))
    return nn.Sequential(*out).to(DEVICE)


def _step(net: nn.Module, x: Tensor, train: bool) -> Callable[[], object]:
    if not train:

        def infer() -> object:
            with torch.inference_mode():
                return net(x)

        return infer

    x.requires_grad_(False)

    def train_step() -> object:
        net.zero_grad(set_to_none=True)
        net(x).sum().backward()
        return None

    return train_step


def _input(workload: Workload, samples: tuple[int, ...]) -> Tensor:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(*samples, *workload.sample_shape, generator=g)
    x = x if workload.density is None else (x < workload.density).float()
    return x.to(DEVICE)


# Every spiking contender computes the same LIF neuron (spec §2.2, SpikingJelly's form):
# H[t] = V[t-1] + (X[t] - V[t-1]) / tau, tau = 2, spike S[t] = H[t] >= 1 (snnTorch and Norse
# compare with >; ties have probability ~0 with these inputs, and the spike check counts them),
# hard reset to zero V[t] = H[t] (1 - S[t]), V[0] = 0, no detach of the reset, the workload's
# surrogate gradient (each peer's closest one: :data:`PEER_SURROGATES`). The reset is the hard
# one because snnTorch's subtractive reset is a different neuron when the potential stays above
# threshold after a reset (it subtracts before comparing).
TAU, THRESHOLD = 2.0, 1.0


@dataclass(frozen=True)
class Spiking:
    """A spiking contender: its neuron layer, the input scale folded into the weights feeding it
    (see :func:`snn`), whether its linear layers fed by spikes are :class:`SpikeLinear`, and
    what to do before each timed step, outside the timing (``prepare``)."""

    neuron: Callable[[str], nn.Module]
    input_scale: float = 1.0
    event_driven: bool = False
    prepare: Callable[[], None] | None = None


def _sf_neuron(backend: str) -> Callable[[str], nn.Module]:
    def build(surrogate: str) -> nn.Module:
        return LIF(tau=TAU, threshold=THRESHOLD, reset="zero", surrogate=surrogate, backend=backend)  # type: ignore[arg-type]

    return build


#: every spiking contender (the peers are added below)
SPIKING: dict[str, Spiking] = {
    "sf-fused": Spiking(_sf_neuron("fused"), event_driven=True),
    "sf-fused-dense": Spiking(_sf_neuron("fused")),
    "sf-reference": Spiking(_sf_neuron("reference")),
}


@register("relu-T")
def _relu_t(w: Workload) -> Callable[[], object]:
    return _step(relu_net(w).train(w.train), _input(w, (w.steps * w.batch,)), w.train)


@register("relu-1")
def _relu_1(w: Workload) -> Callable[[], object]:
    return _step(relu_net(w).train(w.train), _input(w, (w.batch,)), w.train)


# --- peers (optional: ``make bench-peers`` installs them) ------------------------------------
# Each peer runs its fastest idiomatic CPU path: stateless layers once on all T·B samples (as
# above), the peer's own multi-step neuron in between, fresh state on every forward.


#: spikeforge surrogate -> each peer's closest surrogate (its name in the peer's API); where a
#: peer has none of the family, its default (marked in the report by the name)
PEER_SURROGATES: dict[str, dict[str, str]] = {
    "spikingjelly": {
        "atan": "ATan", "sigmoid": "Sigmoid", "fast_sigmoid": "SuperSpike",
        "triangle": "PiecewiseQuadratic", "rectangle": "Rect",
    },
    "snntorch": {
        "atan": "atan", "sigmoid": "sigmoid", "fast_sigmoid": "fast_sigmoid",
        "triangle": "triangular", "rectangle": "atan",
    },
    "norse": {  # "tanh": a scaled logistic derivative; Norse has no atan or rectangle
        "atan": "super", "sigmoid": "tanh", "fast_sigmoid": "super", "triangle": "triangle",
        "rectangle": "super",
    },
}  # fmt: skip


#: SpikingJelly's CUDA implementations of its LIF (``SJ_LIF_CUDA_IMPLEMENTATION``), each a
#: contender on ``--device cuda``; ``None``: its automatic choice
SJ_IMPLEMENTATIONS: dict[str, str | None] = {
    "spikingjelly": None,
    "spikingjelly-triton": "triton",
    "spikingjelly-cuda": "cuda",
}


def _force_sj_implementation(name: str | None) -> None:
    """Make SpikingJelly's LIF use CUDA implementation ``name`` (``None``: its automatic
    choice) from the next call on. SpikingJelly reads ``SJ_LIF_CUDA_IMPLEMENTATION`` once, at
    import, and caches its choice per device; this resets both (private API of SpikingJelly
    2.0.0: ``spikingjelly._ops.lif._selection``)."""
    from spikingjelly._ops.lif import _selection

    wanted = name or "auto"
    if _selection._requested != wanted:
        _selection._requested = wanted
        _selection._selections.clear()


def sj_implementation() -> str:
    """The CUDA implementation SpikingJelly's LIF uses now on :data:`DEVICE`."""
    from spikingjelly._ops.lif import _selection

    return str(_selection.diagnostics(DEVICE)["implementation"])


class _SpikingJellyLIF(nn.Module):
    """SpikingJelly ``LIFNode`` in multi-step mode (its CPU kernel; on CUDA the implementation
    ``implementation``, see :data:`SJ_IMPLEMENTATIONS`), reset before each call."""

    def __init__(self, surrogate_name: str, implementation: str | None = None) -> None:
        super().__init__()
        self.implementation = implementation
        from spikingjelly.activation_based import neuron, surrogate

        function = getattr(surrogate, PEER_SURROGATES["spikingjelly"][surrogate_name])()
        self.node = neuron.LIFNode(
            tau=TAU, decay_input=True, v_threshold=THRESHOLD, v_reset=0.0,
            surrogate_function=function, detach_reset=False, step_mode="m",
        )  # fmt: skip

    def forward(self, x_seq: Tensor) -> Tensor:
        if x_seq.is_cuda:
            _force_sj_implementation(self.implementation)
        self.node.reset()
        return self.node(x_seq)


class _SnnTorchLIF(nn.Module):
    """snnTorch ``Leaky`` (beta = 1 - 1/tau, the 1/tau input scale folded into the weights,
    ``reset_delay=False`` so the reset acts at once, as above), stepped over ``unbind(0)``
    with the membrane passed explicitly (no hidden state kept between calls)."""

    def __init__(self, surrogate_name: str) -> None:
        super().__init__()
        import snntorch
        from snntorch import surrogate

        spike_grad = getattr(surrogate, PEER_SURROGATES["snntorch"][surrogate_name])()
        self.lif = snntorch.Leaky(
            beta=1.0 - 1.0 / TAU, threshold=THRESHOLD, reset_mechanism="zero",
            reset_delay=False, spike_grad=spike_grad,
        )  # fmt: skip

    def forward(self, x_seq: Tensor) -> Tensor:
        mem = torch.zeros_like(x_seq[0])
        spikes = []
        for x in x_seq.unbind(0):
            spk, mem = self.lif(x, mem)
            spikes.append(spk)
        return torch.stack(spikes)


class _NorseLIF(nn.Module):
    """Norse ``LIFBoxCell`` (the current-free LIF: dv = dt/tau (v_leak - v + i), dt = 1) with
    reset to ``v_reset = 0``, stepped over ``unbind(0)`` from a fresh state (as ``norse.SNN``)."""

    def __init__(self, surrogate_name: str) -> None:
        super().__init__()
        from norse.torch import LIFBoxCell, LIFBoxParameters

        p = LIFBoxParameters(
            tau_mem_inv=torch.tensor(1.0 / TAU), v_leak=torch.tensor(0.0),
            v_th=torch.tensor(THRESHOLD), v_reset=torch.tensor(0.0),
            method=PEER_SURROGATES["norse"][surrogate_name], alpha=torch.tensor(100.0),
        )  # fmt: skip
        self.cell = LIFBoxCell(p, dt=1.0)

    def forward(self, x_seq: Tensor) -> Tensor:
        state = None
        spikes = []
        for x in x_seq.unbind(0):
            z, state = self.cell(x, state)
            spikes.append(z)
        return torch.stack(spikes)


#: peer name -> (package, contender)
PEERS: dict[str, tuple[str, Spiking]] = {
    "spikingjelly": ("spikingjelly", Spiking(_SpikingJellyLIF)),
    "snntorch": ("snntorch", Spiking(_SnnTorchLIF, input_scale=1.0 / TAU)),
    "norse": ("norse", Spiking(_NorseLIF)),
}
SPIKING.update({name: contender for name, (_, contender) in PEERS.items()})
#: the GPU-only variants of the SpikingJelly contender (its forced CUDA implementations)
GPU_ONLY: dict[str, str] = {
    name: "spikingjelly" for name, impl in SJ_IMPLEMENTATIONS.items() if impl is not None
}
for _name, _impl in SJ_IMPLEMENTATIONS.items():
    # the switch between SpikingJelly's implementations happens before the timed step
    _switch = functools.partial(_force_sj_implementation, _impl)
    SPIKING[_name] = Spiking(
        lambda s, impl=_impl: _SpikingJellyLIF(s, impl),
        prepare=lambda switch=_switch: switch() if DEVICE.type == "cuda" else None,
    )
PEERS["spikingjelly"] = ("spikingjelly", SPIKING["spikingjelly"])


def peer_version(name: str) -> str | None:
    """The installed version of a peer, or ``None`` when it is not installed."""
    from importlib import metadata

    try:
        return metadata.version(PEERS[GPU_ONLY.get(name, name)][0])
    except metadata.PackageNotFoundError:
        return None


def _snn_step(w: Workload, contender: Spiking) -> Callable[[], object]:
    net = snn(w, contender.neuron, contender.input_scale, contender.event_driven)
    step = _step(net.train(w.train), _input(w, (w.steps, w.batch)), w.train)
    step.prepare = contender.prepare  # type: ignore[attr-defined]
    return step


for _name, _contender in SPIKING.items():
    register(_name)(lambda workload, c=_contender: _snn_step(workload, c))


def spike_check(workload: Workload, names: list[str]) -> dict[str, dict[str, int]]:
    """Runs every spiking contender forward on the same input and weights (as timed: training
    mode with autograd recording for W1 / W2) and counts the spikes of each neuron layer that
    differ from ``sf-reference`` (``{name: {"spikes", "differ"}}``)."""
    train = workload.train
    x = _input(workload, (workload.steps, workload.batch))
    ref_name = "sf-reference"
    record: dict[str, list[Tensor]] = {}
    for name in [ref_name, *[n for n in names if n in SPIKING and n != ref_name]]:
        c = SPIKING[name]
        net = snn(workload, c.neuron, c.input_scale, c.event_driven).train(train)
        spikes: list[Tensor] = []
        for module in net:
            if not isinstance(module, MultiStep):
                module.register_forward_hook(lambda _m, _i, out, s=spikes: s.append(out.detach()))
        with torch.set_grad_enabled(train):
            net(x)
        synchronize()
        record[name] = spikes
    ref = record[ref_name]
    return {
        name: {
            "spikes": int(sum(s.sum().item() for s in got)),
            "differ": int(sum((a != r).sum().item() for a, r in zip(got, ref, strict=True))),
        }
        for name, got in record.items()
    }


# --- measurement -----------------------------------------------------------------------------


def interleaved(steps: dict[str, Callable[[], object]], repeats: int) -> dict[str, list[float]]:
    """Wall times (ms) of ``repeats`` rounds, each calling every step once in turn."""
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(repeats):
        for name, step in steps.items():
            prepare = getattr(step, "prepare", None)
            if prepare is not None:
                prepare()
            synchronize()
            start = time.perf_counter()
            step()
            synchronize()
            times[name].append((time.perf_counter() - start) * 1e3)
    return times


def time_workload(workload: Workload, names: list[str], repeats: int) -> dict[str, list[float]]:
    """Interleaved wall times (ms) of every contender, after one warm-up call each."""
    torch.manual_seed(0)
    steps = {name: CONTENDERS[name](workload) for name in names}
    interleaved(steps, 1)
    return interleaved(steps, repeats)


def _status_kib(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def _peak_growth_kib(step: Callable[[], object]) -> int:
    """Peak resident-set growth (KiB) of one call of ``step`` (see the module docstring)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current VmRSS
        rss = _status_kib("VmRSS")
    except OSError:
        rss = None
    if rss is not None:
        step()
        hwm = _status_kib("VmHWM")
        if hwm is not None:
            return hwm - rss
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    step()
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before


def memory_child(workload: str, name: str, threads: int | None, malloc: bool) -> dict[str, int]:
    """Runs in a fresh process (see the module docstring); returns KiB figures."""
    if malloc:
        accounting_malloc()
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    step = CONTENDERS[name](NAMED[workload])
    first = _peak_growth_kib(step)
    return {"peak_growth_kib": first, "second_kib": _peak_growth_kib(step)}


def cuda_memory(workload: str, name: str) -> dict[str, int]:
    """Peak CUDA memory growth (KiB) of one step of a contender, in this process: the step's
    ``torch.cuda.max_memory_allocated`` minus ``memory_allocated`` before it, after a warm-up
    step (which compiles the kernels); the same for a second measured step."""
    torch.manual_seed(0)
    step = CONTENDERS[name](NAMED[workload])
    step()

    def growth() -> int:
        synchronize()
        torch.cuda.reset_peak_memory_stats(DEVICE)
        before = torch.cuda.memory_allocated(DEVICE)
        step()
        synchronize()
        return (torch.cuda.max_memory_allocated(DEVICE) - before) // 1024

    first = growth()
    return {"peak_growth_kib": first, "second_kib": growth()}


def measure_memory(workload: str, name: str, args: argparse.Namespace) -> dict[str, int]:
    cmd = [sys.executable, __file__, "--memory-child", workload, name]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    if args.default_malloc:
        cmd.append("--default-malloc")
    proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workloads", default="W1,W2,W3", help="comma-separated subset of W1,W2,W3")
    p.add_argument(
        "--contenders",
        default=None,
        help="comma-separated names (default: all; the spikingjelly-* variants on cuda only)",
    )
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument(
        "--device",
        default="cpu",
        choices=("cpu", "cuda"),
        help="where to run W1-W3 (cuda: the first GPU, Triton neurons, CUDA memory)",
    )
    p.add_argument("--no-memory", action="store_true", help="skip the memory subprocesses")
    p.add_argument("--default-malloc", action="store_true", help="skip the mallopt settings")
    p.add_argument("--json", type=Path, default=None)
    p.add_argument(
        "--matrix",
        action="store_true",
        help="run the settings matrix (neuron_matrix.py) instead of W1-W3; resumes --json",
    )
    p.add_argument("--cell-budget", type=float, default=15.0, help="matrix: seconds per cell")
    p.add_argument("--max-cells", type=int, default=None, help="matrix: only the first N cells")
    p.add_argument("--memory-child", nargs=2, metavar=("WORKLOAD", "NAME"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.repeats < 1:
        p.error("--repeats must be >= 1")
    unknown = [w for w in args.workloads.split(",") if w and w not in NAMED]
    if unknown:
        p.error(f"unknown workloads {unknown}; known: {list(NAMED)}")
    if args.device == "cuda" and args.matrix:
        p.error("--matrix runs on the CPU only; drop --device cuda")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.memory_child:
        print(json.dumps(memory_child(*args.memory_child, args.threads, not args.default_malloc)))
        return 0
    malloc = "default glibc malloc" if args.default_malloc else tune_malloc()
    if args.threads:
        torch.set_num_threads(args.threads)
    use_device(args.device)
    on_gpu = DEVICE.type == "cuda"
    default = [n for n in CONTENDERS if on_gpu or n not in GPU_ONLY]
    names = default if args.contenders is None else [n for n in args.contenders.split(",") if n]
    unknown = [n for n in names if n not in CONTENDERS]
    if unknown:
        raise SystemExit(f"unknown contenders {unknown}; known: {list(CONTENDERS)}")
    if not on_gpu and any(n in GPU_ONLY for n in names):
        raise SystemExit(f"{[n for n in names if n in GPU_ONLY]} run with --device cuda only")
    versions = {n: peer_version(n) for n in names if n in PEERS or n in GPU_ONLY}
    missing = [n for n, v in versions.items() if v is None]
    if missing:
        print(f"note: peers not installed, skipped: {missing} (install: make bench-peers)")
        names = [n for n in names if n not in missing]
    if not on_gpu and "sf-fused" in names and not fused_kernels.is_available():
        print(f"note: fused kernels unavailable ({fused_kernels.unavailable_reason()})")
    if on_gpu and "sf-fused" in names and not fused_triton.is_available():
        print(f"note: the fused GPU neurons need Triton ({fused_triton.unavailable_reason()})")
    if on_gpu:
        names = _drop_unusable_gpu_peers(names)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, {malloc}, "
        f"load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}"
        + (f", GPU {torch.cuda.get_device_name(DEVICE)}" if on_gpu else "")
    )
    found = {n: v for n, v in versions.items() if v is not None}
    if found:
        print("peers: " + ", ".join(f"{n} {v}" for n, v in found.items()))
    report: dict[str, object] = {
        "code_version": code_version(),
        "cpu": cpu_info(),
        "load_before": load_average(),
        "malloc": malloc,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "peers": found,
        "peer_surrogates": {n: PEER_SURROGATES[GPU_ONLY.get(n, n)] for n in found if n in names},
        "device": _device_info(names),
    }
    if args.matrix:
        from neuron_matrix import run_matrix  # beside this script

        run_matrix(
            names, report, args.json, budget_s=args.cell_budget, max_repeats=args.repeats,
            limit=args.max_cells,
        )  # fmt: skip
        return 0
    for workload in [w for w in args.workloads.split(",") if w]:
        spikes = spike_check(NAMED[workload], names)
        times = time_workload(NAMED[workload], names, args.repeats)
        med = {n: statistics.median(v) for n, v in times.items()}
        if args.no_memory:
            mem = {}
        elif on_gpu:
            mem = {n: cuda_memory(workload, n) for n in names}
        else:
            mem = {n: measure_memory(workload, n, args) for n in names}
        w = NAMED[workload]
        mode = "fwd+bwd" if w.train else "inference"
        print(
            f"\n{workload}: T={w.steps} B={w.batch} input {list(w.sample_shape)} {mode}, "
            f"target {TARGETS[workload]}x"
        )
        for n in names:
            ratio = med[n] / med[BASELINE] if BASELINE in med else float("nan")
            spread = max(times[n]) / min(times[n])
            line = f"  {n:14s} {med[n]:9.2f} ms  x{ratio:5.2f} of {BASELINE}  spread {spread:4.2f}"
            if n in mem:
                line += f"  peak +{mem[n]['peak_growth_kib'] / 1024:7.1f} MiB"
            if n in spikes:
                line += f"  spikes {spikes[n]['spikes']} ({spikes[n]['differ']} differ)"
            print(line)
        peers = [n for n in names if n in PEERS or n in GPU_ONLY]
        if peers and "sf-fused" in med:
            fastest = min(peers, key=med.__getitem__)
            speedup = med[fastest] / med["sf-fused"]
            print(f"  sf-fused: {speedup:.2f}x faster than the fastest peer {fastest} (goal 1.3)")
            sj = [n for n in peers if n.startswith("spikingjelly")]
            if on_gpu and sj:
                best = min(sj, key=med.__getitem__)
                print(
                    f"  sf-fused: {med[best] / med['sf-fused']:.2f}x faster than SpikingJelly's "
                    f"fastest GPU implementation {best} (goal 1.3)"
                )
        if on_gpu and "sf-fused" in med and BASELINE in med and w.train:
            print(f"  sf-fused / {BASELINE}: {med['sf-fused'] / med[BASELINE]:.2f}x (goal 1.2)")
        if on_gpu and "sf-fused" in mem and BASELINE in mem:
            ok = mem["sf-fused"]["peak_growth_kib"] <= mem[BASELINE]["peak_growth_kib"]
            print(f"  sf-fused peak memory at most {BASELINE}'s: {ok}")
        report[workload] = {"ms": times, "median_ms": med, "memory_kib": mem, "spikes": spikes}
    if args.json:
        report["load_after"] = load_average()
        write_json(args.json, report)
    return 0


def _drop_unusable_gpu_peers(names: list[str]) -> list[str]:
    """Runs one W1 step of every SpikingJelly contender on the GPU and drops (with a note) those
    whose CUDA implementation cannot run here (e.g. the native extension without a compiler)."""
    kept = []
    for name in names:
        if not name.startswith("spikingjelly"):
            kept.append(name)
            continue
        try:
            CONTENDERS[name](NAMED["W1"])()
            synchronize()
            kept.append(name)
        except Exception as e:  # the peer's own error types; report and go on
            print(f"note: {name} cannot run on this GPU, skipped ({type(e).__name__}: {e})")
    return kept


def _device_info(names: list[str]) -> dict[str, object]:
    """The device of the run and, on a GPU, its name, CUDA, Triton and SpikingJelly's
    automatic implementation."""
    if DEVICE.type != "cuda":
        return {"type": "cpu"}
    info: dict[str, object] = {
        "type": "cuda",
        "name": torch.cuda.get_device_name(DEVICE),
        "capability": list(torch.cuda.get_device_capability(DEVICE)),
        "cuda": torch.version.cuda,
        "triton": None,
    }
    try:
        import triton

        info["triton"] = triton.__version__
    except ImportError:
        pass
    if "spikingjelly" in names:
        _force_sj_implementation(None)
        info["spikingjelly_auto"] = sj_implementation()
    return info


if __name__ == "__main__":
    raise SystemExit(main())
