"""The train and eval steps: a loss summed over a batch's target tokens, gradients, the update.

Steps are pure functions of (state, batch) over a model's ``graphdef`` and parameters, so the same
function compiles under ``jax.jit`` with any sharding or maps under ``jax.pmap`` (``axis_name``).
What the losses are belongs to the model's head (models/heads.py: label-smoothed cross-entropy and
unsmoothed NLL, or the DMOL likelihood), in float32 whatever the compute dtype.
"""

from __future__ import annotations

from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import optax
from flax import nnx



@flax.struct.dataclass
class TrainState:
    """Everything a resumed run needs besides the input pipeline's position (saved beside it).

    ``rng`` is the raw key data of the run's base key: dropout keys derive from (rng, step), so a
    restored state continues the exact random stream. ``skipped_steps`` counts updates dropped for a
    non-finite loss or gradient. ``ema_params`` (with ``train.ema_decay``) average the parameters after
    each update, as big_vision and most current recipes keep them (``moving_average``).
    """
    step: jax.Array
    params: Any
    opt_state: Any
    rng: jax.Array
    skipped_steps: jax.Array
    ema_params: Any = None     # train.ema_decay > 0: the exponential moving average of ``params``


def new_train_state(params, optimizer: optax.GradientTransformation, seed: int,
                    dropout_rng: str = 'threefry2x32', *, ema: bool = False) -> TrainState:
    """Step 0: the optimizer's initial state and the base key of the dropout masks, ``dropout_rng``
    being its bit generator (``train.dropout_rng``: jax.random's 'threefry2x32' or 'rbg'); with ``ema``,
    the moving average starting at a copy of the parameters."""
    return TrainState(step=jnp.int32(0), params=params, opt_state=optimizer.init(params),
                      rng=jax.random.key_data(jax.random.key(seed, impl=dropout_rng)), skipped_steps=jnp.int32(0),
                      ema_params=jax.tree.map(lambda x: jnp.array(x, copy=True), params) if ema else None)


def moving_average(params, average, decay: float):
    """The exponential moving average of the parameters after an update: decay x average + (1 - decay)
    x params (optax.incremental_update); the average starts at the initial parameters."""
    return optax.incremental_update(params, average, step_size=1.0 - decay)


def target_weights(batch: dict) -> jax.Array:
    """1.0 on real target tokens, 0.0 on padding: the batch's ``target_weights`` when it has them
    (images, where intensity 0 is a real value), else the non-zero tokens (text, where 0 pads)."""
    if 'target_weights' in batch:
        return batch['target_weights'].astype(jnp.float32)
    return (batch['targets'] > 0).astype(jnp.float32)


def make_loss_fn(graphdef: nnx.GraphDef, label_smoothing: float):
    """Returns loss_fn(params, batch, dropout_key=None) -> (smoothed loss summed over tokens, sums).

    Sums, not means: a mean over the global batch is the sum of the per-device (or per-micro-batch)
    sums divided by the global token count, which makes any split of the batch exact. ``sums`` holds
    ``nll_sum`` and ``tokens``. No dropout key means no dropout.
    """
    def loss_fn(params, batch, dropout_key=None):
        model = nnx.merge(graphdef, params)
        outputs = model(batch, rngs=None if dropout_key is None else nnx.Rngs(dropout=dropout_key))
        smoothed, nll = model.head.losses(outputs, batch['targets'], label_smoothing)
        weights = target_weights(batch)
        return (smoothed * weights).sum(), {'nll_sum': (nll * weights).sum(), 'tokens': weights.sum()}
    return loss_fn


def split_micro_batches(batch: dict, count: int) -> dict:
    """[rows, ...] -> [count, rows / count, ...], micro-batch m taking rows m, m + count, m + 2 count...

    Interleaved rather than contiguous so that each device's block of rows holds its share of every
    micro-batch: a batch sharded over devices splits without moving data between them.
    """
    def split(x):
        return x.reshape(x.shape[0] // count, count, *x.shape[1:]).swapaxes(0, 1)
    return jax.tree.map(split, batch)


def accumulated_gradients(loss_fn, params, batch: dict, key: jax.Array, micro_batches: int):
    """Gradient accumulation: sums of (loss, gradients, metrics) over ``micro_batches`` slices of the
    batch, computed one after another (``lax.scan``) so only one slice's activations are live.

    Done inside the step rather than with optax.MultiSteps so that a step is one update on the whole
    batch, exactly: MultiSteps averages per-micro-batch means, which weights micro-batches equally
    whatever their token counts, and makes every micro-batch a separate step of the loop.
    """
    value_and_grad = jax.value_and_grad(loss_fn, has_aux=True)
    if micro_batches == 1:
        (loss_sum, sums), grads = value_and_grad(params, batch, key)
        return loss_sum, grads, sums

    def add_micro_batch(totals, indexed):
        index, micro_batch = indexed
        (loss_sum, sums), grads = value_and_grad(params, micro_batch, jax.random.fold_in(key, index))
        return jax.tree.map(jnp.add, totals, (loss_sum, grads, sums)), None

    micro = split_micro_batches(batch, micro_batches)
    first = jax.tree.map(lambda x: x[0], micro)
    zeros = jax.tree.map(jnp.zeros_like, jax.eval_shape(value_and_grad, params, first, key))
    (loss_sum, sums), grads = zeros
    totals, _ = jax.lax.scan(add_micro_batch, (loss_sum, grads, sums), (jnp.arange(micro_batches), micro))
    return totals


def make_train_step(graphdef: nnx.GraphDef, optimizer: optax.GradientTransformation, *,
                    label_smoothing: float, grad_accum_steps: int = 1, axis_name: str | None = None,
                    dropout_rng: str = 'threefry2x32', ema_decay: float = 0.0):
    """Returns train_step(state, batch) -> (state, metrics): one optimizer update on the whole batch.

    Under ``jax.jit`` the batch is the global batch. Under ``jax.pmap`` (``axis_name`` given) it is one
    device's share: the loss, gradient and token sums are combined with an explicit ``psum`` over the
    devices before the division by the global token count (a ``pmean`` of per-device means would weight
    devices equally whatever their token counts, and differ from the jit step). Dropout keys fold in
    the step, the micro-batch and, under pmap, the device.

    A step whose loss, gradient norm or update norm is not finite keeps the previous parameters and
    optimizer state (``metrics['finite'] == 0``, ``state.skipped_steps`` + 1); the loop decides whether
    that stops the run (``train.nonfinite``). optax.apply_if_finite checks the gradients only. A state
    with ``ema_params`` moves them towards the updated parameters by ``ema_decay`` (``moving_average``).
    """
    loss_fn = make_loss_fn(graphdef, label_smoothing)

    def train_step(state: TrainState, batch: dict):
        key = jax.random.fold_in(jax.random.wrap_key_data(state.rng, impl=dropout_rng), state.step)
        if axis_name is not None:
            key = jax.random.fold_in(key, jax.lax.axis_index(axis_name))
        loss_sum, grads, sums = accumulated_gradients(loss_fn, state.params, batch, key, grad_accum_steps)
        if axis_name is not None:
            loss_sum, grads, sums = jax.lax.psum((loss_sum, grads, sums), axis_name)
        tokens = jnp.maximum(sums['tokens'], 1.0)
        grads = jax.tree.map(lambda g: g / tokens, grads)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        loss, grad_norm = loss_sum / tokens, optax.global_norm(grads)
        finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm) & jnp.isfinite(optax.global_norm(updates))

        def if_finite(new, old):
            return jax.tree.map(lambda n, o: jnp.where(finite, n, o), new, old)

        ema = state.ema_params
        if ema is not None:
            ema = if_finite(moving_average(params, ema, ema_decay), ema)
        new_state = TrainState(step=state.step + 1, params=if_finite(params, state.params),
                               opt_state=if_finite(opt_state, state.opt_state), rng=state.rng,
                               skipped_steps=state.skipped_steps + (~finite).astype(jnp.int32), ema_params=ema)
        metrics = {'loss': loss, 'nll': sums['nll_sum'] / tokens, 'tokens': sums['tokens'],
                   'grad_norm': grad_norm, 'finite': finite.astype(jnp.float32)}
        return new_state, metrics

    return train_step


def make_eval_step(graphdef: nnx.GraphDef):
    """Returns eval_step(params, batch) -> sums over the batch: NLL (nats), tokens, correct argmaxes, and
    the NLL and tokens at each target position (``..._by_position`` [positions])."""
    def eval_step(params, batch: dict):
        model = nnx.merge(graphdef, params)
        outputs = model(batch)
        _, nll = model.head.losses(outputs, batch['targets'], 0.0)
        weights = target_weights(batch)
        correct = (model.head.predict(outputs) == batch['targets']).astype(jnp.float32)
        return {'nll_sum': (nll * weights).sum(), 'tokens': weights.sum(),
                'correct': (correct * weights).sum(), 'nll_by_position': (nll * weights).sum(0),
                'tokens_by_position': weights.sum(0)}
    return eval_step
