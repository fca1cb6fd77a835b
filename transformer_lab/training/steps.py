"""The train and eval steps, and the losses: label-smoothed cross-entropy and unsmoothed NLL.

Steps are pure functions of (state, batch) over a model's ``graphdef`` and parameters, so the same
function compiles under ``jax.jit`` with any sharding. Losses run in float32 whatever the compute dtype.
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
    step: jax.Array
    params: Any
    opt_state: Any


def token_losses(logits: jax.Array, targets: jax.Array, label_smoothing: float) -> tuple[jax.Array, jax.Array]:
    """Per-token label-smoothed cross-entropy and plain NLL, float32 [batch, length].

    Label smoothing (Szegedy et al. 2016; Vaswani et al., Sec. 5.4) trains against
    q = (1 - eps) * onehot(y) + eps / K over the K classes (optax.smooth_labels: eps spread over all K,
    the true class included). The NLL -log p(y) is what gets reported: the paper's perplexities and
    every likelihood number of this project are unsmoothed.
    """
    logits = logits.astype(jnp.float32)
    onehot = jax.nn.one_hot(targets, logits.shape[-1], dtype=jnp.float32)
    nll = optax.softmax_cross_entropy(logits, onehot)
    if label_smoothing == 0:
        return nll, nll
    return optax.softmax_cross_entropy(logits, optax.smooth_labels(onehot, label_smoothing)), nll


def target_weights(batch: dict) -> jax.Array:
    """1.0 on real target tokens, 0.0 on padding."""
    return (batch['targets'] > 0).astype(jnp.float32)


def make_loss_fn(graphdef: nnx.GraphDef, label_smoothing: float):
    """Returns loss_fn(params, batch, dropout_key=None) -> (smoothed loss per token, aux metrics).

    Token means are over the whole (global) batch, so any split of the batch over devices gives the
    same loss and gradients. No dropout key means no dropout.
    """
    def loss_fn(params, batch, dropout_key=None):
        model = nnx.merge(graphdef, params)
        logits = model(batch, rngs=None if dropout_key is None else nnx.Rngs(dropout=dropout_key))
        smoothed, nll = token_losses(logits, batch['targets'], label_smoothing)
        weights = target_weights(batch)
        tokens = jnp.maximum(weights.sum(), 1.0)
        return (smoothed * weights).sum() / tokens, {'nll': (nll * weights).sum() / tokens,
                                                     'tokens': weights.sum()}
    return loss_fn


def make_train_step(graphdef: nnx.GraphDef, optimizer: optax.GradientTransformation,
                    label_smoothing: float, seed: int):
    """Returns train_step(state, batch) -> (state, metrics); dropout keys come from (seed, step)."""
    base_key = jax.random.key(seed)
    loss_fn = make_loss_fn(graphdef, label_smoothing)

    def train_step(state: TrainState, batch: dict):
        dropout_key = jax.random.fold_in(base_key, state.step)
        (loss, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params, batch, dropout_key)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        metrics = {'loss': loss, 'grad_norm': optax.global_norm(grads), **aux}
        return TrainState(step=state.step + 1, params=params, opt_state=opt_state), metrics

    return train_step


def make_eval_step(graphdef: nnx.GraphDef):
    """Returns eval_step(params, batch) -> sums over the batch: NLL (nats), tokens, correct argmaxes."""
    def eval_step(params, batch: dict):
        logits = nnx.merge(graphdef, params)(batch)
        _, nll = token_losses(logits, batch['targets'], 0.0)
        weights = target_weights(batch)
        correct = (logits.argmax(-1) == batch['targets']).astype(jnp.float32)
        return {'nll_sum': (nll * weights).sum(), 'tokens': weights.sum(),
                'correct': (correct * weights).sum(), 'nll_per_row': (nll * weights).sum(-1)}
    return eval_step
