"""The Transformer models: positions, masking, causality, cached decoding, packing."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from transformer_lab.models.layers import shift_right, sinusoidal_position_encoding
from transformer_lab.models.transformer import DecoderOnly, EncoderDecoder

VOCAB = 40
RNG = np.random.default_rng(1)


def tokens(batch, length):
    return jnp.asarray(RNG.integers(1, VOCAB, size=(batch, length)), jnp.int32)


def test_sinusoidal_encoding_matches_paper_formula():
    d_model = 10
    encoding = np.asarray(sinusoidal_position_encoding(jnp.arange(50), d_model))
    for pos in (0, 1, 7, 49):
        for i in range(d_model // 2):
            angle = pos / 10000 ** (2 * i / d_model)
            assert encoding[pos, 2 * i] == pytest.approx(math.sin(angle), abs=1e-5)
            assert encoding[pos, 2 * i + 1] == pytest.approx(math.cos(angle), abs=1e-5)


def test_shift_right_restarts_at_packed_examples():
    targets = jnp.array([[5, 6, 7, 8, 9]])
    positions = jnp.array([[0, 1, 0, 1, 2]])
    np.testing.assert_array_equal(shift_right(targets), [[0, 5, 6, 7, 8]])
    np.testing.assert_array_equal(shift_right(targets, positions), [[0, 5, 0, 7, 8]])


@pytest.mark.parametrize('norm', ['post', 'pre'])
def test_decoder_only_is_causal(tiny_model_config, norm):
    tiny_model_config.norm = norm
    model = DecoderOnly(tiny_model_config, VOCAB, rngs=nnx.Rngs(0))
    targets = tokens(2, 9)
    base = model({'targets': targets})
    for t in range(9):
        # logits at position t predict targets[t] from targets[:t]: changing targets[t:] must not matter
        changed = model({'targets': targets.at[:, t:].set((targets[:, t:] % (VOCAB - 1)) + 1)})
        np.testing.assert_allclose(changed[:, :t + 1], base[:, :t + 1], atol=1e-5)
        if t + 1 < 9:
            assert not np.allclose(changed[:, t + 1], base[:, t + 1])


def test_encoder_decoder_ignores_what_padding_holds(tiny_model_config):
    model = EncoderDecoder(tiny_model_config, VOCAB, rngs=nnx.Rngs(0))
    inputs, targets = tokens(2, 8), tokens(2, 6)
    # Segment id 0 marks padding whatever token it holds: only the mask may hide it.
    batch = {'inputs': inputs, 'targets': targets,
             'inputs_segment_ids': jnp.array([[1] * 5 + [0] * 3, [1] * 8]),
             'targets_segment_ids': jnp.array([[1] * 6, [1] * 4 + [0] * 2])}
    base = model(batch)
    changed = model({**batch, 'inputs': inputs.at[0, 5:].set(7), 'targets': targets.at[1, 4:].set(9)})
    np.testing.assert_allclose(changed[0], base[0], atol=1e-5)
    np.testing.assert_allclose(changed[1, :4], base[1, :4], atol=1e-5)


def test_encoder_decoder_ignores_extra_zero_padding(tiny_model_config):
    model = EncoderDecoder(tiny_model_config, VOCAB, rngs=nnx.Rngs(0))
    batch = {'inputs': tokens(2, 8).at[0, 5:].set(0), 'targets': tokens(2, 6).at[1, 4:].set(0)}
    base = model(batch)
    longer = model({'inputs': jnp.pad(batch['inputs'], ((0, 0), (0, 3))),
                    'targets': jnp.pad(batch['targets'], ((0, 0), (0, 2)))})
    np.testing.assert_allclose(longer[0, :6], base[0], atol=1e-5)
    np.testing.assert_allclose(longer[1, :4], base[1, :4], atol=1e-5)


def test_encoder_decoder_depends_on_source(tiny_model_config):
    model = EncoderDecoder(tiny_model_config, VOCAB, rngs=nnx.Rngs(0))
    inputs, targets = tokens(1, 8), tokens(1, 6)
    base = model({'inputs': inputs, 'targets': targets})
    changed = model({'inputs': inputs.at[0, 3].set(inputs[0, 3] % (VOCAB - 1) + 1), 'targets': targets})
    assert not np.allclose(base, changed)


@pytest.mark.parametrize('model_cls', [EncoderDecoder, DecoderOnly])
@pytest.mark.parametrize('norm,positional', [('post', 'sinusoidal'), ('pre', 'learned'), ('pre', 'none')])
def test_cached_decoding_equals_full_forward(tiny_model_config, model_cls, norm, positional):
    tiny_model_config.norm, tiny_model_config.positional = norm, positional
    model = model_cls(tiny_model_config, VOCAB, rngs=nnx.Rngs(0))
    batch = {'inputs': tokens(2, 7), 'targets': tokens(2, 6)}
    full = model(batch)
    state = model.init_decode_state(2, 6, batch['inputs'])
    previous = jnp.zeros((2,), jnp.int32)
    for position in range(6):
        logits, state = model.decode_step(previous, position, state)
        np.testing.assert_allclose(logits, full[:, position], atol=1e-4)
        previous = batch['targets'][:, position]


def test_packed_row_equals_separate_examples(tiny_model_config):
    model = EncoderDecoder(tiny_model_config, VOCAB, rngs=nnx.Rngs(0))
    first = {'inputs': tokens(1, 4), 'targets': tokens(1, 3)}
    second = {'inputs': tokens(1, 5), 'targets': tokens(1, 4)}
    packed = {
        'inputs': jnp.concatenate([first['inputs'], second['inputs']], 1),
        'targets': jnp.concatenate([first['targets'], second['targets']], 1),
        'inputs_segment_ids': jnp.array([[1] * 4 + [2] * 5]),
        'targets_segment_ids': jnp.array([[1] * 3 + [2] * 4]),
        'inputs_positions': jnp.array([list(range(4)) + list(range(5))]),
        'targets_positions': jnp.array([list(range(3)) + list(range(4))]),
    }
    logits = model(packed)
    np.testing.assert_allclose(logits[:, :3], model(first), atol=1e-5)
    np.testing.assert_allclose(logits[:, 3:], model(second), atol=1e-5)


def test_parameters_are_float32_under_bfloat16_compute(tiny_model_config):
    tiny_model_config.dtype = 'bfloat16'
    model = EncoderDecoder(tiny_model_config, VOCAB, rngs=nnx.Rngs(0))
    params = nnx.state(model, nnx.Param)
    assert {leaf.dtype for leaf in jax.tree.leaves(params)} == {jnp.dtype('float32')}
    logits = model({'inputs': tokens(2, 5), 'targets': tokens(2, 4)})
    assert logits.dtype == jnp.float32 and bool(jnp.isfinite(logits).all())


def test_tied_output_shares_the_embedding(tiny_model_config):
    tied = EncoderDecoder(tiny_model_config, VOCAB, rngs=nnx.Rngs(0))
    tiny_model_config.tie_output = tiny_model_config.share_embeddings = False
    untied = EncoderDecoder(tiny_model_config, VOCAB, rngs=nnx.Rngs(0))
    count = lambda m: sum(x.size for x in jax.tree.leaves(nnx.state(m, nnx.Param)))
    d = tiny_model_config.d_model
    assert count(untied) - count(tied) == VOCAB * d + (d * VOCAB + VOCAB)


def music_model_config(config, *, concat: bool, voices: bool):
    if concat:
        config.positional, config.position_features, config.tie_output = 'sinusoidal_concat', 12, False
    config.num_voices = 4 if voices else 0
    return config


def test_concatenated_sinusoids_fill_the_last_dimensions(tiny_model_config):
    model = DecoderOnly(music_model_config(tiny_model_config, concat=True, voices=False), VOCAB, rngs=nnx.Rngs(0))
    targets = tokens(2, 7)
    positions = jnp.broadcast_to(jnp.arange(7), (2, 7))
    embedded = model.target_embedder(targets, positions, None)
    assert embedded.shape == (2, 7, tiny_model_config.d_model)
    np.testing.assert_allclose(embedded[..., -12:], sinusoidal_position_encoding(positions, 12), atol=1e-6)
    np.testing.assert_allclose(embedded[..., :-12], model.target_embedder.embedding(targets), atol=1e-6)


def test_without_absolute_positions_a_relative_decoder_reads_no_position(tiny_model_config):
    # Where the rows say the tokens sit (packed rows carry positions) changes nothing but with sinusoids.
    batch = {'targets': tokens(2, 7), 'targets_positions': jnp.broadcast_to(jnp.arange(7), (2, 7))}
    later = {**batch, 'targets_positions': batch['targets_positions'] + 100}
    tiny_model_config.attention = {'type': 'relative', 'max_relative_position': 4}
    for positional, moved in (('none', False), ('sinusoidal', True)):
        tiny_model_config.positional = positional
        model = DecoderOnly(tiny_model_config, VOCAB, rngs=nnx.Rngs(0))
        assert np.allclose(model(batch), model(later), atol=1e-6) != moved, positional


def voices_of(length):
    return jnp.broadcast_to(jnp.arange(length) % 4 + 1, (2, length))


def test_a_voice_tells_only_its_own_position(tiny_model_config):
    model = DecoderOnly(music_model_config(tiny_model_config, concat=False, voices=True), VOCAB, rngs=nnx.Rngs(0))
    batch = {'targets': tokens(2, 8), 'targets_voices': voices_of(8)}
    base = model(batch)
    changed = model({**batch, 'targets_voices': batch['targets_voices'].at[:, 5].set(0)})
    np.testing.assert_allclose(changed[:, :5], base[:, :5], atol=1e-5)
    assert not np.allclose(changed[:, 5], base[:, 5])


@pytest.mark.parametrize('concat,voices', [(True, False), (False, True), (True, True)])
def test_music_variants_decode_like_the_full_pass(tiny_model_config, concat, voices):
    """Cached decoding derives each position's voice from the position (S, A, T, B in turn from the
    start of a piece), which must agree with the voices the data gives the full pass."""
    tiny_model_config.norm = 'pre'
    model = DecoderOnly(music_model_config(tiny_model_config, concat=concat, voices=voices), VOCAB,
                        rngs=nnx.Rngs(0))
    batch = {'targets': tokens(2, 9), 'targets_voices': voices_of(9)}
    full = model(batch)
    state = model.init_decode_state(2, 9)
    previous = jnp.zeros((2,), jnp.int32)
    for position in range(9):
        logits, state = model.decode_step(previous, position, state)
        np.testing.assert_allclose(logits, full[:, position], atol=1e-4)
        previous = batch['targets'][:, position]


@pytest.mark.parametrize('label_smoothing', [0.0, 0.1])
def test_token_losses_and_their_gradients_equal_the_one_hot_reference(label_smoothing):
    """The closed forms equal cross-entropy against explicitly smoothed one-hot targets, in value and
    in gradient (what training follows); the NLL is the unsmoothed -log softmax(z)_y."""
    from transformer_lab.models.heads import token_losses
    rng = np.random.default_rng(0)
    logits = jnp.asarray(rng.normal(0, 3, (2, 5, 11)), jnp.float32)
    targets = jnp.asarray(rng.integers(0, 11, (2, 5)), jnp.int32)
    z = np.asarray(logits, np.float64)
    log_probs = z - z.max(-1, keepdims=True)
    log_probs -= np.log(np.exp(log_probs).sum(-1, keepdims=True))
    onehot = np.eye(11)[np.asarray(targets)]
    smoothed_targets = (1 - label_smoothing) * onehot + label_smoothing / 11

    def reference(z):
        return -(smoothed_targets * jax.nn.log_softmax(z)).sum(-1)
    smoothed, nll = token_losses(logits, targets, label_smoothing)
    np.testing.assert_allclose(nll, -(onehot * log_probs).sum(-1), rtol=1e-5)
    np.testing.assert_allclose(smoothed, -(smoothed_targets * log_probs).sum(-1), rtol=1e-5)
    weights = jnp.asarray(rng.uniform(size=(2, 5)), jnp.float32)
    def training_loss(z):
        return (token_losses(z, targets, label_smoothing)[0] * weights).sum()
    np.testing.assert_allclose(jax.grad(training_loss)(logits),
                               jax.grad(lambda z: (reference(z) * weights).sum())(logits), atol=1e-6)


def test_packed_dropout_masks_keep_the_rate_and_independent_units():
    """Several draws share a random word: over 2^20 units the kept fraction is 1 - rate within 5 sigma,
    units drawn from one word (neighbours on the last axis) and from different rows are dropped
    together at rate^2, and inverted dropout keeps the mean."""
    from transformer_lab.models.layers import Dropout, dropout_keep_mask
    rate, shape = 0.1, (16, 256, 256)
    keep = np.asarray(dropout_keep_mask(jax.random.key(0), shape, rate))
    units = keep.size
    assert abs(keep.mean() - (1 - rate)) < 5 * math.sqrt(rate * (1 - rate) / units)
    dropped = ~keep
    for together in (dropped[..., 0::2] & dropped[..., 1::2], dropped[:-1] & dropped[1:]):
        assert abs(together.mean() - rate ** 2) < 5 * math.sqrt(rate ** 2 / together.size)
    assert not (keep[0] == keep[1]).all()
    x = jnp.ones(shape)
    out = Dropout(rate)(x, deterministic=False, rngs=nnx.Rngs(dropout=1))
    values = np.unique(np.asarray(out))
    assert len(values) == 2 and values[0] == 0.0 and values[1] == pytest.approx(1 / 0.9, rel=1e-4)
    assert float(out.mean()) == pytest.approx(1.0, abs=5e-3)
    np.testing.assert_array_equal(Dropout(rate)(x, deterministic=True, rngs=None), x)


@pytest.mark.parametrize('x_shape, w_shape', [((2, 3, 16), (16, 4, 8)),      # a query projection
                                              ((2, 3, 4, 8), (4, 8, 16))])   # the heads' output projection
def test_float32_result_products_and_their_gradients_are_the_bfloat16_products_in_float32(x_shape, w_shape):
    """The forward value is the product of the bfloat16 operands accumulated in float32; the gradients
    are those of that product with the cotangent rounded to bfloat16; on this CPU all three products
    stay bfloat16 x bfloat16 -> float32 in the compiled program (what plain bfloat16 loses to XLA)."""
    from transformer_lab.benchmarking import dot_operand_types
    from transformer_lab.backends import float32_result_dot_general
    rng = np.random.default_rng(0)
    x, w = (jnp.asarray(rng.normal(size=shape), jnp.bfloat16) for shape in (x_shape, w_shape))
    contracted = len(x_shape) - 2
    dims = ((tuple(range(2, len(x_shape))), tuple(range(contracted))), ((), ()))
    cotangent = jnp.asarray(rng.normal(size=x_shape[:2] + w_shape[contracted:]), jnp.float32)

    def loss(a, b):
        return (float32_result_dot_general(a, b, dims) * cotangent).sum()

    def reference(a, b):   # the same product in float32, the cotangent rounded as the backward rounds it
        product = jax.lax.dot_general(a.astype(jnp.float32), b.astype(jnp.float32), dims)
        return (product * cotangent.astype(jnp.bfloat16).astype(jnp.float32)).sum()

    y = float32_result_dot_general(x, w, dims)
    assert y.dtype == jnp.float32 and y.shape == x_shape[:2] + w_shape[contracted:]
    np.testing.assert_allclose(y, jax.lax.dot_general(x.astype(jnp.float32), w.astype(jnp.float32), dims),
                               rtol=1e-5, atol=1e-5)
    grads, expected = jax.grad(loss, (0, 1))(x, w), jax.grad(reference, (0, 1))(x, w)
    for grad, want in zip(grads, expected):
        assert grad.dtype == jnp.bfloat16
        # the backward's float32 result is rounded to the operand's bfloat16 (relative 2^-8)
        np.testing.assert_allclose(grad.astype(jnp.float32), want, rtol=2 ** -7, atol=1e-2)
    compiled = jax.jit(jax.value_and_grad(loss, (0, 1))).lower(x, w).compile().as_text()
    assert dot_operand_types(compiled) == {'bf16 x bf16 -> f32': 3}
    f32 = [a.astype(jnp.float32) for a in (x, w)]
    np.testing.assert_array_equal(float32_result_dot_general(*f32, dims), jax.lax.dot_general(*f32, dims))


def test_activation_dtype_float32_is_for_bfloat16_compute(tiny_model_config):
    """With bfloat16 compute the layers pass float32 on (logits, caches); with float32 compute the
    field has nothing to do and is refused by name."""
    from transformer_lab.config import ConfigError
    from transformer_lab.models.stacks import check_stack
    tiny_model_config.dtype, tiny_model_config.activation_dtype = 'bfloat16', 'float32'
    model = DecoderOnly(tiny_model_config, VOCAB, rngs=nnx.Rngs(0))
    state = model.init_decode_state(2, 8)
    assert {leaf.dtype for leaf in jax.tree.leaves(state)} == {jnp.dtype('float32')}
    assert model({'targets': tokens(2, 4)}).dtype == jnp.float32
    tiny_model_config.dtype = 'float32'
    with pytest.raises(ConfigError, match="model.activation_dtype.*model.dtype='bfloat16'"):
        check_stack(tiny_model_config)
