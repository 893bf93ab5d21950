"""One reproduction line (one data set, one architecture): :func:`run_conversion`.

Parts, in order, each written to ``parts/<name>.json`` in the report folder as soon as it is
done and skipped when the folder already holds it (training also resumes per epoch from its
checkpoint ``<name>.pt``; a finished network is loaded from it):

1. ``relu``: the ReLU network (the source of SpikingJelly's and the max-norm conversion);
2. ``qcfs-L4``, ``qcfs-L8``: QCFS networks (:func:`spikeforge.convert.to_qcfs`, every ReLU a QCFS
   activation with ``L`` levels and a learnable clip level ``lambda``), trained from the same
   initialisation as the ReLU network;
3. ``qcfs-AL``: the AL metric of every layer of the trained ``L = 8`` network on training images
   (:func:`~spikeforge.convert.al_metrics`), per-layer levels from it
   (:func:`~spikeforge.convert.levels_from_al`, spikeforge's documented rule), then that network
   trained on with those levels for ``al_epochs`` (the official procedure resumes training after
   choosing the levels, spec ``conversion.md`` §5.1; the learning rate is a quarter of the
   initial one, where a cosine schedule stands two thirds of the way through);
4. ``pascal-<v>`` for every QCFS network: :func:`~spikeforge.convert.to_pascal`; fast-path logits
   on the whole test set against the QCFS network's, in float64 (largest difference, prediction
   agreement, accuracy) and in float32 (agreement, accuracy); the step-by-step reference
   :meth:`~spikeforge.convert.PascalNetwork.simulate` (float64) on ``simulate_samples`` test
   images; ``T_eff``, latency (pipelined and sequential), per-layer levels and step counts;
   spikes per neuron and synaptic operations on the curve images;
5. ``curve-<method>``: accuracy at every ``T = 1..steps`` on the curve images, with spikes per
   neuron and synaptic operations up to each ``T``: the IF-SNN of every uniform QCFS network
   (:func:`~spikeforge.convert.to_if`), SpikingJelly's converter in its max-norm and 99.9 % modes
   on the ReLU network (:mod:`.spikingjelly_baseline`), and the max-norm IF conversion of our
   own when SpikingJelly cannot run (or with ``own_baseline``);
6. the summary ``conversion.json`` (with :func:`.report.step_comparison`), ``accuracy.png`` and
   ``tables.md``.

The time curves run on ``curve_samples`` test images spread evenly over the test set (MNIST's
first 5,000 test images are easier than its last 5,000, so not the first ``n``); the QCFS and
PASCAL accuracies are measured on the whole test set and again on the curve images (the targets
of the step comparison). Counting conventions: :mod:`.counting` (the same as
:mod:`spikeforge.convert.streams`: synaptic operations of layers fed by spikes, the analog first
layer apart).
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from spikeforge.convert import al_metrics, levels_from_al, set_levels, to_if, to_pascal, to_qcfs
from spikeforge.convert.qcfs import qcfs_sites
from spikeforge.data import Dataset
from spikeforge.experiments.conversion.counting import SpikeCounter, SynapticOpCounter
from spikeforge.experiments.conversion.curves import Curve, evaluate_curve
from spikeforge.experiments.conversion.networks import DEFAULT_WIDTHS, build
from spikeforge.experiments.conversion.report import (
    format_tables,
    headline,
    plot_accuracy,
    step_comparison,
)
from spikeforge.experiments.conversion.spikingjelly_baseline import (
    SJ_MODES,
    SpikingJellyUnavailable,
    import_spikingjelly,
    maxnorm_curve,
    maxnorm_if,
    spikingjelly_convert,
    spikingjelly_curve,
    spikingjelly_thresholds,
)
from spikeforge.experiments.conversion.training import Recipe, evaluate, train
from spikeforge.experiments.report import ReportFolder
from spikeforge.io import load_torch
from spikeforge.metrics import accuracy, agreement, predictions_in_batches

__all__ = [
    "ADDITIVE_SETTINGS",
    "AL_LR_FACTOR",
    "PAPER",
    "Settings",
    "curve_indices",
    "if_curve",
    "pascal_report",
    "run_conversion",
]

PAPER = (
    "PASCAL (Ramesh & Srinivasan, TMLR 2025): ResNet-34 on ImageNet ~74 % with 64x (arXiv v1) / "
    "56x (TMLR) fewer inference time steps than existing approaches; CIFAR-10/100 and ImageNet "
    "are not available offline here, so this reproduction runs MNIST / Fashion-MNIST"
)
AL_LR_FACTOR = 0.25
"""Learning rate of the AL fine-tuning relative to the initial one."""


@dataclass(frozen=True)
class Settings:
    """Everything that determines one reproduction line's results (kept in
    ``parts/settings.json``; resuming a folder with other settings is an error)."""

    dataset: str
    arch: str
    width: int | None = None
    epochs: int = 2
    al_epochs: int = 1
    batch_size: int = 128
    lr: float = 2e-3
    weight_decay: float = 1e-4
    init_lambda: float = 1.0
    seed: int = 0
    steps: int = 64
    curve_samples: int | None = 2000
    train_samples: int | None = None
    test_samples: int | None = None
    calib_samples: int = 2048
    calib_batch: int = 256
    simulate_samples: int = 500
    uniform_levels: tuple[int, ...] = (4, 8)
    al_from: int = 8
    own_baseline: bool = False
    spikingjelly: bool = True
    curve_batch: int = 250

    def __post_init__(self) -> None:
        if self.al_from not in self.uniform_levels:
            raise ValueError(f"al_from={self.al_from} must be one of {self.uniform_levels}")
        if self.steps < 1 or self.epochs < 1 or self.al_epochs < 0:
            raise ValueError("steps and epochs must be >= 1, al_epochs >= 0")

    def recipe(self, epochs: int | None = None, lr: float | None = None) -> Recipe:
        return Recipe(
            epochs=self.epochs if epochs is None else epochs,
            batch_size=self.batch_size,
            lr=self.lr if lr is None else lr,
            weight_decay=self.weight_decay,
            seed=self.seed,
        )

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["uniform_levels"] = list(self.uniform_levels)
        return data


def curve_indices(n: int, samples: int | None) -> Tensor:
    """``samples`` indices spread evenly over ``range(n)`` (all when ``samples`` is ``None`` or
    at least ``n``)."""
    if samples is None or samples >= n:
        return torch.arange(n)
    if samples < 1:
        raise ValueError(f"curve_samples must be >= 1, got {samples}")
    return torch.div(torch.arange(samples) * n, samples, rounding_mode="floor")


def _safe(name: str) -> str:
    return name.replace("%", "pct")


@dataclass
class _Line:
    """One line while it runs: settings, report folder, data, and the parts done so far."""

    settings: Settings
    folder: ReportFolder
    data: Dataset
    curve_x: Tensor
    curve_y: Tensor
    calibration: list[Tensor]
    progress: bool
    echo: Callable[[str], None]
    parts: dict[str, Any] = field(default_factory=dict)

    @property
    def out(self) -> Path:
        return self.folder.path

    def has(self, name: str) -> bool:
        return (self.out / "parts" / f"{_safe(name)}.json").exists()

    def part(self, name: str, compute: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """The part ``name`` from ``parts/<name>.json``, or computed and written there."""
        path = self.out / "parts" / f"{_safe(name)}.json"
        if path.exists():
            result = json.loads(path.read_text())
        else:
            self.echo(f"  {name} ...")
            start = time.perf_counter()
            result = compute()
            result["part_seconds"] = round(time.perf_counter() - start, 1)
            self.folder.write_json(f"parts/{_safe(name)}.json", result)
        self.parts[name] = result
        return result


def _fresh(settings: Settings) -> nn.Module:
    torch.manual_seed(settings.seed)
    return build(settings.arch, width=settings.width)


def _lambdas(qnet: nn.Module) -> list[float]:
    return [round(float(m.lam.detach()), 6) for _, m in qcfs_sites(qnet)]


def _trained(
    line: _Line, name: str, model: nn.Module, recipe: Recipe, extra: dict | None = None
) -> dict[str, Any]:
    """Train ``model`` as part ``name`` (checkpoint ``<name>.pt``), or load the finished run."""
    checkpoint = line.out / f"{name}.pt"
    if line.has(name) and checkpoint.exists():
        model.load_state_dict(load_torch(checkpoint)["model"])
        model.eval()
        return line.part(name, dict)

    def compute() -> dict[str, Any]:
        d = line.data
        result = train(
            model,
            d.x_train,
            d.y_train,
            d.x_test,
            d.y_test,
            recipe,
            checkpoint,
            progress=line.progress,
            desc=name,
        )
        part = dict(extra or {})
        part |= {
            "train": result.as_dict() | {"recipe": asdict(recipe)},
            "accuracy": result.test_accuracy,
            "accuracy_curve_images": evaluate(model, line.curve_x, line.curve_y),
        }
        if qcfs_sites_or_none(model):
            part["levels"] = [m.levels for _, m in qcfs_sites(model)]
            part["lambdas"] = _lambdas(model)
        return part

    part = line.part(name, compute)
    model.eval()
    return part


def qcfs_sites_or_none(model: nn.Module) -> list:
    """The QCFS sites of ``model``, or ``[]`` for a network without QCFS activations."""
    try:
        return qcfs_sites(model)
    except Exception:  # a plain ReLU network need not be fx-traceable for this question
        return []


# ---------------------------------------------------------------------------------------------
# PASCAL
# ---------------------------------------------------------------------------------------------


def _in_batches(fn: Callable[[Tensor], Tensor], x: Tensor, batch: int = 1000) -> Tensor:
    with torch.no_grad():
        return torch.cat([fn(x[i : i + batch]) for i in range(0, x.shape[0], batch)])


def pascal_report(
    qnet: nn.Module,
    x_test: Tensor,
    y_test: Tensor,
    curve_x: Tensor,
    curve_y: Tensor,
    *,
    simulate_samples: int,
) -> dict[str, Any]:
    """PASCAL conversion of the trained ``qnet`` measured against it (module docstring, part 4).

    ``agreement`` / ``accuracy``: the float64 fast path on ``x_test`` (``qnet`` in float64 the
    reference); ``float32``: the same in float32; ``simulate``: the float64 step-by-step
    reference on the first ``simulate_samples`` curve images; counts on the curve images.
    """
    qnet = qnet.eval()
    q64 = copy.deepcopy(qnet).double().eval()
    snn64 = to_pascal(q64)
    snn32 = to_pascal(qnet)
    x64 = x_test.double()
    start = time.perf_counter()
    ann64 = predictions_in_batches(q64, x64)
    pas64 = _in_batches(snn64, x64)
    ann32 = predictions_in_batches(qnet, x_test)
    pas32 = _in_batches(snn32, x_test)
    fast_seconds = time.perf_counter() - start
    mismatch = (pas64.argmax(1) != ann64.argmax(1)).nonzero().flatten().tolist()
    sim_n = min(simulate_samples, curve_x.shape[0])
    sim_x = curve_x[:sim_n].double()
    start = time.perf_counter()
    sim = _in_batches(snn64.simulate, sim_x, 250) if sim_n else None
    sim_seconds = time.perf_counter() - start
    ann_sim = predictions_in_batches(q64, sim_x) if sim_n else None
    spikes, neurons, synops, macs = 0.0, 0, 0.0, 0.0
    with torch.no_grad():
        for i in range(0, curve_x.shape[0], 500):
            out = snn32.run(curve_x[i : i + 500])
            spikes += sum(float(s.sum()) for s in out.spikes.values())
            neurons = sum(s[0].numel() for s in out.spikes.values())
            synops += float(out.total_synops().double().sum())
            macs += sum(float(m.double().sum()) for m in out.macs.values())
    n = curve_x.shape[0]
    latency = snn32.latency
    teff = snn32.t_eff
    return {
        "levels": [layer.levels for layer in snn32.layers],
        "layers": [asdict(layer) for layer in snn32.layers],
        "accuracy": accuracy(pas64, y_test),
        "qcfs_accuracy_float64": accuracy(ann64, y_test),
        "agreement": agreement(pas64, ann64),
        "disagreeing_images": mismatch[:50],
        "max_abs_logit_diff": float((pas64 - ann64).abs().max()),
        "float32": {
            "accuracy": accuracy(pas32, y_test),
            "qcfs_accuracy": accuracy(ann32, y_test),
            "agreement": agreement(pas32, ann32),
            "max_abs_logit_diff": float((pas32 - ann32).abs().max()),
        },
        "accuracy_curve_images": accuracy(predictions_in_batches(snn32, curve_x), curve_y),
        "simulate": None
        if sim is None
        else {
            "samples": sim_n,
            "agreement": agreement(sim, ann_sim),
            "max_abs_logit_diff": float((sim - ann_sim).abs().max()),
            "max_abs_diff_to_fast_path": float((sim - _in_batches(snn64, sim_x)).abs().max()),
            "seconds": round(sim_seconds, 2),
        },
        "fast_path_seconds": round(fast_seconds, 2),
        "t_eff": teff.mean,
        "t_eff_per_layer": teff.per_layer,
        "latency": {"pipelined": latency.pipelined, "sequential": latency.sequential},
        "step_counts": snn32.step_counts,
        "spikes_per_neuron": spikes / (n * neurons) if neurons else 0.0,
        "synaptic_ops": synops / n,
        "first_layer_macs": macs / n,
        "count_images": n,
    }


# ---------------------------------------------------------------------------------------------
# time curves
# ---------------------------------------------------------------------------------------------


def if_curve(qnet: nn.Module, x: Tensor, y: Tensor, steps: int, *, batch_size: int = 250) -> Curve:
    """Accuracy at ``T = 1..steps`` of ``to_if(qnet)`` on ``x`` (one run of ``steps`` steps per
    batch; the library's running-mean read-out), with spikes per neuron and synaptic operations
    up to each ``T`` (hooks on the IF neurons and the Linear / Conv layers, :mod:`.counting`)."""
    ifnet = to_if(qnet.eval())
    spikes = SpikeCounter(ifnet.neurons.values(), time_first=True)
    sops = SynapticOpCounter(ifnet, steps=steps)

    def simulate(xb: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        spikes.reset()
        sops.reset()
        readout = ifnet.run(xb, steps)
        assert spikes.per_step is not None and sops.per_step is not None
        return readout, spikes.per_step, sops.per_step

    try:
        simulate(x[:1])
        curve = evaluate_curve(
            simulate, x, y, batch_size=batch_size, neurons=spikes.neurons, cumulative=True
        )
    finally:
        spikes.remove()
        sops.remove()
    curve.extra["thresholds"] = [float(ifnet.neurons[k].threshold) for k in ifnet.neurons]
    return curve


def _baseline_curves(line: _Line, relu: nn.Module) -> dict[str, Any]:
    """SpikingJelly's curves (and the max-norm IF curve when asked or needed)."""
    s = line.settings
    info: dict[str, Any] = {"used": False}
    run_own = s.own_baseline
    if s.spikingjelly:
        try:
            sj = import_spikingjelly()
        except SpikingJellyUnavailable as exc:
            info["error"] = str(exc)
            line.echo(f"  SpikingJelly unavailable ({exc}); max-norm IF conversion instead")
            run_own = True
            sj = None
        if sj is not None:
            info |= {"used": True, "version": sj.version, "workaround": sj.workaround}
            for mode in SJ_MODES:

                def compute(mode: str = mode) -> dict[str, Any]:
                    snn = spikingjelly_convert(sj, relu, line.calibration, mode)
                    curve = spikingjelly_curve(
                        sj, snn, line.curve_x, line.curve_y, s.steps, batch_size=s.curve_batch
                    )
                    return curve.as_dict() | {"thresholds": spikingjelly_thresholds(snn)}

                line.part(f"curve-spikingjelly-{mode}", compute)
    else:
        run_own = True
    if run_own:

        def own() -> dict[str, Any]:
            net = maxnorm_if(relu, line.calibration, s.steps)
            curve = maxnorm_curve(net, line.curve_x, line.curve_y, batch_size=s.curve_batch)
            return curve.as_dict()

        line.part("curve-maxnorm-if", own)
    return info


# ---------------------------------------------------------------------------------------------
# the line
# ---------------------------------------------------------------------------------------------


ADDITIVE_SETTINGS = ("own_baseline", "spikingjelly")
"""Settings that only add or leave out baseline curves: a folder may be resumed with other
values (e.g. ``--own-baseline`` added later); the stored settings record the latest."""


def _check_settings(folder: ReportFolder, settings: Settings) -> None:
    path = folder.path / "parts" / "settings.json"
    wanted = settings.as_dict()
    if path.exists():
        stored = json.loads(path.read_text())
        changed = sorted(
            k for k in wanted if stored.get(k) != wanted[k] and k not in ADDITIVE_SETTINGS
        )
        if changed:
            raise ValueError(
                f"{folder.path} holds results of other settings (differing: {', '.join(changed)})"
                "; use another --out or delete the folder"
            )
    if not path.exists() or json.loads(path.read_text()) != wanted:
        folder.write_json("parts/settings.json", wanted)


def run_conversion(
    data: Dataset,
    out_dir: str | Path,
    settings: Settings,
    *,
    progress: bool = True,
    echo: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run (or resume) one reproduction line on ``data`` (already cut to ``train_samples`` /
    ``test_samples``) and write its report folder; returns the ``conversion.json`` dict."""
    start = time.perf_counter()
    folder = ReportFolder(out_dir)
    _check_settings(folder, settings)
    s = settings
    idx = curve_indices(data.x_test.shape[0], s.curve_samples)
    calib = data.x_train[: s.calib_samples]
    line = _Line(
        settings=s,
        folder=folder,
        data=data,
        curve_x=data.x_test[idx],
        curve_y=data.y_test[idx],
        calibration=[calib[i : i + s.calib_batch] for i in range(0, calib.shape[0], s.calib_batch)],
        progress=progress,
        echo=echo,
    )
    echo(f"conversion: {data.name} {s.arch} -> {folder.path}/")

    relu = _fresh(s)
    relu_part = _trained(line, "relu", relu, s.recipe())
    qnets: dict[str, nn.Module] = {}
    for levels in s.uniform_levels:
        name = f"L{levels}"
        torch.manual_seed(s.seed)
        qnet = to_qcfs(_fresh(s), levels=levels, init_lambda=s.init_lambda)
        _trained(line, f"qcfs-{name}", qnet, s.recipe())
        qnets[name] = qnet
    source = qnets[f"L{s.al_from}"]

    def choose() -> dict[str, Any]:
        metrics = al_metrics(source, line.calibration)
        return {"metrics": metrics, "levels": levels_from_al(metrics)}

    chosen = line.part("al-levels", choose)
    qal = copy.deepcopy(source)
    set_levels(qal, chosen["levels"])
    al_extra = {"al_metrics": chosen["metrics"], "al_from": f"L{s.al_from}"}
    if s.al_epochs > 0:
        recipe = s.recipe(epochs=s.al_epochs, lr=s.lr * AL_LR_FACTOR)
        _trained(line, "qcfs-AL", qal, recipe, extra=al_extra)
    else:  # the levels alone, without training on
        line.parts["qcfs-AL"] = al_extra | {
            "accuracy": evaluate(qal, data.x_test, data.y_test),
            "accuracy_curve_images": evaluate(qal, line.curve_x, line.curve_y),
            "levels": chosen["levels"],
            "lambdas": _lambdas(qal),
            "train": None,
        }
    qnets["AL"] = qal

    for name, qnet in qnets.items():
        line.part(
            f"pascal-{name}",
            lambda qnet=qnet: pascal_report(
                qnet,
                data.x_test,
                data.y_test,
                line.curve_x,
                line.curve_y,
                simulate_samples=s.simulate_samples,
            ),
        )
    for levels in s.uniform_levels:
        name = f"L{levels}"
        line.part(
            f"curve-if-{name}",
            lambda name=name: if_curve(
                qnets[name], line.curve_x, line.curve_y, s.steps, batch_size=s.curve_batch
            ).as_dict(),
        )
    sj_info = _baseline_curves(line, relu)

    results: dict[str, Any] = {
        "experiment": "conversion",
        "dataset": data.name,
        "arch": s.arch,
        "width": s.width or DEFAULT_WIDTHS[s.arch],
        "settings": s.as_dict(),
        "train_samples": int(data.x_train.shape[0]),
        "test_samples": int(data.x_test.shape[0]),
        "curve_samples": int(idx.numel()),
        "relu": relu_part,
        "qcfs": {},
        "curves": {},
        "spikingjelly": sj_info,
        "paper": PAPER,
    }
    for name in qnets:
        q = dict(line.parts[f"qcfs-{name}"])
        q["pascal"] = line.parts[f"pascal-{name}"]
        results["qcfs"][name] = q
    for part_name, part in line.parts.items():
        if part_name.startswith("curve-"):
            results["curves"][part_name.removeprefix("curve-")] = part
    results["steps_table"] = step_comparison(results)
    results["headline"] = headline(results)
    results["seconds"] = round(time.perf_counter() - start, 1)  # this invocation
    per_part = {k: v.get("part_seconds") for k, v in line.parts.items() if isinstance(v, dict)}
    results["seconds_per_part"] = per_part  # as measured when each part was computed
    results["seconds_all_parts"] = round(sum(v or 0.0 for v in per_part.values()), 1)
    results["environment"] = folder.environment()
    results["plots"] = [plot_accuracy(results, folder.path / "accuracy.png").name]
    folder.write_text("tables.md", format_tables(results) + "\n")
    folder.write_json("conversion.json", results)
    return results
