"""Looking inside: the attention probabilities of any model, per layer and head, for each kind of
attention it has (encoder self-attention, decoder self-attention, encoder-decoder attention).

    run = transformer_lab.load('workdirs/bible_enes')
    maps = transformer_lab.attention_weights(run, batch)    # {'decoder_self': [layers, heads, q, k], ...}

The probabilities come from each core's reference path (``AttentionCore.weights``: local cores' in
the full [q_len, k_len] frame, exactly 0 where a query cannot see), switched on only inside
``capturing_weights``; the training step never computes them.
"""

from __future__ import annotations

import numpy as np
from flax import nnx

from transformer_lab.attention.core import capturing_weights

def attention_weights(run_or_model, batch: dict, example: int = 0) -> dict[str, np.ndarray]:
    """The attention probabilities of row ``example`` of ``batch`` (as the run's pipeline yields it):
    per kind, float32 [layers, heads, q_len, k_len]. ``run_or_model``: a loaded run
    (``transformer_lab.load``) or a model. The Image Transformer's positions are in its generation order
    (``model.order[t]`` is the raster index of position t). All layers and heads are kept: for long
    sequences pass a batch of one row (a 3072-position image: 38 MB per layer and head)."""
    model = getattr(run_or_model, 'model', run_or_model)
    try:
        with capturing_weights():
            model(batch)     # each attention module sows its probabilities on itself
        return {kind: np.stack([np.asarray(module.attention_weights.get_value()[0][example]) for module in modules])
                for kind, modules in model.attention_layers().items()}
    finally:
        nnx.pop(model, nnx.Intermediate)     # the model as it was
