"""One decoding core for every model: greedy and temperature / top-k sampling over the model's cache
(``generate``, decoding/generation.py), beam search (``beam_search``, decoding/beam_search.py), and
translation of sentences with either (``translate``, decoding/translation.py).

Works with any model of the interface of models/__init__.py (``init_decode_state``, ``decode_step``,
``stops_at_eos`` and its head's ``sample``).
"""

from transformer_lab.decoding.beam_search import beam_search, length_penalty
from transformer_lab.decoding.generation import generate
from transformer_lab.decoding.translation import translate

__all__ = ['generate', 'beam_search', 'length_penalty', 'translate']
