"""Throughput, compared in one run on one machine: configs' train steps, or models at fixed shapes on
random tokens: the Transformer at the shapes of Flax's examples/wmt (the side-by-side comparison of
docs/benchmarks.md), the Music and Image Transformers at their paper configs' shapes.

    python scripts/bench.py --config=configs/transformer_bible_enes.py \
        --variant='' --variant='model.dtype=bfloat16' [--steps=20] [--record=docs/benchmarks.md]
    python scripts/bench.py --model=transformer --size=small|base [--batch=N] --mode=train|decode [--beam=4] \
        [--variant='' --variant='model.dtype=bfloat16,model.activation_dtype=float32'] [--out=results.jsonl]
    python scripts/bench.py --model=music_transformer --length=512|1024|2048 --mode=train|decode \
        [--variant=arg=baseline --variant=''] [--peak_gflops=0]     # arg=: the config's variant
    python scripts/bench.py --model=image_transformer --mode=train|decode     # CIFAR-10's 32x32x3, local 1D
    python scripts/bench.py --model=transformer|music_transformer|image_transformer --mode=input [--workers=N]
    python scripts/bench.py --config=configs/X.py --mode=input [--workers=N]     # a config's own pipeline

With ``--config``, each ``--variant`` is a comma-separated list of ``section.field=value`` overrides;
``--steps`` jitted train steps are timed on pre-loaded batches (input pipeline excluded), after one
compile step: ms/step, real target tokens/s, model FLOP/s from XLA's cost analysis and the compiled
step's temporary memory (activations kept for the backward pass and scratch).

With ``--model``: random tokens (benchmarking.translation_workload / decoder_workload), each step
timed alone (median of ``--steps`` after ``--warmup``): tokens/s (translation: source + target, as the
peer counts them), MFU against ``--peak_gflops`` (FLOPs: benchmarking.translation_train_flops /
decoder_train_flops; 0 measures the device's matrix-product rate in the compute dtype first), the
first step including compilation (cold: unlike the other commands this one uses no persistent
compilation cache unless ``$JAX_COMPILATION_CACHE_DIR`` names one), the process's peak resident memory
and the accelerator's peak memory. Decoding: 8 sources of 64 tokens, 63 new tokens, greedy
(``--beam=1``) or beam search; music and images: 8 whole sequences sampled from nothing. ``--out`` appends one JSON line per result;
``--interleave`` times the training variants' steps in turn (ratios that hold on a shared machine);
``--profile=DIR`` traces 3 steps (jax.profiler; TensorBoard or Perfetto read DIR) and prints the
longest operations. The Music and Image Transformer configs compute in bfloat16 with cuDNN attention
(on a CPU, XLA's after a notice): ``--variant=model.dtype=float32`` for float32.

With ``--mode=input``: the real training input pipeline of a config (``--config``, or the paper config of
``--model`` on offline stand-in data of its shapes, ``INPUT_CONFIGS``), no model: the first batch (opening
the data, building token stores, starting workers), then ``--steps`` batches after ``--warmup``: ms per
batch (mean and median), rows/s and real tokens/s, in one process or ``--workers=N`` grain workers. Each
``--variant`` overrides the config as above.
"""

import json
import os
import tempfile
import time

import jax
import numpy as np
from absl import app, flags, logging
from flax import nnx
from ml_collections import config_flags

from transformer_lab import benchmarking, decoding
from transformer_lab.benchmarking import compiled_train_step, heading, publish
from transformer_lab.cli import ConfigFileParser

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file('config', None, 'Config file, optionally with :variant.', lock_config=False)
flags.DEFINE_multi_string('variant', [''], 'Overrides, e.g. "model.dtype=bfloat16,data.vocab_size=2000".')
flags.DEFINE_integer('steps', 20, 'Timed steps per variant.')
flags.DEFINE_string('record', None, 'Append the results table to this markdown file.')
# The paper configs whose shapes --model=music_transformer / image_transformer take (on random tokens).
FAMILY_CONFIGS = {'music_transformer': 'configs/music_transformer_maestro.py:relative',
                  'image_transformer': 'configs/image_transformer_cifar10.py:1d'}
MEASURED_PEAKS = {}
# --mode=input: the paper configs' pipelines at their batch shapes on offline stand-ins: KJV / Reina-Valera
# verse pairs for WMT14 (96 packed rows of 256, the base config's ~25K tokens a side; the Bible config's
# 4000-piece vocabulary), music21's rendered scores for MAESTRO (16 crops of 2048, transposed and
# stretched), random CIFAR-10 files (32 images of 32x32x3; data/standins.py).
INPUT_CONFIGS = {
    'transformer': ('configs/transformer_wmt14_ende.py:base', 'data.name=bible_translation,data.inputs_feature=en,'
                    'data.targets_feature=es,data.vocab_size=4000'),
    'music_transformer': ('configs/music_transformer_maestro.py:relative', 'data.name=music21_performances'),
    'image_transformer': ('configs/image_transformer_cifar10.py:1d', ''),
}
flags.DEFINE_enum('model', None, ['transformer', *FAMILY_CONFIGS], 'Instead of --config, on random tokens: '
                  "the Transformer at the shapes of Flax's examples/wmt, or a paper config's model.")
flags.DEFINE_enum('size', 'small', sorted(benchmarking.PEER_SHAPES), '--model=transformer: the peer size.')
flags.DEFINE_integer('length', 2048, '--model=music_transformer: the sequence length.')
flags.DEFINE_integer('batch', 0, '--model: rows per step (default: the peer\'s or the config\'s; decoding: 8).')
flags.DEFINE_enum('mode', 'train', ['train', 'decode', 'input'], '--model: time training steps, or decoding '
                  '(translation) and sampling whole sequences (music, images); --model or --config: the training '
                  'input pipeline alone.')
flags.DEFINE_integer('workers', -1, '--mode=input: grain worker processes (data.workers; -1: the config\'s).')
flags.DEFINE_integer('beam', 1, '--mode=decode: 1 = greedy, else the beam size.')
flags.DEFINE_integer('warmup', 3, '--model: untimed steps (or decoding calls) first.')
flags.DEFINE_float('peak_gflops', 190.0, "MFU's denominator in GFLOP/s (190: this CPU's float32 matmul rate in "
                   'JAX); 0: measure matrix products on this device in the compute dtype first.')
flags.DEFINE_string('out', None, '--model: append one JSON line per result to this file.')
flags.DEFINE_string('profile', None, '--model, --mode=train: after timing, trace 3 steps with jax.profiler into '
                    'this folder and print the operations that take longest.')
flags.DEFINE_bool('interleave', False, '--model, --mode=train: compile every variant first, then time their steps '
                  'in turn (ratios that hold on a shared machine; speedup_vs_first_variant).')


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


def first_and_median(function) -> tuple[float, float]:
    """(the first call's seconds, compilation included; the median of ``--steps`` calls after the
    ``--warmup`` calls)."""
    first = time_calls(function, 1)[0]
    time_calls(function, FLAGS.warmup - 1)
    return first, float(np.median(time_calls(function, FLAGS.steps)))


def workload(variant: str) -> benchmarking.Workload:
    """The --model's workload with ``variant``'s overrides; for music and images, a first item
    ``arg=NAME`` picks the paper config's variant (e.g. ``arg=baseline``, ``arg=2d``). The Transformer's
    shapes are the peer's (``--size``, ``--batch``): its overrides are for the model's compute and the
    training (dtype, attention implementation, dropout)."""
    arg, _, overrides = variant.partition(',') if variant.startswith('arg=') else ('', '', variant)
    if FLAGS.model == 'transformer':
        load = benchmarking.translation_workload(FLAGS.size, batch=FLAGS.batch)
        apply_overrides(load.config, overrides)
        return load
    path, _, default_arg = FAMILY_CONFIGS[FLAGS.model].partition(':')
    config = ConfigFileParser(name='bench', lock_config=False).parse(f'{path}:{arg[4:] or default_arg}')
    if FLAGS.model == 'music_transformer':
        config.data.max_length = config.model.max_length = config.sample.max_length = FLAGS.length
    return benchmarking.decoder_workload(apply_overrides(config, overrides), batch=FLAGS.batch)


def compiled_train(load: benchmarking.Workload):
    """The workload's training step, compiled ahead of time (so that its memory analysis is this
    variant's own): (a function that runs one step and waits for it, the result's fields but timing)."""
    train_step, state, placed = benchmarking.train_step_on(load.config, vocab_size=load.vocab_size,
                                                           host_batches=load.batches)
    start = time.perf_counter()
    compiled = train_step.lower(state, placed[0]).compile()
    fields = {'compile_only_s': time.perf_counter() - start, 'flops_step': load.train_flops(state.params),
              'tokens_per_step': load.tokens_per_step, 'rows': load.config.data.batch_size,
              'compiled_temporaries_mib': compiled.memory_analysis().temp_size_in_bytes / 2**20,
              'dot_types': benchmarking.dot_operand_types(compiled.as_text()),
              'peak_gflops': peak_gflops(load.config)}
    holder = {'state': state, 'step': 0}

    def step():
        holder['state'], metrics = compiled(holder['state'], placed[holder['step'] % len(placed)])
        holder['step'] += 1
        jax.block_until_ready((holder['state'], metrics))
    return step, fields


def with_timing(fields: dict, first: float, median: float) -> dict:
    return {**fields, 'tokens_per_s': fields['tokens_per_step'] / median, 'step_ms_median': 1000 * median,
            'mfu': fields['flops_step'] / median / fields['peak_gflops'] / 1e9,
            'compile_s': fields['compile_only_s'] + first}


def train(load: benchmarking.Workload) -> dict:
    step, fields = compiled_train(load)
    result = with_timing(fields, *first_and_median(step))
    if FLAGS.profile:
        result['top_ops'] = benchmarking.profile_top_ops(step, FLAGS.profile)
        for name, milliseconds, count in result['top_ops']:
            print(f'{milliseconds:9.1f} ms per step  x{count:<4d} {name}', flush=True)
    return result


def interleaved_train(loads: list[benchmarking.Workload]) -> list[dict]:
    """Every variant's step in turn, ``--steps`` rounds after ``--warmup``: on a shared, noisy machine
    the variants see the same load, so their ratios hold where their absolute times do not."""
    prepared = [compiled_train(load) for load in loads]
    firsts = [time_calls(step, 1)[0] for step, _ in prepared]
    for step, _ in prepared:
        time_calls(step, FLAGS.warmup - 1)
    times = [[] for _ in prepared]
    for _ in range(FLAGS.steps):
        for (step, _), variant_times in zip(prepared, times):
            variant_times += time_calls(step, 1)
    results = [with_timing(fields, first, float(np.median(variant_times)))
               for (_, fields), first, variant_times in zip(prepared, firsts, times)]
    for result in results:
        result['speedup_vs_first_variant'] = results[0]['step_ms_median'] / result['step_ms_median']
    return results


def decode(load: benchmarking.Workload) -> dict:
    """Translation: greedy or beam decoding of random sources, counting the new tokens up to each
    row's EOS (random weights: rarely any). Music and images: sampling whole sequences from nothing,
    counting every position (a fixed-shape loop computes them all)."""
    from transformer_lab.models.catalog import build_model
    model = build_model(load.config.model, load.vocab_size, seed=0)
    graphdef, params = nnx.split(model)
    rows = FLAGS.batch or benchmarking.DECODE_BATCH
    if FLAGS.model == 'transformer':
        inputs = np.random.default_rng(0).integers(3, load.vocab_size, (rows, 64), dtype=np.int32)
        length = benchmarking.DECODE_NEW_TOKENS
        if FLAGS.beam > 1:
            def call():
                return jax.block_until_ready(decoding.beam_search(graphdef, params, inputs=inputs,
                                                                  beam_size=FLAGS.beam, max_length=length))
        else:
            def call():
                return jax.block_until_ready(decoding.generate(graphdef, params, batch_size=rows, inputs=inputs,
                                                               max_length=length))
    else:
        length = load.config.data.max_length

        def call():
            return jax.block_until_ready(decoding.generate(graphdef, params, batch_size=rows, max_length=length,
                                                           temperature=1.0))
    first, median = first_and_median(call)
    decoded = int((np.asarray(call()) > 0).sum()) if FLAGS.model == 'transformer' else rows * length
    return {'tokens_per_s': decoded / median, 'call_ms_median': 1000 * median, 'decoded_tokens': decoded,
            'mfu': None, 'compile_s': first, 'rows': rows}


def peak_gflops(config) -> float:
    """--peak_gflops, or (0) this device's matrix-product rate measured now in the config's compute
    dtype (once per dtype)."""
    if FLAGS.peak_gflops:
        return FLAGS.peak_gflops
    dtype = config.model.get('dtype', 'float32')
    if dtype not in MEASURED_PEAKS:
        MEASURED_PEAKS[dtype] = benchmarking.matmul_gflops(dtype, 8192 if jax.default_backend() == 'gpu' else 2048)
        print(f'measured {dtype} matrix products: {MEASURED_PEAKS[dtype]:.0f} GFLOP/s', flush=True)
    return MEASURED_PEAKS[dtype]


def workload_main():
    if FLAGS.interleave and FLAGS.mode == 'train':
        loads = [workload(variant) for variant in FLAGS.variant]
        results = zip(FLAGS.variant, loads, interleaved_train(loads))
    else:
        results = ((variant, load, (train if FLAGS.mode == 'train' else decode)(load))
                   for variant, load in ((variant, workload(variant)) for variant in FLAGS.variant))
    for variant, load, result in results:
        result.update(model=FLAGS.model, size=FLAGS.size if FLAGS.model == 'transformer' else None,
                      length=load.config.data.max_length if FLAGS.model != 'transformer' else None,
                      mode=FLAGS.mode, beam=FLAGS.beam, variant=variant,
                      peak_memory_mib=benchmarking.peak_rss_mib(), device_peak_memory_mib=device_peak_mib(),
                      jax=jax.__version__, device=jax.devices()[0].device_kind)
        print('RESULT ' + json.dumps(result), flush=True)
        if FLAGS.out:   # each as it comes: a later variant that fails loses only itself
            with open(FLAGS.out, 'a') as file:
                file.write(json.dumps(result) + '\n')


def device_peak_mib() -> float | None:
    """The accelerator's peak allocated memory so far (None on CPU, where the RSS says it)."""
    stats = jax.devices()[0].memory_stats() or {}
    return stats['peak_bytes_in_use'] / 2**20 if 'peak_bytes_in_use' in stats else None


def input_config(variant: str):
    """--mode=input's config: --config, or the paper config of --model on its stand-in data, with
    ``variant``'s overrides and --workers."""
    if FLAGS.config is not None:
        config = FLAGS.config.copy_and_resolve_references()
    else:
        path, overrides = INPUT_CONFIGS[FLAGS.model]
        config = apply_overrides(ConfigFileParser(name='bench', lock_config=False).parse(path), overrides)
        if FLAGS.model == 'image_transformer':
            from transformer_lab.data import standins
            config.data.data_dir = standins.prepare('cifar10_files', os.path.join(tempfile.gettempdir(),
                                                                                  'transformer_lab_standins'))
    config = apply_overrides(config, variant)
    if FLAGS.workers >= 0:
        config.data.workers = FLAGS.workers
    return config


def input_main():
    """Times each variant's training input pipeline (--mode=input); one line and one JSON result each."""
    from transformer_lab import tasks
    from transformer_lab.data.source import in_workers
    for variant in FLAGS.variant:
        config = input_config(variant)
        start = time.perf_counter()   # opening includes computing the token ids on a pipeline's first use
        pipeline = tasks.build_pipeline(config.data)
        batches = in_workers(pipeline.train_batches(config.data.batch_size, seed=0), config.data.workers)
        open_s = time.perf_counter() - start
        result = benchmarking.input_throughput(batches, count=FLAGS.steps, warmup=FLAGS.warmup)
        result.update(mode='input', model=FLAGS.model, data=config.data.name, workers=config.data.workers,
                      variant=variant, open_s=open_s, peak_memory_mib=benchmarking.peak_rss_mib())
        print(f'{config.data.name} {result["shape"]}, workers={config.data.workers}: '
              f'{result["ms_per_batch"]:.1f} ms/batch (median {result["ms_per_batch_median"]:.1f}), '
              f'{result["rows_per_s"]:.0f} rows/s, {result["tokens_per_s"]:.0f} tokens/s, '
              f'opened in {open_s:.1f} s, first batch {result["first_batch_s"]:.1f} s', flush=True)
        print('RESULT ' + json.dumps(result), flush=True)
        if FLAGS.out:
            with open(FLAGS.out, 'a') as file:
                file.write(json.dumps(result) + '\n')


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)
    if FLAGS.mode == 'input':
        if not (FLAGS.model or FLAGS.config):
            raise app.UsageError('--mode=input times a pipeline: give --config=FILE or --model=NAME')
        return input_main()
    if FLAGS.model:
        return workload_main()
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
