"""A paper's table as a sweep: each row a config, run with several seeds, written up beside the paper.

A table file (``configs/tables/NAME.py``) is plain data, at two scales, ``cpu`` (small configs on the
offline datasets) and ``paper`` (the paper's configs and data, for accelerators)::

    TITLE = 'Music Transformer on JSB Chorales (Huang et al. 2018, Table 2)'
    METRIC = 'validation/nll'           # what each run reports and the paper's value is compared with
                                        # (or one per scale: {'cpu': ..., 'paper': ...})
    MODE = 'min'                        # lower is better ('max': higher)
    PAPER_METRIC = 'note-wise validation NLL'
    SEEDS = {'cpu': 3, 'paper': 1}
    ROWS = {'cpu': [{'label': 'baseline', 'config': 'configs/music_transformer_bach_chorales.py:baseline',
                     'overrides': {'train.num_steps': 1000}, 'paper': 0.417, 'reference': 'Table 2, row 3'},
                    ...],
            'paper': [...]}
    NOTES = {'cpu': 'what differs from the paper at this scale, and why', 'paper': '...'}
    EXTRA_METRICS = ('validation/bleu', 'train/tokens_per_second')   # optional: more columns, each
                                        # the run's last value; a row's paper may then be {metric: value}
    COMPILED_MEMORY = True              # optional: a column of each row's compiled train step's temporaries
    LONGER = 4                          # optional: each run also evaluated in windows of 4 x its trained
                                        # length, NLL by position (sweeps/lengths.py)

A row's run ``LABEL,seed=S`` (the label with characters other than letters, digits and ``._=+-``
as ``_``) trains ``scripts/train.py --config=CONFIG --config.FIELD=VALUE ... --config.seed=S`` (the
sweep engine's per-run ``config`` override, spec.py): an ordinary workdir. A scale of a table is a
sweep (``load_sweep``, ``sweep``); ``collect`` gathers each row's results from the study's runs;
sweeps/report.py writes them up beside the paper's, and sweeps/reproduce.py does all of it in turn.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import re
import statistics

from transformer_lab.sweeps import spec
from transformer_lab.sweeps.spec import RUN_CONFIG, SweepError
from transformer_lab.sweeps.study import Run
from transformer_lab.training.logging import read_metrics

SCALES = ('cpu', 'paper')
ROW_KEYS = {'label', 'config', 'overrides', 'paper', 'reference'}


@dataclasses.dataclass(frozen=True)
class Row:
    label: str
    config: str                   # FILE[:ARG], as scripts/train.py takes it
    overrides: dict               # {dotted field: value}
    paper: dict[str, float]       # the paper's values: {metric: value} (a number in the file: METRIC's)
    reference: str                # where in the paper


@dataclasses.dataclass(frozen=True)
class Table:
    name: str
    path: str
    title: str
    metrics: dict[str, str]       # {scale: the metric ranked and compared}
    mode: str
    paper_metric: str
    seeds: dict[str, int]
    rows: dict[str, list[Row]]
    notes: dict[str, str]
    extra_metrics: tuple[str, ...] = ()
    compiled_memory: bool = False
    longer: int = 0


def load(path: str) -> Table:
    if not os.path.isfile(path):
        raise SweepError(f'--table: {path} is not a file; tables: {", ".join(available(os.path.dirname(path)))}')
    module = spec.load_module(path)
    if not hasattr(module, 'ROWS'):
        raise SweepError(f'{path} is not a table: it defines no ROWS')
    return from_module(module, path)


def available(folder: str) -> list[str]:
    return sorted(name[:-3] for name in os.listdir(folder) if name.endswith('.py')) if os.path.isdir(folder) else []


def from_module(module, path: str) -> Table:
    """The table a file defines, every field checked (SweepError naming the file and field)."""
    def need(name, kind, what):
        value = getattr(module, name, None)
        if not isinstance(value, kind):
            raise SweepError(f'{path}: {name} must be {what} (see transformer_lab/sweeps/tables.py)')
        return value

    rows, seeds = need('ROWS', dict, 'a dict {scale: [row, ...]}'), need('SEEDS', dict, 'a dict {scale: seeds}')
    notes = getattr(module, 'NOTES', {})
    mode = need('MODE', str, "'min' or 'max'")
    if mode not in ('min', 'max'):
        raise SweepError(f'{path}: MODE={mode!r}; valid: min or max')
    metric = need('METRIC', (str, dict), "a metric name, or a dict {scale: metric name}")
    metrics = metric if isinstance(metric, dict) else dict.fromkeys(rows, metric)
    extra = getattr(module, 'EXTRA_METRICS', ())
    if not isinstance(extra, (tuple, list)) or not all(isinstance(name, str) for name in extra):
        raise SweepError(f"{path}: EXTRA_METRICS must be a tuple of metric names, e.g. ('validation/bleu',)")
    longer = getattr(module, 'LONGER', 0)
    if not isinstance(longer, int) or longer == 1 or longer < 0:
        raise SweepError(f'{path}: LONGER={longer!r} must be a whole factor of 2 or more (0: none)')
    if not rows:
        raise SweepError(f'{path}: ROWS has no scale; valid: {", ".join(SCALES)}')
    for field, mapping in (('ROWS', rows), ('SEEDS', seeds), ('NOTES', notes), ('METRIC', metrics)):
        unknown = sorted(set(mapping) - set(SCALES))
        if unknown:
            raise SweepError(f'{path}: {field} has scales {unknown}; valid: {", ".join(SCALES)}')
    for scale, found in rows.items():
        if not isinstance(found, list) or not found:
            raise SweepError(f'{path}: ROWS[{scale!r}] must be a list of one row or more')
        if not isinstance(seeds.get(scale), int) or seeds[scale] < 1:
            raise SweepError(f'{path}: SEEDS[{scale!r}] must be a number of seeds, 1 or more')
        if not isinstance(metrics.get(scale), str):
            raise SweepError(f'{path}: METRIC has no metric for the scale {scale!r}')
    return Table(name=os.path.splitext(os.path.basename(path))[0], path=path,
                 title=need('TITLE', str, 'a string'), metrics=metrics, mode=mode,
                 paper_metric=need('PAPER_METRIC', str, 'a string'), seeds=seeds,
                 rows={scale: [to_row(row, path, scale, index, metrics[scale], tuple(extra))
                               for index, row in enumerate(found)] for scale, found in rows.items()},
                 notes=notes, extra_metrics=tuple(extra), compiled_memory=bool(getattr(module, 'COMPILED_MEMORY', False)),
                 longer=longer)


def to_row(row, path: str, scale: str, index: int, metric: str, extra_metrics: tuple[str, ...]) -> Row:
    where = f'{path}: ROWS[{scale!r}][{index}]'
    if not isinstance(row, dict) or not {'label', 'config'} <= set(row) or set(row) - ROW_KEYS:
        raise SweepError(f'{where}: a row is a dict of label, config and optionally overrides, paper, reference'
                         + (f' (unknown: {", ".join(sorted(set(row) - ROW_KEYS))})' if isinstance(row, dict) else ''))
    overrides = row.get('overrides', {})
    if not isinstance(overrides, dict):
        raise SweepError(f'{where}: overrides must be a dict {{field: value}}, not {overrides!r}')
    paper = row.get('paper')
    paper = {} if paper is None else paper if isinstance(paper, dict) else {metric: paper}
    if not all(isinstance(value, (int, float)) for value in paper.values()):
        raise SweepError(f'{where}: paper={row["paper"]!r} must be a number, a dict of metric: number, or None')
    unknown = sorted(set(paper) - {metric, *extra_metrics})
    if unknown:
        raise SweepError(f'{where}: paper values of {unknown}, which is neither METRIC ({metric}) nor in EXTRA_METRICS')
    return Row(label=str(row['label']), config=str(row['config']), overrides=dict(overrides),
               paper=paper, reference=str(row.get('reference', '')))


def scale_named(table: Table, scale: str) -> list[Row]:
    if scale not in table.rows:
        raise SweepError(f'--scale={scale}: {table.path} has the scales {", ".join(table.rows)}')
    names = [run_name(row, 0) for row in table.rows[scale]]
    repeated = sorted({row.label for row, name in zip(table.rows[scale], names) if names.count(name) > 1})
    if repeated:
        raise SweepError(f'{table.path}: ROWS[{scale!r}] has labels that name the same runs: {repeated}; give '
                         f'each row a label of its own (letters, digits and ._=+- are kept, others become _)')
    return table.rows[scale]


def run_name(row: Row, seed: int) -> str:
    return f'{re.sub(r"[^A-Za-z0-9._=+-]", "_", row.label)},seed={seed}'


def runs(rows: list[Row], seeds: int) -> list[tuple[str, dict]]:
    """(run name, overrides) of every row and seed, row by row."""
    return [(run_name(row, seed), {RUN_CONFIG: row.config, **row.overrides, 'seed': seed})
            for row in rows for seed in range(seeds)]


SMOKE_ROWS = 2   # rows per batch (training and evaluation) of a smoke run: the papers' models on a CPU
SMOKE_STEPS = 2


def smoke(rows: list[Row], data_dir: str, config_of) -> tuple[list[Row], list[str]]:
    """The rows of ``scripts/reproduce.py --smoke``: every row's own model and sequence shapes, trained
    ``SMOKE_STEPS`` steps on batches of ``SMOKE_ROWS`` rows, in the training process, and evaluated
    once, on ``SMOKE_ROWS`` examples; a dataset that has a stand-in (data/standins.py: the papers'
    datasets this machine cannot fetch) is read from its stand-in, prepared in ``data_dir``.
    ``config_of(row)`` is the row's config. Returns the rows and one line per row saying what changed."""
    from transformer_lab.data import standins
    smoked, said = [], []
    for row in rows:
        config = config_of(row)
        overrides = {'train.num_steps': SMOKE_STEPS, 'train.log_every_steps': 1, 'eval.every_steps': SMOKE_STEPS,
                     'checkpoint.every_steps': SMOKE_STEPS, 'data.batch_size': SMOKE_ROWS,
                     'train.grad_accum_steps': 1, 'eval.batch_size': SMOKE_ROWS, 'eval.max_examples': SMOKE_ROWS,
                     'data.workers': 0}
        data = config.data.name
        if data in standins.STANDINS:
            overrides['data.data_dir'] = standins.prepare(data, data_dir)
            data = f'a stand-in of {data} (random files in its layout)'
        smoked.append(dataclasses.replace(row, overrides={**row.overrides, **overrides}))
        said.append(f'{row.label}: the paper\'s model, {SMOKE_STEPS} steps of {SMOKE_ROWS} rows (the config: '
                    f'{config.data.batch_size} x {config.train.grad_accum_steps}), evaluated on {SMOKE_ROWS} '
                    f'examples, data: {data}')
    return smoked, said


def load_sweep(config: str, name: str, base_arguments=()) -> spec.Sweep:
    """The sweep ``name`` of a config file as a worker loads it (its study may be a table's): in a table
    file (one that defines ROWS) the scale ``name``, in any other its ``sweep_NAME`` or ``search_NAME``."""
    module = spec.load_file(config)
    if not hasattr(module, 'ROWS'):
        return spec.sweep_in(module, config, name, base_arguments)
    return sweep(from_module(module, config.partition(':')[0]), name, base_arguments)


def sweep(table: Table, scale: str, base_arguments=()) -> spec.Sweep:
    """A scale of the table as a grid: its rows, each with the table's seeds (``spec.grid`` expands it).
    The engine's workers read each run's overrides from the study; sweeps/reproduce.py enqueues
    ``runs`` with its own number of seeds."""
    rows, seeds = scale_named(table, scale), table.seeds[scale]

    def sweep_table(add):
        for _, overrides in runs(rows, seeds):
            add(**overrides)
    return spec.Sweep(table.path, scale, sweep_table, tuple(base_arguments))


# --- the results ---------------------------------------------------------------------------------

@dataclasses.dataclass
class RowResult:
    row: Row
    metric: str
    values: dict[str, list[float]]   # {metric: the last value of each complete seed's run}
    steps: list[int]
    wall_s: list[float]
    num_params: int | None
    unfinished: list[str]            # runs not complete, with their status
    complete: list[str] = dataclasses.field(default_factory=list)   # the names of the complete runs
    compiled_mb: float | None = None

    @property
    def seeds(self) -> list[float]:
        return self.values.get(self.metric, [])

    @property
    def mean(self) -> float | None:
        return mean_std(self.seeds)[0]

    @property
    def std(self) -> float | None:
        return mean_std(self.seeds)[1]

    @property
    def paper(self) -> float | None:
        return self.row.paper.get(self.metric)


def mean_std(values: list[float]) -> tuple[float | None, float | None]:
    """The mean and the sample standard deviation (n - 1), None where there are too few values."""
    return (statistics.fmean(values) if values else None, statistics.stdev(values) if len(values) > 1 else None)


def collect(rows: list[Row], seeds: int, study_runs: list[Run], workdir: str, metric: str,
            extra_metrics: tuple[str, ...] = ()) -> list[RowResult]:
    """Each row's results from the study's runs: the metric as the study recorded it, the extra metrics
    as each run's metrics.jsonl last logged them."""
    by_name = {run.name: run for run in study_runs}
    results = []
    for row in rows:
        found = [by_name.get(run_name(row, seed)) for seed in range(seeds)]
        done = [run for run in found if run is not None and run.status == 'complete'
                and run.attribute('final') is not None]
        values = {metric: [float(run.attribute('final')) for run in done]}
        for extra in extra_metrics:
            values[extra] = [value for run in done if (value := last_value(workdir, run.name, extra)) is not None]
        results.append(RowResult(
            row, metric, values, [int(run.attribute('steps', 0)) for run in done], [run.wall_s for run in done],
            next((run.attribute('num_params') for run in done), None),
            [f'{run_name(row, seed)}: ' + (f'{run.status}' + (f' ({run.error})' if run.error else '') if run
                                           else 'not started') for seed, run in enumerate(found) if run not in done],
            [run.name for run in done]))
    return results


def last_value(workdir: str, run: str, metric: str) -> float | None:
    try:
        records = read_metrics(os.path.join(workdir, 'runs', run))
    except (OSError, ValueError):
        return None
    return next((float(record[metric]) for record in reversed(records) if metric in record), None)


def add_compiled_memory(results: list[RowResult], build_config, cache: str) -> None:
    """Each row's compiled train step's temporaries in MB (``benchmarking.compiled_train_step``, its
    config from ``build_config(row)``), compiled in this process once per row and kept in ``cache``
    (a JSON file of the workdir) for the next document. A row that cannot be compiled here (its data
    not prepared on this machine) gets none."""
    from transformer_lab.benchmarking import compiled_train_step
    known = json.loads(pathlib.Path(cache).read_text()) if os.path.exists(cache) else {}
    for result in results:
        if result.row.label not in known:
            try:
                compiled = compiled_train_step(build_config(result.row), batches=1)[0]
                known[result.row.label] = compiled.memory_analysis().temp_size_in_bytes / 2**20
            except Exception as error:  # noqa: BLE001 - a missing dataset, device memory: the column says '-'
                print(f'note: no compiled memory for {result.row.label}: {type(error).__name__}: {error}')
                continue
        result.compiled_mb = known[result.row.label]
    pathlib.Path(cache).write_text(json.dumps(known))
