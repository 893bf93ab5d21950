"""Token-set keys (spec §3.5): each token selects ``r`` hash-chosen neurons of the group (default
``r = 2``, ``M_tok = 64``) with hash-determined spike times; the union over tokens is emitted, so
pattern overlap grows with the number of shared tokens.

A value is an iterable of str tokens, or a str, which is split into tokens on every run of
characters other than letters and digits (``"usr/share/doc"`` -> usr, share, doc; ``"libc.so.6"``
-> libc, so, 6). Tokens are case-sensitive; duplicates count once; an empty set is silent.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import numpy as np

from .categorical import Events, is_missing
from .errors import EncodingError
from .hashing import SALT, check_key, draw_times, rng_for

__all__ = ["TokenSetEncoder", "tokenize"]

_SPLIT = re.compile(r"[\W_]+")


def tokenize(text: str) -> list[str]:
    """Split ``text`` on runs of non-alphanumeric characters, dropping empty tokens."""
    return [t for t in _SPLIT.split(text) if t]


class TokenSetEncoder:
    """One token-set key's group of ``n_neurons`` (M_tok) neurons, ``r`` neurons per token."""

    kind = "tok"

    def __init__(
        self,
        key: str,
        n_neurons: int = 64,
        n_steps: int = 64,
        r: int = 2,
        n_spikes: int = 1,
        salt: bytes = SALT,
    ) -> None:
        self.key = check_key(key)
        if not 1 <= r <= n_neurons or n_steps < 1 or not 1 <= n_spikes <= n_steps:
            raise EncodingError(f"key {key!r}: need 1 <= r <= n_neurons and 1 <= n_spikes <= T")
        self.n_neurons = n_neurons
        self.n_steps = n_steps
        self.r = r
        self.n_spikes = n_spikes
        self.salt = salt
        self._cache: dict[str, Events] = {}

    def tokens(self, value: object) -> list[str]:
        """The sorted distinct tokens of ``value`` (raises :class:`EncodingError` for bad types)."""
        if isinstance(value, str):
            toks: Iterable[object] = tokenize(value)
        elif isinstance(value, (list, tuple, set, frozenset)):
            toks = value
        else:
            raise EncodingError(
                f"key {self.key!r}: token-set value must be str or a list/tuple/set of str, "
                f"got {type(value).__name__}"
            )
        out = set()
        for t in toks:
            if not isinstance(t, str):
                raise EncodingError(f"key {self.key!r}: token {t!r} is not a str")
            if t:
                out.add(t)
        return sorted(out)

    def token_events(self, token: str) -> Events:
        """``(neurons [r * n_spikes], times)`` of one token."""
        hit = self._cache.get(token)
        if hit is None:
            rng = rng_for(self.key, self.kind, token, salt=self.salt)
            neurons = np.sort(rng.choice(self.n_neurons, size=self.r, replace=False))
            times = np.concatenate([draw_times(rng, self.n_steps, self.n_spikes) for _ in neurons])
            hit = (np.repeat(neurons.astype(np.int64), self.n_spikes), times)
            self._cache[token] = hit
        return hit

    def events(self, value: object) -> Events:
        """``(neurons, times)``: the union over the tokens of ``value``; empty when missing."""
        toks = [] if is_missing(value) else self.tokens(value)
        if not toks:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        parts = [self.token_events(t) for t in toks]
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
