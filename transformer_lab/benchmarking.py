"""What the benchmarks share: a heading that names the machine and date, recording tables, and a
config's train step compiled on real batches (scripts/bench.py times it; tables report its memory)."""

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


def compiled_train_step(config, *, batches: int = 4):
    """``config``'s train step as the loop compiles it, on ``batches`` real batches of its data:
    (compiled step, jitted step, initial state, batches on the devices). ``compiled.memory_analysis()``
    gives its temporaries (activations kept for the backward pass and scratch), ``cost_analysis()`` its
    FLOPs."""
    from transformer_lab import registry   # the heading alone needs none of the training stack
    from transformer_lab.training import parallel
    from transformer_lab.training.loop import initial_state
    pipeline = registry.build_pipeline(config.data)
    model = registry.build_model(config.model, pipeline.tokenizer.vocab_size, seed=config.seed)
    strategy = parallel.make_parallel(config.parallel, parallel.make_mesh())
    graphdef, state, optimizer, _ = initial_state(config, model)
    state = jax.device_put(state, strategy.state_shardings(state))
    train_step = strategy.compile_train_step(graphdef, optimizer, config.train, state)
    state = strategy.from_global(state)
    layout = parallel.batch_layout(config.data.batch_size, config.train.grad_accum_steps)
    iterator = iter(pipeline.train_batches(layout.host_rows, seed=0))
    placed = [strategy.put_batch(next(iterator)) for _ in range(batches)]
    return train_step.lower(state, placed[0]).compile(), train_step, state, placed
