"""``train_and_evaluate(config, workdir)``: the one training loop for every model and dataset.

Reads top to bottom: validate the config, open the data and read the workdir's latest good
checkpoint (before anything is written, so a bad config or an unreadable run cannot be damaged),
build the model by name, then train with periodic logging, evaluation and asynchronous checkpoints,
and evaluate once more at the end. Pre-emption signals, non-finite losses and failed saves stop the
run with a message that says what happened and what was saved (README, "Running for real").
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time

import jax
import numpy as np

from transformer_lab import library_log, tasks
from transformer_lab.config import UserError
from transformer_lab.data.source import in_workers
from transformer_lab.models.catalog import build_model
from transformer_lab.training import checkpoints, evaluators, logging, parallel, preemption, samples
from transformer_lab.training import state as state_lib
from transformer_lab.training import workdir as workdir_lib
from transformer_lab.training.validation import validate

# Config fields that may change when a run resumes: cadences, lengths, evaluation, topology, how attention
# is computed (the same function).
SAFE_ON_RESUME = ('model.attention_implementation', 'model.attention_query_block', 'model.attention_key_block',
                  'train.num_steps', 'train.log_every_steps', 'train.nonfinite', 'train.max_consecutive_skips',
                  'train.grad_accum_steps', 'eval', 'checkpoint.every_steps', 'checkpoint.max_to_keep',
                  'checkpoint.best_metric', 'checkpoint.best_mode', 'sample', 'parallel', 'data.data_dir',
                  'data.workers', 'train.profile_steps')


LOG_FILE = 'train.log'   # the libraries' detail: orbax and TFDS logs, tracebacks (library_log)


class WorkdirConflictError(UserError, ValueError):
    """The workdir holds a run that this config cannot continue."""


class NonFiniteLossError(UserError, RuntimeError):
    """The loss or gradient became NaN or infinite; nothing after the last good checkpoint was saved."""


def config_drift(saved: dict, new: dict) -> list[str]:
    """Fields (dotted paths) whose values differ between two configs and may not change on resume."""
    saved, new = logging.flat_config(saved), logging.flat_config(new)
    return [f'{path}: {saved.get(path)!r} in the run, {new.get(path)!r} now'
            for path in sorted(set(saved) | set(new))
            if saved.get(path) != new.get(path)
            and not any(path == safe or path.startswith(safe + '.') for safe in SAFE_ON_RESUME)]


def check_workdir_compatible(config, workdir: str) -> None:
    """Refuses (before writing anything) a config that differs from the run in workdir in a field
    that is not safe to change on resume."""
    saved = workdir_lib.saved_config(workdir)
    if saved is None:
        return
    drift = config_drift(saved, json.loads(config.to_json_best_effort()))
    if drift:
        raise WorkdirConflictError(
            f'--workdir={workdir} holds a run whose config.json differs in:\n  ' + '\n  '.join(drift) +
            '\nresume with the same values, or train in a new --workdir (safe to change on resume: '
            + ', '.join(SAFE_ON_RESUME) + ')')


def setup(config, workdir: str | None = None, *, tokenizer=None):
    """Validated config -> (pipeline, model). Nothing is written anywhere."""
    validate(config)
    pipeline = tasks.build_pipeline(config.data, tokenizer=tokenizer)
    tasks.task_for(config.data.name).check_prepared(config, pipeline)
    model = build_model(config.model, pipeline.tokenizer.vocab_size, seed=config.seed)
    if workdir is not None:
        check_workdir_compatible(config, workdir)
    return pipeline, model


def _write_run_files(config, workdir: str, pipeline) -> None:
    os.makedirs(workdir, exist_ok=True)
    if jax.process_index() != 0:
        return
    with open(os.path.join(workdir, workdir_lib.CONFIG_FILE), 'w') as f:
        f.write(config.to_json_best_effort(indent=2))
    model_path = getattr(pipeline.tokenizer, 'model_path', None)
    if model_path:
        shutil.copyfile(model_path, os.path.join(workdir, 'tokenizer.model'))


class TrainWindow:
    """The per-step train metrics since the last log line, checked for non-finite steps.

    Checking reads the metrics back from the device, so it runs only before logs, evaluations and
    saves: a non-finite step is always caught before anything after it is evaluated or saved.
    """

    def __init__(self, train_config, store: checkpoints.Checkpoints):
        self.train_config, self.store = train_config, store
        self.steps, self.metrics, self.checked = [], [], 0
        self.consecutive_skips, self.start_time = 0, time.time()

    def add(self, step: int, step_metrics: dict):
        self.steps.append(step)
        self.metrics.append(step_metrics)

    def check(self):
        """Raises NonFiniteLossError on a non-finite step ('stop'), or after too many in a row ('skip')."""
        for step, metrics in zip(self.steps[self.checked:], jax.device_get(self.metrics[self.checked:])):
            finite = bool(metrics['finite'])
            self.consecutive_skips = 0 if finite else self.consecutive_skips + 1
            if not finite and (self.train_config.nonfinite == 'stop'
                               or self.consecutive_skips > self.train_config.max_consecutive_skips):
                raise NonFiniteLossError(self._explain(step, metrics))
        self.checked = len(self.steps)

    def _explain(self, step: int, metrics: dict) -> str:
        if self.train_config.nonfinite == 'stop':
            what = f'step {step}: loss={metrics["loss"]:.4g}, grad_norm={metrics["grad_norm"]:.4g} is not finite'
        else:
            what = f'{self.consecutive_skips} consecutive non-finite steps up to step {step} (train.nonfinite=skip)'
        last = self.store.latest_step()
        saved = (f'the last good checkpoint is step {last} in {self.store.directory}' if last is not None
                 else 'no checkpoint was saved')
        return (f'{what}; the update was not applied and nothing after it was saved: {saved}. Lower '
                f'train.learning_rate, set train.grad_clip_norm, or use train.nonfinite=skip to skip such steps.')

    def summary(self, learning_rate: float) -> dict[str, float]:
        """Means over the window's applied steps, the learning rate, target tokens per second."""
        host = jax.device_get(self.metrics)
        applied = [m for m in host if m['finite']] or host
        summary = {f'train/{name}': float(np.mean([m[name] for m in applied]))
                   for name in ('loss', 'nll', 'grad_norm')}
        tokens = sum(float(m['tokens']) for m in host)
        summary.update({'train/learning_rate': learning_rate,
                        'train/tokens_per_second': tokens / (time.time() - self.start_time),
                        'train/skipped_steps': float(sum(1 - m['finite'] for m in host))})
        self.steps, self.metrics, self.checked, self.start_time = [], [], 0, time.time()
        return summary


def evaluate_state(context: evaluators.EvalContext, state, split: str, names=None) -> dict[str, float]:
    """``evaluate`` of the state's parameters and, if it keeps them, of their moving average, whose
    metrics are named ``split_ema/metric``."""
    metrics = evaluate(context, state.params, split, names)
    if state.ema_params is not None:
        averaged = evaluate(context, state.ema_params, split, names)
        metrics.update({f'{split}_ema/{name.partition("/")[2]}': value for name, value in averaged.items()})
    return metrics


def evaluate(context: evaluators.EvalContext, params, split: str, names=None) -> dict[str, float]:
    """Runs the evaluators ``names`` (default: every configured one) on ``split``; metric names are
    ``split/metric``."""
    metrics = {}
    for name in context.config.eval.evaluators if names is None else names:
        for metric, value in evaluators.EVALUATORS[name](context, params, split).items():
            metrics[f'{split}/{metric}'] = value
    return metrics


def train_and_evaluate(config, workdir: str) -> dict[str, float]:
    """Trains ``config`` in ``workdir`` (resuming if it holds a checkpoint); returns the final metrics."""
    parallel.initialize_distributed(config.parallel)
    workdir_lib.check_usable(workdir)
    pipeline, model = setup(config, workdir)
    evaluators.check_hosts(config.eval.evaluators)
    with workdir_lib.WorkdirLock(workdir), library_log.kept_in(
            os.path.join(workdir, LOG_FILE) if jax.process_index() == 0 else None):
        return _train_in_locked_workdir(config, workdir, pipeline, model)


def _train_in_locked_workdir(config, workdir: str, pipeline, model) -> dict[str, float]:
    layout = parallel.batch_layout(config.data.batch_size, config.train.grad_accum_steps)
    mesh = parallel.make_mesh()
    assembly = state_lib.assemble(config, model, mesh)
    graphdef, strategy = assembly.graphdef, assembly.strategy

    store = checkpoints.Checkpoints(workdir, max_to_keep=config.checkpoint.max_to_keep,
                                    best_metric=config.checkpoint.best_metric, best_mode=config.checkpoint.best_mode)

    def open_train_batches(seed):
        return iter(in_workers(pipeline.train_batches(layout.host_rows, seed=seed, shard_index=jax.process_index(),
                                                      shard_count=jax.process_count()), config.data.workers))

    train_batches = open_train_batches(config.data.shuffle_seed)
    restored = store.restore_latest(assembly.abstract(), train_batches)
    state, data_restored = restored if restored is not None else (assembly.placed(), True)
    first_step = int(state.step)
    if not data_restored:  # a position saved by another number of hosts or workers: a fresh order, not a replay
        train_batches = open_train_batches(config.data.shuffle_seed + first_step)
    _write_run_files(config, workdir, pipeline)

    train_step = assembly.train_step(config.train)
    state = strategy.from_global(state)
    writer = logging.MetricsWriter(workdir, resume_step=first_step)
    if first_step == 0:
        writer.write_hparams(config, evaluators.reported_metrics(config))
    progress = logging.Progress(first_step, config.train.num_steps, config.eval.every_steps)
    report = progress.write if jax.process_index() == 0 else lambda message: None
    report(_describe_start(store, workdir, restored is not None, first_step, data_restored))
    report(layout.describe() + f' ({config.parallel.mode} mode)')
    context = evaluators.make_context(config, pipeline, graphdef, mesh, report=report)
    window = TrainWindow(config.train, store)
    loop_samples = samples.LoopSamples(config, workdir, pipeline.tokenizer, graphdef, report)
    profile = logging.StepProfile(config.train.profile_steps, os.path.join(workdir, 'tensorboard'), report)
    num_steps = config.train.num_steps
    saved_step = first_step

    def save(step, state, metrics=None):
        window.check()
        store.save(step, strategy.to_global(state), train_batches, metrics)

    def log(step, metrics=None, files=None):
        try:
            if metrics is not None:
                writer.write(step, metrics)
            if files:
                writer.write_files(step, files)
        except logging.MetricsWriteError as error:
            raise logging.MetricsWriteError(
                f'{error}. Saved steps still on disk: {store.all_steps()}; fix the cause (disk space, '
                f'permissions) and run again to resume from the latest of them') from error

    metrics = {} if first_step < num_steps else evaluate_state(context, strategy.to_global(state),
                                                                config.data.eval_split)
    try:
        with preemption.StopSignals(config.parallel.stop_check_every_steps, last_step=num_steps) as signals:
            in_flight = None   # (step, metrics) dispatched and not yet reported to the bar
            for step in range(first_step + 1, num_steps + 1):
                profile.before(step)
                state, step_metrics = train_step(state, strategy.put_batch(next(train_batches)))
                profile.after(step, step_metrics)
                window.add(step, step_metrics)
                if in_flight is not None:   # one step stays queued behind the one waited for
                    jax.block_until_ready(in_flight[1]['loss'])
                    progress.done(in_flight[0])
                in_flight = (step, step_metrics)
                stop_signal = signals.requested(step)   # many hosts: agreed every few steps, stopping all at once
                if step % config.train.log_every_steps == 0 or step == num_steps or stop_signal:
                    window.check()
                    metrics = window.summary(float(assembly.schedule(step - 1)))
                    log(step, metrics)
                    store.poll()
                    progress.set(step, loss=f'{metrics["train/loss"]:.3f}',
                                 tok_s=f'{metrics["train/tokens_per_second"]:.0f}')
                if stop_signal:
                    if saved_step != step:
                        save(step, state)
                    store.wait()
                    raise preemption.TrainingInterrupted(stop_signal, step, workdir)
                eval_metrics = None
                due, sampling_due = evaluators.due(config, step, last=step == num_steps), loop_samples.due(step)
                if due or sampling_due:
                    window.check()
                    progress.done(step)
                    in_flight = None
                    with progress.paused():
                        global_state = strategy.to_global(state)
                        if due:
                            eval_metrics = evaluate_state(context, global_state, config.data.eval_split, due)
                        written = loop_samples.write(step, global_state.params) if sampling_due else {}
                    if due:
                        log(step, eval_metrics)
                        report(f'step {step}: ' + logging.format_metrics(eval_metrics))
                        metrics.update(eval_metrics)
                    if written:
                        log(step, files=written)
                        report(f'step {step}: samples in {os.path.dirname(next(iter(written.values())))}: '
                               + ', '.join(os.path.basename(path) for path in written.values()))
                    window.start_time = time.time()  # tokens/s counts training time only
                ranked = bool(eval_metrics) and config.checkpoint.best_metric in eval_metrics   # '' in {}: False
                if step % config.checkpoint.every_steps == 0 or step == num_steps or ranked:
                    # Saved with step k: the iterator's position after batch k, where a resumed run continues.
                    # Metrics without the best metric (its evaluator not due) would not rank a save.
                    numbers = {k: v for k, v in eval_metrics.items() if not isinstance(v, str)} if eval_metrics else None
                    save(step, state, numbers if ranked or not config.checkpoint.best_metric else None)
                    saved_step = step
    finally:
        _close_all(profile.stop, progress.close, writer.close, store.close, train_batches.close,
                   failing=sys.exc_info()[1] is not None)
    return metrics


def _describe_start(store, workdir: str, resumed: bool, step: int, data_restored: bool) -> str:
    if not resumed:
        return f'started fresh in {workdir} (no checkpoint there)'
    data = ('data position restored' if data_restored else
            'data position restarted with a new shuffle: the checkpoint was saved by another number of hosts')
    return f'resumed from step {step} (checkpoint {os.path.join(store.directory, str(step))}, {data})'


def _close_all(*closers, failing: bool) -> None:
    """Runs every closer. After a failure, a closer's own error (a second symptom of the same full
    disk, say) goes to the library log instead of replacing the first error, which says what failed."""
    first_error = None
    for close in closers:
        try:
            close()
        except Exception as error:
            if failing or first_error is not None:
                library_log.write(f'while closing after an earlier error: {error!r}')
            else:
                first_error = error
    if first_error is not None:
        raise first_error
