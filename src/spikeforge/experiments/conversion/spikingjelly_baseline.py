"""The converters users have today, on the same architecture trained with ReLU: SpikingJelly
2.0's ``ann2snn.Converter`` (FX path, ``RateCodingRecipe``) in its max-norm (``mode="Max"``)
and robust-norm (``mode="99.9%"``) modes, and a plain max-norm IF conversion of our own, the
fallback when SpikingJelly cannot run.

SpikingJelly is imported lazily (the library never imports it; it is in the ``bench`` extra).
Its conversion, as read in ``ann2snn/recipes/rate_coding.py`` and ``ann2snn/modules.py``:
Conv-BN pairs are fused; a ``VoltageHook`` after every ``nn.ReLU`` records, per calibration
batch, the maximum (or the 99.9 % quantile) of the activations, averaged over batches with
momentum 0.1 (``scale = 0.9 scale + 0.1 s_t``, the first batch taken as is); each ReLU becomes
``VoltageScaler(1 / scale) -> IFNode(v_threshold=1, v_reset=None) -> VoltageScaler(scale)``:
an IF neuron with threshold ``scale``, soft reset (by subtraction), ``v(0) = 0``, spikes
carrying ``scale``. The converted ``GraphModule`` runs one time step per call (single-step
mode, the analog image every step); the outputs are summed over the steps.

**Why a placeholder for** ``requests``: ``spikingjelly.activation_based.ann2snn/__init__.py``
imports ``ann2snn.utils.download_url``, whose module imports ``requests`` at import time. The
``bench`` extra installs SpikingJelly with ``--no-deps`` (``make bench-peers``), so
``requests`` may be missing although the converter never uses it. :func:`import_spikingjelly`
then imports SpikingJelly with a placeholder ``requests`` module that raises on any use, and
says so in the report (``workaround``); nothing is downloaded.

The max-norm IF baseline (:func:`maxnorm_if`): thresholds ``theta_l`` = the largest activation of
ReLU ``l`` on the calibration images (a true maximum, not a running average), IF neurons from
:mod:`spikeforge.core` with ``v(0) = 0``, reset by subtraction, spikes carrying ``theta_l``,
BatchNorm and biases applied every step (Diehl et al. 2015 / Rueckauer et al. 2017 data-based
normalisation).
"""

from __future__ import annotations

import contextlib
import copy
import sys
import types
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from spikeforge.core import if_multistep
from spikeforge.experiments.conversion.counting import SpikeCounter, SynapticOpCounter
from spikeforge.experiments.conversion.curves import Curve, evaluate_curve

__all__ = [
    "SJ_MODES",
    "MaxNormIF",
    "SpikingJelly",
    "SpikingJellyUnavailable",
    "import_spikingjelly",
    "maxnorm_curve",
    "maxnorm_if",
    "spikingjelly_convert",
    "spikingjelly_curve",
]

SJ_MODES = {"max": "Max", "99.9%": "99.9%"}
"""Our names of SpikingJelly's calibration modes -> its ``mode`` argument."""


class SpikingJellyUnavailable(RuntimeError):
    """SpikingJelly's converter cannot be imported here; the message says why and what to do."""


@dataclass
class SpikingJelly:
    """The imported modules and how they were imported (``workaround`` is ``None`` or what was
    done to import them)."""

    ann2snn: types.ModuleType
    functional: types.ModuleType
    neuron: types.ModuleType
    version: str
    workaround: str | None


class _Placeholder(types.ModuleType):
    def __getattr__(self, name: str) -> object:
        raise RuntimeError(
            f"requests.{name}: spikeforge imported SpikingJelly with a placeholder 'requests' "
            "module (requests is not installed); SpikingJelly's download helpers cannot work"
        )


def import_spikingjelly() -> SpikingJelly:
    """Import SpikingJelly's ``ann2snn``, ``functional`` and ``neuron``.

    Raises:
        SpikingJellyUnavailable: not installed, or a dependency other than ``requests`` is
            missing; the message names it and how to install.
    """
    workaround = None
    try:
        import spikingjelly
    except ModuleNotFoundError as exc:
        raise SpikingJellyUnavailable(
            "SpikingJelly is not installed; install the bench extra (`make bench-peers`, or "
            "`pip install --no-deps spikingjelly==2.0.0 loguru h5py`) to compare against its "
            "ann2snn converter"
        ) from exc
    try:
        from spikingjelly.activation_based import ann2snn
    except ModuleNotFoundError as exc:
        if exc.name != "requests":
            raise SpikingJellyUnavailable(
                f"SpikingJelly's ann2snn cannot be imported: missing module {exc.name!r} ({exc})"
            ) from exc
        sys.modules["requests"] = _Placeholder("requests")
        try:
            from spikingjelly.activation_based import ann2snn
        except ModuleNotFoundError as again:
            raise SpikingJellyUnavailable(
                f"SpikingJelly's ann2snn cannot be imported: missing module {again.name!r} "
                f"({again})"
            ) from again
        finally:
            del sys.modules["requests"]
        workaround = (
            "'requests' is not installed (SpikingJelly is installed with --no-deps); "
            "ann2snn/__init__.py imports it only for its download helper, so SpikingJelly was "
            "imported with a placeholder 'requests' module (nothing was downloaded)"
        )
    from spikingjelly.activation_based import functional, neuron

    version = getattr(spikingjelly, "__version__", None)
    if version is None:
        from importlib.metadata import version as dist_version

        version = dist_version("spikingjelly")
    return SpikingJelly(ann2snn, functional, neuron, str(version), workaround)


@contextlib.contextmanager
def _no_progress_bar(module_name: str, quiet: bool) -> Iterator[None]:
    """SpikingJelly's calibration loop wraps the batches in ``tqdm`` (looked up in the recipe's
    module); with ``quiet`` that name is bound to a pass-through for the call."""
    module = sys.modules.get(module_name)
    if not quiet or module is None or not hasattr(module, "tqdm"):
        yield
        return
    original = module.tqdm
    module.tqdm = lambda iterable, *args, **kwargs: iterable
    try:
        yield
    finally:
        module.tqdm = original


def spikingjelly_convert(
    sj: SpikingJelly,
    model: nn.Module,
    calibration: Sequence[Tensor],
    mode: str,
    *,
    quiet: bool = True,
) -> nn.Module:
    """SpikingJelly's ``Converter(RateCodingRecipe(calibration, mode=...))`` of a copy of the
    ReLU ``model`` (``mode``: ``"max"`` or ``"99.9%"``); ``calibration``: batches of images."""
    if mode not in SJ_MODES:
        raise ValueError(f"unknown SpikingJelly mode {mode!r}; choose from {sorted(SJ_MODES)}")
    recipe = sj.ann2snn.RateCodingRecipe(dataloader=list(calibration), mode=SJ_MODES[mode])
    with _no_progress_bar(type(recipe).__module__, quiet):
        snn = sj.ann2snn.Converter(recipe=recipe, device="cpu").convert(copy.deepcopy(model))
    return snn.eval()


def spikingjelly_thresholds(snn: nn.Module) -> list[float]:
    """The calibrated scales (= effective thresholds) of a converted network, in graph order."""
    return [
        float(m.scale)
        for name, m in snn.named_modules()
        if name.endswith("scaler1") and hasattr(m, "scale")
    ]


def spikingjelly_curve(
    sj: SpikingJelly,
    snn: nn.Module,
    x: Tensor,
    y: Tensor,
    steps: int,
    *,
    batch_size: int = 1000,
) -> Curve:
    """Accuracy at ``T = 1..steps`` of SpikingJelly's converted ``snn`` on ``x`` ``[N, 1, H, W]``
    (single-step calls, the image every step, ``functional.reset_net`` before every batch), with
    spikes per neuron (IFNode outputs) and synaptic operations (:mod:`.counting`)."""
    neurons = [m for m in snn.modules() if isinstance(m, sj.neuron.IFNode)]
    spikes = SpikeCounter(neurons)
    sops = SynapticOpCounter(snn)

    def simulate(xb: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        sj.functional.reset_net(snn)
        outs, spk, ops = [], [], []
        for _ in range(steps):
            spikes.reset()
            sops.reset()
            outs.append(snn(xb))
            spk.append(spikes.total)
            ops.append(sops.total)
        sj.functional.reset_net(snn)
        return torch.stack(outs), torch.tensor(spk), torch.tensor(ops)

    try:
        simulate(x[:2])  # sets the neuron count
        curve = evaluate_curve(simulate, x, y, batch_size=batch_size, neurons=spikes.neurons)
    finally:
        spikes.remove()
        sops.remove()
    return curve


# ---------------------------------------------------------------------------------------------
# our own max-norm IF conversion (the fallback)
# ---------------------------------------------------------------------------------------------


class MaxNormIF(nn.Module):
    """IF neurons replacing one ``nn.ReLU`` of a network that runs with time folded into the
    batch: input ``[T * B, ...]`` -> spikes times ``threshold``, ``[T * B, ...]`` (``v(0) = 0``,
    reset by subtraction, fires at ``>= threshold``)."""

    def __init__(self, threshold: float, steps: int) -> None:
        super().__init__()
        if not threshold > 0:
            raise ValueError(f"threshold must be positive, got {threshold}")
        self.threshold = float(threshold)
        self.steps = int(steps)

    def forward(self, x: Tensor) -> Tensor:
        seq = x.unflatten(0, (self.steps, -1))
        spikes, _ = if_multistep(seq, None, threshold=self.threshold, reset="subtract")
        return (spikes * self.threshold).flatten(0, 1)

    def extra_repr(self) -> str:
        return f"threshold={self.threshold:.6g}, steps={self.steps}"


def _set_child(root: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, leaf = name.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    setattr(parent, leaf, module)


def maxnorm_if(model: nn.Module, calibration: Sequence[Tensor], steps: int) -> nn.Module:
    """A copy of the ReLU ``model`` with every ``nn.ReLU`` replaced by :class:`MaxNormIF` whose
    threshold is the largest activation of that ReLU over the ``calibration`` batches."""
    net = copy.deepcopy(model).eval()
    relus = [(n, m) for n, m in net.named_modules() if isinstance(m, nn.ReLU)]
    if not relus:
        raise ValueError("max-norm conversion needs nn.ReLU modules in the model")
    peaks = dict.fromkeys((n for n, _ in relus), 0.0)
    handles = [
        m.register_forward_hook(
            lambda _m, _i, out, n=n: peaks.__setitem__(n, max(peaks[n], float(out.max())))
        )
        for n, m in relus
    ]
    try:
        with torch.no_grad():
            for xb in calibration:
                net(xb)
    finally:
        for h in handles:
            h.remove()
    for name, _ in relus:
        _set_child(net, name, MaxNormIF(max(peaks[name], 1e-6), steps))
    return net


def maxnorm_curve(net: nn.Module, x: Tensor, y: Tensor, *, batch_size: int = 125) -> Curve:
    """Accuracy at ``T = 1..steps`` of a :func:`maxnorm_if` network (its ``steps``) on ``x``,
    with spikes per neuron and synaptic operations."""
    layers = [m for m in net.modules() if isinstance(m, MaxNormIF)]
    steps = layers[0].steps
    spikes = SpikeCounter(layers, steps=steps)
    sops = SynapticOpCounter(net, steps=steps)

    def simulate(xb: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        spikes.reset()
        sops.reset()
        folded = xb.unsqueeze(0).expand(steps, *xb.shape).flatten(0, 1)
        out = net(folded).unflatten(0, (steps, -1))
        assert spikes.per_step is not None and sops.per_step is not None
        return out, spikes.per_step, sops.per_step

    try:
        simulate(x[:1])
        curve = evaluate_curve(simulate, x, y, batch_size=batch_size, neurons=spikes.neurons)
    finally:
        spikes.remove()
        sops.remove()
    curve.extra["thresholds"] = [m.threshold for m in layers]
    return curve
