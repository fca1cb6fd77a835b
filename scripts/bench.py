"""Train-step throughput of configs, compared in one run on one machine.

    python scripts/bench.py --config=configs/transformer_bible_enes.py \
        --variant='' --variant='model.dtype=bfloat16' [--steps=20] [--record=docs/benchmarks.md]

Each ``--variant`` is a comma-separated list of ``section.field=value`` overrides of the config. Times
``--steps`` jitted train steps on pre-loaded batches (input pipeline excluded), after one compile
step, and reports ms/step, real target tokens/s, model FLOP/s from XLA's cost analysis and the
compiled step's temporary memory (activations kept for the backward pass and scratch).
"""

import time

import jax
import numpy as np
from absl import app, flags, logging
from ml_collections import config_flags

from transformer_lab.benchmarking import compiled_train_step, heading, publish

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file('config', None, 'Config file, optionally with :variant.', lock_config=False)
flags.DEFINE_multi_string('variant', [''], 'Overrides, e.g. "model.dtype=bfloat16,data.vocab_size=2000".')
flags.DEFINE_integer('steps', 20, 'Timed steps per variant.')
flags.DEFINE_string('record', None, 'Append the results table to this markdown file.')
flags.mark_flag_as_required('config')


def apply_overrides(config, overrides: str):
    for item in filter(None, overrides.split(',')):
        path, value = item.split('=')
        *sections, name = path.split('.')
        target = config
        for section in sections:
            target = target[section]
        target[name] = type(target[name])(value)
    return config


def measure(config) -> dict:
    compiled, train_step, state, batches = compiled_train_step(config)
    flops = compiled.cost_analysis().get('flops', 0.0)
    memory = compiled.memory_analysis()
    state, metrics = train_step(state, batches[0])
    jax.block_until_ready(metrics)
    start = time.perf_counter()
    tokens = 0.0
    for i in range(FLAGS.steps):
        state, metrics = train_step(state, batches[i % len(batches)])
        tokens += float(np.ravel(metrics['tokens'])[0])  # pmap: one (equal) value per device
    seconds = (time.perf_counter() - start) / FLAGS.steps
    return {'ms_per_step': 1000 * seconds, 'tokens_per_s': tokens / FLAGS.steps / seconds,
            'gflops_per_s': flops / seconds / 1e9, 'temporary_mb': memory.temp_size_in_bytes / 2**20}


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)
    lines = [heading(FLAGS.config.data.name), '',
             '| variant | ms/step | target tokens/s | GFLOP/s | compiled temporaries (MB) |', '|---|---|---|---|---|']
    for variant in FLAGS.variant:
        config = apply_overrides(FLAGS.config.copy_and_resolve_references(), variant)
        result = measure(config)
        lines.append(f'| `{variant or "config as is"}` | {result["ms_per_step"]:.0f} | '
                     f'{result["tokens_per_s"]:.0f} | {result["gflops_per_s"]:.1f} | {result["temporary_mb"]:.0f} |')
        print(lines[-1], flush=True)
    publish(lines, FLAGS.record)


if __name__ == '__main__':
    app.run(main)
