"""Errors raised by the ANN -> SNN conversion (:mod:`spikeforge.convert`)."""

from __future__ import annotations


class UnsupportedLayerError(TypeError):
    """A layer, function or connection has no exact spiking equivalent in the conversion.

    The message names the layer's path in the model (the ``torch.fx`` node name for functions)
    and its type, e.g. ``UnsupportedLayerError: MaxPool2d at features.3 cannot be converted:
    max pooling is not linear (to_qcfs replaces it by AvgPool2d)``.
    """


__all__ = ["UnsupportedLayerError"]
