"""Blockwise attention (model.attention_implementation='blockwise') against XLA's attention with the logits
materialised: outputs and the gradients of the projections' inputs and of the relative embeddings, for plain
and relative cores (far distances clipped or zero, heads sharing E), lengths that do not divide the blocks,
padding and packed-segment masks, bfloat16; one block pair's skewing against its definition; and the
compiled memory of a relative layer at L = 16,384. (Causality and cached decoding, plain and relative:
test_relative_attention.)"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from transformer_lab.attention import (XLA, DotProductCore, Implementation, MultiHeadAttention, RelativeCore,
                                       padding_mask, scaled_dot_product_attention, segment_mask)
from transformer_lab.attention.skewing import DistanceLogits, skew_window, unskew_window
from transformer_lab.config import BLOCKWISE_BLOCKS

HEADS, HEAD_DIM = 2, 8
BLOCKS = {'4x8': Implementation('blockwise', 4, 8), '8x4': Implementation('blockwise', 8, 4)}


def test_one_block_pair_skewed_puts_each_distance_in_place():
    # Window row r holds distance d0 + r, d0 = (first key) - (last query); entry (i, j) must hold j - i + d0 + bq - 1.
    q_block, k_block = 3, 5
    window = np.broadcast_to(np.arange(q_block + k_block - 1), (q_block, q_block + k_block - 1)).astype(np.float32)
    placed = np.asarray(skew_window(jnp.asarray(window), k_block))
    rows, columns = np.indices((q_block, k_block))
    np.testing.assert_array_equal(placed, columns - rows + q_block - 1)


def test_unskewing_a_block_pair_is_the_transpose_of_skewing_it():
    # <skew_window(R), G> = <R, unskew_window(G)> for every R and G: the gradient the backward pass relies on.
    rng = np.random.default_rng(1)
    relative, placed = rng.normal(size=(2, 3, 3 + 5 - 1)), rng.normal(size=(2, 3, 5))
    np.testing.assert_allclose((np.asarray(skew_window(jnp.asarray(relative), 5)) * placed).sum(),
                               (relative * np.asarray(unskew_window(jnp.asarray(placed), 3))).sum(), rtol=1e-5)


def plain(causal=True, implementation=XLA):
    return DotProductCore(num_heads=HEADS, head_dim=HEAD_DIM, causal=causal, rngs=nnx.Rngs(0),
                          implementation=implementation)


def relative(max_relative, far='clip', share=False, implementation=XLA):
    return RelativeCore(num_heads=HEADS, head_dim=HEAD_DIM, causal=True, rngs=nnx.Rngs(0),
                        implementation=implementation, max_relative_position=max_relative, far_distances=far,
                        share_heads=share)


CORES = {
    'causal': lambda implementation: plain(True, implementation),
    'not_causal': lambda implementation: plain(False, implementation),
    'relative_clip': lambda implementation: relative(5, implementation=implementation),
    'relative_zero_shared': lambda implementation: relative(3, 'zero', True, implementation),
    'relative_beyond_length': lambda implementation: relative(40, implementation=implementation),
}


def outputs_and_gradients(core, length, mask=None, real=None, dtype=jnp.float32):
    """The core's output on random q, k, v [2, length, heads, d] and the gradients of a random weighting of
    its real rows with respect to its parameters (the relative embeddings) and q, k, v, all as float32; the
    same inputs for every core of a length."""
    rng = np.random.default_rng(length)
    q, k, v = (jnp.asarray(rng.normal(size=(2, length, HEADS, HEAD_DIM)), dtype) for _ in range(3))
    real = np.ones((2, length), bool) if real is None else real
    weights = jnp.asarray(rng.normal(size=(2, length, HEADS, HEAD_DIM)) * real[..., None, None], jnp.float32)
    graphdef, params = nnx.split(core)

    def loss(params, q, k, v):
        return (nnx.merge(graphdef, params)(q, k, v, mask).astype(jnp.float32) * weights).sum()

    output = jax.jit(lambda params, q, k, v: nnx.merge(graphdef, params)(q, k, v, mask))(params, q, k, v)
    gradients = jax.jit(jax.grad(loss, argnums=(0, 1, 2, 3)))(params, q, k, v)
    return [np.where(real[..., None, None], np.asarray(output, np.float32), 0)] + [
        np.asarray(g, np.float32) for g in jax.tree.leaves(gradients)]


def assert_same(got, expected, atol):
    assert len(got) == len(expected)
    for name, a, b in zip(['output', *(f'gradient {i}' for i in range(len(got) - 1))], got, expected):
        np.testing.assert_allclose(a, b, atol=atol, err_msg=name)


@pytest.mark.parametrize('blocks', sorted(BLOCKS))
@pytest.mark.parametrize('length', [1, 13, 16])
@pytest.mark.parametrize('name', sorted(CORES))
def test_blockwise_equals_xla_in_values_and_gradients(name, length, blocks):
    expected = outputs_and_gradients(CORES[name](XLA), length)
    got = outputs_and_gradients(CORES[name](BLOCKS[blocks]), length)
    assert_same(got, expected, atol=2e-6)


def test_blockwise_reads_a_padding_mask_a_block_at_a_time():
    valid = np.ones((2, 13), bool)
    valid[0, 9:] = False
    mask = padding_mask(valid, valid)
    expected = outputs_and_gradients(plain(False), 13, mask, valid)
    got = outputs_and_gradients(plain(False, BLOCKS['4x8']), 13, mask, valid)
    assert_same(got, expected, atol=2e-6)


def test_blockwise_relative_attention_keeps_packed_examples_apart():
    segments = np.array([[1] * 5 + [2] * 6 + [0] * 2, [1] * 13])
    mask = segment_mask(segments, segments)
    expected = outputs_and_gradients(relative(6), 13, mask, segments > 0)
    got = outputs_and_gradients(relative(6, implementation=BLOCKS['8x4']), 13, mask, segments > 0)
    assert_same(got, expected, atol=2e-6)


def test_blockwise_in_bfloat16_stays_close_to_xla_in_float32():
    expected = outputs_and_gradients(relative(5), 21)
    got = outputs_and_gradients(relative(5, implementation=BLOCKS['4x8']), 21, dtype=jnp.bfloat16)
    # bfloat16 keeps 8 mantissa bits: ~2^-8 relative error per operand, compounded over a few products.
    for a, b in zip(got, expected):
        assert np.abs(a - b).max() <= 0.05 * max(1.0, np.abs(b).max())


def test_the_configs_blocks_are_the_implementations_defaults():
    assert (Implementation().query_block, Implementation().key_block) == (
        BLOCKWISE_BLOCKS['attention_query_block'], BLOCKWISE_BLOCKS['attention_key_block'])


def test_a_relative_layer_at_16384_compiles_to_under_a_gigabyte():
    """Forward + backward of one relative layer (d_model 512, 8 heads, max distance 8192) at L = 16,384:
    XLA's attention compiles to ~33.6 GB (the [heads, L, L] logits and their gradient); blockwise must stay
    under 1 GB, the issue's target (O(L d) plus one block)."""
    length, d_model, heads = 16_384, 512, 8
    core = RelativeCore(num_heads=heads, head_dim=d_model // heads, causal=True, rngs=nnx.Rngs(0),
                        implementation=Implementation('blockwise'), max_relative_position=8192)
    graphdef, params = nnx.split(MultiHeadAttention(d_model, heads, core, rngs=nnx.Rngs(0)))
    x = jax.ShapeDtypeStruct((1, length, d_model), jnp.float32)
    loss = lambda p, x: nnx.merge(graphdef, p)(x).sum()  # noqa: E731
    memory = jax.jit(jax.grad(loss, argnums=(0, 1))).lower(params, x).compile().memory_analysis()
    assert memory.temp_size_in_bytes + memory.output_size_in_bytes < 2 ** 30


def test_queries_that_are_the_last_of_the_keys_see_the_same_keys_by_every_path():
    """q_len < k_len, causal, with relative logits: the queries are the last q_len positions (skewing's and
    blockwise's convention; XLA's path aligns its causal mask likewise), and a key mask [batch, 1, 1, k_len]
    stays broadcast. Outputs and the gradients of q, k, v and E agree."""
    rng = np.random.default_rng(3)
    query = jnp.asarray(rng.normal(size=(2, 5, HEADS, HEAD_DIM)), jnp.float32)
    key, value = (jnp.asarray(rng.normal(size=(2, 13, HEADS, HEAD_DIM)), jnp.float32) for _ in range(2))
    embeddings = jnp.asarray(rng.normal(size=(HEADS, 13, HEAD_DIM)), jnp.float32)
    key_mask = jnp.asarray(rng.random((2, 1, 1, 13)) > 0.2).at[:, :, :, -5:].set(True)

    def weighted(implementation):
        def loss(q, k, v, e):
            out = scaled_dot_product_attention(q, k, v, key_mask, DistanceLogits(e, 0.3), is_causal=True,
                                               implementation=implementation)
            return (out * jnp.arange(out.size, dtype=jnp.float32).reshape(out.shape) / out.size).sum()
        return jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2, 3)))(query, key, value, embeddings)

    (expected, expected_gradients), (got, got_gradients) = weighted(XLA), weighted(BLOCKS['4x8'])
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    for a, b in zip(got_gradients, expected_gradients):
        np.testing.assert_allclose(a, b, atol=2e-6)


def test_blockwise_gradients_come_back_in_the_inputs_dtypes():
    q, k, v = (jnp.ones((1, 9, HEADS, HEAD_DIM), jnp.bfloat16) for _ in range(3))
    table = jnp.ones((HEADS, 9, HEAD_DIM), jnp.float32)
    gradients = jax.grad(lambda q, k, v, e: scaled_dot_product_attention(
        q, k, v, None, DistanceLogits(e, 0.3), is_causal=True, implementation=BLOCKS['4x8']).astype(
        jnp.float32).sum(), argnums=(0, 1, 2, 3))(q, k, v, table)
    assert [g.dtype for g in gradients] == [jnp.bfloat16] * 3 + [jnp.float32]
