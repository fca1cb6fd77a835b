"""A sweep worker: claims a run, trains it with ``scripts/train.py`` in a subprocess, reports, repeats.

A run's process is ``scripts/train.py`` itself, so a crash or an out-of-memory kill ends one run, not
the worker, and a run's directory ``SWEEP/runs/NAME`` is an ordinary workdir (its console output in
``console.log``). While it trains the worker beats Optuna's heartbeat and reports each evaluation of
the metric to the trial, so that a pruner can stop it (SIGTERM: the run saves a checkpoint first).
The worker stops when no run is waiting or running; runs of other workers that stop beating are
handed over to it (``study.claim``). SIGTERM / SIGINT stop the worker's run with a checkpoint, and the
run is marked ``interrupted``: the next invocation of the sweep enqueues it again and it resumes.
"""

from __future__ import annotations

import ast
import ctypes
import dataclasses
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import optuna

from transformer_lab.sweeps import spec as spec_lib
from transformer_lab.sweeps import study as study_lib

POLL_SECONDS = 1.0


@dataclasses.dataclass(frozen=True)
class Options:
    """What a worker needs (picklable: workers start as fresh processes)."""
    config: str
    sweep: str
    base_arguments: tuple[str, ...]
    workdir: str
    storage_url: str
    study_name: str
    metric: str
    prune: str
    prune_startup_runs: int
    sampler: str
    seed: int
    heartbeat_interval: int
    grace_period: int
    train_script: str


def make_sampler(name: str, seed: int) -> optuna.samplers.BaseSampler:
    return {'tpe': optuna.samplers.TPESampler, 'random': optuna.samplers.RandomSampler}[name](seed=seed)


def make_pruner(name: str, startup_runs: int) -> optuna.pruners.BasePruner:
    if name == 'median':
        return optuna.pruners.MedianPruner(n_startup_trials=startup_runs)
    return optuna.pruners.NopPruner()


def open_study(options: Options) -> optuna.Study:
    storage = study_lib.open_storage(options.storage_url, heartbeat_interval=options.heartbeat_interval,
                                     grace_period=options.grace_period)
    return optuna.load_study(study_name=options.study_name, storage=storage,
                             sampler=make_sampler(options.sampler, options.seed),
                             pruner=make_pruner(options.prune, options.prune_startup_runs))


class StopRequests:
    """SIGTERM / SIGINT ask the worker to stop; each is passed on to the run's process, once per signal
    (train.py saves a checkpoint on the first and exits at once on a second)."""

    def __init__(self):
        self.count, self.process = 0, None
        for number in (signal.SIGTERM, signal.SIGINT):
            signal.signal(number, self._handle)

    def _handle(self, number, frame):
        del number, frame
        self.count += 1
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)


def work(options: Options, environment: dict[str, str]) -> None:
    """The worker process's main: runs until no run is waiting or running, or a stop signal."""
    import jax
    jax.config.update('jax_platforms', 'cpu')   # the worker only counts parameters; devices are the runs'
    stops = StopRequests()
    study = open_study(options)
    sweep = spec_lib.load(options.config, options.sweep, options.base_arguments)
    while not stops.count:
        trial = study_lib.claim(study, options.storage_url)
        if trial is None:
            if not study_lib.unfinished(study):
                return
            time.sleep(POLL_SECONDS)   # a running run may yet be handed over to this worker
            continue
        train(trial, study, sweep, options, environment, stops)


def _name_run(trial: optuna.Trial, sweep: spec_lib.Sweep) -> tuple[str, dict]:
    """A grid run's name and overrides, or a search slot's: drawn now by the sampler."""
    if 'run' in trial.user_attrs:
        return trial.user_attrs['run'], ast.literal_eval(trial.user_attrs['overrides'])
    sweep.function(trial)
    overrides = dict(trial.params)
    name = f'{trial.user_attrs["slot"]:03d},{spec_lib.run_names([overrides])[0]}'
    trial.set_user_attr('run', name)
    trial.set_user_attr('overrides', repr(overrides))
    return name, overrides


def train(trial: optuna.Trial, study: optuna.Study, sweep: spec_lib.Sweep, options: Options,
          environment: dict[str, str], stops: StopRequests) -> None:
    """Trains one claimed run to its end and tells the study how it ended."""
    name, overrides = _name_run(trial, sweep)
    trial.set_user_attr('outcome', 'running')
    trial.set_user_attr('worker', f'{socket.gethostname()}:{os.getpid()}')
    try:
        sweep.build_config(overrides, name)   # a grid was checked before it started; a search's draw now
    except spec_lib.SweepError as error:
        _finish(study, trial, 'failed', error=str(error))
        return
    workdir = os.path.join(options.workdir, 'runs', name)
    os.makedirs(workdir, exist_ok=True)
    command = [sys.executable, options.train_script, *sweep.train_arguments(overrides), f'--workdir={workdir}']
    beating = threading.Event()
    heart = threading.Thread(target=_beat, args=(study, trial, options.heartbeat_interval, beating), daemon=True)
    start = time.time()
    with open(os.path.join(workdir, 'console.log'), 'a') as console:
        console.write(f'\n$ {" ".join(command)}\n')
        console.flush()
        process = subprocess.Popen(command, stdout=console, stderr=subprocess.STDOUT, env=environment,
                                   start_new_session=True, preexec_fn=_stop_with_parent)
        stops.process = process
        heart.start()
        pruned = _follow(process, trial, workdir, options.metric, stops)
        stops.process = None
    beating.set()
    heart.join()
    values, steps = _metric_values(workdir, options.metric)
    trial.set_user_attr('wall_s', time.time() - start)
    trial.set_user_attr('steps', steps)
    if values:
        trial.set_user_attr('final', values[-1])
        trial.set_user_attr('best', min(values) if study.direction == optuna.study.StudyDirection.MINIMIZE
                            else max(values))
    trial.set_user_attr('num_params', _count_parameters(workdir))
    if pruned:
        _finish(study, trial, 'pruned')
    elif stops.count:
        _finish(study, trial, 'interrupted')
    elif process.returncode == 0 and values:
        _finish(study, trial, 'complete', value=values[-1])
    else:
        _finish(study, trial, 'failed', error=_error_of(workdir, process.returncode, options.metric, values))


def _finish(study, trial, outcome: str, *, value: float | None = None, error: str = '') -> None:
    trial.set_user_attr('outcome', outcome)
    if error:
        trial.set_user_attr('error', error)
    state = {'complete': optuna.trial.TrialState.COMPLETE,
             'pruned': optuna.trial.TrialState.PRUNED}.get(outcome, optuna.trial.TrialState.FAIL)
    study.tell(trial, value if state == optuna.trial.TrialState.COMPLETE else None, state=state)


def _beat(study, trial, interval: int, stop: threading.Event) -> None:
    while not stop.wait(interval):
        try:
            study._storage.record_heartbeat(trial._trial_id)
        except Exception as error:  # a busy database: the next beat retries before the grace period ends
            print(f'heartbeat of trial {trial.number} failed: {error}', file=sys.stderr)


def _stop_with_parent() -> None:
    """In the run's process, before train.py starts: SIGTERM when the worker dies, even by kill -9 (Linux),
    so that a lost worker's run checkpoints and frees its workdir for the worker it is handed to."""
    if sys.platform.startswith('linux'):
        ctypes.CDLL(None).prctl(1, signal.SIGTERM)   # PR_SET_PDEATHSIG


def _follow(process, trial, workdir: str, metric: str, stops: StopRequests) -> bool:
    """Waits for the run's process, reporting each new value of ``metric`` to the trial; sends SIGTERM
    when the pruner says stop. Returns whether the run was pruned."""
    reported, pruned = set(), False
    while process.poll() is None:
        time.sleep(POLL_SECONDS)
        if pruned or stops.count:
            continue
        values, _ = _metric_values(workdir, metric, with_steps=True)
        for step, value in values:
            if step not in reported:
                trial.report(value, step)
                reported.add(step)
        if reported and trial.should_prune():
            pruned = True
            process.send_signal(signal.SIGTERM)
    return pruned


def _metric_values(workdir: str, metric: str, with_steps: bool = False):
    """(the values of ``metric`` in metrics.jsonl in step order, the last step logged)."""
    from transformer_lab.training.logging import read_metrics
    try:
        records = read_metrics(workdir)
    except (OSError, ValueError):
        return [], 0
    values = [(record['step'], record[metric]) for record in records if metric in record]
    steps = max((record['step'] for record in records), default=0)
    return (values if with_steps else [value for _, value in values]), steps


def _error_of(workdir: str, returncode: int, metric: str, values: list) -> str:
    """The run's own ``error:`` line (train.py prints one for every expected failure), else its exit."""
    try:
        with open(os.path.join(workdir, 'console.log'), errors='replace') as console:
            lines = [line.strip() for line in console if line.startswith('error:')]
    except OSError:
        lines = []
    if lines:
        return lines[-1]
    if returncode == 0:
        return f'the run ended without reporting {metric}'
    if returncode < 0:
        return (f'killed by {signal.Signals(-returncode).name}'
                + (' (out of memory?)' if returncode == -signal.SIGKILL else ''))
    return f'exit status {returncode}; see {os.path.join(workdir, "console.log")}'


def _count_parameters(workdir: str) -> int:
    """The run's parameter count, from its config and tokenizer (abstract shapes: no memory, no device)."""
    import jax
    from flax import nnx

    from transformer_lab import registry, runs
    try:
        config = runs.load_config(workdir)
        vocab_size = runs.load_tokenizer(config, workdir).vocab_size
    except (OSError, ValueError):
        return 0
    model = nnx.eval_shape(lambda: registry.build_model(config.model, vocab_size, seed=0))
    return int(sum(leaf.size for leaf in jax.tree.leaves(nnx.state(model, nnx.Param))))
