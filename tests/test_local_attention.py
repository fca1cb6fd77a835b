"""Local 1D and 2D attention against full attention under an independently built mask, causality in
the generation order, padding, gradients, and cached decoding."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from helpers import naive_attention
from transformer_lab.attention import Local1DCore, Local2DCore, MultiHeadAttention
from transformer_lab.attention.local import block_raster_order

RNG = np.random.default_rng(0)
HEADS, HEAD_DIM = 2, 4


def random_qkv(length, batch=2):
    return [RNG.normal(size=(batch, length, HEADS, HEAD_DIM)).astype(np.float32) for _ in range(3)]


def band_mask(length, block):
    """Full [L, L] mask of masked local 1D: the key is not after the query and at most one block back."""
    mask = np.zeros((length, length), bool)
    for i, j in itertools.product(range(length), repeat=2):
        mask[i, j] = j <= i and j // block >= i // block - 1
    return mask


def order_by_blocks(image_shape, query_shape):
    """Pixels (row, column) sorted block by block, raster inside a block: the generation order."""
    (rows, columns), (qh, qw) = image_shape, query_shape
    return sorted(itertools.product(range(rows), range(columns)),
                  key=lambda p: (p[0] // qh, p[1] // qw, p[0] % qh, p[1] % qw))


def neighbourhood_mask(image_shape, query_shape, flange, causal):
    """Full [L, L] mask in block-raster order, from the paper's description of the memory block."""
    (qh, qw), (fh, fw) = query_shape, flange
    pixels = order_by_blocks(image_shape, query_shape)
    mask = np.zeros((len(pixels), len(pixels)), bool)
    for t, (row, column) in enumerate(pixels):
        top, left = row // qh * qh, column // qw * qw
        for s, (key_row, key_column) in enumerate(pixels):
            if not causal:
                mask[t, s] = (top - fh <= key_row < top + qh + fh) and (left - fw <= key_column < left + qw + fw)
                continue
            band_above = top - fh <= key_row < top and left - fw <= key_column < left + qw + fw
            band_left = top <= key_row < top + qh and left - fw <= key_column < left
            same_block_before = (key_row // qh, key_column // qw) == (row // qh, column // qw) and (
                (key_row, key_column) <= (row, column))
            mask[t, s] = band_above or band_left or same_block_before
    return mask


def core_1d(block):
    return Local1DCore(num_heads=HEADS, head_dim=HEAD_DIM, causal=True, rngs=nnx.Rngs(0), block_length=block)


def core_2d(image_shape, query_shape, flange, causal=True):
    return Local2DCore(num_heads=HEADS, head_dim=HEAD_DIM, causal=causal, rngs=nnx.Rngs(0),
                       image_shape=image_shape, query_shape=query_shape, memory_flange=flange)


GEOMETRIES_2D = [((4, 6), (2, 3), (1, 2)),     # blocks divide the image
                 ((5, 7), (2, 3), (1, 2)),     # they do not: padded rows and columns
                 ((6, 9), (3, 3), (2, 3)),     # flanges as wide as a block
                 ((3, 5), (4, 4), (1, 1))]     # one block larger than the image


@pytest.mark.parametrize('length,block', [(12, 4), (10, 4), (7, 16), (9, 1)])
def test_local_1d_equals_full_attention_under_the_band_mask(length, block):
    q, k, v = random_qkv(length)
    out = np.asarray(core_1d(block)(q, k, v, None))
    np.testing.assert_allclose(out, naive_attention(q, k, v, band_mask(length, block)), atol=1e-5)


@pytest.mark.parametrize('causal', [True, False])
@pytest.mark.parametrize('image_shape,query_shape,flange', GEOMETRIES_2D)
def test_local_2d_equals_full_attention_under_the_neighbourhood_mask(image_shape, query_shape, flange, causal):
    q, k, v = random_qkv(image_shape[0] * image_shape[1])
    out = np.asarray(core_2d(image_shape, query_shape, flange, causal)(q, k, v, None))
    expected = naive_attention(q, k, v, neighbourhood_mask(image_shape, query_shape, flange, causal))
    np.testing.assert_allclose(out, expected, atol=1e-5)


@pytest.mark.parametrize('image_shape,query_shape,flange', GEOMETRIES_2D[:2])
def test_block_raster_order_lists_pixels_block_by_block(image_shape, query_shape, flange):
    columns = image_shape[1]
    expected = [row * columns + column for row, column in order_by_blocks(image_shape, query_shape)]
    assert block_raster_order(image_shape, query_shape).tolist() == expected


def causal_cores():
    return [('local_1d', core_1d(4), 10), ('local_1d', core_1d(3), 9)] + [
        ('local_2d', core_2d(*geometry), geometry[0][0] * geometry[0][1]) for geometry in GEOMETRIES_2D]


@pytest.mark.parametrize('name,core,length', causal_cores(), ids=lambda x: x if isinstance(x, str) else '')
def test_no_output_depends_on_a_later_position_in_the_generation_order(name, core, length):
    attention = MultiHeadAttention(HEADS * HEAD_DIM, HEADS, core, rngs=nnx.Rngs(1))
    x = jnp.asarray(RNG.normal(size=(1, length, HEADS * HEAD_DIM)), jnp.float32)
    base = np.asarray(attention(x))
    for t in range(length):
        changed = np.asarray(attention(x.at[:, t].add(5.0)))
        np.testing.assert_allclose(changed[:, :t], base[:, :t], atol=1e-5, err_msg=f'{name}: position {t}')
        assert not np.allclose(changed[:, t], base[:, t])


@pytest.mark.parametrize('name,core,length', causal_cores(), ids=lambda x: x if isinstance(x, str) else '')
def test_cached_decoding_equals_the_full_pass(name, core, length):
    attention = MultiHeadAttention(HEADS * HEAD_DIM, HEADS, core, rngs=nnx.Rngs(1))
    x = jnp.asarray(RNG.normal(size=(2, length, HEADS * HEAD_DIM)), jnp.float32)
    full = np.asarray(attention(x))
    cache = attention.init_cache(2, length)
    step = jax.jit(lambda x_t, cache, t: attention.decode_step(x_t, cache, t))
    for t in range(length):
        out, cache = step(x[:, t:t + 1], cache, t)
        np.testing.assert_allclose(np.asarray(out[:, 0]), full[:, t], atol=1e-5, err_msg=f'{name}: position {t}')


@pytest.mark.parametrize('core', [core_1d(4), core_2d((5, 7), (2, 3), (1, 2)),
                                  core_2d((5, 7), (2, 3), (1, 2), causal=False)])
def test_outputs_and_gradients_are_finite_with_padding(core):
    length = 10 if isinstance(core, Local1DCore) else 35
    q, k, v = (jnp.asarray(a) for a in random_qkv(length))
    out = core(q, k, v, None)
    grads = jax.grad(lambda q, k, v: core(q, k, v, None).sum(), argnums=(0, 1, 2))(q, k, v)
    assert all(bool(jnp.isfinite(a).all()) for a in (out, *grads))


def test_local_cores_refuse_what_they_cannot_do():
    with pytest.raises(ValueError, match='local_1d is masked'):
        Local1DCore(num_heads=HEADS, head_dim=HEAD_DIM, causal=False, rngs=nnx.Rngs(0))
    q, k, v = random_qkv(10)
    with pytest.raises(ValueError, match='takes no padding or segment mask'):
        core_1d(4)(q, k, v, np.ones((1, 1, 10, 10), bool))
    with pytest.raises(ValueError, match=r'needs sequences of 35 positions, got 10'):
        core_2d((5, 7), (2, 3), (1, 2))(q, k, v, None)
