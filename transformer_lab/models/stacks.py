"""The layer stacks every model is built from (Vaswani et al. 2017, Sec. 3.1): ``EncoderStack`` and
``DecoderStack``, each N layers and, for pre-LN, a final LayerNorm, over inputs a model's embedder made.

The decoder stack runs both ways a model needs: the full teacher-forced pass (``__call__``) and one
new position against per-layer caches (``init_caches`` / ``decode_step``), which must agree.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from transformer_lab.attention import IMPLEMENTATIONS, Implementation, MultiHeadAttention, check_attention, make_core
from transformer_lab.config import one_of, positive, require
from transformer_lab.backends import float32_result_dot_general
from transformer_lab.models.layers import FeedForward, Residual

Array = jax.Array

DTYPES = {'float32': jnp.float32, 'bfloat16': jnp.bfloat16}
# model.activation_dtype: '' = model.dtype; 'float32' with bfloat16 compute = bfloat16 products with float32 results
ACTIVATION_DTYPES = {'': None, 'float32': jnp.float32}

# Encoder-decoder attention relates two sequences of different lengths: always full attention.
CROSS_ATTENTION = {'type': 'dot_product'}


def check_stack(model) -> None:
    """The ``model`` fields every stack reads: sizes, norm, dtype, dropout and the attention sections."""
    one_of('model.norm', model.norm, ('post', 'pre'))
    one_of('model.dtype', model.dtype, DTYPES)
    one_of('model.activation_dtype', model.activation_dtype, ACTIVATION_DTYPES)
    require(not model.activation_dtype or model.dtype == 'bfloat16', 'model.activation_dtype',
            f"'{model.activation_dtype}' is for model.dtype='bfloat16' (float32 results of bfloat16 products); "
            f"with model.dtype='{model.dtype}' leave it ''")
    one_of('model.attention_implementation', model.attention_implementation, IMPLEMENTATIONS)
    positive(model, 'model', 'd_model', 'num_heads', 'd_ff', 'max_length', 'attention_query_block',
             'attention_key_block')
    attention_dims = model.attention_dims or model.d_model
    require(attention_dims % model.num_heads == 0, 'model.attention_dims' if model.attention_dims else 'model.d_model',
            f'{attention_dims} is not divisible by model.num_heads={model.num_heads}; '
            f'each head gets {"attention_dims" if model.attention_dims else "d_model"} / num_heads dimensions')
    require(0 <= model.dropout_rate < 1, 'model.dropout_rate', f'must be in [0, 1), got {model.dropout_rate}')
    for section in ('attention', 'encoder_attention'):
        if section in model:
            check_attention(f'model.{section}', model[section])


def dtypes(config) -> dict:
    """Compute dtype from the model config; parameters always stay float32."""
    return dict(dtype=DTYPES[config.dtype], param_dtype=jnp.float32)


def activation_dtype(config):
    """The dtype of what the layers pass on (the products' results, the residual stream, the caches)."""
    return ACTIVATION_DTYPES[config.activation_dtype] or DTYPES[config.dtype]


def projection_dtypes(config) -> dict:
    """``dtypes`` plus the product of the projections (attention, feed-forward, embeddings as output
    weights, heads): ``lax.dot_general`` in the compute dtype, or, with ``model.activation_dtype=
    'float32'``, ``backends.float32_result_dot_general`` (bfloat16 operands, float32 results and
    gradients: what makes bfloat16 pay on a CPU)."""
    products = float32_result_dot_general if config.activation_dtype else jax.lax.dot_general
    return dict(dtypes(config), dot_general=products)


def implementation(config) -> Implementation:
    """How the attention cores compute (``model.attention_implementation`` and blockwise's blocks)."""
    return Implementation(config.attention_implementation, config.attention_query_block, config.attention_key_block)


def _attention(config, *, causal: bool, rngs: nnx.Rngs, attention_config=None) -> MultiHeadAttention:
    """Multi-head attention whose core is ``attention_config`` (default: the model's ``attention``)."""
    head_dim = (config.attention_dims or config.d_model) // config.num_heads
    core = make_core(attention_config or config.attention, num_heads=config.num_heads, head_dim=head_dim,
                     causal=causal, rngs=rngs, implementation=implementation(config))
    return MultiHeadAttention(config.d_model, config.num_heads, core, head_dim=head_dim,
                              **projection_dtypes(config), rngs=rngs)


def _residual(config, *, rngs: nnx.Rngs) -> Residual:
    return Residual(config.d_model, config.dropout_rate, config.norm, **dtypes(config), rngs=rngs)


def _feed_forward(config, *, rngs: nnx.Rngs) -> FeedForward:
    return FeedForward(config.d_model, config.d_ff, config.dropout_rate, **projection_dtypes(config), rngs=rngs)


class EncoderLayer(nnx.Module):
    """Self-attention then feed-forward, each inside a residual sublayer (Sec. 3.1). The self-attention
    core is ``model.encoder_attention`` when the config has one (e.g. unmasked local 2D over a
    low-resolution image), else ``model.attention``."""

    def __init__(self, config, *, rngs: nnx.Rngs):
        self.self_attention = _attention(config, causal=False, rngs=rngs,
                                         attention_config=config.get('encoder_attention'))
        self.attention_residual = _residual(config, rngs=rngs)
        self.feed_forward = _feed_forward(config, rngs=rngs)
        self.feed_forward_residual = _residual(config, rngs=rngs)

    def __call__(self, x: Array, mask: Array | None, rngs: nnx.Rngs | None) -> Array:
        x = self.attention_residual(x, lambda h: self.self_attention(h, mask=mask), rngs)
        return self.feed_forward_residual(x, lambda h: self.feed_forward(h, rngs), rngs)


class DecoderLayer(nnx.Module):
    """Masked self-attention, encoder-decoder attention (if ``cross_attention``), feed-forward."""

    def __init__(self, config, *, cross_attention: bool, rngs: nnx.Rngs):
        self.cache_dtype = activation_dtype(config)
        self.self_attention = _attention(config, causal=True, rngs=rngs)
        self.self_attention_residual = _residual(config, rngs=rngs)
        if cross_attention:
            self.cross_attention = _attention(config, causal=False, rngs=rngs, attention_config=CROSS_ATTENTION)
            self.cross_attention_residual = _residual(config, rngs=rngs)
        else:
            self.cross_attention = None
        self.feed_forward = _feed_forward(config, rngs=rngs)
        self.feed_forward_residual = _residual(config, rngs=rngs)

    def _cross_and_feed_forward(self, x, encoded_kv, cross_mask, rngs):
        if self.cross_attention is not None:
            x = self.cross_attention_residual(
                x, lambda h: self.cross_attention.attend(h, encoded_kv, cross_mask), rngs)
        return self.feed_forward_residual(x, lambda h: self.feed_forward(h, rngs), rngs)

    def __call__(self, x: Array, self_mask: Array | None, encoded: Array | None, cross_mask: Array | None,
                 rngs: nnx.Rngs | None) -> Array:
        x = self.self_attention_residual(x, lambda h: self.self_attention(h, mask=self_mask), rngs)
        encoded_kv = None if encoded is None else self.cross_attention.project_key_value(encoded)
        return self._cross_and_feed_forward(x, encoded_kv, cross_mask, rngs)

    def init_cache(self, batch_size: int, max_length: int, encoded: Array | None) -> dict:
        cache = {'self': self.self_attention.init_cache(batch_size, max_length, self.cache_dtype)}
        if self.cross_attention is not None:
            cache['cross'] = self.cross_attention.project_key_value(encoded)
        return cache

    def decode_step(self, x: Array, cache: dict, position: Array,
                    cross_mask: Array | None) -> tuple[Array, dict]:
        """x [batch, 1, d_model] at ``position``; returns the layer output and the updated cache."""
        attended, self_cache = self.self_attention.decode_step(
            self.self_attention_residual.branch_input(x), cache['self'], position)
        x = self.self_attention_residual.merge(x, attended, None)
        x = self._cross_and_feed_forward(x, cache.get('cross'), cross_mask, None)
        return x, {**cache, 'self': self_cache}


class _Stack(nnx.Module):
    """Layers and, for pre-LN (whose residual stream is never normalised), a final LayerNorm."""

    def __init__(self, config, layers: list[nnx.Module], *, rngs: nnx.Rngs):
        self.layers = nnx.List(layers)
        self.final_norm = (nnx.LayerNorm(config.d_model, **dtypes(config), rngs=rngs)
                           if config.norm == 'pre' else None)

    def finish(self, x: Array) -> Array:
        return x if self.final_norm is None else self.final_norm(x)


class EncoderStack(_Stack):
    """``model.num_encoder_layers`` encoder layers: embedded inputs [batch, length, d_model] -> the
    encoder output of the same shape, which the decoder's encoder-decoder attention reads."""

    def __init__(self, config, *, rngs: nnx.Rngs):
        super().__init__(config, [EncoderLayer(config, rngs=rngs) for _ in range(config.num_encoder_layers)],
                         rngs=rngs)

    def __call__(self, x: Array, mask: Array | None, rngs: nnx.Rngs | None) -> Array:
        for layer in self.layers:
            x = layer(x, mask, rngs)
        return self.finish(x)


class DecoderStack(_Stack):
    """``model.num_decoder_layers`` causal decoder layers, with encoder-decoder attention when
    ``cross_attention``: embedded inputs [batch, length, d_model] -> hidden states of the same shape."""

    def __init__(self, config, *, cross_attention: bool, rngs: nnx.Rngs):
        super().__init__(config, [DecoderLayer(config, cross_attention=cross_attention, rngs=rngs)
                                  for _ in range(config.num_decoder_layers)], rngs=rngs)

    def __call__(self, x: Array, *, self_mask: Array | None = None, encoded: Array | None = None,
                 cross_mask: Array | None = None, rngs: nnx.Rngs | None = None) -> Array:
        for layer in self.layers:
            x = layer(x, self_mask, encoded, cross_mask, rngs)
        return self.finish(x)

    def init_caches(self, batch_size: int, max_length: int, encoded: Array | None = None) -> list:
        return [layer.init_cache(batch_size, max_length, encoded) for layer in self.layers]

    def decode_step(self, x: Array, caches: list, position: Array,
                    cross_mask: Array | None = None) -> tuple[Array, list]:
        """x [batch, 1, d_model] embedded at ``position`` -> (hidden [batch, 1, d_model], updated caches)."""
        updated = []
        for layer, cache in zip(self.layers, caches):
            x, cache = layer.decode_step(x, cache, position, cross_mask)
            updated.append(cache)
        return self.finish(x), updated


def attention_layers(encoder: EncoderStack | None, decoder: DecoderStack) -> dict[str, list[MultiHeadAttention]]:
    """A model's attention modules by kind, one per layer: 'decoder_self', and with an encoder
    'encoder_self' and 'encoder_decoder'. What code outside the models looks into (attention maps and
    pictures: each module's ``core`` and the probabilities it sows), so that none walks their attributes."""
    kinds = {'decoder_self': [layer.self_attention for layer in decoder.layers]}
    if encoder is not None:
        kinds['encoder_self'] = [layer.self_attention for layer in encoder.layers]
        kinds['encoder_decoder'] = [layer.cross_attention for layer in decoder.layers]
    return kinds
