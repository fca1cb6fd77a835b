"""Run by test_parallel_training with 8 fake CPU devices (XLA_FLAGS): the same train steps under jit
(replicated and FSDP-sharded), pmap, and gradient accumulation, on one set of batches; and one
step's loss and gradients on 8 devices against 1. Prints a JSON report of the largest differences."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax.sharding import Mesh

from transformer_lab.config import base_config
from transformer_lab.models.transformer import EncoderDecoder
from transformer_lab.training import parallel, steps

STEPS = 3


def tiny_model():
    config = base_config().model
    config.d_model, config.num_heads, config.d_ff, config.max_length = 32, 4, 64, 16
    config.num_encoder_layers = config.num_decoder_layers = 2
    config.dropout_rate = 0.0
    return nnx.split(EncoderDecoder(config, 50, rngs=nnx.Rngs(0)))


def batches(rows=16, length=12):
    """Random batches whose rows have different numbers of real target tokens, so that devices hold
    different token counts and only a token-weighted reduction matches the single-batch step."""
    rng = np.random.default_rng(0)
    for _ in range(STEPS):
        batch = {name: rng.integers(2, 50, (rows, length)).astype(np.int32) for name in ('inputs', 'targets')}
        lengths = rng.integers(2, length + 1, rows)
        batch['targets'] = np.where(np.arange(length) < lengths[:, None], batch['targets'], 0).astype(np.int32)
        yield batch


def run(mode, *, shard_parameters=False, grad_accum_steps=1, devices=None):
    """Per-step losses and final parameters (numpy) of STEPS updates."""
    parallel_config = base_config().parallel
    parallel_config.mode, parallel_config.shard_parameters = mode, shard_parameters
    parallel_config.min_shard_size = 256
    train_config = base_config().train
    train_config.grad_accum_steps, train_config.label_smoothing = grad_accum_steps, 0.1
    mesh = Mesh(np.asarray(devices or jax.devices()), ('data',))
    strategy = parallel.make_parallel(parallel_config, mesh)
    graphdef, params = tiny_model()
    optimizer = optax.adam(1e-3)
    state = steps.new_train_state(params, optimizer, seed=0)
    shardings = strategy.state_shardings(state)
    state = jax.device_put(state, shardings)
    train_step = strategy.compile_train_step(graphdef, optimizer, train_config, state)
    state = strategy.from_global(state)
    losses = []
    for batch in batches():
        state, metrics = train_step(state, strategy.put_batch(batch))
        losses.append(float(np.ravel(metrics['loss'])[0]))
    state = strategy.to_global(state)
    sharded = sum(not leaf.sharding.is_fully_replicated for leaf in jax.tree.leaves(state.params))
    return np.array(losses), [np.asarray(leaf) for leaf in jax.tree.leaves(state.params)], sharded


def largest_difference(first, second):
    return max(float(np.abs(a - b).max()) for a, b in zip(first, second))


def main():
    reference_losses, reference_params, _ = run('jit', devices=jax.devices()[:1])
    report = {'devices': jax.device_count()}
    variants = {'jit_8': dict(mode='jit'), 'pmap_8': dict(mode='pmap'),
                'fsdp_8': dict(mode='jit', shard_parameters=True),
                'jit_8_accum_2': dict(mode='jit', grad_accum_steps=2),
                'pmap_8_accum_2': dict(mode='pmap', grad_accum_steps=2)}
    for name, options in variants.items():
        losses, params, sharded = run(**options)
        report[name] = {'loss_difference': float(np.abs(losses - reference_losses).max()),
                        'param_difference': largest_difference(params, reference_params),
                        'sharded_params': sharded, 'loss_change': float(losses[0] - losses[-1])}
    print(json.dumps(report))


if __name__ == '__main__':
    jnp.zeros(())  # start the backend before timing anything
    main()
