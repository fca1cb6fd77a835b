"""The attention probabilities of every core (the reference path for looking inside) against a naive
softmax(Q K^T / sqrt(d) + bias) under independently built masks; each row a distribution over the keys
it may see and exactly 0 elsewhere; weights times values equal to the core's own (blocked, fused) output."""

import itertools

import numpy as np
import pytest
from flax import nnx

from test_local_attention import HEAD_DIM, band_mask, core_1d, core_2d, neighbourhood_mask, random_qkv
from test_relative_attention import relative_core
from transformer_lab.attention import DotProductCore, padding_mask


def naive_weights(q, k, mask, relative=None):
    """Loops: w[b, h, i, :] = softmax over the keys j with mask[i, j] of (q_i.k_j + q_i.E[i - j]) / sqrt(d),
    E looked up per (i, j) from ``relative`` = (table [heads, max + 1, d], max, far), 0 where masked."""
    batch, length, heads, dim = q.shape
    weights = np.zeros((batch, heads, length, k.shape[1]))
    for b, h, i in itertools.product(range(batch), range(heads), range(length)):
        logits = np.full(k.shape[1], -np.inf)
        for j in np.flatnonzero(mask[i]):
            logit = q[b, i, h] @ k[b, j, h]
            if relative is not None:
                table, max_relative, far = relative
                steps = i - j
                if steps <= max_relative or far == 'clip':
                    logit += q[b, i, h] @ np.broadcast_to(table, (heads, *table.shape[1:]))[h, min(steps, max_relative)]
            logits[j] = logit / np.sqrt(dim)
        if np.isfinite(logits).any():
            exponentials = np.exp(logits - logits[np.isfinite(logits)].max())
            weights[b, h, i] = exponentials / exponentials.sum()
    return weights


def table_of(core):
    return np.asarray(core.relative.table[...]), core.relative.max_relative_position, core.relative.far_distances


CASES = {   # name: (core, sequence length, the full-frame mask built independently, relative or not)
    'dot_product': (lambda: DotProductCore(num_heads=2, head_dim=HEAD_DIM, causal=False, rngs=nnx.Rngs(0)), 9,
                    lambda n: np.ones((n, n), bool), False),
    'causal': (lambda: DotProductCore(num_heads=2, head_dim=HEAD_DIM, causal=True, rngs=nnx.Rngs(0)), 9,
               lambda n: np.tril(np.ones((n, n), bool)), False),
    'local_1d': (lambda: core_1d(4), 13, lambda n: band_mask(n, 4), False),
    'local_2d': (lambda: core_2d((5, 7), (2, 3), (1, 2)), 35,
                 lambda n: neighbourhood_mask((5, 7), (2, 3), (1, 2), True), False),
    'local_2d_unmasked': (lambda: core_2d((5, 7), (2, 3), (1, 2), causal=False), 35,
                          lambda n: neighbourhood_mask((5, 7), (2, 3), (1, 2), False), False),
    'relative': (lambda: relative_core(3), 10, lambda n: np.tril(np.ones((n, n), bool)), True),
    'relative_zero': (lambda: relative_core(3, 'zero', True), 10, lambda n: np.tril(np.ones((n, n), bool)), True),
    'relative_local_1d': (lambda: relative_core(5, local_block=4), 13, lambda n: band_mask(n, 4), True),
}


@pytest.mark.parametrize('name', sorted(CASES))
def test_weights_equal_the_naive_softmax_and_reproduce_the_cores_output(name):
    make, length, full_mask, relative = CASES[name]
    core = make()
    q, k, v = random_qkv(length)
    mask = full_mask(length)
    weights = np.asarray(core.weights(q, k, None))
    expected = naive_weights(q, k, mask, table_of(core) if relative else None)
    np.testing.assert_allclose(weights, expected, atol=1e-5)
    assert (weights[:, :, ~mask] == 0).all()                          # outside the block, flange or past
    np.testing.assert_allclose(weights.sum(-1), 1.0, atol=1e-5)       # every query here sees a key
    np.testing.assert_allclose(np.einsum('bhqk,bkhd->bqhd', weights, v), np.asarray(core(q, k, v, None)),
                               atol=1e-5)


def test_padding_carries_exactly_zero_weight_and_a_row_seeing_nothing_is_zero():
    core = DotProductCore(num_heads=2, head_dim=HEAD_DIM, causal=True, rngs=nnx.Rngs(0))
    q, k, _ = random_qkv(6)
    valid = np.array([[1, 1, 1, 1, 0, 0], [0, 1, 1, 1, 1, 1]], bool)
    weights = np.asarray(core.weights(q, k, padding_mask(valid, valid)))
    assert (weights[0, :, :, 4:] == 0).all() and (weights[1, :, :, 0] == 0).all()
    assert (weights[0, :, 4:] == 0).all() and (weights[1, :, 0] == 0).all()   # padded queries see nothing
    np.testing.assert_allclose(weights[0, :, :4].sum(-1), 1.0, atol=1e-6)
    np.testing.assert_allclose(weights[1, :, 1:].sum(-1), 1.0, atol=1e-6)


def translation_batch(vocab=50, rows=2, source=7, target=5):
    rng = np.random.default_rng(1)
    inputs = rng.integers(2, vocab, (rows, source)).astype(np.int32)
    inputs[0, -2:] = 0                                                   # row 0's source is padded
    return {'inputs': inputs, 'targets': rng.integers(2, vocab, (rows, target)).astype(np.int32)}


def test_a_model_gives_every_kind_per_layer_and_head_and_capturing_changes_nothing(tiny_model_config):
    import jax
    import transformer_lab
    from transformer_lab.models.transformer import EncoderDecoder
    from transformer_lab.training import steps
    model = EncoderDecoder(tiny_model_config, 50, rngs=nnx.Rngs(0))
    batch = translation_batch()
    graphdef, params = nnx.split(model)
    loss = steps.make_loss_fn(graphdef, label_smoothing=0.1)
    before = jax.jit(loss).lower(params, batch).as_text()
    outputs = np.asarray(model(batch))
    maps = transformer_lab.attention_weights(model, batch, example=0)
    assert {kind: value.shape for kind, value in maps.items()} == {
        'encoder_self': (2, 4, 7, 7), 'decoder_self': (2, 4, 5, 5), 'encoder_decoder': (2, 4, 5, 7)}
    assert (maps['decoder_self'][..., np.triu_indices(5, 1)[0], np.triu_indices(5, 1)[1]] == 0).all()
    assert (maps['encoder_self'][:, :, :5, 5:] == 0).all() and (maps['encoder_decoder'][..., 5:] == 0).all()
    np.testing.assert_allclose(maps['encoder_decoder'].sum(-1), 1.0, atol=1e-5)
    np.testing.assert_allclose(maps['decoder_self'].sum(-1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(np.asarray(model(batch)), outputs)             # the model is as it was
    graphdef_after, params_after = nnx.split(model)
    assert graphdef_after == graphdef
    assert jax.jit(steps.make_loss_fn(graphdef_after, 0.1)).lower(params_after, batch).as_text() == before


@pytest.mark.parametrize('head,attention,grid', [('categorical', '2d', ((5, 12), (2, 4), (1, 4))),
                                                 ('dmol', '2d_pixels', ((5, 4), (2, 2), (1, 1)))])
def test_an_image_models_weights_lie_in_its_neighbourhoods_in_generation_order(head, attention, grid):
    import transformer_lab
    from test_image_transformer import image_model_config, random_images
    from transformer_lab.models.image_transformer import ImageTransformer
    model = ImageTransformer(image_model_config(attention, head=head), 256, rngs=nnx.Rngs(0))
    maps = transformer_lab.attention_weights(model, {'targets': random_images(1)})
    image_shape, query_shape, flange = grid
    positions = image_shape[0] * image_shape[1]
    assert list(maps) == ['decoder_self'] and maps['decoder_self'].shape == (2, 2, positions, positions)
    outside = ~neighbourhood_mask(image_shape, query_shape, flange, True)
    assert (maps['decoder_self'][:, :, outside] == 0).all()
    np.testing.assert_allclose(maps['decoder_self'].sum(-1), 1.0, atol=1e-5)
