"""Shared test helpers: small configs, the naive attention reference."""

import numpy as np
import pytest

from transformer_lab.config import base_config


def naive_attention(query, key, value, mask=None):
    """Obviously-correct numpy attention: loops over batch and head; mask True = may attend.

    query [B, Q, H, D], key/value [B, K, H, D], mask broadcastable to [B, H, Q, K].
    """
    batch, q_len, heads, dim = query.shape
    k_len = key.shape[1]
    mask = np.ones((batch, heads, q_len, k_len), bool) if mask is None else np.broadcast_to(
        mask, (batch, heads, q_len, k_len))
    out = np.zeros((batch, q_len, heads, value.shape[-1]))
    for b in range(batch):
        for h in range(heads):
            logits = query[b, :, h] @ key[b, :, h].T / np.sqrt(dim)
            logits = np.where(mask[b, h], logits, -np.inf)
            with np.errstate(invalid='ignore'):  # fully masked rows are NaN here; callers skip them
                weights = np.exp(logits - logits.max(-1, keepdims=True))
                weights /= weights.sum(-1, keepdims=True)
            out[b, :, h] = weights @ value[b, :, h]
    return out


@pytest.fixture
def tiny_model_config():
    config = base_config().model
    config.d_model, config.num_heads, config.d_ff = 32, 4, 64
    config.num_encoder_layers = config.num_decoder_layers = 2
    config.max_length = 32
    return config
