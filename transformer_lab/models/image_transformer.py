"""The Image Transformer (Parmar et al. 2018): an image generated position by position by a
Transformer decoder, with local attention for long images.

Two heads (``model.head``): ``categorical``, where every colour channel of every pixel (a *sub-pixel*)
is a position with a 256-way softmax (H W C positions), and ``dmol``, where every pixel is a position
whose C channels are predicted jointly by a discretised mixture of logistics (H W positions; see
models/heads.py). Batches hold images in raster order (row, column, channel); the model reads them in
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

from transformer_lab.attention.local import block_raster_order
from transformer_lab.config import ConfigError
from transformer_lab.models.heads import (choose_tokens, dmol_log_likelihood, dmol_parameter_count, dmol_sample,
                                          token_losses)
from transformer_lab.models.layers import TokenEmbedding, sinusoidal_position_encoding
from transformer_lab.models.transformer import DTYPES, DecoderLayer, EncoderLayer, _dtypes

Array = jax.Array
INTENSITIES = 256
HEADS = ('categorical', 'dmol')


@functools.lru_cache(maxsize=None)
def _generation_order(grid: tuple[int, int], attention_type: str, query_shape: tuple[int, int] | None) -> np.ndarray:
    if attention_type == 'local_2d':
        return block_raster_order(grid, query_shape)
    return np.arange(grid[0] * grid[1])


def position_grid(model_config) -> tuple[int, int]:
    """The positions seen as an image: (H, W C) sub-pixels for the categorical head, (H, W) pixels for DMOL."""
    height, width, channels = model_config.image_shape
    return (height, width) if model_config.head == 'dmol' else (height, width * channels)


def _order_key(model_config) -> tuple:
    attention = model_config.attention
    query_shape = tuple(attention.get('query_shape', (8, 32))) if attention.type == 'local_2d' else None
    return position_grid(model_config), attention.type, query_shape


def generation_order(model_config) -> np.ndarray:
    """int [positions]: step t of generation produces the position (sub-pixel, or pixel for DMOL) of
    raster index order[t]. Raster order, except for local 2D attention: block-raster over the position
    grid (see attention/local.py)."""
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
    """Decoder-only Image Transformer: p(image) = prod_t p(position_t | positions before it), with a
    categorical or DMOL head; bits/dim = NLL per sub-pixel / ln 2 either way.

    Input of step t: the channel-wise intensity embeddings of the values at step t-1 (``embed_values``;
    zeros at t = 0) plus the positional encoding of step t, plus a class embedding when
    ``num_classes`` > 0 (class-conditional generation). A DMOL step is a whole pixel: decoding packs
    its C intensities into one token v_0 + 256 v_1 + 256^2 v_2.

    Super-resolution (``input_shape`` set, Parmar et al., Sec. 4.3): an encoder of
    ``num_encoder_layers`` over the low-resolution image ``batch['inputs']`` (its sub-pixels embedded
    like the decoder's, self-attention ``model.encoder_attention``: full or unmasked local 2D), and
    encoder-decoder attention in every decoder layer: p(image | low-resolution image).
    """

    stops_at_eos = False   # an image has a fixed length; intensity 1 is no end-of-sequence token
    POSITIONALS = ('sinusoidal', 'learned')   # over rows, columns and channels (PixelPositions)

    def __init__(self, config, vocab_size: int, *, rngs: nnx.Rngs):
        if vocab_size != INTENSITIES:
            raise ConfigError('data.tokenizer', "the Image Transformer models 256 intensities; use 'pixels'")
        if config.head not in HEADS:
            raise ConfigError('model.head', f'{config.head!r} is not one of {list(HEADS)}')
        self.image_shape = tuple(config.image_shape)
        height, width, channels = self.image_shape
        self.dmol = config.head == 'dmol'
        self.mixtures = config.mixtures
        self.values_per_position = channels if self.dmol else 1
        grid = position_grid(config)
        if config.attention.type == 'local_2d' and tuple(config.attention.image_shape) != grid:
            raise ConfigError('model.attention.image_shape', f'{tuple(config.attention.image_shape)} must be the '
                                                             f'{config.head} head\'s grid of positions {grid}')
        if config.max_length < grid[0] * grid[1]:
            raise ConfigError('model.max_length', f'{config.max_length} < the {grid[0] * grid[1]} positions of '
                                                  f'an image')
        self.order_key = _order_key(config)   # static: the order itself is computed (and cached) from it
        self.compute_dtype = DTYPES[config.dtype]
        self.intensity_embedding = TokenEmbedding(INTENSITIES * channels, config.d_model, **_dtypes(config),
                                                  rngs=rngs)
        position_shape = (height, width, 1) if self.dmol else self.image_shape
        self.positions = PixelPositions(config.positional, position_shape, config.d_model, rngs=rngs)
        self.class_embedding = (nnx.Embed(config.num_classes, config.d_model, **_dtypes(config), rngs=rngs)
                                if config.num_classes else None)
        self.dropout = nnx.Dropout(config.dropout_rate)
        self.input_shape = tuple(config.input_shape) if config.get('input_shape') else None
        if self.input_shape is not None:
            self.input_positions = PixelPositions(config.positional, self.input_shape, config.d_model, rngs=rngs)
            self.encoder_layers = nnx.List([EncoderLayer(config, rngs=rngs) for _ in range(config.num_encoder_layers)])
            self.encoder_norm = (nnx.LayerNorm(config.d_model, **_dtypes(config), rngs=rngs)
                                 if config.norm == 'pre' else None)
        self.layers = nnx.List([DecoderLayer(config, cross_attention=self.input_shape is not None, rngs=rngs)
                                for _ in range(config.num_decoder_layers)])
        self.final_norm = (nnx.LayerNorm(config.d_model, **_dtypes(config), rngs=rngs)
                           if config.norm == 'pre' else None)
        outputs = dmol_parameter_count(channels, config.mixtures) if self.dmol else INTENSITIES
        self.head = nnx.Linear(config.d_model, outputs, **_dtypes(config), rngs=rngs)

    @property
    def order(self) -> np.ndarray:
        return _generation_order(*self.order_key)

    def embed_values(self, values: Array, raster_index: Array) -> Array:
        """Channel-wise intensity embedding (Parmar et al., Sec. 3.1): one table of 256 C rows, and
        intensity v of channel c looks up row v + 256 c; a DMOL position sums its C channels.
        values int [..., values_per_position], raster_index int [...] -> [..., d_model]."""
        channels = self.image_shape[2]
        channel = jnp.arange(channels) if self.dmol else (raster_index % channels)[..., None]
        return self.intensity_embedding(values + INTENSITIES * channel).sum(-2)

    def _step_inputs(self, previous: Array, steps: Array, label: Array | None, rngs) -> Array:
        """previous [batch, T, d] (embedded values of the previous steps), steps int [T] -> [batch, T, d]."""
        order = jnp.asarray(self.order)
        x = previous + self.positions(order[steps]).astype(self.compute_dtype)[None]
        if self.class_embedding is not None:
            x = x + self.class_embedding(label)[:, None]
        return self.dropout(x, deterministic=rngs is None, rngs=rngs)

    def _output(self, x: Array) -> Array:
        x = x if self.final_norm is None else self.final_norm(x)
        return self.head(x).astype(jnp.float32)

    def encode(self, inputs: Array, rngs: nnx.Rngs | None) -> Array:
        """Super-resolution: low-resolution sub-pixels [batch, h w C] (raster) -> encoder output [batch, h w C, d]."""
        raster_index = jnp.arange(inputs.shape[1])
        x = self.intensity_embedding(inputs + INTENSITIES * (raster_index % self.input_shape[2]))
        x = self.dropout(x + self.input_positions(raster_index).astype(self.compute_dtype), deterministic=rngs is None,
                         rngs=rngs)
        for layer in self.encoder_layers:
            x = layer(x, None, rngs)
        return x if self.encoder_norm is None else self.encoder_norm(x)

    def __call__(self, batch: dict, rngs: nnx.Rngs | None = None) -> Array:
        """batch['targets'] int [batch, H W C] in raster order -> outputs float32 in raster order of
        positions: logits [batch, H W C, 256], or DMOL parameters [batch, H W, 100 for K = 10 of RGB]."""
        order = jnp.asarray(self.order)
        targets = batch['targets']
        values = targets.reshape(targets.shape[0], -1, self.values_per_position)[:, order]
        embedded = self.embed_values(values, order[None])
        previous = jnp.pad(embedded, ((0, 0), (1, 0), (0, 0)))[:, :-1]      # teacher forcing: shift right
        x = self._step_inputs(previous, jnp.arange(values.shape[1]), batch.get('label'), rngs)
        encoded = None if self.input_shape is None else self.encode(batch['inputs'], rngs)
        for layer in self.layers:
            x = layer(x, None, encoded, None, rngs)
        return self._output(x)[:, jnp.asarray(np.argsort(self.order))]

    # --- what the outputs mean -----------------------------------------------------------------
    def target_losses(self, outputs: Array, batch: dict, label_smoothing: float) -> tuple[Array, Array]:
        """(training loss, NLL) per sub-pixel [batch, H W C]. DMOL spreads a pixel's NLL evenly over
        its C sub-pixels (so sums, and bits/dim, are exact) and has no label smoothing."""
        targets = batch['targets']
        if not self.dmol:
            return token_losses(outputs, targets, label_smoothing)
        channels = self.image_shape[2]
        pixels = targets.reshape(targets.shape[0], -1, channels)
        nll = -dmol_log_likelihood(outputs, pixels, self.mixtures) / channels
        nll = jnp.broadcast_to(nll[..., None], pixels.shape).reshape(targets.shape)
        return nll, nll

    def predict(self, outputs: Array) -> Array:
        """The most likely intensity of each sub-pixel (DMOL: the top component's means)."""
        if not self.dmol:
            return jnp.argmax(outputs, axis=-1)
        pixels = dmol_sample(outputs, jax.random.key(0), self.image_shape[2], self.mixtures, temperature=0.0)
        return pixels.reshape(outputs.shape[0], -1)

    def choose_tokens(self, outputs: Array, key: Array, temperature: float, top_k: int) -> Array:
        """One decoding step's token [batch]: an intensity, or a DMOL pixel packed into one integer."""
        if not self.dmol:
            return choose_tokens(outputs, key, temperature, top_k)
        pixel = dmol_sample(outputs, key, self.image_shape[2], self.mixtures, temperature)
        return (pixel * INTENSITIES ** jnp.arange(pixel.shape[-1])).sum(-1)

    def _unpack(self, tokens: Array) -> Array:
        """tokens [...] -> the values of their positions [..., values_per_position]."""
        if not self.dmol:
            return tokens[..., None]
        return tokens[..., None] // INTENSITIES ** np.arange(self.values_per_position) % INTENSITIES

    def to_raster(self, sequence: np.ndarray) -> np.ndarray:
        """Generated tokens [batch, positions] in generation order -> uint8 images [batch, H, W, C]."""
        values = np.asarray(self._unpack(np.asarray(sequence)))
        raster = np.zeros_like(values)
        raster[:, self.order] = values
        return raster.reshape(-1, *self.image_shape).astype(np.uint8)

    # --- cached decoding -----------------------------------------------------------------------
    def init_decode_state(self, batch_size: int, max_length: int, inputs: Array | None = None) -> dict:
        """``inputs``: the low-resolution images [batch, h w C] of a super-resolution model, the class
        labels [batch] of a class-conditional one, else None."""
        conditioned = self.input_shape is not None or self.class_embedding is not None
        if (inputs is None) == conditioned:
            raise ValueError('a class-conditional model samples given labels [batch] as inputs, a super-resolution '
                             'model given low-resolution images [batch, h w C]; an unconditional one takes none')
        encoded = None if self.input_shape is None else self.encode(inputs, None)
        caches = [layer.init_cache(batch_size, max_length, encoded) for layer in self.layers]
        return {'caches': caches, 'label': None if self.input_shape is not None else inputs}

    def decode_step(self, tokens: Array, position: Array, state: dict) -> tuple[Array, dict]:
        """tokens [batch]: the token generated at step position - 1 -> outputs [batch, ...] of step position."""
        order = jnp.asarray(self.order)
        previous_index = order[jnp.maximum(position - 1, 0)]
        previous = jnp.where(position > 0, self.embed_values(self._unpack(tokens), previous_index), 0.0)
        x = self._step_inputs(previous[:, None].astype(self.compute_dtype), jnp.asarray(position)[None],
                              state['label'], None)
        caches = []
        for layer, cache in zip(self.layers, state['caches']):
            x, cache = layer.decode_step(x, cache, position, None)
            caches.append(cache)
        return self._output(x)[:, 0], {**state, 'caches': caches}
