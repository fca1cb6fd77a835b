"""What the benchmarks share: a heading that names the machine and date, recording tables, a config's
train step compiled on real or random batches (scripts/bench.py times it; tables report its memory),
and the Transformer at the shapes of Flax's examples/wmt (``PEER_SHAPES``) with its FLOPs per step."""

from __future__ import annotations

import datetime
import os
import platform

import jax


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
    from transformer_lab import registry   # the heading alone needs none of the training stack
    from transformer_lab.training import parallel
    from transformer_lab.training.loop import initial_state
    if host_batches is None:
        pipeline = registry.build_pipeline(config.data)
        vocab_size = pipeline.tokenizer.vocab_size
        layout = parallel.batch_layout(config.data.batch_size, config.train.grad_accum_steps)
        iterator = iter(pipeline.train_batches(layout.host_rows, seed=0))
        host_batches = [next(iterator) for _ in range(batches)]
    model = registry.build_model(config.model, vocab_size, seed=config.seed)
    strategy = parallel.make_parallel(config.parallel, parallel.make_mesh())
    graphdef, state, optimizer, _ = initial_state(config, model)
    state = jax.device_put(state, strategy.state_shardings(state))
    train_step = strategy.compile_train_step(graphdef, optimizer, config.train, state)
    return train_step, strategy.from_global(state), [strategy.put_batch(batch) for batch in host_batches]


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


def random_translation_batches(size: str, count: int, seed: int = 0) -> list[dict]:
    """``count`` batches of random tokens in [3, vocab) at the peer's shapes, no padding."""
    import numpy as np
    shape, rng = PEER_SHAPES[size], np.random.default_rng(seed)
    return [{'inputs': rng.integers(3, shape['vocab'], (shape['batch'], shape['source_length']), dtype=np.int32),
             'targets': rng.integers(3, shape['vocab'], (shape['batch'], shape['target_length']), dtype=np.int32)}
            for _ in range(count)]


def translation_train_flops(params, size: str) -> float:
    """FLOPs of one training step as the peer driver counts them: 6 x parameters x tokens per side
    (encoder layers over source tokens; decoder layers and the output projection over target tokens;
    embedding lookups free) plus attention, 12 B d (L_enc S^2 + L_dec (T^2 + T S)) for QK^T and AV,
    forward and backward, unmasked as computed."""
    shape = PEER_SHAPES[size]
    b, src, tgt, d = shape['batch'], shape['source_length'], shape['target_length'], shape['d_model']

    def count(state):
        return sum(leaf.size for leaf in jax.tree.leaves(state))
    output = shape['vocab'] * d + (0 if shape['shared'] else shape['vocab'])
    dense = 6 * (count(params['encoder']) * b * src + (count(params['decoder']) + output) * b * tgt)
    attention = 12 * b * d * shape['layers'] * (src * src + tgt * tgt + tgt * src)
    return float(dense + attention)


def peak_rss_mib() -> float:
    """This process's peak resident memory (what the peer driver reports)."""
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
