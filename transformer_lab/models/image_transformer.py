"""The Image Transformer (Parmar et al. 2018): an image generated position by position by a
Transformer decoder, with local attention for long images.

A ``PixelEmbedder``, the shared decoder stack (models/stacks.py) and a head chosen by ``model.head``
(models/heads.py): ``categorical``, where every colour channel of every pixel (a *sub-pixel*) is a
position with a 256-way softmax (H W C positions), or ``dmol``, where every pixel is a position whose
C channels are predicted jointly by a discretised mixture of logistics (H W positions). Batches hold images in raster order (row, column, channel); the model reads them in
its **generation order** (``generation_order``: raster, or block-raster for local 2D attention, the
order in which its attention is causal) and returns its outputs in raster order again, so training,
evaluation and sampling all use one order and the data never depends on the attention variant.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from transformer_lab.attention import CORES
from transformer_lab.config import ConfigError, one_of
from transformer_lab.models.heads import INTENSITIES, head_class, make_head
from transformer_lab.models.layers import Dropout, TokenEmbedding, sinusoidal_position_encoding
from transformer_lab.models.stacks import (DecoderStack, EncoderStack, activation_dtype, attention_layers, dtypes,
                                          projection_dtypes)

Array = jax.Array


def position_shape(model_config) -> tuple[int, int, int]:
    """(H, W, C / values per position): the channels a position holds are one value for the categorical
    head (sub-pixels), the whole pixel for DMOL."""
    height, width, channels = model_config.image_shape
    return height, width, channels // head_class(model_config).position_values(model_config)


def position_grid(model_config) -> tuple[int, int]:
    """The positions seen as an image: (H, W C) sub-pixels for the categorical head, (H, W) pixels for DMOL."""
    height, width, channels = position_shape(model_config)
    return height, width * channels


def input_shape(model_config) -> tuple[int, int, int] | None:
    """Super-resolution (``model.downsample`` = f > 1, the data's factor): the low-resolution images'
    shape (H / f, W / f, C); None for other models."""
    factor = model_config.downsample
    if factor == 1:
        return None
    height, width, channels = model_config.image_shape
    return height // factor, width // factor, channels


def with_position_grids(model_config):
    """``model_config`` as the model is built from it: attention cores that see their sequence as an image
    (local 2D) are given its position grid as ``image_shape``, the image's for the decoder and the
    low-resolution input's for a super-resolution encoder. Derived here, never written in a config."""
    config = model_config.copy_and_resolve_references()
    grids = {'attention': position_grid(config)}
    if low_resolution := input_shape(config):
        height, width, channels = low_resolution
        grids['encoder_attention'] = (height, width * channels)
    for section, grid in grids.items():
        if section in config and CORES[config[section].type].sees_an_image:
            with config.unlocked():
                config[section].image_shape = grid
    return config


def _order_key(model_config) -> tuple:
    """(position grid, the decoder's attention options as a tuple): what the generation order depends on."""
    options = tuple(sorted((name, tuple(value) if isinstance(value, (list, tuple)) else value)
                           for name, value in model_config.attention.items()))
    return position_grid(model_config), options


@functools.lru_cache(maxsize=None)
def _generation_order(grid: tuple[int, int], options: tuple) -> np.ndarray:
    options = dict(options)
    return CORES[options['type']].generation_order(grid, options)


def generation_order(model_config) -> np.ndarray:
    """int [positions]: step t of generation produces the position (sub-pixel, or pixel for DMOL) of
    raster index order[t], as the decoder's attention core generates (``AttentionCore.generation_order``:
    raster order, block-raster for local 2D)."""
    return _generation_order(*_order_key(model_config))


def pixel_coordinates(raster_index: Array, image_shape: tuple[int, int, int]) -> tuple[Array, Array, Array]:
    """Raster indices -> (row, column, channel)."""
    _, width, channels = image_shape
    return raster_index // (width * channels), raster_index // channels % width, raster_index % channels


class PixelPositions(nnx.Module):
    """Positional encodings over rows, columns and channels (Parmar et al., Sec. 3.1).

    ``sinusoidal``: the d_model dimensions are split in three, each holding the sinusoids
    (Vaswani et al., Sec. 3.5) of one coordinate. ``learned``: one table per coordinate, summed.
    """

    KINDS = ('sinusoidal', 'learned')

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


class PixelEmbedder(nnx.Module):
    """The Image Transformer's input (Parmar et al., Sec. 3.1): at step t of the generation order, the
    channel-wise embeddings of the values generated at step t - 1 (zeros at t = 0) plus the positional
    encoding of step t's position, plus a class embedding when ``num_classes`` > 0 (class-conditional
    generation), then dropout. For super-resolution it also embeds the low-resolution image's
    sub-pixels for the encoder, with the same intensity table."""

    def __init__(self, config, *, rngs: nnx.Rngs):
        self.image_shape = tuple(config.image_shape)
        self.order_key = _order_key(config)   # static: the order itself is computed (and cached) from it
        self.activation_dtype = activation_dtype(config)
        self.intensity_embedding = TokenEmbedding(INTENSITIES * self.image_shape[2], config.d_model,
                                                  **projection_dtypes(config), rngs=rngs)
        self.positions = PixelPositions(config.positional, position_shape(config), config.d_model, rngs=rngs)
        self.class_embedding = (nnx.Embed(config.num_classes, config.d_model, **dtypes(config), rngs=rngs)
                                if config.num_classes else None)
        self.dropout = Dropout(config.dropout_rate)
        low_resolution = input_shape(config)
        self.input_positions = (PixelPositions(config.positional, low_resolution, config.d_model, rngs=rngs)
                                if low_resolution else None)

    @property
    def order(self) -> np.ndarray:
        return _generation_order(*self.order_key)

    def embed_values(self, values: Array, raster_index: Array) -> Array:
        """Channel-wise intensity embedding: one table of 256 C rows, and intensity v of channel c looks
        up row v + 256 c; a position holding several channels (DMOL: a pixel) sums theirs.
        values int [..., n] of the positions with raster indices [...] -> [..., d_model]."""
        per_position = values.shape[-1]
        channel = (raster_index[..., None] * per_position + jnp.arange(per_position)) % self.image_shape[2]
        return self.intensity_embedding(values + INTENSITIES * channel).sum(-2)

    def __call__(self, previous: Array, steps: Array, label: Array | None, rngs: nnx.Rngs | None) -> Array:
        """previous [batch, T, d] (the embedded values of steps - 1), steps int [T] -> [batch, T, d]."""
        order = jnp.asarray(self.order)
        x = previous + self.positions(order[steps]).astype(self.activation_dtype)[None]
        if self.class_embedding is not None:
            x = x + self.class_embedding(label)[:, None]
        return self.dropout(x, deterministic=rngs is None, rngs=rngs)

    def teacher_forced(self, values: Array, label: Array | None, rngs: nnx.Rngs | None) -> Array:
        """values [batch, positions, n] in generation order -> every step's input [batch, positions, d]."""
        embedded = self.embed_values(values, jnp.asarray(self.order)[None])
        previous = jnp.pad(embedded, ((0, 0), (1, 0), (0, 0)))[:, :-1]      # shift right
        return self(previous, jnp.arange(values.shape[1]), label, rngs)

    def step(self, values: Array, position: Array, label: Array | None) -> Array:
        """values [batch, n] generated at step position - 1 -> the input of step ``position`` [batch, 1, d]."""
        previous_index = jnp.asarray(self.order)[jnp.maximum(position - 1, 0)]
        previous = jnp.where(position > 0, self.embed_values(values, previous_index), 0.0)
        return self(previous[:, None].astype(self.activation_dtype), jnp.asarray(position)[None], label, None)

    def low_resolution(self, inputs: Array, rngs: nnx.Rngs | None) -> Array:
        """Super-resolution: low-resolution sub-pixels [batch, h w C] (raster) -> encoder input [batch, h w C, d]."""
        raster_index = jnp.arange(inputs.shape[1])
        x = self.embed_values(inputs[..., None], raster_index)
        x = x + self.input_positions(raster_index).astype(self.activation_dtype)
        return self.dropout(x, deterministic=rngs is None, rngs=rngs)


class ImageTransformer(nnx.Module):
    """Decoder-only Image Transformer: p(image) = prod_t p(position_t | positions before it); bits/dim =
    NLL per sub-pixel / ln 2 with either head.

    Super-resolution (``downsample`` > 1, Parmar et al., Sec. 4.3): an encoder of
    ``num_encoder_layers`` over the low-resolution image ``batch['inputs']`` (its sub-pixels embedded
    like the decoder's, self-attention ``model.encoder_attention``: full or unmasked local 2D), and
    encoder-decoder attention in every decoder layer: p(image | low-resolution image).
    """

    stops_at_eos = False   # an image has a fixed length; intensity 1 is no end-of-sequence token

    @staticmethod
    def check_config(model) -> None:
        one_of('model.positional', model.positional, PixelPositions.KINDS)

    def __init__(self, config, vocab_size: int, *, rngs: nnx.Rngs):
        if vocab_size != INTENSITIES:
            raise ConfigError('data.tokenizer', "the Image Transformer models 256 intensities; use 'pixels'")
        config = with_position_grids(config)
        grid = position_grid(config)
        if config.max_length < grid[0] * grid[1]:
            raise ConfigError('model.max_length', f'{config.max_length} < the {grid[0] * grid[1]} positions of '
                                                  f'an image')
        self.image_shape = tuple(config.image_shape)
        self.input_shape = input_shape(config)
        self.embedder = PixelEmbedder(config, rngs=rngs)
        self.encoder = EncoderStack(config, rngs=rngs) if self.input_shape is not None else None
        self.decoder = DecoderStack(config, cross_attention=self.input_shape is not None, rngs=rngs)
        self.head = make_head(config, INTENSITIES, **projection_dtypes(config), rngs=rngs)

    @property
    def order(self) -> np.ndarray:
        return self.embedder.order

    def attention_layers(self) -> dict[str, list]:
        """Its attention modules by kind and layer (stacks.attention_layers)."""
        return attention_layers(self.encoder, self.decoder)

    def encode(self, inputs: Array, rngs: nnx.Rngs | None) -> Array:
        """Super-resolution: low-resolution sub-pixels [batch, h w C] -> encoder output [batch, h w C, d]."""
        return self.encoder(self.embedder.low_resolution(inputs, rngs), None, rngs)

    def __call__(self, batch: dict, rngs: nnx.Rngs | None = None) -> Array:
        """batch['targets'] int [batch, H W C] in raster order -> outputs float32 in raster order of
        positions: logits [batch, H W C, 256], or DMOL parameters [batch, H W, 100 for K = 10 of RGB]."""
        targets = batch['targets']
        values = targets.reshape(targets.shape[0], -1, self.head.values_per_position)[:, jnp.asarray(self.order)]
        x = self.embedder.teacher_forced(values, batch.get('label'), rngs)
        encoded = None if self.encoder is None else self.encode(batch['inputs'], rngs)
        return self.head(self.decoder(x, encoded=encoded, rngs=rngs))[:, jnp.asarray(np.argsort(self.order))]

    def to_raster(self, sequence: np.ndarray) -> np.ndarray:
        """Generated tokens [batch, positions] in generation order -> uint8 images [batch, H, W, C]."""
        values = np.asarray(self.head.unpack(np.asarray(sequence)))
        raster = np.zeros_like(values)
        raster[:, self.order] = values
        return raster.reshape(-1, *self.image_shape).astype(np.uint8)

    def from_raster(self, images: np.ndarray) -> np.ndarray:
        """The inverse of ``to_raster``: images [batch, H, W, C] -> int32 tokens [batch, positions] in
        generation order (a prompt to continue)."""
        values = np.asarray(images, np.int32).reshape(len(images), -1, self.head.values_per_position)
        return np.asarray(self.head.pack(values[:, self.order]), np.int32)

    # --- cached decoding -----------------------------------------------------------------------
    def init_decode_state(self, batch_size: int, max_length: int, inputs: Array | None = None) -> dict:
        """``inputs``: the low-resolution images [batch, h w C] of a super-resolution model, the class
        labels [batch] of a class-conditional one, else None."""
        conditioned = self.encoder is not None or self.embedder.class_embedding is not None
        if (inputs is None) == conditioned:
            raise ValueError('a class-conditional model samples given labels [batch] as inputs, a super-resolution '
                             'model given low-resolution images [batch, h w C]; an unconditional one takes none')
        encoded = None if self.encoder is None else self.encode(inputs, None)
        return {'caches': self.decoder.init_caches(batch_size, max_length, encoded),
                'label': None if self.encoder is not None else inputs}

    def decode_step(self, tokens: Array, position: Array, state: dict) -> tuple[Array, dict]:
        """tokens [batch]: the token generated at step position - 1 -> outputs [batch, ...] of step position."""
        x = self.embedder.step(self.head.unpack(tokens), position, state['label'])
        hidden, caches = self.decoder.decode_step(x, state['caches'], position)
        return self.head(hidden)[:, 0], {**state, 'caches': caches}
