"""Summary of ``spikeforge reproduce dwam``: paired effects with bootstrap CIs, homeostasis
metrics, verdicts, tables and the adaptation-transient plot."""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.figure import Figure

from spikeforge.experiments.dwam.evaluate import PLASTIC, RATE_FLOOR

__all__ = ["bootstrap_ci", "format_tables", "plot_transients", "summarise", "verdict"]

BOOTSTRAP = 2000
ARMS = ("control", "dwam")
SMOOTH = 10  # environment steps averaged in the transient plots


def _smooth(values: list[float], n: int = SMOOTH) -> np.ndarray:
    """Running mean over the last ``n`` values (fewer at the start)."""
    x = np.asarray(values, dtype=np.float64)
    c = np.cumsum(np.concatenate([[0.0], x]))
    k = np.minimum(np.arange(1, len(x) + 1), n)
    i = np.arange(1, len(x) + 1)
    return (c[i] - c[i - k]) / k


def bootstrap_ci(values: np.ndarray, seed: int = 0, n: int = BOOTSTRAP) -> tuple[float, float]:
    """95 % percentile bootstrap interval of the mean of ``values`` (resampling entries)."""
    values = np.asarray(values, dtype=np.float64)
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), size=(n, len(values)))].mean(1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return float(lo), float(hi)


def verdict(diff: np.ndarray, ci: tuple[float, float]) -> str:
    """``helps`` / ``hurts`` when the CI of the paired difference excludes 0, ``none`` when
    every pair is identical, else ``no detectable effect``."""
    if np.all(diff == 0):
        return "none"
    if ci[0] > 0:
        return "helps"
    if ci[1] < 0:
        return "hurts"
    return "no detectable effect"


def _concat(units: list[dict], arm: str, *path: str) -> np.ndarray:
    out = []
    for u in units:
        value: Any = u[arm]
        for key in path:
            value = value[key]
        out.append(np.asarray(value, dtype=np.float64))
    return np.concatenate(out)


def summarise(units: dict[str, dict]) -> dict[str, Any]:
    """``{task: {family: {condition: row}}}``: per arm mean return with CI, paired difference
    with CI and verdict, relative rate deviation from nominal (same host, nominal condition,
    control arm) per layer, silent / saturated fractions, fluctuation, weight drift, time per
    environment step."""
    groups: dict[tuple[str, str], dict[str, list[dict]]] = {}
    for u in units.values():
        groups.setdefault((u["task"], u["family"]), {}).setdefault(u["condition"], []).append(u)
    summary: dict[str, Any] = {}
    for (task, family), by_condition in sorted(groups.items()):
        nominal = {
            u["host"]: {p: float(np.mean(u["control"][p]["rate"])) for p in PLASTIC}
            for u in by_condition.get("nominal", [])
        }
        rows = {}
        for condition, members in by_condition.items():
            members = sorted(members, key=lambda u: u["host"])
            row: dict[str, Any] = {"hosts": len(members), "episodes": 0}
            returns = {arm: _concat(members, arm, "returns") for arm in ARMS}
            row["episodes"] = len(returns["control"])
            for arm in ARMS:
                row[arm] = {
                    "return": float(returns[arm].mean()),
                    "return_ci": bootstrap_ci(returns[arm]),
                    "seconds_per_step": float(
                        np.mean([u[arm]["seconds_per_step"] for u in members])
                    ),
                }
                for p in PLASTIC:
                    layer: dict[str, Any] = {
                        key: float(_concat(members, arm, p, key).mean())
                        for key in ("rate", "silent", "saturated", "fluctuation", "drift")
                    }
                    if nominal and all(u["host"] in nominal for u in members):
                        dev = np.concatenate(
                            [
                                np.abs(np.asarray(u[arm][p]["rate"]) - nominal[u["host"]][p])
                                / max(nominal[u["host"]][p], RATE_FLOOR)
                                for u in members
                            ]
                        )
                        layer["rate_deviation"] = float(dev.mean())
                        layer["rate_deviation_ci"] = bootstrap_ci(dev)
                    row[arm][p] = layer
            diff = returns["dwam"] - returns["control"]
            row["difference"] = float(diff.mean())
            row["difference_ci"] = bootstrap_ci(diff)
            row["verdict"] = verdict(diff, row["difference_ci"])
            rows[condition] = row
        summary.setdefault(task, {})[family] = rows
    return summary


def _ci(ci: tuple[float, float]) -> str:
    return f"[{ci[0]:.1f}, {ci[1]:.1f}]"


def _dev(row: dict, arm: str) -> str:
    devs = [row[arm][p].get("rate_deviation") for p in PLASTIC]
    return "/".join("–" if d is None else f"{d:.2f}" for d in devs)


def format_tables(summary: dict[str, Any]) -> str:
    """One markdown table per task and host family."""
    lines = []
    for task, families in summary.items():
        for family, rows in families.items():
            lines += [
                f"### {task}, {family} hosts",
                "",
                "| condition | control return | DWAM return | DWAM − control [95 % CI] | verdict "
                "| rate dev. control (fc1/fc2) | rate dev. DWAM | drift (fc1/fc2) |",
                "|---|---|---|---|---|---|---|---|",
            ]
            for condition, row in rows.items():
                drift = "/".join(f"{row['dwam'][p]['drift']:.3f}" for p in PLASTIC)
                lines.append(
                    f"| {condition} | {row['control']['return']:.1f} "
                    f"| {row['dwam']['return']:.1f} | {row['difference']:+.1f} "
                    f"{_ci(row['difference_ci'])} | {row['verdict']} | {_dev(row, 'control')} "
                    f"| {_dev(row, 'dwam')} | {drift} |"
                )
            lines.append("")
    return "\n".join(lines)


def plot_transients(units: dict[str, dict], task: str, conditions: list[str]) -> Figure:
    """Rows: conditions; columns: fc1 rate, fc2 rate, mean reward per step, for every host of
    the ``lif`` family (thin lines) with both arms; the nominal control rates dashed."""
    fig = Figure(figsize=(12, 3.2 * len(conditions)))
    axes = fig.subplots(len(conditions), 3, squeeze=False)
    colors = {"control": "tab:gray", "dwam": "tab:blue"}
    for row, condition in enumerate(conditions):
        members = [
            u
            for u in units.values()
            if u["task"] == task and u["family"] == "lif" and u["condition"] == condition
        ]
        nominal = [
            u
            for u in units.values()
            if u["task"] == task and u["family"] == "lif" and u["condition"] == "nominal"
        ]
        for col, key in enumerate((*PLASTIC, "reward")):
            ax = axes[row][col]
            for u in members:
                for arm in ARMS:
                    ax.plot(
                        _smooth(u[arm]["trace"][key]),
                        color=colors[arm],
                        lw=0.8,
                        alpha=0.8,
                        label=arm if u is members[0] else None,
                    )
            if key != "reward":
                for u in nominal:
                    ax.axhline(np.mean(u["control"][key]["rate"]), color="k", ls="--", lw=0.6)
            ax.set_title(f"{condition}: {key if key == 'reward' else key + ' rate'}", fontsize=9)
            ax.set_xlabel("environment step")
            if col == 0 and row == 0:
                ax.legend(fontsize=8)
    fig.suptitle(
        f"{task}: adaptation transient (lif hosts, {SMOOTH}-step running means; dashed: nominal "
        "rates)"
    )
    fig.tight_layout()
    return fig
