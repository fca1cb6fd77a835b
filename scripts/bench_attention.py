"""Forward + backward of one causal self-attention layer (projections included) per attention core,
compared in one run: median time of interleaved calls and XLA's compiled memory.

    python scripts/bench_attention.py --length=3072 --d_model=512 --heads=8 \
        --core=type=dot_product --core=type=local_1d,block_length=256 \
        --core=type=local_2d,image_shape=32x96,query_shape=8x32,memory_flange=8x32 [--record=docs/benchmarks.md]

A ``--core`` is ``key=value`` options of one attention core; ``AxB`` is the tuple (A, B). Three keys say how
it computes rather than what: ``implementation`` (xla, cudnn or blockwise; default xla) and blockwise's
``query_block`` and ``key_block`` (default 512), e.g. ``--core=type=relative,max_relative_position=8192,
implementation=blockwise``.
``type=naive_relative,max_relative_position=N`` is the contrast for relative attention: Shaw et al.'s
form, gathering E[j - i] into an [L, L, d_h] tensor per head (``transformer_lab.attention_memory``, not
among the library's cores).
Memory is the compiled function's temporaries plus outputs (``memory_analysis``), not a timer's guess.
``--compile_only`` reports memory without running (for sizes that do not fit).
"""

import statistics
import time

import jax
import jax.numpy as jnp
from absl import app, flags

from transformer_lab.attention_memory import compile_layer, parse_core
from transformer_lab.benchmarking import heading, publish

FLAGS = flags.FLAGS
flags.DEFINE_multi_string('core', ['type=dot_product'], 'Attention core options, e.g. type=local_1d,block_length=256.')
flags.DEFINE_integer('length', 3072, 'Sequence length.')
flags.DEFINE_integer('d_model', 512, 'Model width.')
flags.DEFINE_integer('heads', 8, 'Attention heads.')
flags.DEFINE_integer('batch', 1, 'Batch size.')
flags.DEFINE_integer('repeats', 5, 'Timed rounds (each calls every core once).')
flags.DEFINE_string('record', None, 'Append the results table to this markdown file.')
flags.DEFINE_bool('compile_only', False, 'Report compiled memory only, without running.')
flags.DEFINE_enum('dtype', 'float32', ['float32', 'bfloat16'], "Compute dtype (cuDNN's kernel runs in bfloat16 only).")


def main(argv):
    del argv
    specs = [parse_core(spec) for spec in FLAGS.core]
    layers = [compile_layer(options, length=FLAGS.length, d_model=FLAGS.d_model, heads=FLAGS.heads,
                            batch=FLAGS.batch, materialize=not FLAGS.compile_only, dtype=jnp.dtype(FLAGS.dtype))
              for options in specs]
    if FLAGS.compile_only:
        for spec, layer in zip(FLAGS.core, layers):
            print(f'| `{spec}` | compiled memory {layer.memory_bytes / 2**20:.0f} MB (length {FLAGS.length}) |')
        return
    for _ in range(2):  # warm-up rounds: the first calls after compiling run slow, whichever core
        for layer in layers:
            jax.block_until_ready(layer.compiled(*layer.arguments))
    times = [[] for _ in layers]
    for round_index in range(FLAGS.repeats):
        # Each round starts at another core, so no core always runs first (or right after another).
        for index in [(round_index + i) % len(layers) for i in range(len(layers))]:
            layer = layers[index]
            start = time.perf_counter()
            jax.block_until_ready(layer.compiled(*layer.arguments))
            times[index].append(time.perf_counter() - start)
    base_time, base_memory = statistics.median(times[0]), layers[0].memory_bytes
    lines = [heading('One attention layer, forward + backward'),
             '', f'length {FLAGS.length}, d_model {FLAGS.d_model}, {FLAGS.heads} heads, batch {FLAGS.batch}, '
             f'{FLAGS.dtype}; '
             f'median of {FLAGS.repeats} interleaved rounds (rotating order, after 2 warm-up rounds)', '',
             '| core | ms | speed-up | compiled memory (MB) | memory ratio |', '|---|---|---|---|---|']
    for spec, layer, runs in zip(FLAGS.core, layers, times):
        median = statistics.median(runs)
        memory = layer.memory_bytes
        lines.append(f'| `{spec}` | {1000 * median:.0f} | {base_time / median:.2f}x | {memory / 2**20:.0f} | '
                     f'{memory / base_memory:.2f} |')
    publish(lines, FLAGS.record)


if __name__ == '__main__':
    app.run(main)
