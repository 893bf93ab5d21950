"""Errors raised by the TTFS mapping and simulation."""

from __future__ import annotations


class UnsupportedLayerError(TypeError):
    """A layer (or layer arrangement) has no exact TTFS equivalent.

    The message names the layer's path in the model and its type, e.g.
    ``UnsupportedLayerError: Upsample at features.7 cannot be mapped to TTFS``.
    """


class InputRangeError(ValueError):
    """Input values lie outside the declared ``input_range`` (and clipping was not requested)."""


__all__ = [
    "InputRangeError",
    "UnsupportedLayerError",
]
