"""Code written for one backend's compiler, in one place: each function says on which backend it pays
(or what that backend lacks) and what it does elsewhere. The models and attention cores call these
where the plain form would do on other backends; the measurements are in docs/benchmarks.md.

| function                      | pays on | elsewhere                                                      |
|-------------------------------|---------|----------------------------------------------------------------|
| float32_result_dot_general    | CPU     | the same products; their speed there is not measured           |
| first_argmax                  | CPU     | the same tokens as jnp.argmax; not measured                    |
| keep_as_computed              | CPU     | the same values; not measured                                  |
| float32_product               | CPU     | a workaround for XLA:CPU; other backends take bfloat16 as is   |
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp

Array = jax.Array
FLOAT32 = jnp.float32


def float32_result_dot_general(lhs: Array, rhs: Array, dimension_numbers, precision=None,
                               preferred_element_type=None, out_sharding=None) -> Array:
    """``lax.dot_general`` for bfloat16 operands that returns float32, and whose gradients are float32
    results of bfloat16 products too: the layers' products under ``model.activation_dtype='float32'``.

    For the contraction of lhs's trailing axes with rhs's leading axes (every projection here: lhs
    [..., K...], rhs [K..., N...] -> [..., N...]), flattened to y [M, N] = x [M, K] w [K, N]:

        forward   y  = x w          bfloat16 x bfloat16, float32 accumulation and result
        backward  dx = bf16(dy) w^T,  dw = x^T bf16(dy)   the same, dy rounded to bfloat16 (as bfloat16
                                                          training's cotangents are), dx / dw then cast
                                                          to the operands' dtype

    Why by hand: a bfloat16 product with a bfloat16 result, what ``nnx.Linear(dtype=bfloat16)`` emits,
    is converted back to float32 by XLA's CPU compiler, and the backward products of a float32-result
    forward take float32 cotangents: a bfloat16 train step ran every product in float32 (no faster than
    float32, docs/benchmarks.md). Written so, all three products of a projection reach the CPU's bfloat16
    matrix unit; x^T is made a row-major copy first, since XLA:CPU runs a bfloat16 product whose left
    operand is contracted on its first axis in float32 too. Other contractions, and operands that are
    not bfloat16, fall back to ``lax.dot_general``.
    """
    (lhs_contracting, rhs_contracting), batch = dimension_numbers
    lhs_contracting = tuple(axis % lhs.ndim for axis in lhs_contracting)
    contracted = len(lhs_contracting)
    projection = (not any(batch) and lhs_contracting == tuple(range(lhs.ndim - contracted, lhs.ndim))
                  and tuple(axis % rhs.ndim for axis in rhs_contracting) == tuple(range(contracted)))
    if not projection or lhs.dtype != jnp.bfloat16 or rhs.dtype != jnp.bfloat16:
        return jax.lax.dot_general(lhs, rhs, dimension_numbers, precision=precision,
                                   preferred_element_type=preferred_element_type, out_sharding=out_sharding)
    return _float32_result_projection(lhs, rhs, contracted)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _float32_result_projection(x: Array, w: Array, contracted: int) -> Array:
    """x [..., K...] w [K..., N...] -> float32 [..., N...], the ``contracted`` axes of K summed."""
    size = math.prod(w.shape[:contracted])
    y = jax.lax.dot(x.reshape(-1, size), w.reshape(size, -1), preferred_element_type=jnp.float32)
    return y.reshape(*x.shape[:x.ndim - contracted], *w.shape[contracted:])


def _projection_forward(x, w, contracted):
    return _float32_result_projection(x, w, contracted), (x, w)


def _projection_backward(contracted, residuals, dy):
    x, w = residuals
    size, lead = math.prod(w.shape[:contracted]), x.ndim - contracted
    w_flat = w.reshape(size, -1)
    dy_flat = dy.reshape(-1, w_flat.shape[1]).astype(x.dtype)
    dx = jax.lax.dot_general(dy_flat, w_flat, (((1,), (1,)), ((), ())), preferred_element_type=jnp.float32)
    x_transposed = x.transpose(*range(lead, x.ndim), *range(lead)).reshape(size, -1)   # a row-major copy
    dw = jax.lax.dot(x_transposed, dy_flat, preferred_element_type=jnp.float32)
    return dx.astype(x.dtype).reshape(x.shape), dw.astype(w.dtype).reshape(w.shape)


_float32_result_projection.defvjp(_projection_forward, _projection_backward)


def first_argmax(logits: jax.Array) -> jax.Array:
    """``jnp.argmax`` over the last axis (the first maximum; the first NaN where there is one) -> int32,
    as two plain reductions, the maximum and the least index that holds it. CPU only pays: XLA:CPU's
    paired (value, index) reduction of ``jnp.argmax`` is a visible share of a greedy decoding step
    (docs/benchmarks.md); other backends get the same tokens."""
    peak = logits.max(axis=-1, keepdims=True)
    holds_it = (logits == peak) | jnp.isnan(logits)
    indices = jnp.arange(logits.shape[-1], dtype=jnp.int32)
    return jnp.min(jnp.where(holds_it, indices, logits.shape[-1]), axis=-1)


def keep_as_computed(tree):
    """``tree`` handed on exactly as computed (``lax.optimization_barrier``). CPU: the encoder-decoder
    keys and values a decoding loop reads at every step stay heads-major as computed; without the
    barrier XLA:CPU moves their layout change into the loop body, where it runs at every step."""
    return jax.lax.optimization_barrier(tree)


def float32_product(spec: str, a: Array, b: Array) -> Array:
    """``jnp.einsum`` with a float32 result. On a CPU the operands are float32 first: XLA:CPU's dot has no
    bfloat16 x bfloat16 = float32 for every layout (the window's gradient product raised UNIMPLEMENTED)."""
    if jax.default_backend() == 'cpu':
        a, b = a.astype(FLOAT32), b.astype(FLOAT32)
    return jnp.einsum(spec, a, b, preferred_element_type=FLOAT32)
