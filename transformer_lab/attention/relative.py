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
zeros). ``max_relative_position = 0`` is plain causal attention, the baseline. Skewing itself, and its
blockwise form (O(L) memory with ``model.attention_implementation='blockwise'``), live in ``skewing``.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx

from transformer_lab.attention.core import XLA, AttentionCore, Implementation, cached_positions
from transformer_lab.attention.local import Local1DCore
from transformer_lab.attention.skewing import DistanceLogits

Array = jax.Array
FAR_DISTANCES = ('clip', 'zero')


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

    def distance_logits(self, key_length: int, dtype, scale: float) -> DistanceLogits:
        """q_i . E_{j-i} x scale for queries that are the last of key_length positions, unmaterialised:
        E for the distances -(key_length - 1) .. 0, [heads, key_length, d_h]."""
        return DistanceLogits(self.lookup(jnp.arange(-(key_length - 1), 1)).astype(dtype), scale)

    def logits_at(self, query: Array, position: Array, key_length: int) -> Array:
        """One decoding query [batch, 1, heads, d_h] at ``position`` against a cache of key_length slots
        (``cached_positions``) -> [batch, heads, 1, key_length]: O(key_length d_h), no skewing needed for a
        single row."""
        embeddings = self.lookup(cached_positions(position, key_length) - position).astype(query.dtype)
        return jnp.einsum('bqhd,hkd->bhqk', query, embeddings)


def _relative_embeddings(num_heads, head_dim, max_relative_position, share_heads, far_distances, rngs):
    if max_relative_position < 0:
        raise ValueError(f'max_relative_position must be >= 0, got {max_relative_position}')
    if max_relative_position == 0:  # the baseline: plain causal attention
        return None
    return RelativeEmbeddings(num_heads=num_heads, head_dim=head_dim, max_relative_position=max_relative_position,
                              share_heads=share_heads, far_distances=far_distances, rngs=rngs)


class RelativeLogits:
    """The relative cores' logits, through the attention core's hook: q_i . E_{j-i} / sqrt(d_h), over
    whole sequences as ``DistanceLogits`` (skewed, or computed blockwise, by the attention) and directly
    for one decoding query. ``relative`` None (max distance 0, the baseline) adds none."""

    relative: RelativeEmbeddings | None

    def added_logits(self, query: Array, key_length: int) -> DistanceLogits | None:
        if self.relative is None:
            return None
        return self.relative.distance_logits(key_length, query.dtype, 1 / math.sqrt(query.shape[-1]))

    def added_logits_at(self, query: Array, position: Array, key_length: int) -> Array | None:
        if self.relative is None:
            return None
        return self.relative.logits_at(query, position, key_length) / math.sqrt(query.shape[-1])


class RelativeCore(RelativeLogits, AttentionCore):
    """Causal relative self-attention over the whole sequence (the Music Transformer's "relative global")."""

    def __init__(self, *, num_heads: int, head_dim: int, causal: bool, rngs: nnx.Rngs,
                 implementation: Implementation = XLA, max_relative_position: int = 256, share_heads: bool = False,
                 far_distances: str = 'clip'):
        super().__init__(num_heads=num_heads, head_dim=head_dim, causal=causal, rngs=rngs,
                         implementation=implementation)
        if not causal:
            raise ValueError('relative attention here is the masked (decoder) kind; encoders use dot_product')
        self.relative = _relative_embeddings(num_heads, head_dim, max_relative_position, share_heads,
                                             far_distances, rngs)


class RelativeLocal1DCore(RelativeLogits, Local1DCore):
    """Relative attention inside masked local 1D blocks (the Music Transformer's "relative local"):
    query block n attends to blocks n-1 and n with relative logits over the 2 b memory positions."""

    def __init__(self, *, num_heads: int, head_dim: int, causal: bool, rngs: nnx.Rngs,
                 implementation: Implementation = XLA, block_length: int = 512, max_relative_position: int = 1024,
                 share_heads: bool = False, far_distances: str = 'clip'):
        super().__init__(num_heads=num_heads, head_dim=head_dim, causal=causal, rngs=rngs,
                         implementation=implementation, block_length=block_length)
        self.relative = _relative_embeddings(num_heads, head_dim, max_relative_position, share_heads,
                                             far_distances, rngs)
