"""Blockwise attention: exact softmax attention over blocks of keys with a running softmax, which never
holds a [q_len, k_len] tensor (Rabe & Staats 2021, "Self-attention Does Not Need O(n^2) Memory"; the
forward and backward passes of FlashAttention-2, Dao 2023), with the relative logits of the Music
Transformer (Huang et al. 2018) computed inside each block pair.

For a query block Q_b [b_q, d] and its key blocks K_j, V_j [b_k, d], S_j = Q_b K_j^T / sqrt(d) + R_j (R_j
the pair's relative logits, or none) under the pair's mask; the output is built one key block at a time:

    m_j = max(m_{j-1}, rowmax S_j),    l_j = e^{m_{j-1} - m_j} l_{j-1} + rowsum e^{S_j - m_j},
    A_j = e^{m_{j-1} - m_j} A_{j-1} + e^{S_j - m_j} V_j,     O_b = A_n / l_n,    lse_b = m_n + log l_n.

The backward pass (a custom VJP) keeps Q, K, V, E, O and lse [batch, heads, q_len], recomputes each
block's P_j = e^{S_j - lse_b}, and with D = rowsum(dO * O):

    dV_j += P_j^T dO_b,    dS_j = P_j * (dO_b V_j^T - D_b),    dQ_b += dS_j K_j,    dK_j += dS_j^T Q_b,

and for R_j = skew_window(Q_b W_j^T) (W_j: the pair's b_q + b_k - 1 rows of E): dQ_b += G_j W_j and
dW_j += G_j^T Q_b, G_j being dS_j un-skewed (the transpose of ``skew_window``).

Causal attention loops over the key blocks up to a query block's last query only: blocks wholly in the
future are skipped, not masked. Memory is O(L d) plus one [heads, b_q, b_k] block; query blocks run one
after another, batch and heads inside a block together. ``_block_scores`` is the inner block's one
place, where a fused kernel (Pallas) may later stand in without callers changing. Written by hand: JAX
has no blockwise attention with a bias computed per block; tested against XLA's attention with the
logits materialised (tests/test_blockwise_attention.py).
"""

from __future__ import annotations

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp

from transformer_lab.attention.skewing import DistanceLogits, skew_window, unskew_window
from transformer_lab.backends import float32_product

Array = jax.Array
FLOAT32 = jnp.float32


@dataclasses.dataclass(frozen=True)
class _Plan:
    """The static shape of one blockwise call: lengths, blocks (lengths padded up to whole blocks) and
    whether the attention is causal (the queries being the last q_len of the k_len positions)."""

    q_len: int
    k_len: int
    query_block: int
    key_block: int
    causal: bool
    scale: float
    relative_scale: float

    @property
    def query_blocks(self) -> int:
        return -(-self.q_len // self.query_block)

    @property
    def key_blocks(self) -> int:
        return -(-self.k_len // self.key_block)

    @property
    def padded_q_len(self) -> int:
        return self.query_blocks * self.query_block

    @property
    def window(self) -> int:
        """Rows of E one block pair spans: its distances, b_q + b_k - 1 of them."""
        return self.query_block + self.key_block - 1

    def keys_needed(self, query_block: Array) -> Array:
        """How many key blocks query block ``query_block`` attends: all, or (causal) up to its last query's."""
        if not self.causal:
            return jnp.asarray(self.key_blocks)
        last_query = self.k_len - self.q_len + (query_block + 1) * self.query_block - 1
        return jnp.minimum(last_query // self.key_block + 1, self.key_blocks)

    def window_start(self, query_block: Array, key_block: Array) -> Array:
        """The row of the padded E (``_padded_embeddings``) where the pair's window begins, the row of its
        distance d_0 = (first key) - (last query): d_0 + (k_len - 1) + (padded q_len - q_len)."""
        return key_block * self.key_block - query_block * self.query_block - self.query_block + self.padded_q_len

    def visible(self, mask: Array | None, query_block: Array, key_block: Array) -> Array:
        """bool [1 or batch, 1 or heads, b_q, b_k]: the pair's keys that exist (not padding), are not
        in the future (causal) and that ``mask`` allows (``_padded_mask``: its axes of 1 stay 1)."""
        queries = self.k_len - self.q_len + query_block * self.query_block + jnp.arange(self.query_block)
        keys = key_block * self.key_block + jnp.arange(self.key_block)
        visible = jnp.broadcast_to(keys[None, :] < self.k_len, (self.query_block, self.key_block))
        if self.causal:
            visible = visible & (keys[None, :] <= queries[:, None])
        visible = visible[None, None]
        if mask is not None:
            q_rows, k_columns = mask.shape[2:]
            visible = visible & jax.lax.dynamic_slice(
                mask, (0, 0, query_block * self.query_block if q_rows > 1 else 0,
                       key_block * self.key_block if k_columns > 1 else 0),
                (*mask.shape[:2], min(q_rows, self.query_block), min(k_columns, self.key_block)))
        return visible


def _block(x: Array, index: Array, size: int) -> Array:
    """Block ``index`` of ``size`` rows along axis 2 of a heads-major [batch, heads, length, d]."""
    return jax.lax.dynamic_slice_in_dim(x, index * size, size, axis=2)


def _add_block(total: Array, part: Array, start: Array, axis: int) -> Array:
    """``total`` with ``part`` added at ``start`` along ``axis`` (in place inside XLA's loops)."""
    current = jax.lax.dynamic_slice_in_dim(total, start, part.shape[axis], axis=axis)
    return jax.lax.dynamic_update_slice_in_dim(total, current + part.astype(total.dtype), start, axis=axis)


def _window(plan: _Plan, embeddings: Array | None, query_block: Array, key_block: Array) -> Array | None:
    """W_j: the b_q + b_k - 1 rows of the padded E [heads, rows, d] the pair's distances span, or None."""
    if embeddings is None:
        return None
    return jax.lax.dynamic_slice_in_dim(embeddings, plan.window_start(query_block, key_block), plan.window, axis=1)


def _block_scores(plan: _Plan, query: Array, key: Array, window: Array | None) -> Array:
    """S = Q_b K_j^T / sqrt(d) + skew_window(Q_b W^T) x relative scale, float32 [batch, heads, b_q, b_k]
    for query [batch, heads, b_q, d], key [batch, heads, b_k, d], window [heads, b_q + b_k - 1, d]."""
    scores = float32_product('bhqd,bhkd->bhqk', query, key) * plan.scale
    if window is not None:
        relative = float32_product('bhqd,hwd->bhqw', query, window)
        scores = scores + skew_window(relative, plan.key_block) * plan.relative_scale
    return scores


def _forward_query_block(plan: _Plan, query, key, value, embeddings, mask, query_block):
    """One query block's output [batch, heads, b_q, d] and lse [batch, heads, b_q] (module docstring)."""
    block_query = _block(query, query_block, plan.query_block)

    def step(key_block, carry):
        peak, total, accumulated = carry
        scores = _block_scores(plan, block_query, _block(key, key_block, plan.key_block),
                               _window(plan, embeddings, query_block, key_block))
        scores = jnp.where(plan.visible(mask, query_block, key_block), scores, -jnp.inf)
        new_peak = jnp.maximum(peak, scores.max(-1))
        finite_peak = jnp.where(jnp.isfinite(new_peak), new_peak, 0.0)   # rows that have seen no key yet
        weights = jnp.exp(scores - finite_peak[..., None])
        correction = jnp.exp(peak - finite_peak)
        accumulated = accumulated * correction[..., None] + float32_product(
            'bhqk,bhkd->bhqd', weights.astype(value.dtype), _block(value, key_block, plan.key_block))
        return new_peak, total * correction + weights.sum(-1), accumulated

    rows = query.shape[:2] + (plan.query_block,)
    peak, total, accumulated = jax.lax.fori_loop(
        0, plan.keys_needed(query_block), step,
        (jnp.full(rows, -jnp.inf, FLOAT32), jnp.zeros(rows, FLOAT32), jnp.zeros(rows + value.shape[-1:], FLOAT32)))
    seen = total > 0      # a row that sees no key (fully masked) gets output 0
    output = accumulated / jnp.where(seen, total, 1.0)[..., None]
    return output.astype(query.dtype), jnp.where(seen, peak + jnp.log(jnp.where(seen, total, 1.0)), 0.0)


def _forward(plan: _Plan, query, key, value, embeddings, mask):
    """O [batch, heads, padded q_len, d] and lse [batch, heads, padded q_len], query block by query block."""
    outputs, lse = jax.lax.map(
        lambda index: _forward_query_block(plan, query, key, value, embeddings, mask, index),
        jnp.arange(plan.query_blocks))
    batch, heads = query.shape[:2]
    output = jnp.moveaxis(outputs, 0, 2).reshape(batch, heads, plan.padded_q_len, -1)
    return output, jnp.moveaxis(lse, 0, 2).reshape(batch, heads, plan.padded_q_len)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _attention(plan: _Plan, query, key, value, embeddings, mask):
    """Blockwise attention on heads-major, block-padded inputs (``blockwise_attention`` prepares them)."""
    return _forward(plan, query, key, value, embeddings, mask)[0]


def _attention_forward(plan, query, key, value, embeddings, mask):
    """The forward pass, keeping what the backward pass recomputes the blocks from: O(L d) residuals."""
    output, lse = _forward(plan, query, key, value, embeddings, mask)
    return output, (query, key, value, embeddings, mask, output, lse)


def _backward_block_pair(plan: _Plan, residuals, query_block: Array, key_block: Array, carry):
    """One block pair's share of the gradients (module docstring): with P = e^{S - lse} over the visible keys,
    dV_j += P^T dO_b, dS = P * (dO_b V_j^T - D_b), dQ_b += dS K_j / sqrt(d), dK_j += dS^T Q_b / sqrt(d), and for
    relative logits G = unskew_window(dS) x relative scale: dQ_b += G W_j, dW_j += G^T Q_b per batch row
    (summed over rows once, after the loops: a sum inside them would be a cross-device reduction per pair
    under data parallelism). carry: (dQ_b [batch, heads, b_q, d], dK, dV [batch, heads, padded k_len, d],
    dE per row [batch, heads, rows of padded E, d] or a placeholder), float32."""
    query, key, value, embeddings, mask, output_gradient, lse, row_dots = residuals
    query_gradient, key_gradient, value_gradient, embeddings_gradient = carry
    rows = query_block * plan.query_block
    block_query, block_gradient = _block(query, query_block, plan.query_block), _block(output_gradient, query_block,
                                                                                       plan.query_block)
    block_lse = jax.lax.dynamic_slice_in_dim(lse, rows, plan.query_block, axis=2)[..., None]
    block_dots = jax.lax.dynamic_slice_in_dim(row_dots, rows, plan.query_block, axis=2)[..., None]
    block_key, block_value = _block(key, key_block, plan.key_block), _block(value, key_block, plan.key_block)
    window = _window(plan, embeddings, query_block, key_block)
    scores = _block_scores(plan, block_query, block_key, window)
    weights = jnp.where(plan.visible(mask, query_block, key_block), jnp.exp(scores - block_lse), 0.0)
    value_part = float32_product('bhqk,bhqd->bhkd', weights.astype(block_gradient.dtype), block_gradient)
    score_gradient = weights * (float32_product('bhqd,bhkd->bhqk', block_gradient, block_value) - block_dots)
    scaled = (score_gradient * plan.scale).astype(query.dtype)
    query_gradient = query_gradient + float32_product('bhqk,bhkd->bhqd', scaled, block_key)
    key_part = float32_product('bhqk,bhqd->bhkd', scaled, block_query)
    keys = key_block * plan.key_block
    key_gradient = _add_block(key_gradient, key_part, keys, axis=2)
    value_gradient = _add_block(value_gradient, value_part, keys, axis=2)
    if window is not None:
        unskewed = unskew_window(score_gradient * plan.relative_scale, plan.query_block).astype(query.dtype)
        query_gradient = query_gradient + float32_product('bhqw,hwd->bhqd', unskewed, window)
        window_part = float32_product('bhqw,bhqd->bhwd', unskewed, block_query)
        embeddings_gradient = _add_block(embeddings_gradient, window_part, plan.window_start(query_block, key_block),
                                         axis=2)
    return query_gradient, key_gradient, value_gradient, embeddings_gradient


def _attention_backward(plan: _Plan, residuals, output_gradient):
    """The custom VJP's backward pass: query blocks one after another, each over the key blocks it attends
    (``_backward_block_pair``), from the residuals Q, K, V, E, the mask, O and lse. Returns the cotangents
    of (query, key, value, embeddings, mask) in the inputs' dtypes; None for the mask and absent E."""
    query, key, value, embeddings, mask, output, lse = residuals
    row_dots = (output_gradient.astype(FLOAT32) * output.astype(FLOAT32)).sum(-1)      # D [batch, heads, q_len]
    pair_residuals = (query, key, value, embeddings, mask, output_gradient, lse, row_dots)

    def query_row(query_block, gradients):
        query_gradients, *others = gradients
        query_gradient, *others = jax.lax.fori_loop(
            0, plan.keys_needed(query_block),
            lambda key_block, carry: _backward_block_pair(plan, pair_residuals, query_block, key_block, carry),
            (jnp.zeros_like(_block(query, query_block, plan.query_block), FLOAT32), *others))
        query_gradients = jax.lax.dynamic_update_slice_in_dim(query_gradients, query_gradient,
                                                              query_block * plan.query_block, axis=2)
        return query_gradients, *others

    # zeros_like: accumulators sharded as their inputs are (a batch-sharded mesh adds blocks in place).
    zeros = [jnp.zeros_like(x, FLOAT32) for x in (query, key, value)]
    zeros.append(jnp.zeros_like(query, FLOAT32, shape=query.shape[:2] + embeddings.shape[1:])
                 if embeddings is not None else jnp.zeros((), FLOAT32))
    query_gradient, key_gradient, value_gradient, embeddings_gradient = jax.lax.fori_loop(
        0, plan.query_blocks, query_row, tuple(zeros))
    embeddings_gradient = None if embeddings is None else embeddings_gradient.sum(0).astype(embeddings.dtype)
    return (query_gradient.astype(query.dtype), key_gradient.astype(key.dtype), value_gradient.astype(value.dtype),
            embeddings_gradient, None)


_attention.defvjp(_attention_forward, _attention_backward)


def _heads_major(x: Array, length: int) -> Array:
    """[batch, len, heads, d] -> [batch, heads, length, d], zero-padded at the end up to ``length``."""
    return jnp.pad(x, [(0, 0), (0, length - x.shape[1]), (0, 0), (0, 0)]).swapaxes(1, 2)


def _padded_mask(mask: Array, plan: _Plan) -> Array:
    """A mask broadcastable to [batch, heads, q_len, k_len] as 4 axes, its query and key axes padded with
    False up to whole blocks; axes of 1 stay 1 (a key mask [batch, 1, 1, k_len] stays O(L))."""
    mask = mask.reshape((1,) * (4 - mask.ndim) + mask.shape)
    padding = [(0, 0), (0, 0)] + [(0, blocks * size - length) if extent > 1 else (0, 0) for extent, blocks, size, length
                                  in ((mask.shape[2], plan.query_blocks, plan.query_block, plan.q_len),
                                      (mask.shape[3], plan.key_blocks, plan.key_block, plan.k_len))]
    return jnp.pad(mask, padding)


def _padded_embeddings(logits: DistanceLogits, plan: _Plan) -> Array:
    """E [heads, k_len, d] (distances -(k_len - 1) .. 0) padded with zero rows so that every pair's window
    lies inside: in front for the padded queries' distances, behind for those after a query (masked)."""
    front = plan.padded_q_len - plan.q_len
    back = plan.key_blocks * plan.key_block + plan.padded_q_len - 1 - front - plan.k_len
    return jnp.pad(logits.embeddings, [(0, 0), (front, back), (0, 0)])


def blockwise_attention(query: Array, key: Array, value: Array, mask: Array | None = None,
                        logits: DistanceLogits | None = None, *, is_causal: bool = False,
                        query_block: int, key_block: int) -> Array:
    """softmax(Q K^T / sqrt(d) + R) V by blocks: query [batch, q_len, heads, d], key/value [batch, k_len,
    heads, d], mask bool broadcastable to [batch, heads, q_len, k_len] (read a block at a time) or None,
    ``logits`` the relative logits R (``DistanceLogits``) or None; ``is_causal``: the queries are the last
    q_len of the k_len positions and see no later key. Blocks of ``query_block`` x ``key_block`` (each at
    most its length); lengths need not divide them. Returns [batch, q_len, heads, d]; a query that sees
    no key gets zeros."""
    q_len, k_len = query.shape[1], key.shape[1]
    query_block, key_block = min(query_block, q_len), min(key_block, k_len)
    plan = _Plan(q_len, k_len, query_block, key_block, is_causal, 1 / math.sqrt(query.shape[-1]),
                 logits.scale if logits is not None else 0.0)
    padded_k_len = plan.key_blocks * key_block
    mask = None if mask is None else _padded_mask(jnp.asarray(mask), plan)
    embeddings = None if logits is None else _padded_embeddings(logits, plan)
    output = _attention(plan, _heads_major(query, plan.padded_q_len), _heads_major(key, padded_k_len),
                        _heads_major(value, padded_k_len), embeddings, mask)
    return output.swapaxes(1, 2)[:, :q_len]
