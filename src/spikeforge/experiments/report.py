"""The report folder every experiment writes through: JSON written atomically with the
environment, plots, text tables, and the code versions behind resumed results.

An experiment resumes from what its folder already holds (training checkpoints, finished sweep
points). :class:`ReportFolder` keeps ``provenance.json`` there, the list of code versions
(:func:`spikeforge.io.code_version`) that have written to the folder. Opening a folder with
another code version than the ones listed prints a warning and appends it, and every report's
``environment.code_versions`` lists all of them: results of different code are never mixed
silently. Delete the folder (or pass another ``--out``) to start afresh.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from spikeforge.io import atomic_write, code_version, environment, write_json
from spikeforge.viz import write_png

__all__ = ["PROVENANCE_FILE", "ReportFolder"]

PROVENANCE_FILE = "provenance.json"
UNKNOWN_VERSION = "unknown (written before code versions were recorded)"


def _warn(message: str) -> None:
    print(f"spikeforge: warning: {message}", file=sys.stderr)


class ReportFolder:
    """An experiment's output folder ``path`` (created on first write).

    Args:
        path: the folder.
        warn: called with the message when results of another code version are resumed
            (default: print to stderr).
    """

    def __init__(self, path: str | os.PathLike[str], warn: Callable[[str], None] = _warn) -> None:
        self.path = Path(path)
        self.code_versions = self._record_code_version(warn)

    def _record_code_version(self, warn: Callable[[str], None]) -> list[str]:
        current = code_version()
        record = self.path / PROVENANCE_FILE
        if record.exists():
            try:
                versions = list(json.loads(record.read_text())["code_versions"])
            except (ValueError, KeyError, TypeError) as exc:
                raise ValueError(f"{record} is not a provenance record: {exc}") from exc
        elif self.path.is_dir() and any(self.path.iterdir()):
            versions = [UNKNOWN_VERSION]
        else:
            versions = []
        if current not in versions:
            if versions:
                warn(
                    f"{self.path} holds results of code version {', '.join(versions)}; "
                    f"resuming with {current}. Both are recorded in the report's "
                    "environment.code_versions; delete the folder to start afresh."
                )
            versions.append(current)
            write_json(record, {"code_versions": versions})
        return versions

    @property
    def mixed(self) -> bool:
        """Whether results of more than one code version share this folder."""
        return len(self.code_versions) > 1

    def environment(self, **extra: Any) -> dict[str, Any]:
        """:func:`spikeforge.io.environment` plus every code version that wrote to this folder
        (``code_versions``) and ``extra``."""
        return environment() | {"code_versions": list(self.code_versions)} | extra

    def write_json(self, name: str, data: Any) -> Path:
        """``data`` as indented JSON in ``path / name``, atomically."""
        return write_json(self.path / name, data)

    def write_text(self, name: str, text: str) -> Path:
        """``text`` (UTF-8) in ``path / name``, atomically."""
        return atomic_write(self.path / name, lambda fh: fh.write(text.encode()))

    def write_png(self, name: str, fig: Figure, dpi: int = 120) -> Path:
        """``fig`` as PNG in ``path / name``, atomically."""
        return write_png(fig, self.path / name, dpi=dpi)
