"""Scaled dot-product and multi-head attention against a naive numpy reference."""

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from helpers import naive_attention
from transformer_lab.attention import (DotProductCore, Implementation, MultiHeadAttention, causal_mask,
                                       combine_masks, padding_mask, scaled_dot_product_attention, segment_mask)

RNG = np.random.default_rng(0)


def random_qkv(batch=2, q_len=6, k_len=6, heads=3, dim=8):
    return [RNG.normal(size=(batch, length, heads, dim)).astype(np.float32)
            for length in (q_len, k_len, k_len)]


def test_unmasked_matches_naive():
    q, k, v = random_qkv(q_len=5, k_len=7)
    np.testing.assert_allclose(scaled_dot_product_attention(q, k, v), naive_attention(q, k, v),
                               atol=1e-5)


def test_causal_and_padding_masks_match_naive():
    q, k, v = random_qkv()
    valid = np.array([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]], bool)
    mask = np.asarray(combine_masks(causal_mask(6), padding_mask(valid, valid)))
    out = np.asarray(scaled_dot_product_attention(q, k, v, mask))
    expected = naive_attention(q, k, v, mask)
    real = valid[:, :, None, None]
    np.testing.assert_allclose(np.where(real, out, 0), np.where(real, expected, 0), atol=1e-5)
    assert np.isfinite(out).all(), 'fully masked (padding) rows must stay finite'


def test_segment_mask_blocks_other_examples_and_padding():
    segments = np.array([[1, 1, 2, 2, 2, 0]])
    mask = np.asarray(segment_mask(segments, segments))[0, 0]
    assert mask[0, 1] and not mask[0, 2] and mask[3, 2] and not mask[3, 5] and not mask[5, 5]


def test_causality_of_causal_attention():
    q, k, v = random_qkv(batch=1, q_len=8, k_len=8)
    mask = causal_mask(8)
    base = np.asarray(scaled_dot_product_attention(q, k, v, mask))
    for t in range(8):
        k2, v2 = k.copy(), v.copy()
        k2[:, t:] += 5.0
        v2[:, t:] -= 3.0
        changed = np.asarray(scaled_dot_product_attention(q, k2, v2, mask))
        np.testing.assert_allclose(changed[:, :t], base[:, :t], atol=1e-6)
        assert not np.allclose(changed[:, t], base[:, t])


def make_mha(d_model=24, heads=3, causal=False):
    core = DotProductCore(num_heads=heads, head_dim=d_model // heads, causal=causal, rngs=nnx.Rngs(0))
    return MultiHeadAttention(d_model, heads, core, rngs=nnx.Rngs(0))


def test_multi_head_matches_naive_per_head():
    mha = make_mha()
    x = RNG.normal(size=(2, 5, 24)).astype(np.float32)
    context = RNG.normal(size=(2, 7, 24)).astype(np.float32)
    out = np.asarray(mha(x, context))
    assert out.shape == (2, 5, 24)
    weights = {name: np.asarray(getattr(mha, name).kernel[...]) for name in ('query', 'key', 'value', 'output')}
    assert weights['query'].shape == (24, 3, 8)
    heads = naive_attention(np.einsum('bld,dhk->blhk', x, weights['query']),
                            np.einsum('bld,dhk->blhk', context, weights['key']),
                            np.einsum('bld,dhk->blhk', context, weights['value']))
    np.testing.assert_allclose(out, np.einsum('blhk,hkd->bld', heads, weights['output']), atol=1e-5)


def test_decode_step_with_cache_equals_full_causal_attention():
    mha = make_mha(causal=True)
    x = jnp.asarray(RNG.normal(size=(2, 6, 24)), jnp.float32)
    full = mha(x)
    np.testing.assert_allclose(full, make_mha(causal=False)(x, mask=causal_mask(6)), atol=1e-6)
    cache = mha.init_cache(2, 6)
    for t in range(6):
        out, cache = mha.decode_step(x[:, t:t + 1], cache, t)
        np.testing.assert_allclose(out[:, 0], full[:, t], atol=1e-5)


def test_beams_sharing_a_source_attend_its_keys_as_if_each_had_its_own():
    """Encoder-decoder attention given keys and values once per source serves the source's g query rows
    (beams) exactly as the same keys repeated per row would; causal attention cannot share them."""
    mha = make_mha()
    queries = jnp.asarray(RNG.normal(size=(6, 1, 24)), jnp.float32)      # 2 sources x 3 beams
    source = jnp.asarray(RNG.normal(size=(2, 7, 24)), jnp.float32)
    mask = jnp.asarray(RNG.random((2, 1, 1, 7)) > 0.3)
    shared = mha.attend(queries, mha.project_key_value(source), mask)
    repeated = mha.attend(queries, mha.project_key_value(jnp.repeat(source, 3, axis=0)), jnp.repeat(mask, 3, axis=0))
    np.testing.assert_allclose(shared, repeated, atol=1e-6)
    causal = make_mha(causal=True)
    with pytest.raises(ValueError, match='causal attention'):
        causal.attend(queries, causal.project_key_value(source), None)


def test_mha_rejects_indivisible_heads():
    with pytest.raises(ValueError, match='not divisible'):
        make_mha(d_model=10, heads=3)


def test_bfloat16_attention_stays_close_and_finite():
    q, k, v = random_qkv()
    mask = causal_mask(6)
    out = scaled_dot_product_attention(*(jnp.asarray(a, jnp.bfloat16) for a in (q, k, v)), mask)
    assert out.dtype == jnp.bfloat16 and bool(jnp.isfinite(out.astype(jnp.float32)).all())
    # bfloat16 keeps 8 mantissa bits: relative error ~2^-8 per operand, a few of them compound.
    np.testing.assert_allclose(np.asarray(out, np.float32), naive_attention(q, k, v, np.asarray(mask)),
                               atol=5e-2)


def test_cudnn_where_it_cannot_run_is_xla_after_one_notice(capsys):
    """Without a GPU (here), model.attention_implementation='cudnn' runs XLA's attention, causal mask
    included, and says so once; on a GPU the same call runs the fused kernel."""
    from transformer_lab.attention import core as core_module
    core_module._NOTICES.clear()
    q, k, v = random_qkv()
    valid = np.array([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]], bool)
    mask = padding_mask(valid, valid)
    fused = DotProductCore(num_heads=3, head_dim=8, causal=True, rngs=nnx.Rngs(0),
                           implementation=Implementation('cudnn'))
    plain = DotProductCore(num_heads=3, head_dim=8, causal=True, rngs=nnx.Rngs(0))
    outputs = [np.asarray(fused(q, k, v, mask)) for _ in range(2)]
    np.testing.assert_array_equal(outputs[0], np.asarray(plain(q, k, v, mask)))
    np.testing.assert_array_equal(outputs[1], outputs[0])
    notices = [line for line in capsys.readouterr().err.splitlines() if line.startswith('notice:')]
    assert len(notices) == 1 and "'cudnn' falls back to XLA's attention" in notices[0]
