"""The units of ``spikeforge reproduce dwam``: hosts, tuning, evaluations; resumable.

* **hosts** ``hosts/{task}-{family}-s{seed}.pt`` (+ ``.json``: training time, nominal reference
  rates ``c_ref``): behaviour-cloned hosts of spec §6.1, family ``lif`` (plain LIF) or
  ``adaptive`` (adaptive-threshold neurons, the second homeostasis family);
* **tuning** ``tuning/{task}-{k}.json``: DWAM with grid point ``k`` on the validation degradation
  (not in the test table) and validation reset seeds, every host of the task; the best grid point
  (mean return, ties broken by the rate deviation from ``c_ref``) is frozen for the task
  (spec §6.5);
* **evaluations** ``units/{task}-{family}-s{seed}-{condition}.json``: both arms (control and DWAM)
  on the test reset seeds.

Every unit file records the settings that produced it; a unit whose settings changed is rerun.
"""

from __future__ import annotations

import json
import multiprocessing
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from spikeforge.control import Degradation, Host, behaviour_clone, load_host, save_host
from spikeforge.experiments.dwam.evaluate import (
    PLASTIC,
    RATE_FLOOR,
    DWAMParams,
    nominal_reference,
    run_condition,
)
from spikeforge.experiments.report import ReportFolder
from spikeforge.homeostasis import AdaptiveLIF

__all__ = [
    "CONDITIONS",
    "FAMILIES",
    "TASKS",
    "Settings",
    "host_seed_list",
    "load_trained_host",
    "neuron_factory",
    "run_dwam",
    "train_host",
]

TASKS = ("cartpole", "pendulum")
FAMILIES = ("lif", "adaptive")
CONDITIONS = (
    "nominal",
    "obs-noise=0.05",
    "obs-noise=0.1",
    "obs-noise=0.2",
    "weight-scale=0.5",
    "weight-scale=0.6",
    "weight-scale=0.7",
    "weight-scale=0.8",
    "weight-scale=1.2",
    "weight-scale=1.5",
    "weight-noise=0.1",
    "weight-noise=0.2",
    "weight-noise=0.5",
    "obs-noise=0.1,weight-scale=0.7,weight-noise=0.2",
)
"""Spec §6.3 levels for the control tasks, each alone, plus one combined setting."""
ADAPTIVE = {"decay": 0.5, "theta0": 1.0, "a": 0.1, "tau_a": 10.0}
"""Adaptive-threshold neurons of the ``adaptive`` family (spec §6.1 (b))."""
TEST_SEED, VALIDATION_SEED, REFERENCE_SEED = 1000, 5000, 9000


def neuron_factory(family: str) -> Callable[[], torch.nn.Module] | None:
    """The host neurons of a family (``None``: the host's default LIF)."""
    if family == "lif":
        return None
    if family == "adaptive":
        return lambda: AdaptiveLIF(**ADAPTIVE)
    raise ValueError(f"unknown host family {family!r}; choose one of {FAMILIES}")


@dataclass(frozen=True)
class Settings:
    """What ``spikeforge reproduce dwam`` runs (defaults: the reported study)."""

    tasks: tuple[str, ...] = TASKS
    families: tuple[str, ...] = FAMILIES
    hosts: int = 3
    episodes: int = 20
    conditions: tuple[str, ...] = CONDITIONS
    validation: str = "weight-scale=0.65"
    grid: tuple[tuple[float, int, float, float], ...] = tuple(
        (eta, window, tau, tau_c)
        for eta in (0.002, 0.01)
        for window in (20, 50)
        for tau in (5.0, 20.0)
        for tau_c in (1.0, 10.0)
    )
    """(η, W, τ_θ, τ_c) points tried on the validation degradation; ζ = ``zeta``."""
    zeta: float = 2.0
    reference_episodes: int = 5
    bc: tuple[tuple[str, Any], ...] = ()
    """Overrides of :func:`~spikeforge.control.behaviour_clone` (empty: its defaults)."""

    def __post_init__(self) -> None:
        for task in self.tasks:
            if task not in TASKS:
                raise ValueError(f"unknown task {task!r}; choose from {TASKS}")
        for family in self.families:
            neuron_factory(family)
        if self.hosts < 1 or self.episodes < 1 or self.reference_episodes < 1:
            raise ValueError("hosts, episodes and reference_episodes must be >= 1")
        if not self.grid:
            raise ValueError("the tuning grid is empty")
        labels = [Degradation.parse(c).label for c in self.conditions]
        validation = Degradation.parse(self.validation).label
        if validation in labels:
            raise ValueError(
                f"the validation degradation {validation!r} is also a test condition: tuning "
                "on a test condition leaks (spec §6.5)"
            )

    def params(self, k: int) -> DWAMParams:
        eta, window, tau, tau_c = self.grid[k]
        return DWAMParams(eta=eta, tau_theta=tau, zeta=self.zeta, window=int(window), tau_c=tau_c)


def host_seed_list(settings: Settings) -> list[int]:
    return list(range(settings.hosts))


def _seeds(base: int, n: int) -> list[int]:
    return list(range(base, base + n))


def _host_name(task: str, family: str, seed: int) -> str:
    return f"{task}-{family}-s{seed}"


def load_trained_host(path: str | Path, family: str | None = None) -> Host:
    """A saved host of either family (the family is read from its config if not given)."""
    if family is None:
        config = torch.load(path, map_location="cpu", weights_only=True)["config"]
        family = "lif" if config["neuron"] == "lif" else str(config["neuron"])
    return load_host(path, neuron=neuron_factory(family))


# -- units (each runs in a worker with one torch thread) ------------------------------------


def train_host(task: str, family: str, seed: int, **bc: Any) -> Host:
    """A behaviour-cloned host of ``family`` (its config names the family, so that
    :func:`load_trained_host` rebuilds its neurons); ``bc`` overrides
    :func:`~spikeforge.control.behaviour_clone`'s defaults."""
    host = behaviour_clone(task, seed, neuron=neuron_factory(family), **bc)
    if family != "lif":
        host.config = replace(host.config, neuron=family)
    return host


def _train_unit(out: str, task: str, family: str, seed: int, settings: Settings) -> dict:
    torch.set_num_threads(1)
    start = time.perf_counter()
    host = train_host(task, family, seed, **dict(settings.bc))
    seconds = time.perf_counter() - start
    c_ref = nominal_reference(host, _seeds(REFERENCE_SEED, settings.reference_episodes))
    name = _host_name(task, family, seed)
    save_host(host, Path(out) / "hosts" / f"{name}.pt")
    return {
        "host": name,
        "train_seconds": seconds,
        "c_ref": {p: r.tolist() for p, r in c_ref.items()},
    }


def _c_ref(record: dict) -> dict[str, torch.Tensor]:
    return {p: torch.tensor(r) for p, r in record["c_ref"].items()}


def _tune_unit(out: str, task: str, k: int, settings: Settings, hosts: dict) -> dict:
    torch.set_num_threads(1)
    start = time.perf_counter()
    params = settings.params(k)
    condition = Degradation.parse(settings.validation)
    seeds = _seeds(VALIDATION_SEED, settings.episodes)
    returns, deviations = [], []
    for family in settings.families:
        for seed in host_seed_list(settings):
            record = hosts[_host_name(task, family, seed)]
            host = load_trained_host(Path(out) / "hosts" / f"{record['host']}.pt", family)
            c_ref = _c_ref(record)
            run = run_condition(host, condition, seeds, params, c_ref, adapt=True)
            returns += run["returns"]
            for p in PLASTIC:
                nominal = max(float(c_ref[p].mean()), RATE_FLOOR)
                deviations += [abs(r - nominal) / nominal for r in run[p]["rate"]]
    return {
        "task": task,
        "k": k,
        "params": asdict(params),
        "mean_return": float(np.mean(returns)),
        "mean_rate_deviation": float(np.mean(deviations)),
        "unit_seconds": time.perf_counter() - start,
    }


def _eval_unit(
    out: str,
    task: str,
    family: str,
    seed: int,
    condition: str,
    settings: Settings,
    record: dict,
    params: dict,
) -> dict:
    torch.set_num_threads(1)
    start = time.perf_counter()
    host = load_trained_host(Path(out) / "hosts" / f"{record['host']}.pt", family)
    c_ref = _c_ref(record)
    dwam_params = DWAMParams(**params)
    seeds = _seeds(TEST_SEED, settings.episodes)
    degradation = Degradation.parse(condition)
    arms = {
        arm: run_condition(host, degradation, seeds, dwam_params, c_ref, adapt=arm == "dwam")
        for arm in ("control", "dwam")
    }
    return {
        "task": task,
        "family": family,
        "host": seed,
        "condition": degradation.label,
        "unit_seconds": time.perf_counter() - start,
    } | arms


# -- driver ---------------------------------------------------------------------------------


def _run_units(
    jobs: int, fn: Callable[..., dict], units: list[tuple], done: Callable[[tuple, dict], None]
) -> None:
    """``fn(*unit)`` for every unit, in ``jobs`` spawned workers when ``jobs > 1``."""
    if jobs > 1 and len(units) > 1:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(min(jobs, len(units)), mp_context=context) as pool:
            futures = {pool.submit(fn, *unit): unit for unit in units}
            for future in as_completed(futures):
                done(futures[future], future.result())
    else:
        for unit in units:
            done(unit, fn(*unit))


def _load_if_current(path: Path, key: Any) -> dict | None:
    if not path.is_file():
        return None
    saved = json.loads(path.read_text())
    return saved if saved.get("settings_key") == key else None


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value))


def run_dwam(
    settings: Settings, out: str | Path, jobs: int = 1, log: Callable[[str], None] = print
) -> dict[str, Any]:
    """Run (or resume) every unit; returns ``{"hosts", "tuning", "chosen", "units"}``."""
    out = str(out)
    folder = ReportFolder(out)
    s = _jsonable(asdict(settings))
    host_key = {"bc": s["bc"], "reference_episodes": s["reference_episodes"]}
    hosts: dict[str, dict] = {}
    todo: list[tuple] = []
    for task in settings.tasks:
        for family in settings.families:
            for seed in host_seed_list(settings):
                name = _host_name(task, family, seed)
                saved = _load_if_current(Path(out) / "hosts" / f"{name}.json", host_key)
                if saved is not None and (Path(out) / "hosts" / f"{name}.pt").is_file():
                    hosts[name] = saved
                    log(f"host {name}: trained before")
                else:
                    todo.append((out, task, family, seed, settings))

    def host_done(unit: tuple, result: dict) -> None:
        result = _jsonable(result | {"settings_key": host_key})
        folder.write_json(f"hosts/{result['host']}.json", result)
        hosts[result["host"]] = result
        log(f"host {result['host']}: trained in {result['train_seconds']:.0f} s")

    _run_units(jobs, _train_unit, todo, host_done)

    tune_key = {
        "host": host_key,
        "validation": s["validation"],
        "episodes": s["episodes"],
        "families": s["families"],
        "hosts": s["hosts"],
        "zeta": s["zeta"],
    }
    tuning: dict[str, list[dict]] = {task: [] for task in settings.tasks}
    todo = []
    for task in settings.tasks:
        for k in range(len(settings.grid)):
            key = tune_key | {"params": _jsonable(asdict(settings.params(k)))}
            saved = _load_if_current(Path(out) / "tuning" / f"{task}-{k}.json", key)
            if saved is not None:
                tuning[task].append(saved)
            else:
                todo.append((out, task, k, settings, hosts))

    def tune_done(unit: tuple, result: dict) -> None:
        key = tune_key | {"params": result["params"]}
        result = _jsonable(result | {"settings_key": key})
        folder.write_json(f"tuning/{result['task']}-{result['k']}.json", result)
        tuning[result["task"]].append(result)
        log(
            f"tuning {result['task']} {result['params']}: return {result['mean_return']:.1f}, "
            f"rate deviation {result['mean_rate_deviation']:.3f}"
        )

    _run_units(jobs, _tune_unit, todo, tune_done)
    chosen = {task: _choose(tuning[task])["params"] for task in settings.tasks}
    for task, params in chosen.items():
        log(f"frozen DWAM parameters for {task}: {params}")

    units: dict[str, dict] = {}
    todo = []
    for task in settings.tasks:
        for family in settings.families:
            for seed in host_seed_list(settings):
                record = hosts[_host_name(task, family, seed)]
                for condition in settings.conditions:
                    label = Degradation.parse(condition).label
                    name = f"{_host_name(task, family, seed)}-{label}"
                    key = {"host": host_key, "params": chosen[task], "episodes": s["episodes"]}
                    saved = _load_if_current(Path(out) / "units" / f"{name}.json", key)
                    if saved is not None:
                        units[name] = saved
                    else:
                        todo.append(
                            (out, task, family, seed, label, settings, record, chosen[task])
                        )

    def eval_done(unit: tuple, result: dict) -> None:
        task, family, seed, label = unit[1:5]
        name = f"{_host_name(task, family, seed)}-{label}"
        key = {"host": host_key, "params": chosen[task], "episodes": s["episodes"]}
        result = _jsonable(result | {"settings_key": key})
        folder.write_json(f"units/{name}.json", result)
        units[name] = result
        log(
            f"{name}: return control {np.mean(result['control']['returns']):.1f}, "
            f"DWAM {np.mean(result['dwam']['returns']):.1f}"
        )

    _run_units(jobs, _eval_unit, todo, eval_done)
    return {"hosts": hosts, "tuning": tuning, "chosen": chosen, "units": units}


def _choose(results: Iterable[dict]) -> dict:
    """Best mean return; ties (within 1e-9) broken by the smaller rate deviation."""
    results = list(results)
    best = max(r["mean_return"] for r in results)
    tied = [r for r in results if r["mean_return"] >= best - 1e-9]
    return min(tied, key=lambda r: (r["mean_rate_deviation"], r["k"]))
