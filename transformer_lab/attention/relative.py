"""Relative positional self-attention (Shaw et al. 2018) made memory-efficient by "skewing"
(Huang et al. 2018, Music Transformer, Sec. 3.4), globally or inside local 1D blocks.

Each head learns a vector E_r for every distance r = j - i <= 0 between a key j and a query i, and the
logits become

    logits[i, j] = (q_i . k_j + q_i . E_{j-i}) / sqrt(d_h)         (j <= i; the future stays masked)

Shaw et al. gather E_{j-i} into an [L, L, d_h] tensor, O(L^2 d_h) memory (8.5 GB per layer at L = 2048,
d = 512, 8 heads). Skewing computes Q E^T once, [L, L] per head, and shifts each row into place
(``skew``), so the extra memory is O(L d_h) for E and O(L^2) for the logits plain attention has anyway.

Distances beyond ``max_relative_position`` are either **clipped** to it (Shaw et al.: every far key
shares E_{-max}), or get **zero**, i.e. no relative logit (the Music Transformer reference pads E with
zeros). ``max_relative_position = 0`` is plain causal attention, the baseline. Written by hand: no
maintained library implements skewing; tested against a naive gather of E_{j-i}
(tests/test_relative_attention.py).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx

from transformer_lab.attention.core import AttentionCore
from transformer_lab.attention.local import Local1DCore

Array = jax.Array
FAR_DISTANCES = ('clip', 'zero')


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
    gradient of Q E^T), 1.27x the memory of plain attention at L = 2048; blocks shrink it to
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


class RelativeEmbeddings(nnx.Module):
    """E: one learned vector per distance 0, -1, ..., -max_relative_position, per head (or shared by
    all heads), initialised like the projections (std d_h^-0.5)."""

    def __init__(self, *, num_heads: int, head_dim: int, max_relative_position: int, share_heads: bool,
                 far_distances: str, rngs: nnx.Rngs):
        if far_distances not in FAR_DISTANCES:
            raise ValueError(f'far_distances must be one of {FAR_DISTANCES}, got {far_distances!r}')
        self.num_heads, self.max_relative_position, self.far_distances = num_heads, max_relative_position, far_distances
        shape = (1 if share_heads else num_heads, max_relative_position + 1, head_dim)
        self.table = nnx.Param(nnx.initializers.normal(stddev=head_dim ** -0.5)(rngs.params(), shape))

    def lookup(self, distances: Array) -> Array:
        """distances int [n] (<= 0) -> E [heads, n, d_h]: clipped to -max, or zero beyond it."""
        steps = -distances
        table = self.table[...]
        rows = jnp.take(table, jnp.minimum(steps, self.max_relative_position), axis=1)
        if self.far_distances == 'zero':
            rows = jnp.where((steps <= self.max_relative_position)[None, :, None], rows, 0.0)
        return jnp.broadcast_to(rows, (self.num_heads, *rows.shape[1:]))

    def logits(self, query: Array, key_length: int) -> Array:
        """query [batch, q_len, heads, d_h] (the last q_len of key_length positions) -> the relative logits
        q_i . E_{j-i}, [batch, heads, q_len, key_length], by skewing (unscaled; garbage above the diagonal)."""
        embeddings = self.lookup(jnp.arange(-(key_length - 1), 1)).astype(query.dtype)
        return skewed_logits(query, embeddings)

    def logits_at(self, query: Array, position: Array, key_length: int) -> Array:
        """One decoding query [batch, 1, heads, d_h] at ``position`` against cache keys 0..key_length-1 ->
        [batch, heads, 1, key_length]: O(key_length d_h), no skewing needed for a single row."""
        embeddings = self.lookup(jnp.minimum(jnp.arange(key_length) - position, 0)).astype(query.dtype)
        return jnp.einsum('bqhd,hkd->bhqk', query, embeddings)


def _relative_embeddings(num_heads, head_dim, max_relative_position, share_heads, far_distances, rngs):
    if max_relative_position < 0:
        raise ValueError(f'max_relative_position must be >= 0, got {max_relative_position}')
    if max_relative_position == 0:  # the baseline: plain causal attention
        return None
    return RelativeEmbeddings(num_heads=num_heads, head_dim=head_dim, max_relative_position=max_relative_position,
                              share_heads=share_heads, far_distances=far_distances, rngs=rngs)


class RelativeLogits:
    """The relative cores' logits, through the attention core's hook: q_i . E_{j-i} / sqrt(d_h), by
    skewing over whole sequences and directly for one decoding query. ``relative`` None (max distance
    0, the baseline) adds none."""

    relative: RelativeEmbeddings | None

    def added_logits(self, query: Array, key_length: int) -> Array | None:
        if self.relative is None:
            return None
        return self.relative.logits(query, key_length) / math.sqrt(query.shape[-1])

    def added_logits_at(self, query: Array, position: Array, key_length: int) -> Array | None:
        if self.relative is None:
            return None
        return self.relative.logits_at(query, position, key_length) / math.sqrt(query.shape[-1])


class RelativeCore(RelativeLogits, AttentionCore):
    """Causal relative self-attention over the whole sequence (the Music Transformer's "relative global")."""

    def __init__(self, *, num_heads: int, head_dim: int, causal: bool, rngs: nnx.Rngs, implementation: str = 'xla',
                 max_relative_position: int = 256, share_heads: bool = False, far_distances: str = 'clip'):
        super().__init__(num_heads=num_heads, head_dim=head_dim, causal=causal, rngs=rngs,
                         implementation=implementation)
        if not causal:
            raise ValueError('relative attention here is the masked (decoder) kind; encoders use dot_product')
        self.relative = _relative_embeddings(num_heads, head_dim, max_relative_position, share_heads,
                                             far_distances, rngs)


class RelativeLocal1DCore(RelativeLogits, Local1DCore):
    """Relative attention inside masked local 1D blocks (the Music Transformer's "relative local"):
    query block n attends to blocks n-1 and n with relative logits over the 2 b memory positions."""

    def __init__(self, *, num_heads: int, head_dim: int, causal: bool, rngs: nnx.Rngs, implementation: str = 'xla',
                 block_length: int = 512, max_relative_position: int = 1024, share_heads: bool = False,
                 far_distances: str = 'clip'):
        super().__init__(num_heads=num_heads, head_dim=head_dim, causal=causal, rngs=rngs,
                         implementation=implementation, block_length=block_length)
        self.relative = _relative_embeddings(num_heads, head_dim, max_relative_position, share_heads,
                                             far_distances, rngs)
