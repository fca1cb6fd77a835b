"""Beam search over any model's decoding cache, batched (Wu et al. 2016, Sec. 7; Vaswani et al. 2017,
Sec. 6.1: beam 4, length penalty alpha 0.6, at most input length + 50 tokens).

Written by hand: no maintained JAX library offers a beam search over an arbitrary model's cache. It
runs the model's own ``init_decode_state`` / ``decode_step`` (models/transformer.py) on batch x beam
rows, so it needs nothing of a model beyond greedy decoding, as long as ``decode_step`` returns
logits [rows, vocab] and every leaf of the decoding state it writes has the rows as its first axis.

Every step extends each of the ``beam`` live hypotheses of a row by every token and keeps the 2 x beam
best extensions by log-probability: those ending with EOS join the row's finished hypotheses, scored
by ``log p / length_penalty(length)``, of which the best ``beam`` are kept; the best ``beam`` of the
others live on. A row stops when no live hypothesis can still beat its worst kept finished one; a
hypothesis that reaches the row's limit (``max_length``, or the source length + ``extra_length``) ends
there without EOS, as greedy decoding's do.

Two savings keep beam search's work near greedy decoding's: the decoding state is asked of the model
for batch x beam rows conditioned on the batch's sources, so the encoder runs on ``batch`` rows and
its keys and values are kept once per source, shared by its beams (encoder-decoder attention attends
a source's beams together, ``MultiHeadAttention.attend``); and only the state leaves that
``decode_step`` writes are reordered between beams each step (``_reorder_beams``).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from flax import nnx

from transformer_lab.data.tokenizers import EOS_ID, PAD_ID

NEGATIVE_INFINITY = -1.0e9    # finite, so that sums and comparisons of dead hypotheses stay defined


def length_penalty(length: jax.Array, alpha: float) -> jax.Array:
    """GNMT's length normalisation lp(Y) = ((5 + |Y|) / 6)^alpha (Wu et al. 2016, eq. 14): a
    hypothesis scores log P(Y | X) / lp(Y), so that longer translations are not crowded out."""
    return ((5.0 + length) / 6.0) ** alpha


def _reorder_beams(updated, previous, indices: jax.Array, batch_size: int, beam_size: int):
    """Each leaf [batch x beam, ...] of the ``updated`` state -> row b's beams ``indices[b]``, except
    the leaves ``decode_step`` returned unchanged from ``previous`` (the same traced array): those are
    the same for all of a row's beams (kept once per source, like the encoder's keys and values), so
    they are kept as they are."""
    def reorder(leaf, before):
        if leaf is before:
            return leaf
        if leaf.ndim == 0 or leaf.shape[0] != batch_size * beam_size:
            raise ValueError(f'beam search needs every leaf that decode_step writes to have the batch x beam rows '
                             f'({batch_size * beam_size}) first, got {leaf.shape}')
        beams = leaf.reshape(batch_size, beam_size, *leaf.shape[1:])
        picked = jnp.take_along_axis(beams, indices.reshape(*indices.shape, *([1] * (leaf.ndim - 1))), axis=1)
        return picked.reshape(-1, *leaf.shape[1:])
    return jax.tree.map(reorder, updated, previous)


def _top(scores: jax.Array, count: int, *arrays: jax.Array):
    """The ``count`` best of [batch, n] scores, with the matching entries of each [batch, n, ...] array."""
    best, indices = jax.lax.top_k(scores, count)
    return best, [jnp.take_along_axis(a, indices.reshape(*indices.shape, *([1] * (a.ndim - 2))), axis=1)
                  for a in arrays]


@functools.partial(jax.jit, static_argnames=('graphdef', 'beam_size', 'max_length', 'alpha'))
def _beam_search(graphdef, params, inputs, limits, *, beam_size, max_length, alpha):
    model = nnx.merge(graphdef, params)
    batch_size = limits.shape[0]
    rows = batch_size * beam_size
    state = model.init_decode_state(rows, max_length, inputs)
    # One live hypothesis per row at the start (the others -inf), so the first step does not pick
    # the same extension beam_size times.
    alive_log_probs = jnp.tile(jnp.array([0.0] + [NEGATIVE_INFINITY] * (beam_size - 1)), (batch_size, 1))
    carry = dict(position=jnp.int32(0), state=state,
                 alive=jnp.zeros((batch_size, beam_size, max_length), jnp.int32), alive_log_probs=alive_log_probs,
                 finished=jnp.zeros((batch_size, beam_size, max_length), jnp.int32),
                 finished_scores=jnp.full((batch_size, beam_size), NEGATIVE_INFINITY))

    def undecided(carry):
        # With alpha >= 0 a live hypothesis can at best keep its log-probability and reach the largest
        # penalty; a row whose worst kept finished hypothesis beats that is decided.
        best_alive = carry['alive_log_probs'][:, 0]
        best_possible = best_alive / length_penalty(jnp.float32(max_length), alpha)
        decided = (carry['finished_scores'][:, -1] > best_possible) | (best_alive < NEGATIVE_INFINITY / 2)
        return (carry['position'] < max_length) & ~decided.all()

    def step(carry):
        position = carry['position']
        previous = jnp.where(position > 0, carry['alive'][:, :, jnp.maximum(position - 1, 0)], 0).reshape(rows)
        logits, state = model.decode_step(previous, position, carry['state'])
        log_probs = jax.nn.log_softmax(logits.astype(jnp.float32)).reshape(batch_size, beam_size, -1)
        if model.stops_at_eos:   # then 0 is padding, what follows the end, never a token of a hypothesis
            log_probs = log_probs.at[:, :, PAD_ID].set(NEGATIVE_INFINITY)
        vocab = log_probs.shape[-1]
        candidates = (carry['alive_log_probs'][:, :, None] + log_probs).reshape(batch_size, beam_size * vocab)
        top_log_probs, top_indices = jax.lax.top_k(candidates, 2 * beam_size)
        source_beams, tokens = top_indices // vocab, top_indices % vocab
        sequences = jnp.take_along_axis(carry['alive'], source_beams[:, :, None], axis=1)
        sequences = sequences.at[:, :, position].set(tokens)
        # A hypothesis ends with EOS, or at its row's last allowed position (cut there, as greedy decoding is).
        ends = (tokens == EOS_ID) | (position >= limits - 1)[:, None]
        real = top_log_probs > NEGATIVE_INFINITY / 2     # not the extension of a dead hypothesis

        alive_log_probs, (alive, alive_sources) = _top(jnp.where(ends, NEGATIVE_INFINITY, top_log_probs),
                                                       beam_size, sequences, source_beams)
        new_scores = jnp.where(ends & real, top_log_probs / length_penalty(position + 1.0, alpha),
                               NEGATIVE_INFINITY)
        finished_scores, (finished,) = _top(jnp.concatenate([carry['finished_scores'], new_scores], axis=1),
                                            beam_size, jnp.concatenate([carry['finished'], sequences], axis=1))
        state = _reorder_beams(state, carry['state'], alive_sources, batch_size, beam_size)
        return dict(position=position + 1, state=state, alive=alive, alive_log_probs=alive_log_probs,
                    finished=finished, finished_scores=finished_scores)

    carry = jax.lax.while_loop(undecided, step, carry)
    return carry['finished'], carry['finished_scores']


def beam_search(graphdef: nnx.GraphDef, params, *, inputs: jax.Array | None = None, batch_size: int | None = None,
                beam_size: int = 4, alpha: float = 0.6, max_length: int, extra_length: int | None = None,
                return_all: bool = False):
    """The best hypothesis per row -> int32 [batch, max_length] (0 after EOS), or, with ``return_all``,
    the ``beam_size`` best [batch, beam, max_length] and their scores [batch, beam], best first (a
    slot no hypothesis reached scores about -1e9).

    inputs [batch, source_len] (0 = padding): the source of an encoder-decoder model (then
    ``batch_size`` is its rows). ``extra_length``: a row may decode at most its source length + this
    many tokens (the paper: 50), and never more than ``max_length``. Scores are log P / lp(length),
    a hypothesis's length counting its EOS (a hypothesis cut at the limit has none).
    """
    if inputs is not None:
        inputs = jnp.asarray(inputs, jnp.int32)
        batch_size = inputs.shape[0]
    if batch_size is None:
        raise ValueError('beam_search needs inputs or a batch_size')
    limits = jnp.full((batch_size,), max_length, jnp.int32)
    if extra_length is not None and inputs is not None:
        limits = jnp.minimum(limits, (inputs > 0).sum(axis=1).astype(jnp.int32) + extra_length)
    sequences, scores = _beam_search(graphdef, params, inputs, limits, beam_size=int(beam_size),
                                     max_length=int(max_length), alpha=float(alpha))
    return (sequences, scores) if return_all else sequences[:, 0]
