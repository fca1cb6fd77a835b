"""Learning-rate schedules and optimizers (optax)."""

from __future__ import annotations

import jax.numpy as jnp
import optax

from transformer_lab.config import one_of, positive, require


def rsqrt_schedule(d_model: int, warmup_steps: int, scale: float = 1.0) -> optax.Schedule:
    """The paper's schedule (Vaswani et al., eq. 3), with step counted from 1:

        lrate = scale * d_model^-0.5 * min(step^-0.5, step * warmup_steps^-1.5)

    linear warm-up for ``warmup_steps``, then decay with the inverse square root of the step.
    """
    def schedule(count):
        step = jnp.asarray(count, jnp.float32) + 1.0
        return scale * d_model ** -0.5 * jnp.minimum(step ** -0.5, step * warmup_steps ** -1.5)
    return schedule


SCHEDULES = {
    'rsqrt': lambda train, d_model: rsqrt_schedule(d_model, train.warmup_steps, train.learning_rate),
    'constant': lambda train, d_model: optax.linear_schedule(
        0.0, train.learning_rate, max(train.warmup_steps, 1)),
    'cosine': lambda train, d_model: optax.warmup_cosine_decay_schedule(
        0.0, train.learning_rate, max(train.warmup_steps, 1), max(train.num_steps, train.warmup_steps + 1)),
}

OPTIMIZERS = {
    'adam': lambda train, lr: optax.adam(lr, b1=train.b1, b2=train.b2, eps=train.eps),
    'adamw': lambda train, lr: optax.adamw(lr, b1=train.b1, b2=train.b2, eps=train.eps,
                                           weight_decay=train.weight_decay),
}


NONFINITE = ('stop', 'skip')   # what a non-finite step does (training/loop.py)
DROPOUT_RNGS = ('threefry2x32', 'rbg')   # jax.random's bit generators for the dropout masks (train.dropout_rng)


def check_train(train) -> None:
    """The ``train`` section: optimizer and schedule by name, step counts, the non-finite policy."""
    one_of('train.optimizer', train.optimizer, OPTIMIZERS)
    one_of('train.schedule', train.schedule, SCHEDULES)
    positive(train, 'train', 'num_steps', 'log_every_steps')
    require(train.grad_accum_steps >= 1, 'train.grad_accum_steps', 'must be >= 1')
    one_of('train.nonfinite', train.nonfinite, NONFINITE)
    require(0 <= train.label_smoothing < 1, 'train.label_smoothing', 'must be in [0, 1)')
    one_of('train.dropout_rng', train.dropout_rng, DROPOUT_RNGS)
    require(0 <= train.ema_decay < 1, 'train.ema_decay', f'{train.ema_decay}: valid: [0, 1), 0 for no moving average '
            f'(e.g. 0.999: the average of about the last 1000 updates)')
    profile = tuple(train.profile_steps)
    require(profile == () or (len(profile) == 2 and all(isinstance(n, int) and n >= 1 for n in profile)),
            'train.profile_steps', f'{",".join(map(str, profile))}: valid: START,COUNT (steps from 1; a trace of '
            f'COUNT steps from START), or () for none')


def make_optimizer(train_config, d_model: int) -> tuple[optax.GradientTransformation, optax.Schedule]:
    """Optimizer with the configured schedule and optional clipping (gradient accumulation happens
    inside the train step, see steps.accumulated_gradients)."""
    schedule = SCHEDULES[train_config.schedule](train_config, d_model)
    optimizer = OPTIMIZERS[train_config.optimizer](train_config, schedule)
    if train_config.grad_clip_norm > 0:
        optimizer = optax.chain(optax.clip_by_global_norm(train_config.grad_clip_norm), optimizer)
    return optimizer, schedule
