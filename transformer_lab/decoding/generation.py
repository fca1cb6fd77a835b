"""Greedy and temperature / top-k decoding over a model's cache (``generate``), for every model.

Decoding is one jitted ``lax.while_loop`` that stops at ``max_length`` or, for
models whose sequences end with EOS, as soon as every row has produced it. The self-attention caches hold
``window`` positions when that is shorter (a ring: each new position attends to the last ``window``,
``attention.core.cached_positions``), else every position.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from flax import nnx

from transformer_lab.data.tokenizers import EOS_ID


@functools.partial(jax.jit, static_argnames=('graphdef', 'max_length', 'temperature', 'top_k', 'cache_length'))
def _generate(graphdef, params, inputs, prompt, key, *, max_length, temperature, top_k, cache_length):
    model = nnx.merge(graphdef, params)
    batch_size, prompt_length = prompt.shape
    state = model.init_decode_state(batch_size, cache_length, inputs)

    def unfinished(carry):
        position, _, _, done, _ = carry
        return (position < max_length) & ~done.all()

    def step(carry):
        position, previous, state, done, output = carry
        logits, state = model.decode_step(previous, position, state)
        token = model.head.sample(logits, jax.random.fold_in(key, position), temperature, top_k)
        if prompt_length:
            forced = prompt[:, jnp.minimum(position, prompt_length - 1)]
            token = jnp.where(position < prompt_length, forced, token)
        token = jnp.where(done, 0, token)
        output = jax.lax.dynamic_update_slice_in_dim(output, token[:, None], position, axis=1)
        if model.stops_at_eos:
            done = done | (token == EOS_ID)
        return position + 1, token, state, done, output

    start = (jnp.int32(0), jnp.zeros((batch_size,), jnp.int32), state,
             jnp.zeros((batch_size,), bool), jnp.zeros((batch_size, max_length), jnp.int32))
    return jax.lax.while_loop(unfinished, step, start)[-1]


def generate(graphdef: nnx.GraphDef, params, *, batch_size: int, max_length: int,
             inputs: jax.Array | None = None, prompt: jax.Array | None = None,
             temperature: float = 0.0, top_k: int = 0, seed: int = 0, window: int = 0) -> jax.Array:
    """Decodes ``max_length`` tokens per row (0 after EOS) -> int32 [batch_size, max_length].

    inputs [batch, source_len]: the source for encoder-decoder models. prompt [batch, prompt_len]:
    tokens forced at the first positions (the continuation follows them in the output). window > 0:
    each position attends to at most the last ``window`` positions (0: to all of them).
    """
    prompt = jnp.zeros((batch_size, 0), jnp.int32) if prompt is None else jnp.asarray(prompt, jnp.int32)
    return _generate(graphdef, params, None if inputs is None else jnp.asarray(inputs), prompt,
                     jax.random.key(seed), max_length=max_length, temperature=float(temperature),
                     top_k=int(top_k), cache_length=min(window, max_length) if window > 0 else max_length)
