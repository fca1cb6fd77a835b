"""The sweep's Optuna study: its storage, the runs enqueued once, claiming a run, runs' states.

Every run is an Optuna trial enqueued by the invocation that starts the sweep, before any worker
runs (grid points as their overrides; a search as ``--trials`` empty slots that the sampler fills when
a worker claims one, so TPE sees every result finished by then). Workers never create trials: they
claim WAITING ones, so each run is trained once whatever the number of workers (GridSampler with
concurrent workers repeats points, optuna#2039 / #5489).

Storage: by default an SQLite database in the sweep's directory (``sweep.db``), no server needed;
``postgresql://`` or ``mysql://`` URLs for machines that share no filesystem. Either way Optuna's
RDBStorage keeps worker heartbeats: a run whose worker stopped beating for ``grace_period`` seconds
(kill -9, a lost machine) is failed and enqueued again by ``RetryHeartbeatStaleTrialCallback``, with
the same run name, so it resumes from its workdir's last checkpoint. SQLite does not lock rows, so
on SQLite claims and stale checks also hold a file lock next to the database (``fcntl.lockf``).

A run's state lives in its trial's user attributes: ``run`` (name), ``overrides`` (a Python literal), ``outcome``
(running, complete, pruned, failed, interrupted), ``error``, ``worker``, and when it ends ``final``,
``best``, ``steps``, ``wall_s``, ``num_params``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import ast
import os
import warnings

import optuna
import sqlalchemy
from optuna.trial import TrialState

STORAGE_FILE = 'sweep.db'
FINISHED = ('complete', 'pruned', 'failed')
optuna.logging.set_verbosity(optuna.logging.WARNING)
warnings.filterwarnings('ignore', category=optuna.exceptions.ExperimentalWarning)


class StorageError(OSError):
    """The study's storage cannot be opened (a bad URL, a server that does not answer)."""


def storage_url(storage: str, workdir: str) -> str:
    return storage or f'sqlite:///{os.path.abspath(os.path.join(workdir, STORAGE_FILE))}'


def printable(url: str) -> str:
    """The URL with its password (if any) starred out, for messages and tables."""
    try:
        return sqlalchemy.engine.make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL sqlalchemy can parse: the open that follows says so
        return url


def open_storage(url: str, *, heartbeat_interval: int, grace_period: int, max_retry: int = 5):
    """Optuna's RDBStorage with heartbeats and stale runs enqueued again (at most ``max_retry`` times)."""
    if url.startswith('sqlite'):
        os.makedirs(os.path.dirname(url.partition(':///')[2]) or '.', exist_ok=True)
    engine = {'connect_args': {'timeout': 60}} if url.startswith('sqlite') else {'pool_pre_ping': True}
    try:
        return optuna.storages.RDBStorage(
            url, engine_kwargs=engine, heartbeat_interval=heartbeat_interval, grace_period=grace_period,
            heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=max_retry))
    except Exception as error:  # sqlalchemy's ArgumentError, OperationalError, a missing driver, ...
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise StorageError(f'--storage={printable(url)}: cannot open it ({first_line}); give a database URL such as '
                           f'postgresql://user:password@host/database, or leave --storage out for an '
                           f'SQLite file in --workdir') from None


@contextlib.contextmanager
def claim_lock(url: str):
    """Serialises claims and stale checks of the workers of an SQLite study (a database server's row
    locks already make them atomic)."""
    if not url.startswith('sqlite'):
        yield
        return
    descriptor = os.open(url.partition(':///')[2] + '.lock', os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.lockf(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)


def load_or_create(storage, name: str, direction: str, description: dict, *, join: bool, sampler=None,
                   pruner=None) -> optuna.Study:
    """The study ``name``; created unless ``join``. ``description`` (the config, sweep, flags and metric)
    must equal the one the study was created with: a sweep's runs all train the same way."""
    if join and name not in optuna.get_all_study_names(storage):
        raise StorageError(f'--join: {printable(storage.url)} holds no sweep {name!r}; start it first without '
                           f'--join, or name it with --study_name')
    study = optuna.create_study(storage=storage, study_name=name, direction=direction, sampler=sampler,
                                pruner=pruner, load_if_exists=True)
    stored = study.user_attrs.get('description')
    if stored is None:
        study.set_user_attr('description', description)
    elif stored != description:
        differences = ', '.join(f'{key}: {stored.get(key)!r} there, {description.get(key)!r} now'
                                for key in sorted(set(stored) | set(description))
                                if stored.get(key) != description.get(key))
        raise StorageError(f'the sweep {name!r} in {printable(storage.url)} was started with other flags ({differences}); '
                           f'run it with the same flags, or start a new sweep in another --workdir')
    return study


@dataclasses.dataclass
class Run:
    """A run as the study knows it: its latest trial (a handed-over run has several)."""
    name: str
    overrides: dict
    trial: optuna.trial.FrozenTrial
    wall_s: float                 # over all its trials (resumes included)

    @property
    def status(self) -> str:
        if self.trial.state == TrialState.WAITING:
            return 'waiting'
        if self.trial.state == TrialState.RUNNING:
            return 'running'
        outcome = self.trial.user_attrs.get('outcome')
        return outcome if outcome in FINISHED + ('interrupted',) else 'failed'  # a worker lost too often

    @property
    def error(self) -> str:
        if self.status != 'failed':
            return ''
        return self.trial.user_attrs.get('error') or ('its worker stopped beating (killed or lost) every time it '
                                                      'was handed over')

    def attribute(self, key: str, default=None):
        return self.trial.user_attrs.get(key, default)


def runs(study: optuna.Study) -> list[Run]:
    """The study's named runs in the order they were enqueued; a search's slots not yet drawn are left out."""
    trials: dict[str, list] = {}
    for trial in study.get_trials(deepcopy=False):
        if 'run' in trial.user_attrs:
            trials.setdefault(trial.user_attrs['run'], []).append(trial)
    return [Run(name, ast.literal_eval(history[-1].user_attrs['overrides']), history[-1],
                sum(trial.user_attrs.get('wall_s', 0.0) for trial in history))
            for name, history in trials.items()]


def enqueue(study: optuna.Study, points: list[tuple[str, dict]], *, search_slots: int = 0,
            retry_failed: bool = False) -> int:
    """Enqueues the grid points (or search slots) that the study does not hold yet, and again the runs
    that were interrupted (or failed, with ``retry_failed``); returns how many were enqueued."""
    known = {run.name: run for run in runs(study)}
    count = 0
    for run in known.values():
        if run.trial.state == TrialState.FAIL and (
                run.status == 'interrupted' or (retry_failed and run.status == 'failed')):
            requeue(study, run.trial)
            count += 1
    for name, overrides in points:
        if name not in known:
            study.enqueue_trial({}, user_attrs={'run': name, 'overrides': repr(overrides)},
                                skip_if_exists=False)
            count += 1
    slots = {trial.user_attrs['slot'] for trial in study.get_trials(deepcopy=False) if 'slot' in trial.user_attrs}
    for slot in range(len(slots), search_slots):
        study.enqueue_trial({}, user_attrs={'slot': slot})
        count += 1
    return count


def requeue(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
    """A new WAITING trial of the same run (its name, overrides and sampled values)."""
    identity = {key: trial.user_attrs[key] for key in ('run', 'overrides', 'slot') if key in trial.user_attrs}
    study.add_trial(optuna.create_trial(state=TrialState.WAITING, params=trial.params,
                                        distributions=trial.distributions, user_attrs=identity))


def claim(study: optuna.Study, url: str) -> optuna.Trial | None:
    """Fails the runs whose worker stopped beating (enqueueing them again), then claims a WAITING
    trial for this worker; None when none is waiting."""
    storage = study._storage
    with claim_lock(url):
        optuna.storages.fail_stale_trials(study)
        for trial in study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
            try:
                claimed = storage.set_trial_state_values(trial._trial_id, TrialState.RUNNING)
            except optuna.exceptions.UpdateFinishedTrialError:   # claimed and finished by another worker
                continue
            if claimed:
                storage.record_heartbeat(trial._trial_id)
                return optuna.Trial(study, trial._trial_id)
    return None


def unfinished(study: optuna.Study) -> int:
    """Trials waiting or running (a running one may still be handed over)."""
    return len(study.get_trials(deepcopy=False, states=(TrialState.WAITING, TrialState.RUNNING)))
