"""Key-value record encoders for spiking networks (spec ``file-classification.md`` §3.2-3.5).

Correlative temporal encoding: each key owns a group of input neurons whose spike times are
drawn from stable hash seeds of (key, value), so records sharing key-value pairs share
coincident spikes. Modules: :mod:`.categorical` (categorical and boolean keys), :mod:`.tiles`
(numeric keys, tile coding fitted on training data), :mod:`.tokens` (token-set keys),
:mod:`.keyvalue` (:class:`KeyValueEncoder`, spikes ``[T, B, N]`` float32 0/1),
:mod:`.hashing` (BLAKE2b seeds, never Python's ``hash()``).
"""

from .categorical import BooleanEncoder, CategoricalEncoder
from .errors import EncodingError, NotFittedError
from .hashing import stable_seed
from .keyvalue import DEFAULT_NUMERIC_TRANSFORMS, KEY_TYPES, KeyValueEncoder
from .tiles import TileEncoder
from .tokens import TokenSetEncoder, tokenize

__all__ = [
    "DEFAULT_NUMERIC_TRANSFORMS",
    "KEY_TYPES",
    "BooleanEncoder",
    "CategoricalEncoder",
    "EncodingError",
    "KeyValueEncoder",
    "NotFittedError",
    "TileEncoder",
    "TokenSetEncoder",
    "stable_seed",
    "tokenize",
]
