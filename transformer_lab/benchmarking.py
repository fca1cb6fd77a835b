"""What the benchmarks share: a heading that names the machine and date, recording tables, a config's
train step compiled on real or random batches (scripts/bench.py times it; tables report its memory),
and the workloads on random tokens (the Transformer at the shapes of Flax's examples/wmt, ``PEER_SHAPES``;
the Music and Image Transformers at their paper configs' shapes) with their FLOPs per step."""

from __future__ import annotations

import dataclasses
import datetime
import os
import platform
import re
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from ml_collections import ConfigDict


def heading(title: str) -> str:
    """A markdown heading: title, today's date, the processor, core count, device kind and jax version."""
    machine = f'{platform.processor() or platform.machine()}, {os.cpu_count()} cores, {jax.devices()[0].device_kind}'
    return f'### {title} ({datetime.date.today()}, {machine}, jax {jax.__version__})'


def publish(lines: list[str], record: str | None) -> None:
    """Prints a table and, with ``record`` (e.g. docs/benchmarks.md), appends it there."""
    table = '\n'.join(lines) + '\n'
    print(table)
    if record:
        with open(record, 'a') as f:
            f.write('\n' + table)


def train_step_on(config, *, batches: int = 4, vocab_size: int | None = None, host_batches=None):
    """``config``'s train step as the loop jits it, on ``batches`` real batches of its data (or on
    ``host_batches``, e.g. random tokens, for a model of ``vocab_size``), not yet compiled: (jitted
    step, initial state, batches on the devices)."""
    from transformer_lab import tasks   # the heading alone needs none of the training stack
    from transformer_lab.models.catalog import build_model
    from transformer_lab.training import parallel
    from transformer_lab.training import state as state_lib
    if host_batches is None:
        pipeline = tasks.build_pipeline(config.data)
        vocab_size = pipeline.tokenizer.vocab_size
        layout = parallel.batch_layout(config.data.batch_size, config.train.grad_accum_steps)
        iterator = iter(pipeline.train_batches(layout.host_rows, seed=0))
        host_batches = [next(iterator) for _ in range(batches)]
    assembly = state_lib.assemble(config, build_model(config.model, vocab_size, seed=config.seed))
    strategy = assembly.strategy
    return (assembly.train_step(config.train), strategy.from_global(assembly.placed()),
            [strategy.put_batch(batch) for batch in host_batches])


def compiled_train_step(config, *, batches: int = 4):
    """``train_step_on`` compiled: (compiled step, jitted step, initial state, batches on the devices).
    ``compiled.memory_analysis()`` gives its temporaries (activations kept for the backward pass and
    scratch), ``cost_analysis()`` its FLOPs."""
    train_step, state, placed = train_step_on(config, batches=batches)
    return train_step.lower(state, placed[0]).compile(), train_step, state, placed


# Flax's examples/wmt at the sizes of the side-by-side comparison (docs/benchmarks.md): pre-LN, dropout
# 0.1, label smoothing 0.1, Adam (0.9, 0.98, 1e-9); random tokens in [3, vocab), no padding.
PEER_SHAPES = {
    'small': dict(vocab=8192, d_model=256, heads=4, d_ff=1024, layers=3, shared=False, batch=32,
                  source_length=64, target_length=64),
    'base': dict(vocab=32000, d_model=512, heads=8, d_ff=2048, layers=6, shared=True, batch=8,
                 source_length=128, target_length=128),
}
DECODE_BATCH, DECODE_NEW_TOKENS = 8, 63   # the peer's decoding: 8 sources of 64 tokens, 63 new tokens


@dataclasses.dataclass
class Workload:
    """A model at fixed shapes on random tokens, what scripts/bench.py times: its config, vocabulary,
    training batches (host arrays), the tokens a step counts and the FLOPs of one training step as a
    function of the parameters (the peer driver's count: see ``train_flops``)."""
    config: ConfigDict
    vocab_size: int
    batches: list[dict]
    tokens_per_step: int
    train_flops: Callable[[Any], float]


def _count(tree) -> int:
    """Parameters of ``tree`` that multiply every token, i.e. all but relative attention's embedding
    tables E (whose cost, Q E^T, ``decoder_train_flops`` counts with the attention)."""
    return sum(leaf.size for path, leaf in jax.tree_util.tree_leaves_with_path(tree)
               if 'relative' not in (getattr(key, 'key', None) for key in path))


def peer_config(size: str):
    """The project's encoder-decoder at the peer's ``size`` (PEER_SHAPES)."""
    from transformer_lab.config import base_config
    shape = PEER_SHAPES[size]
    config = base_config()
    model = config.model
    model.d_model, model.num_heads, model.d_ff = shape['d_model'], shape['heads'], shape['d_ff']
    model.num_encoder_layers = model.num_decoder_layers = shape['layers']
    model.share_embeddings = model.tie_output = shape['shared']
    model.norm, model.dropout_rate, model.max_length = 'pre', 0.1, 256
    config.train.label_smoothing, config.train.schedule, config.train.learning_rate = 0.1, 'constant', 2e-3
    config.data.batch_size = shape['batch']
    return config


def translation_workload(size: str, *, batch: int | None = None, steps: int = 2, seed: int = 0) -> Workload:
    """The encoder-decoder at the peer's ``size`` with ``batch`` pairs per step (default the peer's):
    ``steps`` batches of random tokens in [3, vocab), no padding; tokens counted on both sides, as the
    peer counts them."""
    shape = dict(PEER_SHAPES[size], **({'batch': batch} if batch else {}))
    config = peer_config(size)
    config.data.batch_size = shape['batch']
    rng = np.random.default_rng(seed)
    batches = [{side: rng.integers(3, shape['vocab'], (shape['batch'], shape[f'{length}_length']), dtype=np.int32)
                for side, length in (('inputs', 'source'), ('targets', 'target'))} for _ in range(steps)]
    tokens = shape['batch'] * (shape['source_length'] + shape['target_length'])
    return Workload(config, shape['vocab'], batches, tokens, lambda params: translation_train_flops(params, shape))


def translation_train_flops(params, shape: dict) -> float:
    """FLOPs of one training step as the peer driver counts them: 6 x parameters x tokens per side
    (encoder layers over source tokens; decoder layers and the output projection over target tokens;
    embedding lookups free) plus attention, 12 B d (L_enc S^2 + L_dec (T^2 + T S)) for QK^T and AV,
    forward and backward, unmasked as computed. ``shape``: a PEER_SHAPES entry."""
    b, src, tgt, d = shape['batch'], shape['source_length'], shape['target_length'], shape['d_model']
    output = shape['vocab'] * d + (0 if shape['shared'] else shape['vocab'])
    dense = 6 * (_count(params['encoder']) * b * src + (_count(params['decoder']) + output) * b * tgt)
    attention = 12 * b * d * shape['layers'] * (src * src + tgt * tgt + tgt * src)
    return float(dense + attention)


def decoder_workload(config, *, batch: int | None = None, steps: int = 2, seed: int = 0) -> Workload:
    """A decoder-only config (the Music or Image Transformer) on random tokens of its tokenizer's
    vocabulary, ``batch`` rows (default the config's) of ``data.max_length`` tokens per step."""
    from transformer_lab.tasks import FIXED_TOKENIZERS
    config = config.copy_and_resolve_references()
    if batch:
        config.data.batch_size = batch
    vocab = FIXED_TOKENIZERS[config.data.tokenizer].vocab_size
    rows, length = config.data.batch_size, config.data.max_length
    rng = np.random.default_rng(seed)
    batches = [{'targets': rng.integers(2, vocab, (rows, length), dtype=np.int32)} for _ in range(steps)]
    return Workload(config, vocab, batches, rows * length,
                    lambda params: decoder_train_flops(params, config.model, rows, length))


def attention_keys_per_query(attention, length: int) -> tuple[int, bool]:
    """(keys each query's logits are computed for, whether relative logits Q E^T are computed too) of
    one attention config at sequence ``length``: all of them for global cores (causal masking computes
    them all), a query block and its memory block for local 1D, the query block and flanges for 2D."""
    kind = attention.type
    if kind in ('local_1d', 'relative_local_1d'):
        keys = min(length, 2 * attention.block_length)
    elif kind == 'local_2d':
        (query_rows, query_columns), (flange_rows, flange_columns) = attention.query_shape, attention.memory_flange
        keys = (query_rows + flange_rows) * (query_columns + 2 * flange_columns)
    else:
        keys = length
    return keys, kind.startswith('relative')


def decoder_train_flops(params, model_config, rows: int, length: int) -> float:
    """FLOPs of one training step of a decoder-only model, counted like ``translation_train_flops``:
    6 x (parameters but the input embeddings) x tokens, plus 12 B T K d per layer for QK^T and AV over
    the K keys each query computes (``attention_keys_per_query``) and 6 B T K d more for relative
    attention's Q E^T."""
    keys, relative = attention_keys_per_query(model_config.attention, length)
    width = model_config.get('attention_dims') or model_config.d_model
    dense = 6 * (_count(params['decoder']) + _count(params['head'])) * rows * length
    attention = (12 + (6 if relative else 0)) * rows * length * keys * width * model_config.num_decoder_layers
    return float(dense + attention)


def matmul_gflops(dtype: str, size: int, repeats: int = 10) -> float:
    """This device's measured matrix-product rate (GFLOP/s): the mean of ``repeats`` [size, size] x
    [size, size] products in ``dtype`` (float32 accumulation) after a warm-up, the denominator of MFU."""
    x = jax.random.normal(jax.random.key(0), (size, size), dtype)
    product = jax.jit(lambda a, b: jnp.dot(a, b, preferred_element_type=jnp.float32))
    jax.block_until_ready(product(x, x))
    start = time.perf_counter()
    for _ in range(repeats):
        result = product(x, x)
    jax.block_until_ready(result)
    return 2 * size ** 3 * repeats / (time.perf_counter() - start) / 1e9


def dot_operand_types(hlo_text: str) -> dict[str, int]:
    """How many dots of a compiled program (``compiled.as_text()``) take which operand types, e.g.
    {'bf16 x bf16 -> f32': 9, 'f32 x f32 -> f32': 192}: whether bfloat16 compute reached the matrix
    products or the compiler converted them to float32."""
    counts: dict[str, int] = {}
    for computation in hlo_text.split('\n\n'):
        types = dict(re.findall(r'(%[\w.]+) = (\w+)\[', computation))
        for result, left, right in re.findall(r'= (\w+)\[[^\]]*\]\S* dot\((%[\w.]+), (%[\w.]+)\)', computation):
            name = f'{types.get(left)} x {types.get(right)} -> {result}'
            counts[name] = counts.get(name, 0) + 1
    return counts


def profile_top_ops(function: Callable[[], Any], directory: str, *, calls: int = 3,
                    top: int = 15) -> list[tuple[str, float, int]]:
    """Runs ``function`` (which waits for its result) ``calls`` times under jax.profiler, writing the
    trace to ``directory`` (Perfetto JSON beside TensorBoard's), and returns the ``top`` XLA operations
    by time: (name, milliseconds per call, occurrences per call). Times are wall-clock durations of
    events that may overlap (the CPU runtime runs independent operations at once), so they rank the
    operations rather than add up to the step."""
    import glob
    import gzip
    import json
    with jax.profiler.trace(directory, create_perfetto_trace=True):
        for _ in range(calls):
            function()
    (path, *_) = sorted(glob.glob(os.path.join(directory, '**', '*.trace.json.gz'), recursive=True), reverse=True)
    with gzip.open(path) as file:
        trace = json.load(file)
    totals: dict[str, list[float]] = {}
    for event in trace['traceEvents'] if isinstance(trace, dict) else trace:
        name = event.get('name', '')
        # XLA's own operations: not the runtime's wrappers, nor Python frames ('$file:line')
        if event.get('ph') == 'X' and not name.startswith(('$', 'ThunkExecutor', 'PjitFunction', 'SlinkyThreadPool')):
            totals.setdefault(name, [0.0, 0])
            totals[name][0] += event.get('dur', 0) / 1000 / calls
            totals[name][1] += 1
    ranked = sorted(totals.items(), key=lambda item: -item[1][0])[:top]
    return [(name, milliseconds, count // calls) for name, (milliseconds, count) in ranked]


def batch_tokens(batch: dict) -> int:
    """The real tokens of a batch: every non-padding id of ``inputs`` and ``targets`` (source and target,
    as the peer counts them), or for images every weighted intensity (0 is black, not padding)."""
    if 'target_weights' in batch:
        return int(np.sum(batch['target_weights'])) + int(np.size(batch.get('inputs', ())))
    return sum(int(np.count_nonzero(batch[name])) for name in ('inputs', 'targets') if name in batch)


def input_throughput(batches, *, count: int, warmup: int) -> dict:
    """Times an input pipeline's batches (an iterable, e.g. ``pipeline.train_batches``): the first batch
    (opening the data, building token stores, starting workers), then ``warmup`` untimed batches (so
    that workers' buffers filled while the first was awaited do not flatter the rate), then ``count``
    batches: their mean and median milliseconds, rows/s and real tokens/s (``batch_tokens``)."""
    start = time.perf_counter()
    iterator = iter(batches)
    first = next(iterator)
    first_s = time.perf_counter() - start
    for _ in range(warmup):
        next(iterator)
    times, tokens = [], 0
    for _ in range(count):
        start = time.perf_counter()
        batch = next(iterator)
        times.append(time.perf_counter() - start)
        tokens += batch_tokens(batch)
    mean = float(np.mean(times))
    rows = len(first['targets'])
    return {'first_batch_s': first_s, 'ms_per_batch': 1000 * mean, 'ms_per_batch_median': 1000 * float(np.median(times)),
            'rows_per_s': rows / mean, 'tokens_per_s': tokens / count / mean, 'rows': rows,
            'shape': {name: list(np.shape(value)) for name, value in first.items()}}


def peak_rss_mib() -> float:
    """This process's peak resident memory (what the peer driver reports)."""
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
