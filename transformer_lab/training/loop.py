"""``train_and_evaluate(config, workdir)``: the one training loop for every model and dataset.

Reads top to bottom: validate the config and open the data (before the workdir is touched, so a bad
config cannot damage a run), build the model by name, restore the latest checkpoint if there is one,
then train with periodic logging, evaluation and checkpoints, and evaluate once more at the end.
"""

from __future__ import annotations

import json
import os
import shutil
import time

import jax
import numpy as np
from flax import nnx

from transformer_lab import registry
from transformer_lab.training import checkpoints, evaluators, logging, optim, parallel, steps

# Config fields that fix the shapes of the saved parameters: a workdir cannot change them.
SHAPE_FIELDS = ('model', 'data.tokenizer', 'data.vocab_size', 'data.name', 'data.inputs_feature',
                'data.targets_feature')


class WorkdirConflictError(ValueError):
    """The workdir holds a run that this config cannot continue."""


def _field(config: dict, path: str):
    for part in path.split('.'):
        config = config.get(part, {}) if isinstance(config, dict) else None
    return config


def check_workdir_compatible(config, workdir: str) -> None:
    """Refuses (before writing anything) a config whose parameters differ from the run in workdir."""
    saved_path = os.path.join(workdir, 'config.json')
    if not os.path.exists(saved_path):
        return
    with open(saved_path) as f:
        saved = json.load(f)
    new = json.loads(config.to_json_best_effort())
    changed = [p for p in SHAPE_FIELDS if _field(saved, p) != _field(new, p)]
    if changed:
        raise WorkdirConflictError(f'--workdir={workdir} holds a run with different {", ".join(changed)} '
                         f'(see its config.json); resume with the same values or choose a new --workdir')


def setup(config, workdir: str | None = None, *, tokenizer=None):
    """Validated config -> (pipeline, model). Nothing is written anywhere."""
    registry.validate(config)
    pipeline = registry.build_pipeline(config.data, tokenizer=tokenizer)
    model = registry.build_model(config.model, pipeline.tokenizer.vocab_size, seed=config.seed)
    if workdir is not None:
        check_workdir_compatible(config, workdir)
    return pipeline, model


def _write_run_files(config, workdir: str, pipeline) -> None:
    os.makedirs(workdir, exist_ok=True)
    if jax.process_index() != 0:
        return
    with open(os.path.join(workdir, 'config.json'), 'w') as f:
        f.write(config.to_json_best_effort(indent=2))
    model_path = getattr(pipeline.tokenizer, 'model_path', None)
    if model_path:
        shutil.copyfile(model_path, os.path.join(workdir, 'tokenizer.model'))


def initial_state(config, model, mesh):
    """(graphdef, replicated TrainState at step 0, optimizer, schedule) for ``model``."""
    graphdef, params = nnx.split(model)
    optimizer, schedule = optim.make_optimizer(config.train, config.model.d_model)
    state = steps.TrainState(step=np.int32(0), params=params, opt_state=optimizer.init(params))
    return graphdef, jax.device_put(state, parallel.replicated(mesh)), optimizer, schedule


def summarize_window(step_metrics: list[dict], seconds: float, learning_rate: float) -> dict[str, float]:
    """Train metrics of the steps since the last log: means, the learning rate, target tokens per second."""
    metrics = {f'train/{name}': float(np.mean([m[name] for m in step_metrics]))
               for name in ('loss', 'nll', 'grad_norm')}
    tokens = sum(float(m['tokens']) for m in step_metrics)
    return {**metrics, 'train/learning_rate': learning_rate, 'train/tokens_per_second': tokens / seconds}


def evaluate(context: evaluators.EvalContext, params, split: str) -> dict[str, float]:
    """Runs every configured evaluator on ``split``; metric names are ``split/metric``."""
    metrics = {}
    for name in context.config.eval.evaluators:
        for metric, value in evaluators.EVALUATORS[name](context, params, split).items():
            metrics[f'{split}/{metric}'] = value
    return metrics


def train_and_evaluate(config, workdir: str) -> dict[str, float]:
    """Trains ``config`` in ``workdir`` (resuming if it holds a checkpoint); returns the final metrics."""
    pipeline, model = setup(config, workdir)
    _write_run_files(config, workdir, pipeline)

    mesh = parallel.make_mesh()
    replicated = parallel.replicated(mesh)
    rows = parallel.local_rows(config.data.batch_size)
    graphdef, state, optimizer, schedule = initial_state(config, model, mesh)

    store = checkpoints.Checkpoints(workdir, max_to_keep=config.checkpoint.max_to_keep)
    train_batches = iter(pipeline.train_batches(rows, seed=config.data.shuffle_seed,
                                                shard_index=jax.process_index(),
                                                shard_count=jax.process_count()))
    if store.latest_step() is not None:
        state, data_state = store.restore(checkpoints.abstract_like(state, replicated))
        train_batches.set_state(data_state)
    first_step = int(state.step)

    train_step = jax.jit(steps.make_train_step(graphdef, optimizer, config.train.label_smoothing, config.seed),
                         in_shardings=(replicated, parallel.batch_sharded(mesh)),
                         out_shardings=(replicated, replicated), donate_argnums=0)
    writer = logging.MetricsWriter(workdir)
    bar = logging.progress_bar(first_step, config.train.num_steps)
    context = evaluators.make_context(config, pipeline, graphdef, mesh, report=bar.write)
    log_every, eval_every = config.train.log_every_steps, config.eval.every_steps
    pending, window_start = [], time.time()

    metrics = {} if first_step < config.train.num_steps else evaluate(
        context, state.params, config.data.eval_split)
    for step in range(first_step + 1, config.train.num_steps + 1):
        state, step_metrics = train_step(state, parallel.to_global(next(train_batches), mesh))
        pending.append(step_metrics)
        bar.update(1)
        if step % log_every == 0 or step == config.train.num_steps:
            metrics = summarize_window(jax.device_get(pending), time.time() - window_start,
                                       float(schedule(step - 1)))
            writer.write(step, metrics)
            bar.set_postfix(loss=f'{metrics["train/loss"]:.3f}', tok_s=f'{metrics["train/tokens_per_second"]:.0f}')
            pending, window_start = [], time.time()
        if (eval_every and step % eval_every == 0) or step == config.train.num_steps:
            eval_metrics = evaluate(context, state.params, config.data.eval_split)
            writer.write(step, eval_metrics)
            bar.write(f'step {step}: ' + ', '.join(f'{k}={v:.4g}' for k, v in eval_metrics.items()))
            metrics.update(eval_metrics)
            window_start = time.time()
        if step % config.checkpoint.every_steps == 0 or step == config.train.num_steps:
            # Saved with step k: the iterator's position after batch k, where a resumed run continues.
            store.save(step, state, train_batches.get_state())
    bar.close()
    store.wait()
    store.close()
    writer.close()
    return metrics
