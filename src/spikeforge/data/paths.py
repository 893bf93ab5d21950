"""Locating the offline data directory.

The data directory holds one sub-directory per data set (``mnist/``, ``fashion-mnist/``), each
containing the IDX files of that data set.
"""

from __future__ import annotations

import os
from pathlib import Path

from spikeforge.data.errors import OBTAIN_DATA_HELP, DataNotFoundError

__all__ = ["DATA_ENV_VAR", "resolve_data_dir"]

DATA_ENV_VAR = "SPIKEFORGE_DATA"
"""Environment variable naming the data directory when no explicit one is given."""

# parents: [0] data, [1] spikeforge, [2] src, [3] repository root (for a source checkout).
_REPO_ROOT = Path(__file__).resolve().parents[3]


def _fallback_dirs() -> list[tuple[Path, str]]:
    """Return the fallback candidates, in order, each with a description of where it came from."""
    candidates = [
        (Path.cwd().parent / "shared" / "data", "<cwd>/../shared/data"),
        (_REPO_ROOT.parent / "shared" / "data", "<repo root>/../shared/data"),
    ]
    unique: list[tuple[Path, str]] = []
    seen: set[Path] = set()
    for path, origin in candidates:
        key = path.resolve()
        if key not in seen:
            seen.add(key)
            unique.append((path, origin))
    return unique


def _not_found(looked_at: list[str]) -> DataNotFoundError:
    places = "\n".join(f"  - {place}" for place in looked_at)
    return DataNotFoundError(
        f"Could not find the spikeforge data directory. Looked at:\n{places}\n{OBTAIN_DATA_HELP}"
    )


def resolve_data_dir(data_dir: str | os.PathLike[str] | None = None) -> Path:
    """Return the absolute data directory.

    Resolution order:

    1. ``data_dir`` when given (e.g. from ``--data-dir``);
    2. the ``SPIKEFORGE_DATA`` environment variable when set and non-empty;
    3. the first existing directory of ``<cwd>/../shared/data`` and
       ``<repo root>/../shared/data``.

    An explicit directory (1 or 2) that does not exist is an error; it does not fall through to
    the next option.

    Raises:
        DataNotFoundError: naming every place looked at and how to obtain the data.
    """
    if data_dir is not None:
        explicit = [(Path(data_dir).expanduser(), "data_dir argument / --data-dir")]
    elif os.environ.get(DATA_ENV_VAR):
        explicit = [(Path(os.environ[DATA_ENV_VAR]).expanduser(), f"${DATA_ENV_VAR}")]
    else:
        explicit = []
    if explicit:
        path = explicit[0][0]
        if path.is_dir():
            return path.resolve()
        raise _not_found([f"{path} (from {explicit[0][1]}): not an existing directory"])

    candidates = _fallback_dirs()
    for path, _origin in candidates:
        if path.is_dir():
            return path.resolve()
    raise _not_found(
        [
            "no data_dir argument / --data-dir given",
            f"environment variable {DATA_ENV_VAR} not set",
            *(f"{path} ({origin}): not an existing directory" for path, origin in candidates),
        ]
    )
