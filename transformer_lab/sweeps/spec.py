"""A sweep as its config file defines it, expanded into runs and checked before anything runs.

A config module defines a grid as ``sweep_NAME(add)``, each ``add(**overrides)`` call being one run,
and a search as ``search_NAME(trial)``, Optuna's define-by-run API whose ``trial.suggest_*`` names are
config fields::

    def sweep_lr(add):
        for learning_rate in (0.5, 1.0, 2.0):
            for warmup_steps in (100, 300):
                add(**{'train.learning_rate': learning_rate, 'train.warmup_steps': warmup_steps})

    def search_lr(trial):
        trial.suggest_float('train.learning_rate', 0.1, 4.0, log=True)

An override is any config field by its dotted name; a value is what ``--config.FIELD=VALUE`` accepts
(a number, a string, a tuple, a dict for a whole section such as ``model.attention``). A run trains
with ``scripts/train.py --config=FILE[:ARG] [the sweep's --config flags] [its overrides]``; the
override ``config`` (``RUN_CONFIG``) gives a run a config file of its own, as a table's rows do
(sweeps/tables.py builds on this module: a table file is the sweep of each of its scales, and a
worker, whose study may be a table's, loads its sweep with ``tables.load_sweep``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import os
import re

import ml_collections
import optuna

from transformer_lab import cli
from transformer_lab.config import UserError
from transformer_lab.training import evaluators
from transformer_lab.training.validation import validate

MAX_NAME_LENGTH = 120
RUN_CONFIG = 'config'   # the override naming a run's own --config=FILE[:ARG] (no config has such a field)


class SweepError(UserError, ValueError):
    """A sweep that cannot run: a missing function, a bad field or value in a run, a bad metric."""


@dataclasses.dataclass(frozen=True)
class Sweep:
    config: str                    # --config as given: FILE[:ARG]
    name: str                      # NAME of sweep_NAME / search_NAME
    function: object               # sweep_NAME(add) or search_NAME(trial)
    base_arguments: tuple[str, ...] = ()   # --config.FIELD=VALUE flags applied to every run

    @property
    def is_search(self) -> bool:
        return self.function.__name__.startswith('search_')

    def train_arguments(self, overrides: dict) -> list[str]:
        """The flags of ``scripts/train.py`` (without --workdir) that train the run of ``overrides``."""
        return [f'--config={overrides.get(RUN_CONFIG, self.config)}', *self.base_arguments,
                *(f'--config.{field}={format_value(value)}' for field, value in overrides.items()
                  if field != RUN_CONFIG)]

    def build_config(self, overrides: dict, run: str) -> ml_collections.ConfigDict:
        """The run's config, as train.py will build it, validated; SweepError names the run and field."""
        try:
            config = cli.config_from_arguments(self.train_arguments(overrides))
            validate(config)
        except ValueError as error:
            raise SweepError(f'run {run} of {self.function.__name__} ({self.config}): {error}') from None
        return config


def load(config: str, name: str, base_arguments=()) -> Sweep:
    """The sweep ``name`` of the config file in ``config`` (FILE[:ARG]): its sweep_NAME or search_NAME."""
    return sweep_in(load_file(config), config, name, base_arguments)


def load_file(config: str):
    """The config file of ``config`` (FILE[:ARG]) as a module."""
    path = config.partition(':')[0]
    if not os.path.isfile(path):
        raise SweepError(f'--config={config}: {path} is not a file; name a config file such as '
                         f'configs/transformer_bible_enes.py')
    return load_module(path)


def sweep_in(module, config: str, name: str, base_arguments=()) -> Sweep:
    """The sweep ``name`` that the config file ``config`` (FILE[:ARG], loaded as ``module``) defines:
    its ``sweep_NAME`` or ``search_NAME`` function."""
    functions = {attribute: getattr(module, attribute) for attribute in dir(module)
                 if attribute.startswith(('sweep_', 'search_')) and callable(getattr(module, attribute))}
    matches = [functions[f'{kind}_{name}'] for kind in ('sweep', 'search') if f'{kind}_{name}' in functions]
    if len(matches) != 1:
        have = ', '.join(sorted(attribute.split('_', 1)[1] for attribute in functions)) or 'none'
        problem = 'defines both sweep_ and search_' if matches else 'has no sweep_ or search_ function'
        raise SweepError(f'--sweep={name}: {config.partition(":")[0]} {problem} for {name!r}; its sweeps: {have}')
    return Sweep(config, name, matches[0], tuple(base_arguments))


def load_module(path: str):
    """The Python file ``path`` as a module; an exception in it is a SweepError at its line."""
    spec = importlib.util.spec_from_file_location('sweep_config', path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as error:
        raise SweepError(f'{cli.where_in(path, error)}: {type(error).__name__}: {error}') from None
    return module


def grid(sweep: Sweep) -> list[tuple[str, dict]]:
    """The (run name, overrides) of a ``sweep_`` function, in the order it adds them."""
    points = []

    def add(**overrides):
        points.append({field: value.item() if hasattr(value, 'item') and not isinstance(value, str) else value
                       for field, value in overrides.items()})   # numpy scalars (np.logspace) as Python ones

    call(sweep, add)
    if not points:
        raise SweepError(f'{sweep.function.__name__} in {sweep.config} adds no run')
    return list(zip(run_names(points), points))


def call(sweep: Sweep, argument) -> None:
    """Calls the sweep's function; an exception in it (a typo, a bad range) is a SweepError at its line."""
    try:
        sweep.function(argument)
    except Exception as error:
        where = cli.where_in(sweep.config.partition(':')[0], error)
        raise SweepError(f'{where}: {sweep.function.__name__}: {type(error).__name__}: {error}') from None


def check(sweep: Sweep, runs: list[tuple[str, dict]], metric: str) -> None:
    """Builds and validates every run's config and checks that each reports ``metric``; raises
    SweepError for the first that cannot run. A search is checked on one point drawn at random."""
    if sweep.is_search:
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
        trial = study.ask()
        call(sweep, trial)
        runs = [('(a sampled point)', dict(trial.params))]
    for run, overrides in runs:
        config = sweep.build_config(overrides, run)
        reported = evaluators.reported_metrics(config)
        if metric not in reported:
            raise SweepError(f'--metric={metric}: run {run} does not report it; its evaluation metrics: '
                             f'{", ".join(reported)} (config.eval.evaluators={tuple(config.eval.evaluators)})')


def format_value(value) -> str:
    """A value as a ``--config.FIELD=`` flag takes it: strings bare, anything else as a Python literal."""
    if isinstance(value, str):
        return value
    if isinstance(value, ml_collections.ConfigDict):
        value = value.to_dict()
    return repr(value)


def _short(value) -> str:
    if isinstance(value, float):
        return f'{value:.4g}'
    if isinstance(value, dict):
        return '-'.join(_short(item) for item in value.values())
    if isinstance(value, (tuple, list)):
        return '-'.join(_short(item) for item in value)
    return str(value)


def run_names(points: list[dict]) -> list[str]:
    """Readable, filesystem-safe, unique directory names: ``learning_rate=0.5,warmup_steps=100``.

    A field is named by the last part of its dotted name unless two swept fields share it; values are
    short (4 significant digits, a dict or tuple by its items). Names that would still collide, or be
    longer than MAX_NAME_LENGTH, get a hash of the run's full overrides.
    """
    fields = list(dict.fromkeys(field for point in points for field in point))
    last_parts = [field.rsplit('.', 1)[-1] for field in fields]
    label = {field: (last if last_parts.count(last) == 1 else field) for field, last in zip(fields, last_parts)}

    def name(point):
        text = ','.join(f'{label[field]}={_short(value)}' for field, value in point.items()) or 'defaults'
        return re.sub(r'[^A-Za-z0-9._=,+-]', '_', text)

    names = [name(point) for point in points]
    for index, point in enumerate(points):
        if names.count(names[index]) > 1 or len(names[index]) > MAX_NAME_LENGTH:
            digest = hashlib.sha1(repr(sorted(point.items())).encode()).hexdigest()[:8]
            names[index] = f'{names[index][:MAX_NAME_LENGTH - 9]}-{digest}'
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise SweepError(f'the sweep adds the same run more than once: {", ".join(duplicates)}')
    return names
