"""The decoding core: greedy is the argmax of the model's own teacher-forced predictions; sampling."""

import functools
import re

import jax
import pytest
import jax.numpy as jnp
import numpy as np
from flax import nnx

from transformer_lab.data.tokenizers import EOS_ID
from transformer_lab.decoding import generate, generation
from transformer_lab.models.heads import CategoricalHead, choose_tokens
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


def test_greedy_choice_is_numpys_argmax_ties_and_nans_included():
    """The first maximum of each row, or its first NaN, as np.argmax gives them."""
    rng = np.random.default_rng(2)
    logits = rng.integers(0, 4, size=(64, 50)).astype(np.float32)    # many ties
    logits[3, [7, 20]] = np.nan
    logits[5, :] = -np.inf
    chosen = np.asarray(choose_tokens(jnp.asarray(logits), jax.random.key(0), 0.0, 0))
    assert chosen.dtype == np.int32
    np.testing.assert_array_equal(chosen, np.argmax(logits, axis=-1))


def test_temperature_sampling_follows_the_softmax():
    logits = jnp.log(jnp.array([[0.7, 0.2, 0.1]]))
    keys = jax.random.split(jax.random.key(0), 4000)
    draws = np.asarray(jax.vmap(lambda k: choose_tokens(logits, k, 1.0, 0)[0])(keys))
    np.testing.assert_allclose(np.bincount(draws, minlength=3) / len(draws), [0.7, 0.2, 0.1], atol=0.03)


# --- beam search ---------------------------------------------------------------------------------------

def test_length_penalty_is_gnmts_formula():
    from transformer_lab.decoding import length_penalty
    for length, alpha in ((1, 0.6), (7, 0.6), (30, 1.0), (12, 0.0)):
        assert float(length_penalty(jnp.float32(length), alpha)) == pytest.approx(((5 + length) / 6) ** alpha,
                                                                                   rel=1e-6)


def test_beam_of_one_without_length_penalty_is_greedy(tiny_model_config):
    from transformer_lab.decoding import beam_search
    graphdef, params = nnx.split(EncoderDecoder(tiny_model_config, VOCAB, rngs=nnx.Rngs(3)))
    inputs = jnp.asarray(np.random.default_rng(0).integers(2, VOCAB, (3, 7)), jnp.int32)
    greedy = generate(graphdef, params, batch_size=3, max_length=10, inputs=inputs)
    np.testing.assert_array_equal(beam_search(graphdef, params, inputs=inputs, beam_size=1, alpha=0.0,
                                              max_length=10), greedy)


def every_hypothesis(model, inputs, vocab, max_length, alpha):
    """Scores of every hypothesis, from teacher-forced log-probabilities: {tokens: log P / lp(length)};
    a hypothesis ends with its first EOS, or is cut at max_length tokens."""
    import itertools
    scores = {}
    words = [t for t in range(vocab) if t not in (0, EOS_ID)]   # 0 pads: never a token of a hypothesis
    for length in range(1, max_length + 1):
        for prefix in itertools.product(words, repeat=length - 1):
            for tokens in [list(prefix) + [EOS_ID]] + ([list(prefix) + [w] for w in words]
                                                       if length == max_length else []):
                log_probs = jax.nn.log_softmax(model({'inputs': inputs, 'targets': jnp.asarray([tokens])})[0])
                total = float(sum(log_probs[t, token] for t, token in enumerate(tokens)))
                scores[tuple(tokens)] = total / ((5 + length) / 6) ** alpha
    return scores


@pytest.mark.slow
@pytest.mark.parametrize('alpha', [0.0, 0.6, 2.0])
def test_a_wide_beam_finds_the_best_of_every_sequence(tiny_model_config, alpha):
    """Vocabulary 5 (padding, EOS, three words), at most 4 tokens: 1 + 3 + 9 + 27 hypotheses end with
    EOS and 81 are cut at the limit, and a beam of 64 holds every live prefix, so beam search must
    return the best of them all, in order, with their scores."""
    from transformer_lab.decoding import beam_search
    vocab, max_length = 5, 4
    tiny_model_config.d_model, tiny_model_config.num_heads = 16, 2
    model = EncoderDecoder(tiny_model_config, vocab, rngs=nnx.Rngs(5))
    graphdef, params = nnx.split(model)
    inputs = jnp.array([[2, 3, 3, 1]], jnp.int32)
    scores = every_hypothesis(model, inputs, vocab, max_length, alpha)
    ranked = sorted(scores, key=scores.get, reverse=True)
    found, found_scores = beam_search(graphdef, params, inputs=inputs, beam_size=64, alpha=alpha,
                                      max_length=max_length, return_all=True)
    for rank in range(5):   # the five best, each with its score
        tokens = [int(t) for t in np.asarray(found[0, rank])]
        expected = list(ranked[rank]) + [0] * (max_length - len(ranked[rank]))
        assert tokens == expected, (rank, tokens, ranked[:5])
        assert float(found_scores[0, rank]) == pytest.approx(scores[ranked[rank]], abs=1e-4)


def test_rows_stop_at_source_length_plus_extra(tiny_model_config):
    from transformer_lab.decoding import beam_search
    graphdef, params = nnx.split(EncoderDecoder(tiny_model_config, VOCAB, rngs=nnx.Rngs(3)))
    inputs = jnp.asarray([[4, 5, 1, 0, 0, 0], [4, 5, 6, 7, 8, 1]], jnp.int32)
    output = np.asarray(beam_search(graphdef, params, inputs=inputs, beam_size=3, alpha=0.6, max_length=20,
                                    extra_length=2))
    lengths = [list(row).index(EOS_ID) + 1 if EOS_ID in row else np.count_nonzero(row) for row in output]
    assert lengths[0] <= 3 + 2 and lengths[1] <= 6 + 2 and max(lengths) > 1
    assert all((row[length:] == 0).all() for row, length in zip(output, lengths))


def test_each_source_of_a_batch_is_searched_as_if_alone(tiny_model_config):
    """The state is built per source and repeated for its beams; only what decode_step writes is
    reordered between beams: a batch's hypotheses and scores equal those of each source alone."""
    from transformer_lab.decoding import beam_search
    graphdef, params = nnx.split(EncoderDecoder(tiny_model_config, VOCAB, rngs=nnx.Rngs(4)))
    inputs = jnp.asarray([[4, 5, 1, 0, 0], [9, 8, 7, 6, 1], [3, 1, 0, 0, 0]], jnp.int32)
    search = functools.partial(beam_search, graphdef, params, beam_size=3, alpha=0.6, max_length=8,
                               return_all=True)
    together, together_scores = search(inputs=inputs)
    for row in range(len(inputs)):
        alone, alone_scores = search(inputs=inputs[row:row + 1])
        np.testing.assert_array_equal(together[row], alone[0])
        np.testing.assert_allclose(together_scores[row], alone_scores[0], rtol=1e-5)


class MarkovModel(nnx.Module):
    """A decoder whose next-token distribution depends on the previous token only (a fixed table)."""

    stops_at_eos = True

    def __init__(self, probabilities):
        self.log_table = nnx.Param(jnp.log(jnp.asarray(probabilities, jnp.float32) + 1e-12))
        self.head = CategoricalHead(1, len(probabilities), dtype=jnp.float32, param_dtype=jnp.float32, rngs=nnx.Rngs(0))

    def init_decode_state(self, batch_size, max_length, inputs=None):
        return {'steps': jnp.zeros((batch_size,), jnp.int32)}

    def decode_step(self, tokens, position, state):
        return self.log_table[...][tokens], {'steps': state['steps'] + 1}


def test_an_early_finished_hypothesis_outlives_the_greedy_path():
    """Tokens: 0 start, 1 EOS, 2 a, 3 b. From the start EOS 0.4 and a 0.6; after a, b 0.55 and EOS
    0.45; after b, EOS 0.9 and b 0.1. Greedy takes a, b, EOS (p 0.297); the best hypothesis is [EOS]
    (0.4), found at the first step and kept while the live ones go on; second is [a, b, EOS]."""
    from transformer_lab.decoding import beam_search
    table = [[0, 0.4, 0.6, 0], [0, 1, 0, 0], [0, 0.45, 0, 0.55], [0, 0.9, 0, 0.1]]
    graphdef, params = nnx.split(MarkovModel(table))
    greedy = generate(graphdef, params, batch_size=1, max_length=6)
    np.testing.assert_array_equal(greedy, [[2, 3, 1, 0, 0, 0]])
    found, scores = beam_search(graphdef, params, batch_size=1, beam_size=2, alpha=0.6, max_length=6,
                                return_all=True)
    np.testing.assert_array_equal(found[0], [[1, 0, 0, 0, 0, 0], [2, 3, 1, 0, 0, 0]])
    np.testing.assert_allclose(scores[0], [np.log(0.4), np.log(0.6 * 0.55 * 0.9) / (8 / 6) ** 0.6], rtol=1e-5)


def loop_body_operations(hlo_text: str) -> list[str]:
    """The operations of every while loop's body in a compiled HLO module, fusions opened."""
    computations, current = {}, None
    for line in hlo_text.splitlines():
        header = re.match(r'^(ENTRY )?%([\w.\-]+) .*\{$', line)
        if header:
            current = computations[header.group(2)] = []
        elif current is not None and line.strip() not in ('', '}'):
            current.append(line)
    pending, seen, operations = re.findall(r'while\(.*body=%([\w.\-]+)', hlo_text), set(), []
    while pending:
        name = pending.pop()
        if name not in seen:
            seen.add(name)
            for line in computations[name]:
                operation = re.match(r'\s*(ROOT )?%\S+ = \S+ ([\w\-]+)\(', line)
                operations += [operation.group(2)] if operation else []
                pending += re.findall(r'(?:calls|to_apply|body|condition)=%([\w.\-]+)', line)
    return operations


def test_decoding_loop_reads_the_encoder_keys_and_values_as_they_are(tiny_model_config):
    """The encoder-decoder keys and values enter the greedy loop heads-major and are read there without
    a layout change at every step (XLA had moved their transposes into the loop body)."""
    graphdef, params = nnx.split(EncoderDecoder(tiny_model_config, VOCAB, rngs=nnx.Rngs(0)))
    inputs = jnp.asarray(np.random.default_rng(0).integers(2, VOCAB, (2, 7)), jnp.int32)
    compiled = generation._generate.lower(graphdef, params, inputs, jnp.zeros((2, 0), jnp.int32), jax.random.key(0),
                                          max_length=9, temperature=0.0, top_k=0, cache_length=9).compile()
    operations = loop_body_operations(compiled.as_text())
    assert 'dot' in operations and 'transpose' not in operations


def test_a_sliding_window_past_the_trained_length_decodes_each_window_anew(tiny_model_config):
    """One layer of relative attention trained on 16 positions, decoded to 40 with a window of 16: the logits
    at every position p past 16 are those of decoding p's window (positions p-15 .. p, the tokens before them
    fed in) from an empty cache, and differ from attending to everything; greedy generation with the window
    takes their argmax. (With one layer a ring cache is exactly the window decoded anew; deeper layers carry
    older context through the window's hidden states.)"""
    config = tiny_model_config.copy_and_resolve_references()
    config.num_decoder_layers, config.max_length = 1, 16
    config.attention = {'type': 'relative', 'max_relative_position': 8}
    model = DecoderOnly(config, VOCAB, rngs=nnx.Rngs(5))
    graphdef, params = nnx.split(model)
    window, length = 16, 40
    tokens = np.asarray(generate(graphdef, params, batch_size=1, max_length=length, window=window))[0]
    end = list(tokens).index(EOS_ID) if EOS_ID in tokens else length
    assert end - window >= 10, 'the greedy sequence ended before the window filled: pick another seed'
    step = jax.jit(model.decode_step)

    def decoded(positions, cache_length):   # the logits at each of ``positions``, from an empty cache
        state, logits = model.init_decode_state(1, cache_length), {}
        for q in positions:
            logits[q], state = step(jnp.asarray(tokens[q - 1:q] if q else [0]), jnp.asarray(q), state)
        return logits

    ring, everything = decoded(range(end), window), decoded(range(end), length)
    for position in range(window, end):
        anew = decoded(range(position - window + 1, position + 1), window)[position]
        np.testing.assert_allclose(ring[position], anew, atol=1e-5, err_msg=f'position {position}')
        assert int(jnp.argmax(ring[position][0])) == tokens[position], position
    assert max(float(jnp.abs(ring[p] - everything[p]).max()) for p in range(window, end)) > 1e-3


def test_past_the_trained_length_relative_models_slide_sinusoids_say_so_and_learned_positions_refuse(
        tiny_model_config, capsys):
    from transformer_lab.sampling import decoding_window
    config = tiny_model_config.copy_and_resolve_references()     # sinusoidal positions, dot-product attention
    assert decoding_window(config, 32, None) == 0 and capsys.readouterr().err == ''   # within: every position
    assert decoding_window(config, 100, None) == 32
    assert 'never trained on' in capsys.readouterr().err
    config.attention = {'type': 'relative', 'max_relative_position': 8}
    assert decoding_window(config, 100, None) == 32 and decoding_window(config, 100, 0) == 0
    assert capsys.readouterr().err == ''
    config.positional = 'learned'
    with pytest.raises(ValueError, match='--max_length=100 is past model.max_length=32, and learned positions have no embedding there; valid: at most 32'):
        decoding_window(config, 100, None)
