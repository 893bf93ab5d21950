"""Stable, process-independent seeds and spike times (spec §3.3).

``seed(fields)`` is the first 8 bytes (little-endian) of BLAKE2b over a fixed salt and the UTF-8
fields joined by U+001F, a separator that keys may not contain. Spike times come from
``numpy.random.Generator(PCG64(seed))``. Python's salted ``hash()`` is never used, so patterns are
identical across processes and ``PYTHONHASHSEED`` values.
"""

from __future__ import annotations

import hashlib

import numpy as np

from .errors import EncodingError

__all__ = ["SALT", "SEPARATOR", "check_key", "draw_times", "rng_for", "stable_seed"]

SEPARATOR = "\x1f"
SALT = b"spikeforge.encoding.v1"


def check_key(key: object) -> str:
    """Return ``key`` if it is a non-empty str without the separator, else raise."""
    if not isinstance(key, str) or not key:
        raise EncodingError(f"keys must be non-empty str, got {key!r}")
    if SEPARATOR in key:
        raise EncodingError(f"key {key!r} contains the reserved separator U+001F")
    return key


def stable_seed(*fields: object, salt: bytes = SALT) -> int:
    """64-bit seed from ``fields`` (each turned into str, joined by U+001F), BLAKE2b-hashed."""
    text = SEPARATOR.join(str(f) for f in fields)
    digest = hashlib.blake2b(text.encode("utf-8"), digest_size=8, key=salt[:64]).digest()
    return int.from_bytes(digest, "little")


def rng_for(*fields: object, salt: bytes = SALT) -> np.random.Generator:
    """A numpy PCG64 generator seeded with :func:`stable_seed` of ``fields``."""
    return np.random.Generator(np.random.PCG64(stable_seed(*fields, salt=salt)))


def draw_times(rng: np.random.Generator, n_steps: int, n_spikes: int = 1) -> np.ndarray:
    """``n_spikes`` distinct spike times uniform in ``{0, ..., n_steps - 1}``, sorted, int64."""
    if n_spikes == 1:
        return np.array([int(rng.integers(n_steps))], dtype=np.int64)
    return np.sort(rng.choice(n_steps, size=n_spikes, replace=False)).astype(np.int64)
