"""Building blocks shared by the models: embeddings, positional encodings, feed-forward, residual sublayers."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx

Array = jax.Array


def sinusoidal_position_encoding(positions: Array, d_model: int) -> Array:
    """The paper's fixed positional encoding (Vaswani et al., Sec. 3.5), float32 [..., d_model]:

        PE(pos, 2i) = sin(pos / 10000^(2i / d_model)),  PE(pos, 2i + 1) = cos(pos / 10000^(2i / d_model)).

    Even dimensions hold sines and odd dimensions cosines, interleaved as in the formula. Computed from
    the positions [...] directly, so packed rows (positions restarting at 0) and decoding need no table.
    """
    frequencies = 1.0 / 10000 ** (jnp.arange(0, d_model, 2, dtype=jnp.float32) / d_model)
    angles = positions[..., None].astype(jnp.float32) * frequencies
    interleaved = jnp.stack([jnp.sin(angles), jnp.cos(angles)], axis=-1)
    return interleaved.reshape(*positions.shape, -1)[..., :d_model]


class PositionEncoding(nnx.Module):
    """Position information for the token embeddings, by ``kind``:

    ``sinusoidal``         the fixed sinusoids added to the embeddings (Vaswani et al., Sec. 3.5);
    ``learned``            a learned table added instead (Vaswani et al., Table 3, row E);
    ``sinusoidal_concat``  ``features`` sinusoid dimensions concatenated to embeddings of
                           d_model - features dimensions (the Music Transformer's "concatenated
                           positional sinusoids", Huang et al. 2018, Table 1), so that the position
                           never shares dimensions with what the token says;
    ``none``               nothing: order comes from relative attention alone (or, in a causal
                           decoder, from the mask), so no position is ever outside what trained.
    """

    KINDS = ('sinusoidal', 'learned', 'sinusoidal_concat', 'none')

    def __init__(self, kind: str, max_length: int, d_model: int, *, features: int = 0, rngs: nnx.Rngs):
        if kind not in self.KINDS:
            raise ValueError(f'positional must be one of {self.KINDS}, got {kind!r}')
        self.concatenated, self.absent = kind == 'sinusoidal_concat', kind == 'none'
        self.features = features if self.concatenated else d_model
        self.table = (nnx.Param(nnx.initializers.normal(stddev=d_model ** -0.5)(
            rngs.params(), (max_length, d_model))) if kind == 'learned' else None)

    def __call__(self, positions: Array) -> Array:
        """positions int [batch, length] -> encodings [batch, length, features]."""
        if self.table is None:
            return sinusoidal_position_encoding(positions, self.features)
        return jnp.take(self.table[...], positions, axis=0)

    def with_positions(self, embedded: Array, positions: Array) -> Array:
        """embedded [batch, length, embedding_features] -> [batch, length, d_model], positions added
        or concatenated (or none)."""
        if self.absent:
            return embedded
        encoding = self(positions).astype(embedded.dtype)
        if self.concatenated:
            return jnp.concatenate([embedded, encoding], axis=-1)
        return embedded + encoding


class TokenEmbedding(nnx.Module):
    """Token embedding scaled by sqrt(d_model) (Sec. 3.4), optionally reused as the output projection.

    The table is initialised with standard deviation d_model^-0.5, so scaled embeddings have unit scale,
    comparable with the sinusoids added to them; ``logits`` multiplies by the transposed table, the
    weight tying of Sec. 3.4 (Press & Wolf 2017).
    """

    def __init__(self, vocab_size: int, d_model: int, *, dtype, param_dtype, rngs: nnx.Rngs,
                 dot_general=jax.lax.dot_general):
        self.d_model, self.dot_general = d_model, dot_general
        self.embed = nnx.Embed(vocab_size, d_model, dtype=dtype, param_dtype=param_dtype,
                               embedding_init=nnx.initializers.normal(stddev=d_model ** -0.5), rngs=rngs)

    def __call__(self, tokens: Array) -> Array:
        return self.embed(tokens) * math.sqrt(self.d_model)

    def logits(self, hidden: Array) -> Array:
        """hidden [..., d_model] -> logits [..., vocab] with the embedding table as output weights."""
        hidden, table = self.embed.promote_dtype((hidden, self.embed.embedding[...]), dtype=self.embed.dtype)
        return self.dot_general(hidden, table.T, (((hidden.ndim - 1,), (0,)), ((), ())))


DROPOUT_BITS = 16   # random bits per dropout decision: rates are rounded to multiples of 2^-16


def dropout_keep_mask(key: Array, shape: tuple[int, ...], rate: float, bits: int = DROPOUT_BITS) -> Array:
    """bool ``shape``: True where a unit is kept, each with probability 1 - rate' (rate' = rate rounded
    to a multiple of 2^-bits).

    A Bernoulli draw needs far fewer than the 32 random bits per unit that jax.random.bernoulli spends
    (threefry's counter hash was an eighth of the CPU train step): each 32-bit word here gives 32 / bits
    units their own ``bits``-bit uniform integer u, and the unit is kept when u >= rate' 2^bits. The
    words are drawn over the leading axes and the last one packed, so a batch sharded over devices
    draws its own share. Written by hand: neither jax.random nor flax packs several draws in a word.
    """
    per_word = 32 // bits
    *lead, last = shape
    words = jax.random.bits(key, (*lead, -(-last // per_word)), jnp.uint32)
    shifts = jnp.arange(per_word, dtype=jnp.uint32) * bits
    draws = ((words[..., None] >> shifts) & (2 ** bits - 1)).reshape(*lead, -1)[..., :last]
    return draws >= round(rate * 2 ** bits)


class Dropout(nnx.Module):
    """Inverted dropout (Srivastava et al. 2014): in training, each unit is zeroed with probability
    ``rate`` and the kept ones scaled by 1 / (1 - rate) so that expectations are unchanged; the
    identity without ``rngs`` (evaluation, decoding). ``nnx.Dropout``'s face, masks from
    ``dropout_keep_mask`` (the rate rounded to a multiple of 2^-16, the scale exact for that rate)."""

    def __init__(self, rate: float):
        self.rate = rate

    def __call__(self, x: Array, *, deterministic: bool, rngs: nnx.Rngs | None) -> Array:
        threshold = round(self.rate * 2 ** DROPOUT_BITS)
        if deterministic or threshold == 0:
            return x
        keep = dropout_keep_mask(rngs.dropout(), x.shape, self.rate)
        return jnp.where(keep, x / (1 - threshold / 2 ** DROPOUT_BITS), jnp.zeros_like(x))


class FeedForward(nnx.Module):
    """Position-wise feed-forward network FFN(x) = max(0, x W_1 + b_1) W_2 + b_2 (Sec. 3.3)."""

    def __init__(self, d_model: int, d_ff: int, dropout_rate: float, *, dtype, param_dtype,
                 rngs: nnx.Rngs, dot_general=jax.lax.dot_general):
        linear = dict(dtype=dtype, param_dtype=param_dtype, dot_general=dot_general, rngs=rngs)
        self.hidden = nnx.Linear(d_model, d_ff, **linear)
        self.output = nnx.Linear(d_ff, d_model, **linear)
        self.dropout = Dropout(dropout_rate)

    def __call__(self, x: Array, rngs: nnx.Rngs | None) -> Array:
        hidden = self.dropout(jax.nn.relu(self.hidden(x)), deterministic=rngs is None, rngs=rngs)
        return self.output(hidden)


class Residual(nnx.Module):
    """A residual connection with layer normalisation around one sublayer (Sec. 3.1 and 5.4).

    post-LN (the paper):  LayerNorm(x + Dropout(Sublayer(x)))
    pre-LN (more stable): x + Dropout(Sublayer(LayerNorm(x)))   (the stack then ends with a LayerNorm)
    """

    def __init__(self, d_model: int, dropout_rate: float, norm: str, *, dtype, param_dtype,
                 rngs: nnx.Rngs):
        self.pre_norm = norm == 'pre'
        self.layer_norm = nnx.LayerNorm(d_model, dtype=dtype, param_dtype=param_dtype, rngs=rngs)
        self.dropout = Dropout(dropout_rate)

    def branch_input(self, x: Array) -> Array:
        """What the sublayer sees: LayerNorm(x) for pre-LN, x for post-LN."""
        return self.layer_norm(x) if self.pre_norm else x

    def merge(self, x: Array, branch_output: Array, rngs: nnx.Rngs | None) -> Array:
        """Adds the (dropped-out) sublayer output to the residual stream."""
        residual = x + self.dropout(branch_output, deterministic=rngs is None, rngs=rngs)
        return residual if self.pre_norm else self.layer_norm(residual)

    def __call__(self, x: Array, sublayer, rngs: nnx.Rngs | None) -> Array:
        """``sublayer`` maps [batch, length, d_model] to the same shape."""
        return self.merge(x, sublayer(self.branch_input(x)), rngs)


def shift_right(targets: Array, positions: Array | None = None) -> Array:
    """Decoder inputs for teacher forcing: targets moved one step right, 0 (the start token) first.

    targets [batch, length]; with packed rows, ``positions`` [batch, length] restarts at 0 at every
    packed example, and those starts get the start token instead of the previous example's last token.
    """
    shifted = jnp.pad(targets, ((0, 0), (1, 0)))[:, :-1]
    if positions is not None:
        shifted = jnp.where(positions == 0, 0, shifted)
    return shifted
