"""Scaled dot-product attention, its masks, and multi-head attention (Vaswani et al. 2017, Sec. 3.2).

Every attention variant of the project joins through one interface, the *attention core*: an
``AttentionCore`` built with ``causal`` (decoder self-attention) or not, called as
``core(query, key, value, mask)`` on per-head tensors

    query [batch, q_len, heads, head_dim], key/value [batch, k_len, heads, head_dim],
    mask  bool, broadcastable to [batch, heads, q_len, k_len] (True = may attend), or None,

returning ``[batch, q_len, heads, head_dim]``. A causal core applies its own structure (the causal
triangle, or a local neighbourhood in generation order); ``mask`` only adds what the data needs
(padding, packed segments). For cached decoding, ``core.attend_cached`` attends one new position to
the cache. ``MultiHeadAttention`` owns the projections and the key/value cache and delegates the
attention itself to its core, so a model switches variant (local, relative, ...) by config without
knowing which one it holds. Masks are boolean and combined with
logical AND; the softmax runs in float32 and masked logits get a finite value, so bfloat16 compute
never overflows and a fully masked row yields finite (ignored) outputs instead of NaN.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import math
import sys

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from transformer_lab.attention.blockwise import blockwise_attention
from transformer_lab.attention.skewing import DistanceLogits, dense_logits

Array = jax.Array


def causal_mask(q_len: int, k_len: int | None = None) -> Array:
    """Lower-triangular mask [1, 1, q_len, k_len] for queries that are the last q_len of k_len positions:
    query i (position k_len - q_len + i) may attend to the keys j <= its position (decoder masking)."""
    k_len = q_len if k_len is None else k_len
    return (jnp.arange(q_len)[:, None] + k_len - q_len >= jnp.arange(k_len)[None, :])[None, None]


def cached_positions(position: Array, cache_length: int) -> Array:
    """int [cache_length]: the position each slot of a key/value cache holds when the query is at
    ``position``, the cache written at position % cache_length (a ring); negative: not written yet. Below
    cache_length slot s holds position s; beyond it, the last cache_length positions (a sliding window)."""
    return position - (position - jnp.arange(cache_length)) % cache_length


def padding_mask(query_valid: Array, key_valid: Array) -> Array:
    """Mask [batch, 1, q_len, k_len] that is True where both the query and the key are real tokens."""
    return (query_valid[:, :, None] & key_valid[:, None, :])[:, None]


def segment_mask(query_segments: Array, key_segments: Array) -> Array:
    """Mask [batch, 1, q_len, k_len] for packed rows: attend only within the same example.

    Segment ids are 1, 2, ... for the examples packed into a row and 0 for padding, so the mask also
    removes padding.
    """
    same = query_segments[:, :, None] == key_segments[:, None, :]
    return (same & (key_segments[:, None, :] > 0))[:, None]


def combine_masks(*masks: Array | None) -> Array | None:
    """Logical AND of the masks that are not None (broadcasting their shapes)."""
    present = [m for m in masks if m is not None]
    if not present:
        return None
    combined = present[0]
    for mask in present[1:]:
        combined = combined & mask
    return combined


IMPLEMENTATIONS = ('xla', 'cudnn', 'blockwise')   # model.attention_implementation
_NOTICES: set[str] = set()


@dataclasses.dataclass(frozen=True)
class Implementation:
    """How a core computes attention: ``name`` one of ``IMPLEMENTATIONS`` (``model.attention_implementation``)
    and, for 'blockwise', its blocks of queries and keys (``model.attention_query_block``, ``_key_block``)."""

    name: str = 'xla'
    query_block: int = 128
    key_block: int = 512

    def __post_init__(self):
        if self.name not in IMPLEMENTATIONS:
            raise ValueError(f'attention implementation {self.name!r} is not one of {IMPLEMENTATIONS}')


XLA = Implementation()


def _notice_once(message: str) -> None:
    if message not in _NOTICES:
        _NOTICES.add(message)
        print(f'notice: {message}', file=sys.stderr)


def scaled_dot_product_attention(query: Array, key: Array, value: Array, mask: Array | None = None,
                                 bias: Array | DistanceLogits | None = None, *, is_causal: bool = False,
                                 implementation: Implementation = XLA) -> Array:
    """Attention(Q, K, V) = softmax(Q K^T / sqrt(d_k) + bias) V, per head (Vaswani et al., eq. 1).

    query [batch, q_len, heads, d_k], key [batch, k_len, heads, d_k], value [batch, k_len, heads, d_v],
    mask bool broadcastable to [batch, heads, q_len, k_len], bias (additive logits) likewise, or
    relative logits not yet materialised (``DistanceLogits``); ``is_causal`` adds the causal triangle (the
    queries being the last q_len of the k_len positions). Returns [batch, q_len, heads, d_v].

    By ``implementation``: 'xla' and 'cudnn' delegate to ``jax.nn.dot_product_attention``. XLA's path
    computes the softmax in float32 and fills masked logits with a finite value of the compute dtype;
    cuDNN's fused kernel (a GPU, bfloat16 or float16, head_dim a multiple of 8) never materialises the
    logits and skips the causal triangle's masked half, but takes relative logits as a materialised
    bias. Where cuDNN cannot run (no GPU, float32, a shape it refuses), XLA's runs instead, after a
    one-line notice naming why. 'blockwise' (``blockwise.blockwise_attention``) computes the logits,
    relative ones included, a block pair at a time: O(L) memory; a bias that is already an array
    gains nothing from it and goes to XLA's path.
    """
    if implementation.name == 'blockwise' and (bias is None or isinstance(bias, DistanceLogits)):
        return blockwise_attention(query, key, value, mask, bias, is_causal=is_causal,
                                   query_block=implementation.query_block, key_block=implementation.key_block)
    bias = dense_logits(bias, query)
    if bias is not None:
        bias = bias.astype(query.dtype)
    if is_causal and query.shape[1] != key.shape[1]:   # jax's is_causal aligns the queries with the first keys
        mask, is_causal = combine_masks(causal_mask(query.shape[1], key.shape[1]), mask), False
    if implementation.name == 'cudnn':
        try:
            return jax.nn.dot_product_attention(query, key, value, bias=bias, mask=mask, is_causal=is_causal,
                                                implementation='cudnn')
        except (RuntimeError, NotImplementedError, ValueError, TypeError) as error:
            reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            _notice_once(f"model.attention_implementation='cudnn' falls back to XLA's attention: {reason}")
    if is_causal:
        mask = combine_masks(causal_mask(query.shape[1], key.shape[1]), mask)
    return jax.nn.dot_product_attention(query, key, value, bias=bias, mask=mask)


class AttentionCore(nnx.Module):
    """Base of the attention cores: plain scaled dot-product attention, causal or not.

    Subclasses change which keys a query sees (``__call__`` for whole sequences, ``visible_keys``
    for cached decoding) or add logits to those of Q K^T / sqrt(d) through one hook, ``added_logits``
    for whole sequences and ``added_logits_at`` for one decoding query (relative attention).
    """

    sees_an_image = False   # True: the core is given the grid of its sequence seen as an image (``image_shape``)

    def __init__(self, *, num_heads: int, head_dim: int, causal: bool, rngs: nnx.Rngs,
                 implementation: Implementation = XLA):
        del num_heads, head_dim, rngs  # no parameters: the projections belong to MultiHeadAttention
        self.causal, self.implementation = causal, implementation

    @classmethod
    def generation_order(cls, grid: tuple[int, int], options) -> np.ndarray:
        """int [rows * columns]: the order in which a causal core with ``options`` (its ``model.attention``)
        generates a sequence seen as an image of ``grid`` = (rows, columns), as raster indices. Raster
        order, unless the core's causality follows another (local 2D)."""
        del options
        return np.arange(grid[0] * grid[1])

    def attention(self, query: Array, key: Array, value: Array, mask: Array | None,
                  bias: Array | DistanceLogits | None = None,
                  *, is_causal: bool = False) -> Array:
        """``scaled_dot_product_attention`` with this core's implementation (XLA's, cuDNN's or blockwise)."""
        return scaled_dot_product_attention(query, key, value, mask, bias, is_causal=is_causal,
                                            implementation=self.implementation)

    def __call__(self, query: Array, key: Array, value: Array, mask: Array | None) -> Array:
        return self.attention(query, key, value, mask, self.added_logits(query, key.shape[1]), is_causal=self.causal)

    def added_logits(self, query: Array, key_length: int) -> Array | DistanceLogits | None:
        """Logits added to the attention's, scaled, [batch, heads, q_len, key_length] (or relative ones not
        yet materialised), for queries [batch, q_len, heads, d] that are the last q_len of key_length
        positions; None: none."""
        del query, key_length
        return None

    def added_logits_at(self, query: Array, position: Array, key_length: int) -> Array | None:
        """The same for one decoding query [batch, 1, heads, d] at ``position`` over the cache's keys:
        [batch, heads, 1, key_length] or None."""
        del query, position, key_length
        return None

    def visible_keys(self, position: Array, cache_length: int) -> Array:
        """bool [cache_length]: the cache slots a decoding query at ``position`` may attend to (a slot holds
        ``cached_positions``; a cache shorter than the position is a sliding window over the last ones)."""
        return cached_positions(position, cache_length) >= 0

    def attend_cached(self, query: Array, key: Array, value: Array, position: Array,
                      mask: Array | None) -> Array:
        """One query position [batch, 1, heads, head_dim] against the whole cache [batch, max_len, ...]."""
        visible = self.visible_keys(position, key.shape[1])[None, None, None, :]
        return self.attention(query, key, value, combine_masks(visible, mask),
                              self.added_logits_at(query, position, key.shape[1]))


    def structure(self, q_len: int, k_len: int) -> Array:
        """bool [q_len, k_len]: the keys each query may see by the core's own structure (the causal
        triangle, a local neighbourhood), the queries being the last q_len of k_len positions; the
        data's mask (padding, segments) comes on top. Causal cores: ``visible_keys`` of every position."""
        if not self.causal:
            return jnp.ones((q_len, k_len), bool)
        return jax.vmap(lambda position: self.visible_keys(position, k_len))(jnp.arange(q_len) + k_len - q_len)

    def query_block(self, position: int, length: int) -> np.ndarray | None:
        """bool [length]: the positions of ``position``'s query block (local cores), for pictures; None
        where the core has no blocks."""
        del position, length
        return None

    def weights(self, query: Array, key: Array, mask: Array | None) -> Array:
        """The attention probabilities, float32 [batch, heads, q_len, k_len]: the reference path for
        looking inside (the fused and blocked paths never materialise them), softmax(Q K^T / sqrt(d) +
        added logits) over the keys the core's structure and ``mask`` leave visible, exactly 0 elsewhere
        (a row that sees nothing is all 0). Local cores' weights so sit in the full [q_len, k_len] frame.
        Written by hand for this purpose; the training path never calls it."""
        logits = jnp.einsum('bqhd,bkhd->bhqk', query, key).astype(jnp.float32) / math.sqrt(query.shape[-1])
        added = dense_logits(self.added_logits(query, key.shape[1]), query)
        if added is not None:
            logits = logits + added.astype(jnp.float32)
        visible = jnp.broadcast_to(combine_masks(self.structure(query.shape[1], key.shape[1])[None, None], mask),
                                   logits.shape)
        logits = jnp.where(visible, logits, -jnp.inf)
        peak = jnp.max(logits, axis=-1, keepdims=True)
        exponentials = jnp.where(visible, jnp.exp(logits - jnp.where(jnp.isfinite(peak), peak, 0.0)), 0.0)
        total = exponentials.sum(-1, keepdims=True)
        return exponentials / jnp.where(total > 0, total, 1.0)


class DotProductCore(AttentionCore):
    """The plain attention core: full scaled dot-product attention (causal for decoders)."""


_CAPTURING = contextvars.ContextVar('capturing_attention_weights', default=False)


@contextlib.contextmanager
def capturing_weights():
    """Within it, every ``MultiHeadAttention`` called sows its attention probabilities (``core.weights``)
    as ``nnx.Intermediate`` 'attention_weights' [batch, heads, q_len, k_len], for ``nnx.capture`` to
    collect. The switch is read when a function is traced: the training step, traced outside it, never
    computes them, and its compiled program is the same as without this facility."""
    token = _CAPTURING.set(True)
    try:
        yield
    finally:
        _CAPTURING.reset(token)


def init_kv_cache(batch_size: int, max_length: int, num_heads: int, head_dim: int,
                  dtype=jnp.float32) -> dict[str, Array]:
    """An empty self-attention cache: keys and values heads-major, [batch, heads, max_length, head_dim]
    (see ``MultiHeadAttention.project_key_value``)."""
    shape = (batch_size, num_heads, max_length, head_dim)
    return {'key': jnp.zeros(shape, dtype), 'value': jnp.zeros(shape, dtype)}


class MultiHeadAttention(nnx.Module):
    """MultiHead(Q, K, V) = Concat(head_1..head_h) W^O, head_i = Attention(Q W_i^Q, K W_i^K, V W_i^V).

    Projections have no biases, as in the paper; each head is ``head_dim`` wide (default d_model / heads;
    the Music Transformer's piano models attend with 512 dimensions over a 256-wide model). ``core`` is any attention core (see the module
    docstring); ``__call__`` serves training and encoding, ``decode_step`` one new position against a
    key/value cache, and ``project_key_value`` + ``attend`` let encoder-decoder attention project the
    encoder output once per decoded sequence instead of once per step.
    """

    def __init__(self, d_model: int, num_heads: int, core: nnx.Module, *, head_dim: int | None = None,
                 dtype=jnp.float32, param_dtype=jnp.float32, dot_general=jax.lax.dot_general, rngs: nnx.Rngs):
        if head_dim is None and d_model % num_heads:
            raise ValueError(f'd_model={d_model} is not divisible by num_heads={num_heads}')
        self.num_heads = num_heads
        self.head_dim = head_dim or d_model // num_heads
        heads = (num_heads, self.head_dim)
        linear = dict(use_bias=False, dtype=dtype, param_dtype=param_dtype, dot_general=dot_general, rngs=rngs)
        self.query = nnx.LinearGeneral(d_model, heads, **linear)
        self.key = nnx.LinearGeneral(d_model, heads, **linear)
        self.value = nnx.LinearGeneral(d_model, heads, **linear)
        self.output = nnx.LinearGeneral(heads, d_model, axis=(-2, -1), **linear)
        self.core = core

    def project_key_value(self, inputs_kv: Array) -> dict[str, Array]:
        """[batch, k_len, d_model] -> keys and values heads-major, [batch, heads, k_len, head_dim].

        Heads-major because keys and values that are kept (decoding caches, the encoder's for
        encoder-decoder attention) are then read by every decoding step in the layout of the attention's
        batched matrix products: stored sequence-major, XLA transposes the whole cache at every step
        (docs/benchmarks.md: the heads-major caches). The cores take sequence-major views (``_sequence_major``),
        which XLA folds into the products; for whole sequences the two transposes cancel."""
        return {'key': self.key(inputs_kv).swapaxes(1, 2), 'value': self.value(inputs_kv).swapaxes(1, 2)}

    def attend(self, inputs_q: Array, key_value: dict[str, Array], mask: Array | None) -> Array:
        """Attention of projected queries over already projected keys and values -> [batch, q_len, d_model].

        Keys and values may have fewer rows than the queries, a divisor: then each key row serves
        that many consecutive query rows (the beams of one source, in beam search), whose queries are
        attended together as one row of more positions (``_queries_per_key_row``), so that the keys
        are read once per source rather than once per beam."""
        query = self.query(inputs_q)
        key, value = _sequence_major(key_value)
        grouped = _queries_per_key_row(query, key.shape[0], self.core)
        heads = self.core(grouped, key, value, mask).reshape(query.shape[:2] + (-1, value.shape[-1]))
        if _CAPTURING.get():
            self.sow(nnx.Intermediate, 'attention_weights', self.core.weights(query, key, mask))
        return self.output(heads)

    def __call__(self, inputs_q: Array, inputs_kv: Array | None = None,
                 mask: Array | None = None) -> Array:
        """Self-attention when inputs_kv is None, else attention from inputs_q to inputs_kv."""
        source = inputs_q if inputs_kv is None else inputs_kv
        return self.attend(inputs_q, self.project_key_value(source), mask)

    def init_cache(self, batch_size: int, max_length: int, dtype=jnp.float32) -> dict[str, Array]:
        return init_kv_cache(batch_size, max_length, self.num_heads, self.head_dim, dtype)

    def decode_step(self, inputs_q: Array, cache: dict[str, Array], position: Array,
                    mask: Array | None = None) -> tuple[Array, dict[str, Array]]:
        """Causal self-attention of one new position against the cache.

        inputs_q [batch, 1, d_model] holds position ``position`` (a scalar, the same for every row);
        its key and value are written into the cache [batch, heads, cache_length, head_dim] at slot
        position % cache_length (``cached_positions``: a cache as long as the sequence holds every
        position, a shorter one the last cache_length), and the query attends to the slots its core
        makes visible (``core.visible_keys``: every written one for full attention) and ``mask`` allows.
        """
        new = self.project_key_value(inputs_q)
        slot = position % cache['key'].shape[2]
        cache = {name: jax.lax.dynamic_update_slice_in_dim(cache[name], new[name].astype(cache[name].dtype),
                                                           slot, axis=2)
                 for name in ('key', 'value')}
        heads = self.core.attend_cached(self.query(inputs_q), *_sequence_major(cache), position, mask)
        return self.output(heads), cache


def _queries_per_key_row(query: Array, key_rows: int, core: AttentionCore) -> Array:
    """query [key_rows x g, q_len, heads, d] -> [key_rows, g x q_len, heads, d]: the g query rows that share
    a row of keys as one row. Exact for attention whose queries do not see each other's positions (the
    non-causal encoder-decoder attention), which is the only attention given shared keys."""
    rows = query.shape[0]
    if rows == key_rows:
        return query
    if rows % key_rows or core.causal:
        raise ValueError(f'{rows} query rows cannot share {key_rows} rows of keys and values '
                         f'({"causal attention" if core.causal else "not a multiple"})')
    return query.reshape(key_rows, -1, *query.shape[2:])


def _sequence_major(key_value: dict[str, Array]) -> tuple[Array, Array]:
    """Heads-major keys and values [batch, heads, len, head_dim] -> the cores' [batch, len, heads, head_dim]."""
    return key_value['key'].swapaxes(1, 2), key_value['value'].swapaxes(1, 2)
