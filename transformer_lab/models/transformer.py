"""The Transformer of Vaswani et al. (2017): ``EncoderDecoder`` and ``DecoderOnly``, each a
``SequenceEmbedder``, the shared stacks (models/stacks.py) and a head (models/heads.py), following the
model interface of models/__init__.py. Packed rows carry ``*_segment_ids`` and ``*_positions``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from transformer_lab.attention import padding_mask, segment_mask
from transformer_lab.backends import keep_as_computed
from transformer_lab.config import one_of, require
from transformer_lab.models.heads import make_head
from transformer_lab.models.layers import Dropout, PositionEncoding, TokenEmbedding, shift_right
from transformer_lab.models.stacks import DecoderStack, EncoderStack, attention_layers, dtypes, projection_dtypes

Array = jax.Array


def attention_mask(tokens_q: Array, tokens_k: Array, segments_q: Array | None,
                   segments_k: Array | None) -> Array:
    """[batch, 1, q_len, k_len]: same packed example when segment ids are given, else both non-padding."""
    if segments_q is not None:
        return segment_mask(segments_q, segments_k)
    return padding_mask(tokens_q > 0, tokens_k > 0)


def token_features(config) -> int:
    """Width of the token embeddings: d_model, less the sinusoid dimensions they are concatenated with
    under ``positional='sinusoidal_concat'``."""
    return config.d_model - (config.position_features if config.positional == 'sinusoidal_concat' else 0)


class SequenceEmbedder(nnx.Module):
    """A stack's input: token embedding + positions (+ voices), then dropout.

    ``voices`` > 0 adds a learned embedding of each position's voice (1..voices; 0 for EOS and
    padding): the Music Transformer's instrument labels (Huang et al. 2018, Table 1), here the S, A, T,
    B voice of the chorale token a position predicts, which the fixed serialisation order tells in advance.
    """

    def __init__(self, config, embedding: TokenEmbedding, *, voices: int = 0, rngs: nnx.Rngs):
        self.embedding = embedding
        self.position_encoding = PositionEncoding(config.positional, config.max_length, config.d_model,
                                                  features=config.position_features, rngs=rngs)
        self.voice_embedding = (nnx.Embed(voices + 1, config.d_model, **dtypes(config), rngs=rngs,
                                          embedding_init=nnx.initializers.normal(stddev=config.d_model ** -0.5))
                                if voices else None)
        self.dropout = Dropout(config.dropout_rate)

    def __call__(self, tokens: Array, positions: Array, rngs: nnx.Rngs | None, voices: Array | None = None) -> Array:
        """tokens, positions int [batch, length] -> [batch, length, d_model]."""
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


def _positions(batch: dict, name: str) -> Array:
    tokens = batch[name]
    if f'{name}_positions' in batch:
        return batch[f'{name}_positions']
    return jnp.broadcast_to(jnp.arange(tokens.shape[1]), tokens.shape)


class Decoding(nnx.Module):
    """The target side shared by both models: embedder, decoder stack and head, full and cached."""

    stops_at_eos = True   # a generated sequence ends at EOS (decoding/)
    encoder = None        # the encoder-decoder's encoder stack

    @staticmethod
    def check_config(model) -> None:
        """Positions by kind; concatenated sinusoids need room beside narrower token embeddings."""
        one_of('model.positional', model.positional, PositionEncoding.KINDS)
        require(model.positional != 'none' or model.name == 'decoder_only', 'model.positional',
                f"'none' leaves {model.name}'s encoder a bag of tokens: without absolute positions only a causal "
                f"decoder has an order (its mask, and relative attention); valid for it: {PositionEncoding.KINDS[:3]}")
        if model.positional == 'sinusoidal_concat':
            require(0 < model.position_features < model.d_model and model.position_features % 2 == 0,
                    'model.position_features', f'must be even and in (0, d_model={model.d_model}) with '
                    f"positional='sinusoidal_concat', got {model.position_features}")
            require(not model.tie_output, 'model.tie_output', "must be False with positional='sinusoidal_concat': "
                    'the output projection is d_model wide, the token embeddings are narrower')

    def _init_target_side(self, config, embedding: TokenEmbedding, vocab_size: int, *, cross_attention: bool,
                          rngs: nnx.Rngs):
        self.target_embedder = SequenceEmbedder(config, embedding, voices=config.num_voices, rngs=rngs)
        self.decoder = DecoderStack(config, cross_attention=cross_attention, rngs=rngs)
        self.head = make_head(config, vocab_size, tied_embedding=embedding if config.tie_output else None,
                              **projection_dtypes(config), rngs=rngs)

    def attention_layers(self) -> dict[str, list]:
        """Its attention modules by kind and layer (stacks.attention_layers)."""
        return attention_layers(self.encoder, self.decoder)

    def decode(self, batch: dict, encoded: Array | None, cross_mask: Array | None,
               rngs: nnx.Rngs | None) -> Array:
        targets = batch['targets']
        segments = batch.get('targets_segment_ids')
        # The causal self-attention core masks the future itself, and with it the padding at the end of
        # each row (a real position never sees it); only packed rows need a mask more.
        self_mask = None if segments is None else segment_mask(segments, segments)
        x = self.target_embedder(shift_right(targets, batch.get('targets_positions')), _positions(batch, 'targets'),
                                 rngs, batch.get('targets_voices'))
        return self.head(self.decoder(x, self_mask=self_mask, encoded=encoded, cross_mask=cross_mask, rngs=rngs))

    def decode_step(self, tokens: Array, position: Array, state: dict) -> tuple[Array, dict]:
        positions = jnp.full((tokens.shape[0], 1), position)
        x = self.target_embedder(tokens[:, None], positions, None, self.target_embedder.decoding_voices(positions))
        hidden, caches = self.decoder.decode_step(x, state['caches'], position, state.get('cross_mask'))
        return self.head(hidden)[:, 0], {**state, 'caches': caches}


class EncoderDecoder(Decoding):
    """The Transformer for sequence transduction: p(targets | inputs), decoder attends to the encoder."""

    def __init__(self, config, vocab_size: int, *, rngs: nnx.Rngs):
        target_embedding = TokenEmbedding(vocab_size, token_features(config), **projection_dtypes(config), rngs=rngs)
        source_embedding = (target_embedding if config.share_embeddings else
                            TokenEmbedding(vocab_size, token_features(config), **projection_dtypes(config), rngs=rngs))
        self.source_embedder = SequenceEmbedder(config, source_embedding, rngs=rngs)
        self.encoder = EncoderStack(config, rngs=rngs)
        self._init_target_side(config, target_embedding, vocab_size, cross_attention=True, rngs=rngs)

    def encode(self, inputs: Array, positions: Array, segments: Array | None,
               rngs: nnx.Rngs | None) -> Array:
        """inputs [batch, source_len] -> encoder output [batch, source_len, d_model]."""
        mask = attention_mask(inputs, inputs, segments, segments)
        return self.encoder(self.source_embedder(inputs, positions, rngs), mask, rngs)

    def __call__(self, batch: dict, rngs: nnx.Rngs | None = None) -> Array:
        inputs, targets = batch['inputs'], batch['targets']
        encoded = self.encode(inputs, _positions(batch, 'inputs'), batch.get('inputs_segment_ids'), rngs)
        cross_mask = attention_mask(targets, inputs, batch.get('targets_segment_ids'),
                                    batch.get('inputs_segment_ids'))
        return self.decode(batch, encoded, cross_mask, rngs)

    def init_decode_state(self, batch_size: int, max_length: int, inputs: Array | None = None) -> dict:
        if inputs is None:
            raise ValueError('EncoderDecoder decodes conditioned on `inputs` [batch, source_len]')
        if batch_size % inputs.shape[0]:
            raise ValueError(f'{batch_size} decoding rows cannot share {inputs.shape[0]} sources evenly')
        positions = jnp.broadcast_to(jnp.arange(inputs.shape[1]), inputs.shape)
        encoded = self.encode(inputs, positions, None, None)
        return keep_as_computed({'caches': self.decoder.init_caches(batch_size, max_length, encoded),
                                 'cross_mask': (inputs > 0)[:, None, None, :]})


class DecoderOnly(Decoding):
    """A Transformer decoder without encoder-decoder attention: an autoregressive model p(targets)."""

    def __init__(self, config, vocab_size: int, *, rngs: nnx.Rngs):
        embedding = TokenEmbedding(vocab_size, token_features(config), **projection_dtypes(config), rngs=rngs)
        self._init_target_side(config, embedding, vocab_size, cross_attention=False, rngs=rngs)

    def __call__(self, batch: dict, rngs: nnx.Rngs | None = None) -> Array:
        return self.decode(batch, None, None, rngs)

    def init_decode_state(self, batch_size: int, max_length: int, inputs: Array | None = None) -> dict:
        del inputs
        return {'caches': self.decoder.init_caches(batch_size, max_length)}
