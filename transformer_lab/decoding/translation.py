"""Translation: source sentences in, target sentences out, by greedy decoding, sampling or beam search."""

from __future__ import annotations

import numpy as np

from transformer_lab.data.tokenizers import encode_padded
from transformer_lab.decoding.beam_search import beam_search
from transformer_lab.decoding.generation import generate


def translate(graphdef, params, tokenizer, sources: list[str], *, rows: int, source_length: int,
              max_length: int, beam_size: int = 1, alpha: float = 0.6, extra_length: int | None = None,
              **sampling) -> list[str]:
    """Translations of ``sources``, ``rows`` at a time: beam search when ``beam_size`` > 1 (length
    penalty ``alpha``, at most source length + ``extra_length`` tokens), else greedy unless
    ``sampling`` (temperature, top_k, seed) says otherwise."""
    outputs = []
    for start in range(0, len(sources), rows):
        chunk = sources[start:start + rows]
        inputs = encode_padded(tokenizer, chunk, source_length, rows)
        if beam_size > 1:
            tokens = beam_search(graphdef, params, inputs=inputs, beam_size=beam_size, alpha=alpha,
                                          max_length=max_length, extra_length=extra_length)
        else:
            tokens = generate(graphdef, params, batch_size=rows, max_length=max_length, inputs=inputs,
                                       **sampling)
        outputs += [tokenizer.decode(row) for row in np.asarray(tokens)[:len(chunk)]]
    return outputs
