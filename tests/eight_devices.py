"""Run by test_training with 8 fake CPU devices: one train step's loss and gradients on a mesh of 8
devices versus a mesh of 1, for the same global batch. Prints a JSON report."""

import json

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from transformer_lab.config import base_config
from transformer_lab.models.transformer import EncoderDecoder
from transformer_lab.training import steps


def loss_and_grads(devices, graphdef, params, batch):
    mesh = Mesh(np.asarray(devices), ('data',))
    replicated, sharded = NamedSharding(mesh, PartitionSpec()), NamedSharding(mesh, PartitionSpec('data'))

    loss_fn = steps.make_loss_fn(graphdef, label_smoothing=0.1)
    fn = jax.jit(jax.value_and_grad(lambda p, b: loss_fn(p, b)[0]), in_shardings=(replicated, sharded), out_shardings=replicated)
    return fn(jax.device_put(params, replicated), jax.device_put(batch, sharded))


def main():
    config = base_config().model
    config.d_model, config.num_heads, config.d_ff, config.max_length = 32, 4, 64, 16
    config.num_encoder_layers = config.num_decoder_layers = 2
    graphdef, params = nnx.split(EncoderDecoder(config, 50, rngs=nnx.Rngs(0)))
    rng = np.random.default_rng(0)
    batch = {name: jnp.asarray(rng.integers(1, 50, (16, 12)), jnp.int32) for name in ('inputs', 'targets')}
    batch['targets'] = batch['targets'].at[:, 9:].set(0)
    loss_8, grads_8 = loss_and_grads(jax.devices(), graphdef, params, batch)
    loss_1, grads_1 = loss_and_grads(jax.devices()[:1], graphdef, params, batch)
    gradient_difference = max(float(np.abs(np.asarray(a) - np.asarray(b)).max()) for a, b in
                              zip(jax.tree.leaves(grads_8), jax.tree.leaves(grads_1)))
    print(json.dumps({'devices': jax.device_count(), 'loss_difference': abs(float(loss_8) - float(loss_1)),
                      'gradient_difference': gradient_difference}))


if __name__ == '__main__':
    main()
