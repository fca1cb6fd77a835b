"""One causal self-attention layer (projections included) compiled for a given attention core, and the
memory XLA's compiled program needs: the measure scripts/bench_attention.py and scripts/relative_memory.py
compare cores by. Compiled memory (``memory_analysis``: temporaries plus outputs) is what the program
would allocate, read without running it, so sizes that do not fit on this machine still get a figure.

Also here: Shaw et al.'s relative attention as they wrote it (``NaiveRelativeCore``), the contrast for
the library's skewed and blockwise forms, and the Music Transformer's Table 1 (Huang et al. 2018): the
memory of each form's relative term by the paper's formula beside the compiled memory of a whole layer.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
from flax import nnx

from transformer_lab.attention import Implementation, MultiHeadAttention, make_core
from transformer_lab.attention.core import AttentionCore, causal_mask, scaled_dot_product_attention
from transformer_lab.attention.relative import RelativeEmbeddings

FLOAT32_BYTES = 4


class NaiveRelativeCore(AttentionCore):
    """Relative attention without skewing (Shaw et al. 2018): E[j - i] gathered for every (query, key)
    pair into [heads, L, L, d_h], O(L^2 d_h) memory. Not in the library's cores: it exists to be measured."""

    def __init__(self, *, num_heads, head_dim, causal, rngs, implementation, max_relative_position=1024):
        super().__init__(num_heads=num_heads, head_dim=head_dim, causal=causal, rngs=rngs,
                         implementation=implementation)
        self.relative = RelativeEmbeddings(num_heads=num_heads, head_dim=head_dim, share_heads=False,
                                           max_relative_position=max_relative_position, far_distances='clip',
                                           rngs=rngs)

    def __call__(self, query, key, value, mask):
        length = query.shape[1]
        distances = jnp.minimum(jnp.arange(length)[None, :] - jnp.arange(length)[:, None], 0)
        gathered = self.relative.lookup(distances.reshape(-1)).reshape(query.shape[2], length, length, -1)
        bias = jnp.einsum('bqhd,hqkd->bhqk', query, gathered) / query.shape[-1] ** 0.5
        return scaled_dot_product_attention(query, key, value, causal_mask(length), bias,
                                            implementation=self.implementation)


def parse_core(spec: str) -> dict:
    """``'type=local_2d,query_shape=8x32'`` -> {'type': 'local_2d', 'query_shape': (8, 32)}: integers and
    ``AxB`` tuples parsed, other values kept as strings."""
    options = {}
    for item in spec.split(','):
        key, _, value = item.partition('=')
        if 'x' in value and value.replace('x', '').isdigit():
            options[key] = tuple(int(v) for v in value.split('x'))
        else:
            options[key] = int(value) if value.isdigit() else value
    return options


# Core options that say how attention is computed rather than what: Implementation's fields.
IMPLEMENTATION_KEYS = {'implementation': 'name', 'query_block': 'query_block', 'key_block': 'key_block'}


@dataclasses.dataclass
class CompiledLayer:
    """A layer's compiled program, the arguments it takes (arrays, or their shapes when ``materialize``
    was off) and the bytes it needs: temporaries (activations kept for the backward pass, scratch) plus
    outputs."""
    compiled: Any
    arguments: tuple
    memory_bytes: int


def compile_layer(options: dict, *, length: int, d_model: int = 512, heads: int = 8, batch: int = 1,
                  backward: bool = True, materialize: bool = True, dtype=jnp.float32) -> CompiledLayer:
    """One causal self-attention layer with core ``options`` (``parse_core``'s; ``type=naive_relative``
    is ``NaiveRelativeCore``) on float32 [batch, length, d_model], computing in ``dtype`` (parameters
    float32), compiled: the sum of its output and,
    with ``backward``, the gradients of the parameters and the input; without, the layer's output alone.
    ``materialize`` off lowers on shapes only, so that lengths whose parameters or inputs would not fit
    in host memory (E of a long sequence) still compile."""
    options = dict(options)
    implementation = Implementation(**{field: options.pop(key) for key, field in IMPLEMENTATION_KEYS.items()
                                       if key in options})

    def build():
        arguments = dict(num_heads=heads, head_dim=d_model // heads, causal=True, rngs=nnx.Rngs(0),
                         implementation=implementation)
        if options['type'] == 'naive_relative':
            core = NaiveRelativeCore(**arguments, **{k: v for k, v in options.items() if k != 'type'})
        else:
            core = make_core(options, **arguments)
        return MultiHeadAttention(d_model, heads, core, dtype=dtype, rngs=nnx.Rngs(0))

    graphdef, params = nnx.split(build() if materialize else nnx.eval_shape(build))
    shape = (batch, length, d_model)
    x = jax.random.normal(jax.random.key(0), shape) if materialize else jax.ShapeDtypeStruct(shape, jnp.float32)

    def forward(params, x):
        return nnx.merge(graphdef, params)(x)

    def loss(params, x):
        return forward(params, x).astype(jnp.float32).sum()

    step = jax.value_and_grad(loss, argnums=(0, 1)) if backward else forward
    compiled = jax.jit(step).lower(params, x).compile()
    memory = compiled.memory_analysis()
    return CompiledLayer(compiled, (params, x), memory.temp_size_in_bytes + memory.output_size_in_bytes)


# Huang et al. 2018, Table 1: the layer of their text (D = 512, H = 8, so D_h = 64), memory per layer per head
# in MB (10^6 bytes: 650^2 x 64 x 4 bytes = 108 MB) as relative term's embeddings + logits; "Ours" is skewing.
TABLE_1_LAYER = dict(d_model=512, heads=8, batch=1)
TABLE_1_HEAD_DIM = TABLE_1_LAYER['d_model'] // TABLE_1_LAYER['heads']
TABLE_1 = {('Shaw et al.', 650): '108+1.7', ('Shaw et al.', 2048): '1100+16', ('Shaw et al.', 3500): '3100+49',
           ('Ours', 650): '0.17+1.7', ('Ours', 2048): '0.52+16', ('Ours', 3500): '0.90+49'}
TABLE_1_MAX_LENGTH = {'Shaw et al.': 650, 'Ours': 3500}


def shaw_elements(length: int) -> tuple[int, int]:
    """The paper's O(L^2 D + L^2) per head: E[j - i] gathered for every pair, [L, L, D_h], and the logits [L, L]."""
    return length * length * TABLE_1_HEAD_DIM, length * length


def skewing_elements(length: int) -> tuple[int, int]:
    """The paper's O(L D + L^2) per head: E [L, D_h] and the relative logits Q E^T, [L, L]."""
    return length * TABLE_1_HEAD_DIM, length * length


def blockwise_elements(length: int) -> tuple[int, int]:
    """Skewing's formula with blocks: E [L, D_h] and, in place of the [L, L] logits, one block pair's
    relative logits before skewing, Q_b W^T [b_q, b_q + b_k - 1] (blocks at most L long)."""
    query_block, key_block = min(Implementation.query_block, length), min(Implementation.key_block, length)
    return length * TABLE_1_HEAD_DIM, query_block * (query_block + key_block - 1)


@dataclasses.dataclass(frozen=True)
class Form:
    """One way of computing attention for Table 1: its core options (relative forms get max_relative_position
    = L, every distance its own E), the paper's formula for its relative term (float32 elements per head:
    embeddings, logits; None for plain attention), the row of Table 1 it is, and the plain form of the
    same implementation whose memory the relative term comes on top of."""
    name: str
    options: dict
    formula: Callable[[int], tuple[int, int]] | None = None
    paper_row: str | None = None
    baseline: str | None = None

    def core_options(self, length: int) -> dict:
        return dict(self.options, **({'max_relative_position': length} if self.formula else {}))


PLAIN_XLA, SHAW, SKEWING = 'plain causal (XLA)', "Shaw et al.'s gather", 'skewing (XLA)'
PLAIN_BLOCKWISE, BLOCKWISE = 'plain causal (blockwise)', 'skewing (blockwise)'
FORMS = (
    Form(PLAIN_XLA, {'type': 'dot_product'}),
    Form(SHAW, {'type': 'naive_relative'}, shaw_elements, 'Shaw et al.', PLAIN_XLA),
    Form(SKEWING, {'type': 'relative', 'implementation': 'xla'}, skewing_elements, 'Ours', PLAIN_XLA),
    Form(PLAIN_BLOCKWISE, {'type': 'dot_product', 'implementation': 'blockwise'}),
    Form(BLOCKWISE, {'type': 'relative', 'implementation': 'blockwise'}, blockwise_elements, baseline=PLAIN_BLOCKWISE),
)


@dataclasses.dataclass
class MemoryRow:
    """One form at one length: its formula's bytes per head (embeddings, logits; None for plain forms),
    Table 1's printed figure (or None), and one layer's compiled bytes for forward + backward and for
    forward alone (None when not compiled), with the seconds both compiles took."""
    form: Form
    length: int
    formula_bytes: tuple[int, int] | None
    paper: str | None
    train_bytes: int
    forward_bytes: int | None
    compile_seconds: float


def layer_bytes(form: Form, length: int, *, backward: bool = True) -> int:
    """One Table 1 layer's compiled memory with ``form``'s core at ``length`` (shapes only: nothing runs)."""
    return compile_layer(form.core_options(length), length=length, backward=backward, materialize=False,
                         **TABLE_1_LAYER).memory_bytes


def memory_rows(lengths: list[int], forms=FORMS, *, forward: bool = True) -> list[MemoryRow]:
    """Every form at every length (length-major): the formula, the paper and the compiled figures."""
    rows = []
    for length in lengths:
        for form in forms:
            start = time.perf_counter()
            train_bytes = layer_bytes(form, length)
            forward_bytes = layer_bytes(form, length, backward=False) if forward else None
            formula = form.formula and tuple(FLOAT32_BYTES * n for n in form.formula(length))
            rows.append(MemoryRow(form, length, formula, TABLE_1.get((form.paper_row, length)), train_bytes,
                                  forward_bytes, time.perf_counter() - start))
    return rows


def longest_length_within(budget_bytes: int, memory_at, *, fits: int, exceeds: int | None = None,
                          multiple: int = 64) -> int:
    """The longest multiple of ``multiple`` whose ``memory_at(length)`` (growing with length) is within
    ``budget_bytes``, given a length that ``fits`` (at least ``multiple``) and, if known, one that
    ``exceeds``: doubling until one exceeds, then bisection."""
    fits = fits // multiple * multiple
    exceeds = exceeds and -(-exceeds // multiple) * multiple
    while exceeds is None:
        if memory_at(2 * fits) > budget_bytes:
            exceeds = 2 * fits
        else:
            fits *= 2
    while exceeds - fits > multiple:
        middle = (fits + exceeds) // 2 // multiple * multiple
        if memory_at(middle) <= budget_bytes:
            fits = middle
        else:
            exceeds = middle
    return fits
