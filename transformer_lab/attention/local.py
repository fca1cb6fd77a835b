"""Local self-attention of the Image Transformer (Parmar et al. 2018, Sec. 3.2 and Fig. 2).

An image of 32x32x3 sub-pixels is 3072 positions, too many for full attention, so each query attends
only to a neighbourhood ("memory block") around its "query block":

- **local 1D** (masked): the sequence, in raster order, is cut into query blocks of ``block_length``
  positions; a query attends to the previous block and to its own block up to itself.
- **local 2D**: the sequence is an image of ``image_shape`` = (rows, columns * channels), cut into query
  blocks of ``query_shape`` = (qh, qw). The memory of a block adds ``memory_flange`` = (fh, fw): masked,
  the fh rows above the block spanning its columns and fw more on each side, the fw columns left of the
  block on its own rows, and the block itself under a raster mask; unmasked (encoders), fh rows above
  and below and fw columns on either side.

Generation order. Masked local 2D is causal only in **block-raster order**: blocks in raster order,
pixels in raster order inside each block. (In plain raster order the left band of a block's lower rows
would come after the block's first pixels: the future.) ``block_raster_order`` gives that order; the
data, the model, the loss and the sampler all see sequences in it, and these cores assume it.

Written by hand: no maintained library implements these. The blocked computations below are tested
against full attention under an independently built mask (tests/test_local_attention.py). Sizes that
do not divide the image are padded up to whole blocks; padding is never attended to.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from transformer_lab.attention.core import XLA, AttentionCore, Implementation, cached_positions
from transformer_lab.attention.skewing import dense_logits

Array = jax.Array


def _reject_mask(mask: Array | None, name: str) -> None:
    if mask is not None:
        raise ValueError(f'{name} attention builds its own mask from the block structure and takes no '
                         f'padding or segment mask: use it on unpacked, fixed-length sequences (images)')


def blocked_attention(attention, query_blocks: Array, memory_keys: Array, memory_values: Array, mask: np.ndarray,
                      bias: Array | None = None) -> Array:
    """Attention of every query block to its own memory block.

    query_blocks [batch, blocks, q, heads, d], memory keys/values [batch, blocks, m, heads, d], mask bool
    [blocks, q, m] (the same for every batch row), bias (additive logits) [batch, blocks, heads, q, m] or
    None. Returns [batch, blocks, q, heads, d]. Blocks are folded into the batch for ``attention``
    (a core's ``attention``: scaled dot-product attention by its implementation).
    """
    batch, blocks = query_blocks.shape[:2]

    def fold(x):
        return None if x is None else x.reshape(batch * blocks, *x.shape[2:])

    mask = jnp.broadcast_to(jnp.asarray(mask)[None, :, None], (batch, blocks, 1, *mask.shape[1:]))
    out = attention(fold(query_blocks), fold(memory_keys), fold(memory_values), fold(mask), fold(bias))
    return out.reshape(batch, blocks, *out.shape[1:])


# --- local 1D -------------------------------------------------------------------------------------

def split_query_blocks(x: Array, block_length: int) -> Array:
    """[batch, length, heads, d] -> [batch, blocks, block_length, heads, d], zero-padding the end."""
    blocks = math.ceil(x.shape[1] / block_length)
    x = jnp.pad(x, [(0, 0), (0, blocks * block_length - x.shape[1])] + [(0, 0)] * (x.ndim - 2))
    return x.reshape(x.shape[0], blocks, block_length, *x.shape[2:])


def local_1d_memory(blocks: Array) -> Array:
    """The memory block of each query block: the previous block then the block itself.

    blocks [batch, n, b, heads, d] -> [batch, n, 2b, heads, d]; the first block's "previous block" is
    zeros, always masked.
    """
    previous = jnp.pad(blocks[:, :-1], [(0, 0), (1, 0)] + [(0, 0)] * (blocks.ndim - 2))
    return jnp.concatenate([previous, blocks], axis=2)


@functools.lru_cache(maxsize=None)
def local_1d_mask(length: int, block_length: int) -> np.ndarray:
    """bool [blocks, b, 2b]: query i of block n sees memory key j, at position (n - 1) b + j, iff that
    position is a real one (0 <= position < length) and not after the query (n b + i)."""
    blocks = math.ceil(length / block_length)
    block = np.arange(blocks)[:, None, None]
    query_position = block * block_length + np.arange(block_length)[None, :, None]
    key_position = (block - 1) * block_length + np.arange(2 * block_length)[None, None, :]
    return (key_position >= 0) & (key_position < length) & (key_position <= query_position)


class Local1DCore(AttentionCore):
    """Masked local 1D attention (Parmar et al. 2018, Sec. 3.2): query blocks of ``block_length``
    positions attend to their previous block and causally to themselves; memory 2 * block_length.

    Cost per layer O(L * 2b * d) instead of O(L^2 d). The paper's CIFAR-10 model uses b = 256.
    """

    def __init__(self, *, num_heads: int, head_dim: int, causal: bool, rngs: nnx.Rngs,
                 implementation: Implementation = XLA, block_length: int = 256):
        super().__init__(num_heads=num_heads, head_dim=head_dim, causal=causal, rngs=rngs,
                         implementation=implementation)
        if not causal:
            raise ValueError('local_1d is masked (causal) attention, for decoders; encoders can use '
                             'local_2d or dot_product')
        if block_length < 1:
            raise ValueError(f'block_length must be positive, got {block_length}')
        self.block_length = block_length

    def block_logits(self, query_blocks: Array) -> Array | None:
        """``added_logits`` over each block's memory: query_blocks [batch, n, b, heads, d] (the last b of
        their 2 b memory positions) -> [batch, n, heads, b, 2 b], or None."""
        batch, blocks, b = query_blocks.shape[:3]
        folded = query_blocks.reshape(batch * blocks, *query_blocks.shape[2:])
        logits = dense_logits(self.added_logits(folded, 2 * b), folded)
        return None if logits is None else logits.reshape(batch, blocks, *logits.shape[1:])

    def __call__(self, query: Array, key: Array, value: Array, mask: Array | None) -> Array:
        _reject_mask(mask, 'local_1d')
        length, b = query.shape[1], self.block_length
        query_blocks = split_query_blocks(query, b)
        keys, values = (local_1d_memory(split_query_blocks(x, b)) for x in (key, value))
        out = blocked_attention(self.attention, query_blocks, keys, values, local_1d_mask(length, b),
                                self.block_logits(query_blocks))
        return out.reshape(out.shape[0], -1, *out.shape[3:])[:, :length]

    def query_block(self, position: int, length: int) -> np.ndarray:
        return np.arange(length) // self.block_length == position // self.block_length

    def visible_keys(self, position: Array, cache_length: int) -> Array:
        first = (position // self.block_length - 1) * self.block_length
        keys = cached_positions(position, cache_length)
        return (keys >= first) & (keys >= 0)


# --- local 2D -------------------------------------------------------------------------------------

def block_raster_order(image_shape: tuple[int, int], query_shape: tuple[int, int]) -> np.ndarray:
    """The generation order of masked local 2D attention, as raster indices.

    Returns int [rows * columns]: entry t is the raster index (row * columns + column) of the t-th
    position generated. Blocks of ``query_shape`` are visited in raster order and the pixels inside a
    block in raster order; blocks cut by the image border simply hold fewer pixels.
    ``image.reshape(-1)[order]`` turns a raster-order image into the sequence a model sees.
    """
    rows, columns = image_shape
    qh, qw = query_shape
    row, column = np.meshgrid(np.arange(rows), np.arange(columns), indexing='ij')
    keys = (row // qh, column // qw, row % qh, column % qw)
    return np.lexsort(tuple(k.reshape(-1) for k in reversed(keys)))


@dataclasses.dataclass(frozen=True)
class Local2DPlan:
    """Static index arithmetic of local 2D attention for one image and block geometry.

    The image is padded to whole blocks (padded_length positions) and flattened block by block:
    ``sequence_to_padded`` [L] places the L real positions (in block-raster order) there,
    ``memory_index`` [blocks, m] lists each block's memory as positions of that flat array (index
    padded_length = outside the image: a zero key), and ``mask`` [blocks, q, m] says which query of
    the block sees which memory position. ``visible`` [blocks, L] (masked only) lists, for decoding,
    the sequence positions in each block's memory, the block included.
    """
    padded_length: int
    block_size: int
    sequence_to_padded: np.ndarray
    memory_index: np.ndarray
    mask: np.ndarray
    block_of_position: np.ndarray
    visible: np.ndarray


def query_blocks_2d(image_shape: tuple[int, int], query_shape: tuple[int, int]) -> np.ndarray:
    """The query blocks of local 2D attention (Parmar et al., Sec. 3.2, Fig. 2 right).

    The image of ``image_shape`` = (rows, columns) is padded to whole blocks of ``query_shape`` =
    (qh, qw) and flattened block by block (blocks in raster order, pixels in raster order inside each):
    returns int [padded_rows, padded_columns], the index of every padded pixel in that flat sequence;
    block n holds the indices n qh qw .. (n + 1) qh qw - 1.
    """
    rows, columns = image_shape
    qh, qw = query_shape
    block_columns = math.ceil(columns / qw)
    row, column = np.meshgrid(np.arange(math.ceil(rows / qh) * qh), np.arange(block_columns * qw), indexing='ij')
    return ((row // qh * block_columns + column // qw) * qh + row % qh) * qw + column % qw


def memory_flange(query_shape: tuple[int, int], flange: tuple[int, int], causal: bool) -> tuple[np.ndarray, np.ndarray]:
    """The memory block of a query block: the block extended by its memory flange (Fig. 2 right).

    Returns (window_rows [r], window_columns [c]): offsets from the block's top-left pixel. ``flange``
    = (fh, fw): fh rows above the block (and fh below when unmasked) and fw columns on either side.
    For the paper's (8, 32) blocks and flanges, masked: 16 x 96 = 1536 window positions.
    """
    (qh, qw), (fh, fw) = query_shape, flange
    return np.arange(-fh, qh + (0 if causal else fh)), np.arange(-fw, qw + fw)


def causal_window_mask(window_rows: np.ndarray, window_columns: np.ndarray, query_shape: tuple[int, int]) -> np.ndarray:
    """bool [qh qw, r c]: which window position each query of a block may see under block-raster
    generation: every flange row above the block, the left flange on the block's own rows, and the
    block itself up to the query (raster order inside the block). The right flange on the block's own
    rows is generated after the whole block: the future for every query of it."""
    qh, qw = query_shape
    relative_row = np.repeat(window_rows, len(window_columns))
    relative_column = np.tile(window_columns, len(window_rows))
    query_row, query_column = np.divmod(np.arange(qh * qw), qw)
    above = relative_row < 0
    left = (relative_row >= 0) & (relative_column < 0)
    in_block_before = ((relative_row >= 0) & (relative_column >= 0) & (relative_column < qw)
                       & (relative_row[None] * qw + relative_column[None] <= (query_row * qw + query_column)[:, None]))
    return above[None] | left[None] | in_block_before


@functools.lru_cache(maxsize=None)
def local_2d_plan(image_shape: tuple[int, int], query_shape: tuple[int, int],
                  flange: tuple[int, int], causal: bool) -> Local2DPlan:
    """Builds the Local2DPlan (see there) from the geometry: ``query_blocks_2d`` numbers the padded
    image block by block, ``memory_flange`` gives each block's window, ``causal_window_mask`` (masked)
    which queries see which of it. numpy, once per geometry."""
    rows, columns = image_shape
    qh, qw = query_shape
    flat = query_blocks_2d(image_shape, query_shape)
    padded_rows, padded_columns = flat.shape
    outside = flat.size
    window_rows, window_columns = memory_flange(query_shape, flange, causal)

    block_row, block_column = np.meshgrid(np.arange(padded_rows // qh), np.arange(padded_columns // qw), indexing='ij')
    key_row = block_row.reshape(-1, 1, 1) * qh + window_rows[None, :, None]
    key_column = block_column.reshape(-1, 1, 1) * qw + window_columns[None, None, :]
    real = (key_row >= 0) & (key_row < rows) & (key_column >= 0) & (key_column < columns)
    memory_index = np.where(real, flat[np.clip(key_row, 0, padded_rows - 1), np.clip(key_column, 0, padded_columns - 1)],
                            outside)
    blocks = block_row.size
    memory_index, real = memory_index.reshape(blocks, -1), real.reshape(blocks, -1)

    if causal:
        structure = causal_window_mask(window_rows, window_columns, query_shape)       # [q, m]
        # Keys no query sees (the right flange on the block's own rows) are dropped from the memory:
        # 1280 instead of 1536 keys per block for (8, 32) blocks and flanges.
        seen = structure.any(0)
        structure, memory_index, real = structure[:, seen], memory_index[:, seen], real[:, seen]
    else:
        structure = np.ones((qh * qw, memory_index.shape[1]), bool)
    mask = structure[None] & real[:, None, :]

    row, column = np.meshgrid(np.arange(padded_rows), np.arange(padded_columns), indexing='ij')
    sequence_to_padded = np.sort(flat[(row < rows) & (column < columns)])
    block_of_position = sequence_to_padded // (qh * qw)
    padded_to_sequence = np.full(outside + 1, -1)
    padded_to_sequence[sequence_to_padded] = np.arange(len(sequence_to_padded))
    visible = np.zeros((blocks, len(sequence_to_padded)), bool)
    if causal:
        memory_positions = padded_to_sequence[memory_index]                       # [blocks, m], -1 = none
        for block in range(blocks):
            positions = memory_positions[block][memory_positions[block] >= 0]
            visible[block, positions] = True
    return Local2DPlan(outside, qh * qw, sequence_to_padded, memory_index, mask, block_of_position, visible)


class Local2DCore(AttentionCore):
    """Local 2D attention (Parmar et al. 2018, Sec. 3.2, Fig. 2 right), masked (causal, for decoders,
    over sequences in block-raster order) or unmasked (encoders).

    ``image_shape`` = (rows, columns * channels) of the sequence seen as an image, ``query_shape`` =
    (qh, qw), ``memory_flange`` = (fh, fw). Masked, each query sees fh (qw + 2 fw) + qh fw positions
    plus its own block up to itself: 768 + 256 + the block for the paper's (8, 32) blocks and (8, 32)
    flanges, 1280 keys at most instead of 3072.
    """

    sees_an_image = True         # its model gives it the position grid, ``image_shape``
    QUERY_SHAPE = (8, 32)        # the paper's query blocks on CIFAR-10's 32 x 96 sub-pixels

    def __init__(self, *, num_heads: int, head_dim: int, causal: bool, rngs: nnx.Rngs, image_shape: tuple[int, int],
                 implementation: Implementation = XLA, query_shape: tuple[int, int] = QUERY_SHAPE,
                 memory_flange: tuple[int, int] = (8, 32)):
        super().__init__(num_heads=num_heads, head_dim=head_dim, causal=causal, rngs=rngs,
                         implementation=implementation)
        for name, shape, least in (('image_shape', image_shape, 1), ('query_shape', query_shape, 1),
                                   ('memory_flange', memory_flange, 0)):
            if len(shape) != 2 or min(shape) < least:
                raise ValueError(f'{name} must be two integers >= {least}, got {shape}')
        self.image_shape, self.query_shape = tuple(image_shape), tuple(query_shape)
        self.memory_flange = tuple(memory_flange)

    @classmethod
    def generation_order(cls, grid: tuple[int, int], options) -> np.ndarray:
        """Block-raster order (``block_raster_order``) over ``grid`` in query blocks of ``query_shape``."""
        return block_raster_order(grid, tuple(options.get('query_shape', cls.QUERY_SHAPE)))

    def plan(self) -> Local2DPlan:
        return local_2d_plan(self.image_shape, self.query_shape, self.memory_flange, self.causal)

    def __call__(self, query: Array, key: Array, value: Array, mask: Array | None) -> Array:
        _reject_mask(mask, 'local_2d')
        plan = self.plan()
        if query.shape[1] != len(plan.sequence_to_padded):
            raise ValueError(f'local_2d with image_shape={self.image_shape} needs sequences of '
                             f'{len(plan.sequence_to_padded)} positions, got {query.shape[1]}')
        identity = plan.padded_length == query.shape[1]

        def padded(x):  # [batch, L, ...] in block-raster order -> [batch, padded_length, ...]
            return x if identity else jnp.zeros((x.shape[0], plan.padded_length, *x.shape[2:]), x.dtype).at[
                :, plan.sequence_to_padded].set(x)

        def memory(x):  # -> [batch, blocks, m, heads, d], zeros outside the image
            x = jnp.pad(padded(x), [(0, 0), (0, 1)] + [(0, 0)] * (x.ndim - 2))
            return x[:, plan.memory_index]

        batch = query.shape[0]
        query_blocks = padded(query).reshape(batch, -1, plan.block_size, *query.shape[2:])
        out = blocked_attention(self.attention, query_blocks, memory(key), memory(value), plan.mask)
        out = out.reshape(batch, plan.padded_length, *out.shape[3:])
        return out if identity else out[:, plan.sequence_to_padded]

    def query_block(self, position: int, length: int) -> np.ndarray:
        blocks = self.plan().block_of_position
        return blocks[:length] == blocks[position]

    def structure(self, q_len: int, k_len: int) -> Array:
        """Unmasked (an encoder's): each position sees its block's memory window (``plan.mask``) in the
        full frame of sequence positions; masked: the causal cores' ``visible_keys`` of every position."""
        if self.causal:
            return super().structure(q_len, k_len)
        plan = self.plan()
        padded_to_sequence = np.full(plan.padded_length + 1, -1)
        padded_to_sequence[plan.sequence_to_padded] = np.arange(len(plan.sequence_to_padded))
        frame = np.zeros((q_len, k_len + 1), bool)            # the last column collects keys outside the image
        for position, padded in enumerate(plan.sequence_to_padded):
            block, row = divmod(padded, plan.block_size)
            keys = padded_to_sequence[plan.memory_index[block][plan.mask[block, row]]]
            frame[position, keys] = True
        return jnp.asarray(frame[:, :k_len])

    def visible_keys(self, position: Array, cache_length: int) -> Array:
        if not self.causal:
            raise ValueError('unmasked local_2d attention is for encoders and does not decode')
        plan = self.plan()
        length = plan.visible.shape[1]
        visible = np.pad(plan.visible, [(0, 0), (0, max(cache_length - length, 0))])[:, :cache_length]
        block = jnp.asarray(plan.block_of_position)[position]
        return jnp.asarray(visible)[block] & (jnp.arange(cache_length) <= position)
