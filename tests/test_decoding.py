"""The decoding core: greedy is the argmax of the model's own teacher-forced predictions; sampling."""

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from transformer_lab.data.tokenizers import EOS_ID
from transformer_lab.decoding import generate
from transformer_lab.models.heads import choose_tokens
from transformer_lab.models.transformer import DecoderOnly, EncoderDecoder

VOCAB = 30


def test_greedy_decoding_matches_teacher_forced_argmax(tiny_model_config):
    graphdef, params = nnx.split(EncoderDecoder(tiny_model_config, VOCAB, rngs=nnx.Rngs(3)))
    inputs = jnp.asarray(np.random.default_rng(0).integers(2, VOCAB, (3, 7)), jnp.int32)
    tokens = np.asarray(generate(graphdef, params, batch_size=3, max_length=10, inputs=inputs))
    logits = nnx.merge(graphdef, params)({'inputs': inputs, 'targets': jnp.asarray(tokens)})
    for row in range(3):
        length = list(tokens[row]).index(EOS_ID) + 1 if EOS_ID in tokens[row] else 10
        np.testing.assert_array_equal(np.argmax(logits[row, :length], -1), tokens[row, :length])
        assert (tokens[row, length:] == 0).all(), 'everything after EOS is padding'


def test_prompt_is_forced_and_top_k_1_equals_greedy(tiny_model_config):
    graphdef, params = nnx.split(DecoderOnly(tiny_model_config, VOCAB, rngs=nnx.Rngs(4)))
    prompt = jnp.array([[5, 6, 7], [8, 9, 10]], jnp.int32)
    greedy = generate(graphdef, params, batch_size=2, max_length=8, prompt=prompt)
    np.testing.assert_array_equal(greedy[:, :3], prompt)
    top1 = generate(graphdef, params, batch_size=2, max_length=8, prompt=prompt, temperature=1.0, top_k=1,
                    seed=7)
    np.testing.assert_array_equal(top1, greedy)


def test_top_k_sampling_draws_only_the_k_most_likely_tokens():
    logits = jnp.asarray(np.random.default_rng(1).normal(size=(1, VOCAB)), jnp.float32)
    allowed = set(np.argsort(-np.asarray(logits[0]))[:3])
    drawn = {int(choose_tokens(logits, jax.random.key(i), 1.0, 3)[0]) for i in range(200)}
    assert drawn <= allowed and len(drawn) == 3


def test_temperature_sampling_follows_the_softmax():
    logits = jnp.log(jnp.array([[0.7, 0.2, 0.1]]))
    keys = jax.random.split(jax.random.key(0), 4000)
    draws = np.asarray(jax.vmap(lambda k: choose_tokens(logits, k, 1.0, 0)[0])(keys))
    np.testing.assert_allclose(np.bincount(draws, minlength=3) / len(draws), [0.7, 0.2, 0.1], atol=0.03)
