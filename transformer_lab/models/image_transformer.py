"""The Image Transformer (Parmar et al. 2018): an image is generated one colour channel of one pixel
(a *sub-pixel*) at a time by a Transformer decoder, with local attention for long images.

An H x W x C image is a sequence of H W C positions. Batches hold it in raster order (row, column,
channel); the model reads it in its **generation order** (``generation_order``: raster, or
block-raster for local 2D attention, the order in which its attention is causal), and returns logits
in raster order again, so training, evaluation and sampling all use one order and the data never
depends on the attention variant.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from transformer_lab.attention.local import block_raster_order
from transformer_lab.config import ConfigError
from transformer_lab.models.layers import TokenEmbedding, sinusoidal_position_encoding
from transformer_lab.models.transformer import DTYPES, DecoderLayer, _dtypes

Array = jax.Array
INTENSITIES = 256


@functools.lru_cache(maxsize=None)
def _generation_order(image_shape: tuple[int, int, int], attention_type: str,
                      query_shape: tuple[int, int] | None) -> np.ndarray:
    height, width, channels = image_shape
    if attention_type == 'local_2d':
        return block_raster_order((height, width * channels), query_shape)
    return np.arange(height * width * channels)


def generation_order(model_config) -> np.ndarray:
    """int [H W C]: step t of generation produces the sub-pixel at raster index order[t]. Raster order,
    except for local 2D attention: block-raster over the (H, W C) image (see attention/local.py)."""
    return _generation_order(*_order_key(model_config))


def _order_key(model_config) -> tuple:
    attention = model_config.attention
    query_shape = tuple(attention.get('query_shape', (8, 32))) if attention.type == 'local_2d' else None
    return tuple(model_config.image_shape), attention.type, query_shape


def pixel_coordinates(raster_index: Array, image_shape: tuple[int, int, int]) -> tuple[Array, Array, Array]:
    """Raster indices -> (row, column, channel)."""
    _, width, channels = image_shape
    return raster_index // (width * channels), raster_index // channels % width, raster_index % channels


class PixelPositions(nnx.Module):
    """Positional encodings over rows, columns and channels (Parmar et al., Sec. 3.1).

    ``sinusoidal``: the d_model dimensions are split in three, each holding the sinusoids
    (Vaswani et al., Sec. 3.5) of one coordinate. ``learned``: one table per coordinate, summed.
    """

    def __init__(self, kind: str, image_shape: tuple[int, int, int], d_model: int, *, rngs: nnx.Rngs):
        self.image_shape = tuple(image_shape)
        third = d_model // 3 // 2 * 2          # even, so each part holds whole sine/cosine pairs
        self.split = (third, third, d_model - 2 * third)
        init = nnx.initializers.normal(stddev=d_model ** -0.5)
        self.tables = (nnx.List([nnx.Param(init(rngs.params(), (size, d_model))) for size in self.image_shape])
                       if kind == 'learned' else None)

    def __call__(self, raster_index: Array) -> Array:
        """int [...] -> float32 [..., d_model]."""
        coordinates = pixel_coordinates(raster_index, self.image_shape)
        if self.tables is None:
            return jnp.concatenate([sinusoidal_position_encoding(c, size)
                                    for c, size in zip(coordinates, self.split)], axis=-1)
        return sum(jnp.take(table[...], c, axis=0) for table, c in zip(self.tables, coordinates))


class ImageTransformer(nnx.Module):
    """Decoder-only Image Transformer with a categorical head: p(image) = prod_t p(x_t | x_<t), each
    sub-pixel a 256-way softmax; bits/dim = NLL per sub-pixel / ln 2.

    Input of step t: the channel-wise intensity embedding of sub-pixel t-1 (``embed_intensities``;
    zeros at t = 0) plus the positional encoding of sub-pixel t, plus a class embedding when
    ``num_classes`` > 0 (class-conditional generation).
    """

    stops_at_eos = False   # an image has a fixed length; intensity 1 is no end-of-sequence token

    def __init__(self, config, vocab_size: int, *, rngs: nnx.Rngs):
        if vocab_size != INTENSITIES:
            raise ConfigError('data.tokenizer', "the Image Transformer models 256 intensities; use 'pixels'")
        self.image_shape = tuple(config.image_shape)
        height, width, channels = self.image_shape
        if config.attention.type == 'local_2d' and tuple(config.attention.image_shape) != (height, width * channels):
            raise ConfigError('model.attention.image_shape', f'{tuple(config.attention.image_shape)} must be '
                                                             f'(rows, columns * channels) = {(height, width * channels)}')
        if config.max_length < height * width * channels:
            raise ConfigError('model.max_length', f'{config.max_length} < the {height * width * channels} '
                                                  f'sub-pixels of an image')
        self.order_key = _order_key(config)   # static: the order itself is computed (and cached) from it
        self.compute_dtype = DTYPES[config.dtype]
        self.intensity_embedding = TokenEmbedding(INTENSITIES * channels, config.d_model, **_dtypes(config),
                                                  rngs=rngs)
        self.positions = PixelPositions(config.positional, self.image_shape, config.d_model, rngs=rngs)
        self.class_embedding = (nnx.Embed(config.num_classes, config.d_model, **_dtypes(config), rngs=rngs)
                                if config.num_classes else None)
        self.dropout = nnx.Dropout(config.dropout_rate)
        self.layers = nnx.List([DecoderLayer(config, cross_attention=False, rngs=rngs)
                                for _ in range(config.num_decoder_layers)])
        self.final_norm = (nnx.LayerNorm(config.d_model, **_dtypes(config), rngs=rngs)
                           if config.norm == 'pre' else None)
        self.head = nnx.Linear(config.d_model, INTENSITIES, **_dtypes(config), rngs=rngs)

    @property
    def order(self) -> np.ndarray:
        return _generation_order(*self.order_key)

    def embed_intensities(self, values: Array, raster_index: Array) -> Array:
        """Channel-wise intensity embedding (Parmar et al., Sec. 3.1): one table of 256 C rows, and
        intensity v of channel c looks up row v + 256 c. values, raster_index int [...] -> [..., d_model]."""
        channel = raster_index % self.image_shape[2]
        return self.intensity_embedding(values + INTENSITIES * channel)

    def _step_inputs(self, previous: Array, steps: Array, label: Array | None, rngs) -> Array:
        """previous [batch, T] (embedded sub-pixels of the previous steps), steps int [T] -> [batch, T, d]."""
        order = jnp.asarray(self.order)
        x = previous + self.positions(order[steps]).astype(self.compute_dtype)[None]
        if self.class_embedding is not None:
            x = x + self.class_embedding(label)[:, None]
        return self.dropout(x, deterministic=rngs is None, rngs=rngs)

    def _output(self, x: Array) -> Array:
        x = x if self.final_norm is None else self.final_norm(x)
        return self.head(x).astype(jnp.float32)

    def __call__(self, batch: dict, rngs: nnx.Rngs | None = None) -> Array:
        """batch['targets'] int [batch, H W C] in raster order -> logits float32 [batch, H W C, 256], raster order."""
        order = jnp.asarray(self.order)
        sequence = batch['targets'][:, order]
        embedded = self.embed_intensities(sequence, order[None])
        previous = jnp.pad(embedded, ((0, 0), (1, 0), (0, 0)))[:, :-1]      # teacher forcing: shift right
        x = self._step_inputs(previous, jnp.arange(sequence.shape[1]), batch.get('label'), rngs)
        for layer in self.layers:
            x = layer(x, None, None, None, rngs)
        logits = self._output(x)
        return logits[:, jnp.asarray(np.argsort(self.order))]

    def to_raster(self, sequence: np.ndarray) -> np.ndarray:
        """Generated sequences [batch, H W C] in generation order -> uint8 images [batch, H, W, C]."""
        raster = np.zeros_like(sequence)
        raster[:, self.order] = sequence
        return raster.reshape(-1, *self.image_shape).astype(np.uint8)

    def init_decode_state(self, batch_size: int, max_length: int, inputs: Array | None = None) -> dict:
        """``inputs``: the class labels [batch] of a class-conditional model, else None."""
        if (inputs is None) != (self.class_embedding is None):
            raise ValueError('a class-conditional model samples given labels [batch] as inputs; an '
                             'unconditional one takes none')
        caches = [layer.init_cache(batch_size, max_length, None) for layer in self.layers]
        return {'caches': caches, 'label': inputs}

    def decode_step(self, tokens: Array, position: Array, state: dict) -> tuple[Array, dict]:
        """tokens [batch]: the sub-pixel generated at step position - 1 -> logits [batch, 256] of step position."""
        order = jnp.asarray(self.order)
        previous_index = order[jnp.maximum(position - 1, 0)]
        previous = jnp.where(position > 0, self.embed_intensities(tokens, previous_index), 0.0)
        x = self._step_inputs(previous[:, None].astype(self.compute_dtype), jnp.asarray(position)[None],
                              state['label'], None)
        caches = []
        for layer, cache in zip(self.layers, state['caches']):
            x, cache = layer.decode_step(x, cache, position, None)
            caches.append(cache)
        return self._output(x)[:, 0], {**state, 'caches': caches}
