"""Which path :class:`~spikeforge.core.SpikeLinear` takes: event-driven or dense, by measurement.

The event path costs one scan of the input ``[N, I]`` plus one accumulation of ``O`` weights per
spike, in forward and (for the weight gradient) in backward; the dense path is a BLAS GEMM whose
cost does not depend on the spikes. Which is faster depends on the layer's shape, the input's
density, the thread count and the machine (on one x86 CPU MKL's GEMM beat the event path at
20 % ones on a 784-input layer where on another the event path was 1.3x faster). So it is
measured, not guessed:

* for a layer key (rows rounded up to a power of two, ``I``, ``O``, dtype, threads, training or
  inference) both paths are timed once on random spikes at two densities
  (:data:`CALIBRATION_DENSITIES`), the fastest of :data:`ROUNDS` interleaved rounds, on at most
  :data:`MAX_ROWS` rows (both costs are linear in the rows). What is timed is the layer's call
  as autograd runs it (the Python and autograd overheads count at small sizes): in training the
  forward and the backward to the weight and the bias (the input gradient is the same dense op
  on both paths);
* the event cost is linear in the density (scan + one accumulation per spike), so the two points
  give the density :attr:`PathTimings.event_limit` up to which the event path is predicted to take
  at most :data:`SAFETY` of the dense time. A call takes the event path only below it;
* the limits are kept for the process and in a JSON file beside the verified kernel library
  (``<kernel>.paths.json``: the library's name hashes the source, flags, CPU flags and compiler),
  so later processes on the machine take the same decisions (the two paths agree up to float
  summation order; fixed decisions keep runs reproducible). An unwritable or corrupt file is
  ignored (measured again, kept in memory). ``SpikeLinear(path="event" | "dense")`` bypasses the
  measurement.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from spikeforge.io import write_json

__all__ = [
    "CALIBRATION_DENSITIES",
    "MAX_ROWS",
    "MIN_SECONDS",
    "ROUNDS",
    "SAFETY",
    "LayerKey",
    "PathTimings",
    "event_limit",
    "forget",
    "known",
    "measure_timings",
    "seconds",
]

#: densities of the two calibration inputs (fractions of ones)
CALIBRATION_DENSITIES = (0.05, 0.3)
#: the event path is taken where it is predicted to take at most this fraction of the dense time
#: (in a network the weights and inputs are colder in cache than in the calibration loop: at
#: 0.95 the event path chosen near the limit measured up to 1.13x the dense path in training)
SAFETY = 0.8
#: rows of the calibration inputs, at most
MAX_ROWS = 4096
#: interleaved timing rounds per path (the fastest is kept)
ROUNDS = 5
#: a timed call shorter than this is repeated within its round
MIN_SECONDS = 2e-3
_FORMAT = 4


@dataclass(frozen=True)
class LayerKey:
    """What a decision depends on: ``rows`` is the input's row count rounded up to a power of
    two; ``train``: whether the weight gradient is computed too."""

    rows: int
    width: int
    out: int
    dtype: str
    threads: int
    train: bool

    @classmethod
    def of(cls, rows: int, width: int, out: int, dtype: torch.dtype, train: bool) -> LayerKey:
        bucket = 1 << max(0, math.ceil(math.log2(max(rows, 1))))
        name = str(dtype).removeprefix("torch.")
        return cls(bucket, width, out, name, torch.get_num_threads(), train)

    def text(self) -> str:
        mode = "train" if self.train else "infer"
        return f"{self.rows}x{self.width}x{self.out}/{self.dtype}/{self.threads}t/{mode}"


@dataclass(frozen=True)
class PathTimings:
    """Seconds of the dense path and of the event path at the calibration densities."""

    dense: float
    event_low: float
    event_high: float

    @property
    def event_limit(self) -> float:
        """The density in ``[0, 1]`` up to which the event path is predicted to take at most
        ``SAFETY`` times the dense time. 0 unless it does so at the low calibration density
        (nothing is extrapolated below it: the event cost only falls with the density, so a
        path faster there is faster below); between the two points, linear in the density."""
        lo, hi = CALIBRATION_DENSITIES
        budget = SAFETY * self.dense
        if self.event_low > budget:
            return 0.0
        if self.event_high <= budget:
            return 1.0
        return lo + (hi - lo) * (budget - self.event_low) / (self.event_high - self.event_low)


#: ``measure(key)`` prepares random inputs for the layer and returns ``run(density)``: the seconds
#: of one event-path call on spikes of that density (``None``: one dense-path call); supplied by
#: :mod:`spikeforge.core.spike_linear`
Measure = Callable[[LayerKey], Callable[["float | None"], float]]

_lock = threading.Lock()
_limits: dict[LayerKey, float] = {}
_loaded: set[Path] = set()
#: the limits by the raw call shape ``(rows, width, out, dtype, threads, train)``: one dict
#: lookup per call once a shape is known (no key arithmetic, no lock)
known: dict[tuple[int, int, int, torch.dtype, int, bool], float] = {}


def _read(path: Path) -> dict[str, dict]:
    try:
        data = json.loads(path.read_text())
        if data.get("format") != _FORMAT or not isinstance(data.get("layers"), dict):
            return {}
        return data["layers"]
    except (OSError, ValueError, AttributeError):
        return {}


def _load(path: Path) -> None:
    """Adds the limits stored in ``path`` (once per process and file)."""
    if path in _loaded:
        return
    _loaded.add(path)
    for entry in _read(path).values():
        try:
            key = LayerKey(**entry["key"])
            timings = PathTimings(**entry["seconds"])
        except (KeyError, TypeError):
            continue
        _limits.setdefault(key, timings.event_limit)


def _store(path: Path, key: LayerKey, timings: PathTimings) -> None:
    layers = _read(path)
    layers[key.text()] = {
        "key": asdict(key),
        "seconds": asdict(timings),
        "event_limit": timings.event_limit,
    }
    try:
        write_json(path, {"format": _FORMAT, "layers": layers})
    except OSError:
        pass  # read-only cache folder: the limit stays in this process


def measure_timings(key: LayerKey, measure: Measure) -> PathTimings:
    """Times the dense path and the event path at both calibration densities, interleaved, and
    keeps the fastest round of each (other processes only ever add time: the minimum is the
    estimate that a loaded machine disturbs least, and the limits are stored for later runs);
    a call shorter than :data:`MIN_SECONDS` is repeated to last that long."""
    lo, hi = CALIBRATION_DENSITIES
    run = measure(key)
    runs: dict[float | None, list[float]] = {None: [], lo: [], hi: []}
    loops = {density: max(1, min(100, math.ceil(MIN_SECONDS / run(density)))) for density in runs}
    for _ in range(ROUNDS):
        for density, times in runs.items():
            times.append(sum(run(density) for _ in range(loops[density])) / loops[density])
    best = {d: min(t) for d, t in runs.items()}
    return PathTimings(dense=best[None], event_low=best[lo], event_high=best[hi])


def event_limit(key: LayerKey, measure: Measure, store: Path | None) -> float:
    """The density below which ``key`` takes the event path: from this process's memory, else
    from ``store`` (the JSON file beside the kernel library), else measured and saved there."""
    with _lock:
        if store is not None:
            _load(store)
        if key not in _limits:
            timings = measure_timings(key, measure)
            _limits[key] = timings.event_limit
            if store is not None:
                _store(store, key, timings)
        return _limits[key]


def forget() -> None:
    """Drops the limits of this process (the stored files are read again on the next call)."""
    with _lock:
        _limits.clear()
        _loaded.clear()
        known.clear()


def seconds(run: Callable[[], object]) -> float:
    """Wall seconds of one call of ``run``."""
    start = time.perf_counter()
    run()
    return time.perf_counter() - start
