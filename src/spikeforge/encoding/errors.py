"""Exceptions raised by :mod:`spikeforge.encoding`."""

from __future__ import annotations

__all__ = ["EncodingError", "NotFittedError"]


class EncodingError(ValueError):
    """A record, key or value cannot be encoded; the message names the key and the value."""


class NotFittedError(EncodingError):
    """``transform`` was called on an encoder that needs ``fit`` first."""
