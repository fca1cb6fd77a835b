"""The Transformer of Vaswani et al. (2017): encoder, decoder, ``EncoderDecoder`` and ``DecoderOnly``.

Models are built from the ``model`` section of a config and a vocabulary size. Their common face,
which the training loop, the evaluators and the decoding core use without knowing the model:

    model(batch, rngs=None) -> logits float32 [batch, target_len, vocab]
        teacher forcing over ``batch['targets']`` (and ``batch['inputs']`` for encoder-decoder);
        packed rows carry ``*_segment_ids`` and ``*_positions``; ``rngs`` None means no dropout.
    model.init_decode_state(batch_size, max_length, inputs=None) -> state (caches, encoder output)
    model.decode_step(tokens [batch], position, state) -> (logits float32 [batch, vocab], state)
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from transformer_lab.attention import (MultiHeadAttention, make_core,
                                       padding_mask, segment_mask)
from transformer_lab.models.heads import choose_tokens, token_losses
from transformer_lab.models.layers import (FeedForward, PositionEncoding, Residual, TokenEmbedding,
                                           shift_right)

Array = jax.Array

DTYPES = {'float32': jnp.float32, 'bfloat16': jnp.bfloat16}


def _dtypes(config) -> dict:
    """Compute dtype from the config; parameters always stay float32."""
    return dict(dtype=DTYPES[config.dtype], param_dtype=jnp.float32)


def _attention(config, *, causal: bool, rngs: nnx.Rngs, attention_config=None) -> MultiHeadAttention:
    """Multi-head attention whose core is ``attention_config`` (default: the model's ``attention``)."""
    head_dim = (config.attention_dims or config.d_model) // config.num_heads
    core = make_core(attention_config or config.attention, num_heads=config.num_heads, head_dim=head_dim,
                     causal=causal, rngs=rngs)
    return MultiHeadAttention(config.d_model, config.num_heads, core, head_dim=head_dim, **_dtypes(config),
                              rngs=rngs)


# Encoder-decoder attention relates two sequences of different lengths: always full attention.
CROSS_ATTENTION = {'type': 'dot_product'}


def _residual(config, *, rngs: nnx.Rngs) -> Residual:
    return Residual(config.d_model, config.dropout_rate, config.norm, **_dtypes(config), rngs=rngs)


def attention_mask(tokens_q: Array, tokens_k: Array, segments_q: Array | None,
                   segments_k: Array | None) -> Array:
    """[batch, 1, q_len, k_len]: same packed example when segment ids are given, else both non-padding."""
    if segments_q is not None:
        return segment_mask(segments_q, segments_k)
    return padding_mask(tokens_q > 0, tokens_k > 0)


class EncoderLayer(nnx.Module):
    """Self-attention then feed-forward, each inside a residual sublayer (Sec. 3.1). The self-attention
    core is ``model.encoder_attention`` when the config has one (e.g. unmasked local 2D over a
    low-resolution image), else ``model.attention``."""

    def __init__(self, config, *, rngs: nnx.Rngs):
        self.self_attention = _attention(config, causal=False, rngs=rngs,
                                         attention_config=config.get('encoder_attention'))
        self.attention_residual = _residual(config, rngs=rngs)
        self.feed_forward = FeedForward(config.d_model, config.d_ff, config.dropout_rate,
                                        **_dtypes(config), rngs=rngs)
        self.feed_forward_residual = _residual(config, rngs=rngs)

    def __call__(self, x: Array, mask: Array, rngs: nnx.Rngs | None) -> Array:
        x = self.attention_residual(x, lambda h: self.self_attention(h, mask=mask), rngs)
        return self.feed_forward_residual(x, lambda h: self.feed_forward(h, rngs), rngs)


class DecoderLayer(nnx.Module):
    """Masked self-attention, encoder-decoder attention (if ``cross_attention``), feed-forward."""

    def __init__(self, config, *, cross_attention: bool, rngs: nnx.Rngs):
        self.cache_dtype = DTYPES[config.dtype]
        self.self_attention = _attention(config, causal=True, rngs=rngs)
        self.self_attention_residual = _residual(config, rngs=rngs)
        if cross_attention:
            self.cross_attention = _attention(config, causal=False, rngs=rngs, attention_config=CROSS_ATTENTION)
            self.cross_attention_residual = _residual(config, rngs=rngs)
        else:
            self.cross_attention = None
        self.feed_forward = FeedForward(config.d_model, config.d_ff, config.dropout_rate,
                                        **_dtypes(config), rngs=rngs)
        self.feed_forward_residual = _residual(config, rngs=rngs)

    def _cross_and_feed_forward(self, x, encoded_kv, cross_mask, rngs):
        if self.cross_attention is not None:
            x = self.cross_attention_residual(
                x, lambda h: self.cross_attention.attend(h, encoded_kv, cross_mask), rngs)
        return self.feed_forward_residual(x, lambda h: self.feed_forward(h, rngs), rngs)

    def __call__(self, x: Array, self_mask: Array, encoded: Array | None, cross_mask: Array | None,
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


def token_features(config) -> int:
    """Width of the token embeddings: d_model, less the sinusoid dimensions they are concatenated with
    under ``positional='sinusoidal_concat'``."""
    return config.d_model - (config.position_features if config.positional == 'sinusoidal_concat' else 0)


class Stack(nnx.Module):
    """Embedding + positions (+ voices) + dropout, the layers, and (pre-LN only) a final LayerNorm.

    ``voices`` > 0 adds a learned embedding of each position's voice (1..voices; 0 for EOS and
    padding): the Music Transformer's instrument labels (Huang et al. 2018, Table 1), here the S, A, T,
    B voice of the chorale token a position predicts, which the fixed serialisation order tells in advance.
    """

    def __init__(self, config, embedding: TokenEmbedding, layers: list[nnx.Module], *, voices: int = 0,
                 rngs: nnx.Rngs):
        self.embedding = embedding
        self.position_encoding = PositionEncoding(config.positional, config.max_length, config.d_model,
                                                  features=config.position_features, rngs=rngs)
        self.voice_embedding = (nnx.Embed(voices + 1, config.d_model, **_dtypes(config), rngs=rngs,
                                          embedding_init=nnx.initializers.normal(stddev=config.d_model ** -0.5))
                                if voices else None)
        self.dropout = nnx.Dropout(config.dropout_rate)
        self.layers = nnx.List(layers)
        self.final_norm = (nnx.LayerNorm(config.d_model, **_dtypes(config), rngs=rngs)
                           if config.norm == 'pre' else None)

    def embed(self, tokens: Array, positions: Array, rngs: nnx.Rngs | None, voices: Array | None = None) -> Array:
        x = self.position_encoding.with_positions(self.embedding(tokens), positions)
        if self.voice_embedding is not None:
            x = x + self.voice_embedding(voices)
        return self.dropout(x, deterministic=rngs is None, rngs=rngs)

    def decoding_voices(self, positions: Array) -> Array | None:
        """The voice of each decoded position: voices take turns (S, A, T, B, S, ...) from position 0,
        the start of a piece, as the chorales are serialised."""
        if self.voice_embedding is None:
            return None
        return positions % (self.voice_embedding.num_embeddings - 1) + 1

    def finish(self, x: Array) -> Array:
        return x if self.final_norm is None else self.final_norm(x)


def _positions(batch: dict, name: str) -> Array:
    tokens = batch[name]
    if f'{name}_positions' in batch:
        return batch[f'{name}_positions']
    return jnp.broadcast_to(jnp.arange(tokens.shape[1]), tokens.shape)


class Decoding(nnx.Module):
    """The output side shared by both models: decoder stack, output projection, cached decoding."""

    stops_at_eos = True   # a generated sequence ends at EOS (decoding/)
    POSITIONALS = PositionEncoding.KINDS

    def target_losses(self, logits: Array, batch: dict, label_smoothing: float) -> tuple[Array, Array]:
        """(label-smoothed loss, NLL) per target token [batch, length]."""
        return token_losses(logits, batch['targets'], label_smoothing)

    def predict(self, logits: Array) -> Array:
        """The most likely token of each position."""
        return jnp.argmax(logits, axis=-1)

    def choose_tokens(self, logits: Array, key: Array, temperature: float, top_k: int) -> Array:
        return choose_tokens(logits, key, temperature, top_k)

    def _init_output(self, config, vocab_size: int, *, rngs: nnx.Rngs):
        self.output = (None if config.tie_output else
                       nnx.Linear(config.d_model, vocab_size, **_dtypes(config), rngs=rngs))

    def logits(self, hidden: Array) -> Array:
        head = self.decoder.embedding.logits if self.output is None else self.output
        return head(hidden).astype(jnp.float32)

    def decode(self, batch: dict, encoded: Array | None, cross_mask: Array | None,
               rngs: nnx.Rngs | None) -> Array:
        targets = batch['targets']
        positions = _positions(batch, 'targets')
        segments = batch.get('targets_segment_ids')
        # The causal self-attention core masks the future itself, and with it the padding at the end of
        # each row (a real position never sees it); only packed rows need a mask more.
        self_mask = None if segments is None else segment_mask(segments, segments)
        x = self.decoder.embed(shift_right(targets, batch.get('targets_positions')), positions, rngs,
                               batch.get('targets_voices'))
        for layer in self.decoder.layers:
            x = layer(x, self_mask, encoded, cross_mask, rngs)
        return self.logits(self.decoder.finish(x))

    def _init_decoder_caches(self, batch_size: int, max_length: int, encoded: Array | None) -> list:
        return [layer.init_cache(batch_size, max_length, encoded) for layer in self.decoder.layers]

    def decode_step(self, tokens: Array, position: Array, state: dict) -> tuple[Array, dict]:
        positions = jnp.full((tokens.shape[0], 1), position)
        x = self.decoder.embed(tokens[:, None], positions, None, self.decoder.decoding_voices(positions))
        caches = []
        for layer, cache in zip(self.decoder.layers, state['caches']):
            x, cache = layer.decode_step(x, cache, position, state.get('cross_mask'))
            caches.append(cache)
        return self.logits(self.decoder.finish(x))[:, 0], {**state, 'caches': caches}


class EncoderDecoder(Decoding):
    """The Transformer for sequence transduction: p(targets | inputs), decoder attends to the encoder."""

    def __init__(self, config, vocab_size: int, *, rngs: nnx.Rngs):
        target_embedding = TokenEmbedding(vocab_size, token_features(config), **_dtypes(config), rngs=rngs)
        source_embedding = (target_embedding if config.share_embeddings else
                            TokenEmbedding(vocab_size, token_features(config), **_dtypes(config), rngs=rngs))
        self.encoder = Stack(config, source_embedding,
                             [EncoderLayer(config, rngs=rngs) for _ in range(config.num_encoder_layers)],
                             rngs=rngs)
        self.decoder = Stack(config, target_embedding,
                             [DecoderLayer(config, cross_attention=True, rngs=rngs)
                              for _ in range(config.num_decoder_layers)], voices=config.num_voices,
                             rngs=rngs)
        self._init_output(config, vocab_size, rngs=rngs)

    def encode(self, inputs: Array, positions: Array, segments: Array | None,
               rngs: nnx.Rngs | None) -> Array:
        """inputs [batch, source_len] -> encoder output [batch, source_len, d_model]."""
        mask = attention_mask(inputs, inputs, segments, segments)
        x = self.encoder.embed(inputs, positions, rngs)
        for layer in self.encoder.layers:
            x = layer(x, mask, rngs)
        return self.encoder.finish(x)

    def __call__(self, batch: dict, rngs: nnx.Rngs | None = None) -> Array:
        inputs, targets = batch['inputs'], batch['targets']
        encoded = self.encode(inputs, _positions(batch, 'inputs'), batch.get('inputs_segment_ids'), rngs)
        cross_mask = attention_mask(targets, inputs, batch.get('targets_segment_ids'),
                                    batch.get('inputs_segment_ids'))
        return self.decode(batch, encoded, cross_mask, rngs)

    def init_decode_state(self, batch_size: int, max_length: int, inputs: Array | None = None) -> dict:
        if inputs is None:
            raise ValueError('EncoderDecoder decodes conditioned on `inputs` [batch, source_len]')
        positions = jnp.broadcast_to(jnp.arange(inputs.shape[1]), inputs.shape)
        encoded = self.encode(inputs, positions, None, None)
        return {'caches': self._init_decoder_caches(batch_size, max_length, encoded),
                'cross_mask': (inputs > 0)[:, None, None, :]}


class DecoderOnly(Decoding):
    """A Transformer decoder without encoder-decoder attention: an autoregressive model p(targets)."""

    def __init__(self, config, vocab_size: int, *, rngs: nnx.Rngs):
        embedding = TokenEmbedding(vocab_size, token_features(config), **_dtypes(config), rngs=rngs)
        self.decoder = Stack(config, embedding,
                             [DecoderLayer(config, cross_attention=False, rngs=rngs)
                              for _ in range(config.num_decoder_layers)], voices=config.num_voices,
                             rngs=rngs)
        self._init_output(config, vocab_size, rngs=rngs)

    def __call__(self, batch: dict, rngs: nnx.Rngs | None = None) -> Array:
        return self.decode(batch, None, None, rngs)

    def init_decode_state(self, batch_size: int, max_length: int, inputs: Array | None = None) -> dict:
        del inputs
        return {'caches': self._init_decoder_caches(batch_size, max_length, None)}
