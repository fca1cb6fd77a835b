"""Throughput, compared in one run on one machine: configs' train steps, or the Transformer at the
shapes of Flax's examples/wmt (the side-by-side comparison of docs/benchmarks.md).

    python scripts/bench.py --config=configs/transformer_bible_enes.py \
        --variant='' --variant='model.dtype=bfloat16' [--steps=20] [--record=docs/benchmarks.md]
    python scripts/bench.py --model=transformer --size=small|base --mode=train|decode [--beam=4] \
        [--variant='model.dtype=bfloat16'] [--out=results.jsonl]

With ``--config``, each ``--variant`` is a comma-separated list of ``section.field=value`` overrides;
``--steps`` jitted train steps are timed on pre-loaded batches (input pipeline excluded), after one
compile step: ms/step, real target tokens/s, model FLOP/s from XLA's cost analysis and the compiled
step's temporary memory (activations kept for the backward pass and scratch).

With ``--model=transformer``: random tokens at the peer's shapes (benchmarking.PEER_SHAPES), each
step timed alone (median of ``--steps`` after ``--warmup``): tokens/s (source + target, as the peer
counts them), MFU against ``--peak_gflops`` (FLOPs: benchmarking.translation_train_flops), the first
step including compilation, and the process's peak resident memory; decoding: 8 sources of 64 tokens,
63 new tokens, greedy (``--beam=1``) or beam search. ``--out`` appends one JSON line per result.
"""

import json
import time

import jax
import numpy as np
from absl import app, flags, logging
from flax import nnx
from ml_collections import config_flags

from transformer_lab import benchmarking, decoding
from transformer_lab.benchmarking import compiled_train_step, heading, publish

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file('config', None, 'Config file, optionally with :variant.', lock_config=False)
flags.DEFINE_multi_string('variant', [''], 'Overrides, e.g. "model.dtype=bfloat16,data.vocab_size=2000".')
flags.DEFINE_integer('steps', 20, 'Timed steps per variant.')
flags.DEFINE_string('record', None, 'Append the results table to this markdown file.')
flags.DEFINE_enum('model', None, ['transformer'], 'Instead of --config: the Transformer at the shapes of '
                  "Flax's examples/wmt.")
flags.DEFINE_enum('size', 'small', sorted(benchmarking.PEER_SHAPES), '--model: the peer size.')
flags.DEFINE_enum('mode', 'train', ['train', 'decode'], '--model: time training steps or decoding.')
flags.DEFINE_integer('beam', 1, '--mode=decode: 1 = greedy, else the beam size.')
flags.DEFINE_integer('warmup', 3, '--model: untimed steps (or decoding calls) first.')
flags.DEFINE_float('peak_gflops', 190.0, "MFU's denominator: this CPU's float32 matmul rate in JAX (GFLOP/s).")
flags.DEFINE_string('out', None, '--model: append one JSON line per result to this file.')


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


def time_calls(function, count: int) -> list[float]:
    """Seconds of each of ``count`` calls of ``function`` (which blocks until its result is ready)."""
    times = []
    for _ in range(count):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return times


def peer_train(config, size: str) -> dict:
    batches = benchmarking.random_translation_batches(size, 2)
    vocab = benchmarking.PEER_SHAPES[size]['vocab']
    train_step, state, placed = benchmarking.train_step_on(config, vocab_size=vocab, host_batches=batches)
    flops = benchmarking.translation_train_flops(state.params, size)
    holder = {'state': state, 'step': 0}

    def step():
        holder['state'], metrics = train_step(holder['state'], placed[holder['step'] % len(placed)])
        holder['step'] += 1
        jax.block_until_ready((holder['state'], metrics))
    first = time_calls(step, 1)[0]
    time_calls(step, FLAGS.warmup - 1)
    median = float(np.median(time_calls(step, FLAGS.steps)))
    tokens = sum(batches[0][name].size for name in ('inputs', 'targets'))
    return {'tokens_per_s': tokens / median, 'step_ms_median': 1000 * median, 'mfu': flops / median / FLAGS.peak_gflops / 1e9,
            'flops_step': flops, 'compile_s': first}


def peer_decode(config, size: str) -> dict:
    from transformer_lab import registry
    shape = benchmarking.PEER_SHAPES[size]
    model = registry.build_model(config.model, shape['vocab'], seed=0)
    graphdef, params = nnx.split(model)
    rng = np.random.default_rng(0)
    inputs = rng.integers(3, shape['vocab'], (benchmarking.DECODE_BATCH, 64), dtype=np.int32)
    length = benchmarking.DECODE_NEW_TOKENS
    if FLAGS.beam > 1:
        def call():
            return jax.block_until_ready(decoding.beam_search(graphdef, params, inputs=inputs, beam_size=FLAGS.beam,
                                                              max_length=length))
    else:
        def call():
            return jax.block_until_ready(decoding.generate(graphdef, params, batch_size=len(inputs), inputs=inputs,
                                                           max_length=length))
    first = time_calls(call, 1)[0]
    time_calls(call, FLAGS.warmup - 1)
    median = float(np.median(time_calls(call, FLAGS.steps)))
    decoded = int((np.asarray(call()) > 0).sum())   # new tokens, up to each row's EOS (random weights: rarely any)
    return {'tokens_per_s': decoded / median, 'call_ms_median': 1000 * median, 'decoded_tokens': decoded,
            'mfu': None, 'compile_s': first}


def peer_main():
    results = []
    for variant in FLAGS.variant:
        config = apply_overrides(benchmarking.peer_config(FLAGS.size), variant)
        result = (peer_train if FLAGS.mode == 'train' else peer_decode)(config, FLAGS.size)
        result.update(model='transformer', size=FLAGS.size, mode=FLAGS.mode, beam=FLAGS.beam,
                      variant=variant, peak_memory_mib=benchmarking.peak_rss_mib(), jax=jax.__version__,
                      device=jax.devices()[0].device_kind)
        print('RESULT ' + json.dumps(result), flush=True)
        results.append(result)
    if FLAGS.out:
        with open(FLAGS.out, 'a') as file:
            file.writelines(json.dumps(result) + '\n' for result in results)


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)
    if FLAGS.model:
        return peer_main()
    if FLAGS.config is None:
        raise app.UsageError('give --config=FILE (a config\'s train step) or --model=transformer (the peer shapes)')
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
