"""Logits that depend on a query and its distance to the key, q_i . E_{j-i} (relative attention, Shaw et
al. 2018), placed by "skewing" (Huang et al. 2018, Music Transformer, Sec. 3.4.1): over whole sequences
(``skew``, ``skewed_logits``) or over one (query block, key block) pair of blockwise attention
(``skew_window``). ``DistanceLogits`` carries them unmaterialised from a relative core to the attention,
which materialises them (XLA, cuDNN) or computes them a block at a time (blockwise).

Written by hand: no maintained library implements skewing; tested against a naive gather of E_{j-i}
(tests/test_relative_attention.py).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

Array = jax.Array


def skew(relative: Array) -> Array:
    """The skewing procedure (Huang et al., Sec. 3.4.1), for ``q_len <= k_len``.

    relative [..., q_len, k_len] = Q E^T, column r holding distance r - (k_len - 1). Query i sits at
    key index k_len - q_len + i, so its logit for key j needs column j + q_len - 1 - i: a different
    shift per row. Pad one zero column on the left, flatten the rows, drop the first q_len entries and
    cut the rest into rows of k_len: entry (i, j) lands on q_i . E_{j - (k_len - q_len + i)}. (For a
    square input this is the paper's pad, reshape to [L + 1, L], drop the first row.) Entries for keys
    after their query (j > its index) hold garbage and must be masked.
    """
    *batch, q_len, k_len = relative.shape
    padded = jnp.pad(relative, [(0, 0)] * len(batch) + [(0, 0), (1, 0)])
    flat = padded.reshape(*batch, q_len * (k_len + 1))
    return flat[..., q_len:].reshape(*batch, q_len, k_len)


def skew_window(relative: Array, key_block: int) -> Array:
    """Skewing for one block pair of blockwise attention: relative [..., b_q, b_q + b_k - 1] = Q_b W^T,
    W the window of E whose row r holds distance d_0 + r, d_0 = (first key) - (last query) of the pair
    -> [..., b_q, b_k], entry (i, j) = q_i . E_{d_0 + j + (b_q - 1 - i)}, i.e. the distance of key j
    to query i. Row i shifts left by b_q - 1 - i: pad one zero column on the right (rows of b_q + b_k),
    flatten, and read rows of b_q + b_k - 1 from entry b_q - 1 on; their first b_k columns are the
    logits. Entries of distances > 0 (keys after the query) come from the window's zero rows or are
    masked.
    """
    *batch, q_block, width = relative.shape
    padded = jnp.pad(relative, [(0, 0)] * len(batch) + [(0, 0), (0, 1)])
    flat = padded.reshape(*batch, q_block * (width + 1))
    rows = flat[..., q_block - 1:q_block - 1 + q_block * width].reshape(*batch, q_block, width)
    return rows[..., :key_block]


def unskew_window(placed: Array, query_block: int) -> Array:
    """The transpose of ``skew_window``: placed [..., b_q, b_k] -> [..., b_q, b_q + b_k - 1], entry (i, j) of
    ``placed`` added to column j + (b_q - 1 - i) of row i, zeros elsewhere: the gradient of Q_b W^T from that
    of the placed logits (blockwise attention's backward pass). Its shapes fix b_q; b_k is ``placed``'s."""
    *batch, _, key_block = placed.shape
    shape = (*batch, query_block, query_block + key_block - 1)
    return jax.linear_transpose(lambda relative: skew_window(relative, key_block),
                                jax.ShapeDtypeStruct(shape, placed.dtype))(placed)[0]


QUERY_ROWS_PER_BLOCK = 512


def _block_logits(query_block: Array, embeddings: Array, start: int, q_len: int) -> Array:
    """Skewed relative logits of query rows start .. start + b - 1 over every key [batch, heads, b, k_len]:
    only the keys these rows may see are computed (their causal prefix), the rest are zeros."""
    k_len = embeddings.shape[1]
    visible = k_len - q_len + start + query_block.shape[1]     # the last row's key index, plus one
    relative = jnp.einsum('bqhd,hkd->bhqk', query_block, embeddings[:, k_len - visible:])
    return jnp.pad(skew(relative), [(0, 0), (0, 0), (0, 0), (0, k_len - visible)])


@jax.custom_vjp
def skewed_logits(query: Array, embeddings: Array) -> Array:
    """skew(Q E^T): query [batch, q_len, heads, d_h] (the last q_len of k_len positions), embeddings
    [heads, k_len, d_h] (distances -(k_len - 1) .. 0) -> [batch, heads, q_len, k_len], the entry (i, j)
    being q_i . E_{j-i} for the keys j a query sees (the rest is garbage or zero: masked anyway).

    Computed, and differentiated, in blocks of ``QUERY_ROWS_PER_BLOCK`` query rows. Plain autodiff of
    ``skew`` keeps a second [heads, q_len, k_len] tensor alive in the backward pass (the un-skewed
    gradient of Q E^T), more memory than plain attention (docs/benchmarks.md); blocks shrink it to
    [heads, block, k_len], and a block skips the keys after its last query (half the FLOPs of Q E^T).
    The residuals are Q and E only, O(L d_h).
    """
    q_len = query.shape[1]
    return jnp.concatenate([_block_logits(query[:, start:start + QUERY_ROWS_PER_BLOCK], embeddings, start, q_len)
                            for start in range(0, q_len, QUERY_ROWS_PER_BLOCK)], axis=2)


def _skewed_logits_forward(query, embeddings):
    return skewed_logits(query, embeddings), (query, embeddings)


def _skewed_logits_backward(residuals, gradient):
    query, embeddings = residuals
    q_len = query.shape[1]
    query_gradients, embeddings_gradient = [], jnp.zeros_like(embeddings)
    for start in range(0, q_len, QUERY_ROWS_PER_BLOCK):
        block = query[:, start:start + QUERY_ROWS_PER_BLOCK]
        _, block_vjp = jax.vjp(lambda q, e: _block_logits(q, e, start, q_len), block, embeddings)
        query_gradient, block_embeddings_gradient = block_vjp(gradient[:, :, start:start + block.shape[1]])
        query_gradients.append(query_gradient)
        embeddings_gradient = embeddings_gradient + block_embeddings_gradient
    return jnp.concatenate(query_gradients, axis=1), embeddings_gradient


skewed_logits.defvjp(_skewed_logits_forward, _skewed_logits_backward)


@dataclasses.dataclass(frozen=True)
class DistanceLogits:
    """Logits q_i . E_{j-i} x ``scale`` that depend on the query and the distance j - i <= 0 only, for
    queries that are the last q_len of k_len positions: ``embeddings`` [heads, k_len, d_h] hold the
    distances -(k_len - 1) .. 0. A relative core hands them to the attention unmaterialised, so that
    blockwise attention can compute them a block pair at a time."""

    embeddings: Array
    scale: float

    def dense(self, query: Array) -> Array:
        """The logits for query [batch, q_len, heads, d_h]: [batch, heads, q_len, k_len] (``skewed_logits``)."""
        return skewed_logits(query, self.embeddings) * self.scale


def dense_logits(logits: Array | DistanceLogits | None, query: Array) -> Array | None:
    """Added logits as an array (or None): ``DistanceLogits`` materialised for ``query``."""
    return logits.dense(query) if isinstance(logits, DistanceLogits) else logits
