"""Smoke tests of benchmarks/neurons.py: same spikes everywhere, the report, the memory child."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def neurons():
    sys.path.insert(0, str(BENCH))
    try:
        yield importlib.import_module("neurons")
    finally:
        sys.path.remove(str(BENCH))


def test_every_installed_contender_fires_the_same_spikes(neurons) -> None:
    names = ["sf-fused", "sf-fused-dense"] + [p for p in neurons.PEERS if neurons.peer_version(p)]
    for workload in ("W1", "W2"):
        result = neurons.spike_check(workload, names)
        assert set(result) == {"sf-reference", *names}
        assert result["sf-reference"]["spikes"] > 10_000  # the gain makes both layers fire
        for name, counts in result.items():
            assert counts == {"spikes": result["sf-reference"]["spikes"], "differ": 0}, name


def test_report_and_memory_child(neurons, tmp_path: Path, capsys) -> None:
    out = tmp_path / "bench.json"
    argv = ["--workloads", "W2", "--repeats", "1", "--contenders", "sf-fused,relu-T"]
    assert neurons.main([*argv, "--threads", "1", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "relu-T" in printed and "peak +" in printed
    report = json.loads(out.read_text())
    assert set(report["W2"]["median_ms"]) == {"sf-fused", "relu-T"}
    for name in ("sf-fused", "relu-T"):
        assert report["W2"]["memory_kib"][name]["peak_growth_kib"] > 10_000
