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
form, gathering E[j - i] into an [L, L, d_h] tensor per head (defined here, not in the library).
Memory is the compiled function's temporaries plus outputs (``memory_analysis``), not a timer's guess.
``--compile_only`` reports memory without running (for sizes that do not fit).
"""

import statistics
import time

import jax
import jax.numpy as jnp
from absl import app, flags
from flax import nnx

from transformer_lab.attention import Implementation, MultiHeadAttention, make_core
from transformer_lab.attention.core import AttentionCore, causal_mask, scaled_dot_product_attention
from transformer_lab.attention.relative import RelativeEmbeddings
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


class NaiveRelativeCore(AttentionCore):
    """Relative attention without skewing: E[j - i] gathered for every (query, key) pair."""

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
    options = {}
    for item in spec.split(','):
        key, _, value = item.partition('=')
        if 'x' in value and value.replace('x', '').isdigit():
            options[key] = tuple(int(v) for v in value.split('x'))
        else:
            options[key] = int(value) if value.isdigit() else value
    return options


IMPLEMENTATION_KEYS = {'implementation': 'name', 'query_block': 'query_block', 'key_block': 'key_block'}


def compile_layer(options: dict):
    options = dict(options)
    implementation = Implementation(**{field: options.pop(key) for key, field in IMPLEMENTATION_KEYS.items()
                                       if key in options})
    arguments = dict(num_heads=FLAGS.heads, head_dim=FLAGS.d_model // FLAGS.heads, causal=True, rngs=nnx.Rngs(0),
                     implementation=implementation)
    if options['type'] == 'naive_relative':
        core = NaiveRelativeCore(**arguments, **{k: v for k, v in options.items() if k != 'type'})
    else:
        core = make_core(options, **arguments)
    graphdef, params = nnx.split(MultiHeadAttention(FLAGS.d_model, FLAGS.heads, core, rngs=nnx.Rngs(0)))

    def loss(params, x):
        return nnx.merge(graphdef, params)(x).astype(jnp.float32).sum()

    x = jax.random.normal(jax.random.key(0), (FLAGS.batch, FLAGS.length, FLAGS.d_model))
    compiled = jax.jit(jax.value_and_grad(loss, argnums=(0, 1))).lower(params, x).compile()
    memory = compiled.memory_analysis()
    return compiled, (params, x), memory.temp_size_in_bytes + memory.output_size_in_bytes


def main(argv):
    del argv
    specs = [parse_core(spec) for spec in FLAGS.core]
    layers = [compile_layer(options) for options in specs]
    if FLAGS.compile_only:
        for spec, (_, _, memory) in zip(FLAGS.core, layers):
            print(f'| `{spec}` | compiled memory {memory / 2**20:.0f} MB (length {FLAGS.length}) |')
        return
    for _ in range(2):  # warm-up rounds: the first calls after compiling run slow, whichever core
        for compiled, args, _ in layers:
            jax.block_until_ready(compiled(*args))
    times = [[] for _ in layers]
    for round_index in range(FLAGS.repeats):
        # Each round starts at another core, so no core always runs first (or right after another).
        for index in [(round_index + i) % len(layers) for i in range(len(layers))]:
            compiled, args, _ = layers[index]
            start = time.perf_counter()
            jax.block_until_ready(compiled(*args))
            times[index].append(time.perf_counter() - start)
    base_time, base_memory = statistics.median(times[0]), layers[0][2]
    lines = [heading('One attention layer, forward + backward'),
             '', f'length {FLAGS.length}, d_model {FLAGS.d_model}, {FLAGS.heads} heads, batch {FLAGS.batch}, float32; '
             f'median of {FLAGS.repeats} interleaved rounds (rotating order, after 2 warm-up rounds)', '',
             '| core | ms | speed-up | compiled memory (MB) | memory ratio |', '|---|---|---|---|---|']
    for spec, (_, _, memory), runs in zip(FLAGS.core, layers, times):
        median = statistics.median(runs)
        lines.append(f'| `{spec}` | {1000 * median:.0f} | {base_time / median:.2f}x | {memory / 2**20:.0f} | '
                     f'{memory / base_memory:.2f} |')
    publish(lines, FLAGS.record)


if __name__ == '__main__':
    app.run(main)
