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
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time

import optuna

from transformer_lab.sweeps import spec as spec_lib
from transformer_lab.sweeps import study as study_lib
from transformer_lab.sweeps import tables
from transformer_lab.training import preemption

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
    """SIGTERM / SIGINT (and SIGUSR2: submitit's notice, 90 s ahead, of a SLURM job's time limit) ask the
    worker to stop; each new one is passed on to the run's process (train.py saves a checkpoint on the
    first and exits at once on a second), copies of one are not."""

    def __init__(self):
        self.deliveries, self.process, self.first = preemption.Deliveries(), None, None
        for number in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR2):
            signal.signal(number, self._handle)

    @property
    def count(self) -> int:
        return self.deliveries.count

    def _handle(self, number, frame):
        del frame
        if self.deliveries.new(number):
            self.first = self.first or number
            self.pass_on()

    def pass_on(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)


def work(options: Options, environment: dict[str, str]) -> None:
    """The worker process's main: runs until no run is waiting or running, or a stop signal."""
    import jax
    jax.config.update('jax_platforms', 'cpu')   # the worker only counts parameters; devices are the runs'
    stops = StopRequests()
    study = open_study(options)
    sweep = tables.load_sweep(options.config, options.sweep, options.base_arguments)
    while not stops.count:
        trial = study_lib.claim(study, options.storage_url)
        if trial is None:
            if not study_lib.unfinished(study):
                return
            time.sleep(POLL_SECONDS)   # a running run may yet be handed over to this worker
            continue
        train(trial, study, sweep, options, environment, stops)


def _name_run(trial: optuna.Trial, study: optuna.Study, sweep: spec_lib.Sweep,
              options: Options) -> tuple[str, dict]:
    """A grid run's name and overrides, or a search slot's: drawn now by the sampler, seeded by
    ``--seed`` and the slot so that workers (on any machine) never draw the same values."""
    if 'run' in trial.user_attrs:
        return trial.user_attrs['run'], ast.literal_eval(trial.user_attrs['overrides'])
    study.sampler = make_sampler(options.sampler, options.seed + trial.user_attrs['slot'])
    spec_lib.call(sweep, trial)
    overrides = dict(trial.params)
    name = f'{trial.user_attrs["slot"]:03d},{spec_lib.run_names([overrides])[0]}'
    trial.set_user_attr('run', name)
    trial.set_user_attr('overrides', repr(overrides))
    return name, overrides


def train(trial: optuna.Trial, study: optuna.Study, sweep: spec_lib.Sweep, options: Options,
          environment: dict[str, str], stops: StopRequests) -> None:
    """Trains one claimed run to its end and tells the study how it ended, beating its heartbeat from
    the claim to the tell. A run handed to another worker meanwhile (this worker's beats were late:
    a stalled machine, a busy database) is stopped here and left to that worker."""
    heartbeat = Heartbeat(study, trial, options.heartbeat_interval)
    try:
        _train(trial, study, sweep, options, environment, stops)
    except optuna.exceptions.UpdateFinishedTrialError:
        print(f'trial {trial.number} was handed over to another worker; this worker leaves it', file=sys.stderr)
    finally:
        heartbeat.stop()


def _train(trial, study, sweep, options, environment, stops) -> None:
    trial.set_user_attr('outcome', 'running')
    trial.set_user_attr('worker', f'{socket.gethostname()}:{os.getpid()}')
    try:
        name, overrides = _name_run(trial, study, sweep, options)
        sweep.build_config(overrides, name)   # a grid was checked before it started; a search's draw now
    except spec_lib.SweepError as error:
        if 'run' not in trial.user_attrs:   # the search function failed on this draw: a row that says so
            trial.set_user_attr('run', f'{trial.user_attrs["slot"]:03d},failed_draw')
            trial.set_user_attr('overrides', repr(dict(trial.params)))
        _finish(study, trial, 'failed', error=str(error))
        return
    workdir = os.path.join(options.workdir, 'runs', name)
    os.makedirs(workdir, exist_ok=True)
    command = [sys.executable, options.train_script, *sweep.train_arguments(overrides), f'--workdir={workdir}']
    start = time.time()
    with open(os.path.join(workdir, 'console.log'), 'a') as console:
        console.write(f'\n$ {shlex.join(command)}\n')
        console.flush()
        process = subprocess.Popen(command, stdout=console, stderr=subprocess.STDOUT, env=environment,
                                   start_new_session=True, preexec_fn=_stop_with_parent)
        stops.process = process
        if stops.count:   # a stop requested while the run was being prepared
            stops.pass_on()
        ending = _follow(process, trial, study, workdir, options.metric, stops)
        stops.process = None
    if ending == 'lost':
        raise optuna.exceptions.UpdateFinishedTrialError(f'trial {trial.number} is no longer running')
    values, steps = _metric_values(workdir, options.metric)
    trial.set_user_attr('wall_s', time.time() - start)
    trial.set_user_attr('steps', steps)
    if values:
        trial.set_user_attr('final', values[-1])
        trial.set_user_attr('best', min(values) if study.direction == optuna.study.StudyDirection.MINIMIZE
                            else max(values))
    trial.set_user_attr('num_params', _count_parameters(workdir))
    if ending == 'pruned':
        _finish(study, trial, 'pruned')
    elif process.returncode == 0 and values:
        _finish(study, trial, 'complete', value=values[-1])
    elif stops.count:
        _finish(study, trial, 'interrupted')
    else:
        _finish(study, trial, 'failed', error=_error_of(workdir, process.returncode, options.metric))


def _finish(study, trial, outcome: str, *, value: float | None = None, error: str = '') -> None:
    trial.set_user_attr('outcome', outcome)
    if error:
        trial.set_user_attr('error', error)
    state = {'complete': optuna.trial.TrialState.COMPLETE,
             'pruned': optuna.trial.TrialState.PRUNED}.get(outcome, optuna.trial.TrialState.FAIL)
    study.tell(trial, value if state == optuna.trial.TrialState.COMPLETE else None, state=state)


class Heartbeat:
    """Beats the trial's heartbeat every ``interval`` seconds in a thread, until ``stop``."""

    def __init__(self, study, trial, interval: int):
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._beat, args=(study._storage, trial, interval), daemon=True)
        self._thread.start()

    def _beat(self, storage, trial, interval: int) -> None:
        while not self._stopped.wait(interval):
            try:
                storage.record_heartbeat(trial._trial_id)
            except Exception as error:  # a busy database: the next beat retries before the grace period ends
                print(f'heartbeat of trial {trial.number} failed: {error}', file=sys.stderr)

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join()


def _stop_with_parent() -> None:
    """In the run's process, before train.py starts: SIGTERM when the worker dies, even by kill -9 (Linux),
    so that a lost worker's run checkpoints and frees its workdir for the worker it is handed to."""
    if sys.platform.startswith('linux'):
        ctypes.CDLL(None).prctl(1, signal.SIGTERM)   # PR_SET_PDEATHSIG


def _follow(process, trial, study, workdir: str, metric: str, stops: StopRequests) -> str | None:
    """Waits for the run's process, reporting each new value of ``metric`` to the trial; sends SIGTERM
    when the pruner says stop ('pruned') or when the trial is no longer this worker's ('lost')."""
    reported, ending = set(), None

    def report_new_values() -> bool:
        """Reports the values logged since the last poll, asking the pruner after each: it judges the
        last reported step only, and a fast run logs several evaluations between two polls."""
        prune = False
        for step, value in _metric_values(workdir, metric, with_steps=True)[0]:
            if step not in reported:
                trial.report(value, step)
                reported.add(step)
                prune = prune or trial.should_prune()
        return prune

    while process.poll() is None:
        time.sleep(POLL_SECONDS)
        if ending or stops.count:
            continue
        if study._storage.get_trial(trial._trial_id).state != optuna.trial.TrialState.RUNNING:
            ending = 'lost'
        else:
            if report_new_values():
                ending = 'pruned'
        if ending:
            process.send_signal(signal.SIGTERM)
    if ending != 'lost':
        report_new_values()   # those of a run that ended between polls: the pruner compares later runs with them
    return ending


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


def _error_of(workdir: str, returncode: int, metric: str) -> str:
    """The run's own ``error:`` line in this attempt's part of console.log (train.py prints one for
    every expected failure), else how it exited."""
    try:
        with open(os.path.join(workdir, 'console.log'), errors='replace') as console:
            attempt = console.read().rsplit('\n$ ', 1)[-1].splitlines()
    except OSError:
        attempt = []
    errors = [line.strip() for line in attempt if line.startswith('error:')]
    if errors:
        return errors[-1]
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

    from transformer_lab import runs
    from transformer_lab.models.catalog import build_model
    try:
        config = runs.load_config(workdir)
        vocab_size = runs.load_tokenizer(config, workdir).vocab_size
    except (OSError, ValueError):
        return 0
    model = nnx.eval_shape(lambda: build_model(config.model, vocab_size, seed=0))
    return int(sum(leaf.size for leaf in jax.tree.leaves(nnx.state(model, nnx.Param))))
