"""Cached sampling against recomputing the prefix: the time to sample whole sequences with the
key/value cache (one position per step) versus a sampler without cache, which runs the full forward
pass once per generated position.

    python scripts/bench_sampling.py --config=configs/image_transformer_cifar10.py:1d,layers=2 \
        --config.model.d_model=256 [--batch=1] [--record=docs/benchmarks.md]

The uncached sampler's time is the measured forward pass times the number of positions (every step
recomputes the whole sequence), so it is measured, not run for hours.
"""

import time

import jax
import jax.numpy as jnp
from absl import app, flags, logging
from flax import nnx
from ml_collections import config_flags

from transformer_lab import decoding
from transformer_lab.benchmarking import heading, publish
from transformer_lab.models.catalog import build_model

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file('config', None, 'Config file, optionally with :variant.', lock_config=False)
flags.DEFINE_integer('batch', 1, 'Sequences sampled at once.')
flags.DEFINE_string('record', None, 'Append the results table to this markdown file.')
flags.mark_flag_as_required('config')


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)
    config = FLAGS.config
    vocab = 256 if config.data.tokenizer == 'pixels' else config.data.vocab_size
    model = build_model(config.model, vocab, seed=0)
    graphdef, params = nnx.split(model)
    length = config.model.max_length
    generate = dict(batch_size=FLAGS.batch, max_length=length, temperature=1.0)
    jax.block_until_ready(decoding.generate(graphdef, params, **generate))          # compile
    start = time.perf_counter()
    jax.block_until_ready(decoding.generate(graphdef, params, seed=1, **generate))
    cached = time.perf_counter() - start

    forward = jax.jit(lambda params, batch: nnx.merge(graphdef, params)(batch))
    batch = {'targets': jnp.zeros((FLAGS.batch, length), jnp.int32)}
    jax.block_until_ready(forward(params, batch))
    start = time.perf_counter()
    repeats = 3
    for _ in range(repeats):
        jax.block_until_ready(forward(params, batch))
    per_forward = (time.perf_counter() - start) / repeats
    uncached = per_forward * length

    model_config = config.model
    publish([
        heading('Sampling with and without the cache'), '',
        f'{model_config.name}, {model_config.num_decoder_layers} layers, d_model {model_config.d_model}, attention '
        f'{model_config.attention.type}, {length} positions, batch {FLAGS.batch}', '',
        '| sampler | seconds per batch | ms per position |', '|---|---|---|',
        f'| cached (decoding.generate) | {cached:.1f} | {1000 * cached / length:.2f} |',
        f'| recompute the prefix ({length} forward passes of {1000 * per_forward:.0f} ms) | {uncached:.0f} | '
        f'{1000 * per_forward:.0f} |', '',
        f'Cached sampling is {uncached / cached:.0f}x faster.'], FLAGS.record)


if __name__ == '__main__':
    app.run(main)
