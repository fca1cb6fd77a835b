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
sweep engine's per-run ``config`` override, spec.py): an ordinary workdir. ``document`` makes the
results' Markdown: per row the paper's value, ours as mean ± standard deviation over
the seeds and each seed, the difference, steps, wall time and parameters, under a header naming the
machine, the date, the versions, the commit and the lock file's hash, with two plots.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import importlib.metadata
import json
import os
import pathlib
import platform
import re
import statistics
import subprocess
import textwrap

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the file-only backend)

from transformer_lab.sweeps.spec import RUN_CONFIG, SweepError, format_value  # noqa: E402
from transformer_lab.sweeps.study import Run  # noqa: E402
from transformer_lab.training.logging import read_metrics  # noqa: E402

SCALES = ('cpu', 'paper')
ROW_KEYS = {'label', 'config', 'overrides', 'paper', 'reference'}
VERSIONS = ('jax', 'jaxlib', 'flax', 'optax', 'orbax-checkpoint')
LOCK_FILE = 'requirements.lock'


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
    from transformer_lab.sweeps import spec   # spec.py loads a table file the same way
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


def grid_function(table: Table, scale: str):
    """A scale of the table as the ``sweep_`` function of the Sweep that spec.load makes of a table file
    (with the table's seeds; ``spec.grid`` expands it). The engine's workers read each run's overrides
    from the study; scripts/reproduce.py enqueues ``runs`` with its own number of seeds."""
    rows, seeds = scale_named(table, scale), table.seeds[scale]

    def sweep_table(add):
        for _, overrides in runs(rows, seeds):
            add(**overrides)
    return sweep_table


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


def environment(project_root: str) -> str:
    """One line: the machine, the versions, the commit and the lock file's hash."""
    cpu = platform.processor() or platform.machine()
    try:
        with open('/proc/cpuinfo') as file:
            cpu = next(line.split(':', 1)[1].strip() for line in file if line.startswith('model name'))
    except (OSError, StopIteration):
        pass
    gpus = [line for line in _run('nvidia-smi', '-L').splitlines() if line.startswith('GPU ')]
    devices = f'{len(gpus)} x {gpus[0].split(":", 1)[1].split("(")[0].strip()}' if gpus else 'CPU only'
    versions = ', '.join(f'{package} {_version(package)}' for package in VERSIONS)
    commit = _run('git', '-C', project_root, 'rev-parse', '--short=10', 'HEAD') or 'unknown'
    if _run('git', '-C', project_root, 'status', '--porcelain', '--untracked-files=no'):
        commit += ' (with uncommitted changes)'
    lock = os.path.join(project_root, LOCK_FILE)
    lock_hash = hashlib.sha256(pathlib.Path(lock).read_bytes()).hexdigest()[:16] if os.path.exists(lock) else 'none'
    return (f'{os.cpu_count()} cores of {cpu} ({platform.system()} {platform.machine()}), {devices}; '
            f'Python {platform.python_version()}, {versions}; commit {commit}; {LOCK_FILE} sha256 {lock_hash}')


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return 'not installed'


def _run(*command: str) -> str:
    """A command's output, '' when it is missing or fails (no GPU, not a git checkout)."""
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ''


def ordering(results: list[RowResult], key, mode: str) -> list[str]:
    """The labels of the rows that have a value under ``key``, best first."""
    valued = [(key(result), result.row.label) for result in results if key(result) is not None]
    return [label for _, label in sorted(valued, reverse=mode == 'max')]


def findings(results: list[RowResult], mode: str) -> list[str]:
    """Sentences that compare our ordering of the rows with the paper's, and the gaps between neighbouring
    rows with the spread over seeds."""
    ours = ordering(results, lambda result: result.mean, mode)
    paper = ordering(results, lambda result: result.paper, mode)
    both = [label for label in ours if label in paper]
    lines = []
    if len(both) > 1:
        same = both == [label for label in paper if label in both]
        order = ' < ' if mode == 'min' else ' > '
        lines.append(f'Ordering of the rows by the metric: ours {order.join(both)}; the paper\'s '
                     f'{order.join(label for label in paper if label in both)}: ' + ('the same.' if same else 'they differ.'))
    by_label = {result.row.label: result for result in results}
    for better, worse in zip(ours, ours[1:]):
        gap = abs(by_label[worse].mean - by_label[better].mean)
        spread = max((by_label[label].std or 0.0) for label in (better, worse))
        if gap <= spread:
            lines.append(f'{better} and {worse} differ by {gap:.3f}, no more than their spread over seeds '
                         f'({spread:.3f}): this ordering is not resolved.')
    return lines


def _ours(values: list[float]) -> str:
    mean, std = mean_std(values)
    return '-' if mean is None else f'{mean:.3f} ± {std:.3f} ({len(values)})' if std is not None else f'{mean:.3f} (1)'


def document(table: Table, scale: str, results: list[RowResult], *, seeds: int, command: str, environment_line: str,
             plots: dict[str, str], output: str, smoke: bool = False) -> str:
    """The results document (Markdown) of one scale of a table; ``plots`` are {caption: path}. A
    ``smoke`` run's document says first that its numbers are not results."""
    metric = table.metrics[scale]
    extras = [f'{extra} (paper)' for extra in table.extra_metrics]
    memory = ['compiled step temporaries'] if table.compiled_memory else []
    lines = [f'# {table.title}: {scale} scale', '',
             f'Made by `{command}` on {datetime.date.today().isoformat()}: {environment_line}.', '',
             *([f'**A smoke run**: every row trained {SMOKE_STEPS} steps on batches of {SMOKE_ROWS} rows, on '
                f'stand-in data where the paper\'s is not on this machine. It shows that each row runs end to end; '
                f'its numbers are not results.', ''] if smoke else []),
             f'Ours: `{metric}` at the last step ({"lower" if table.mode == "min" else "higher"} is better), '
             f'mean ± standard deviation over {seeds} seeds (seeds 0-{seeds - 1}); the paper: {table.paper_metric}.', '',
             '| ' + ' | '.join(['row', 'paper', 'ours', 'each seed', 'ours - paper', *extras, 'steps',
                                'wall time per run', 'parameters', *memory, 'config']) + ' |',
             '|' + '---|' * (9 + len(extras) + len(memory))]
    for result in results:
        row = result.row
        paper = ' '.join(filter(None, [f'{result.paper:g}' if result.paper is not None else '-',
                                       f'({row.reference})' if row.reference else '']))
        difference = f'{result.mean - result.paper:+.3f}' if None not in (result.mean, result.paper) else '-'
        extra_cells = [f'{_ours(result.values.get(extra, []))} ({row.paper[extra]:g})' if extra in row.paper
                       else _ours(result.values.get(extra, [])) for extra in table.extra_metrics]
        flags = ' '.join([f'--config={row.config}', *(f'--config.{field}={format_value(value)}'
                                                        for field, value in row.overrides.items())])
        cells = [_escaped(row.label), _escaped(paper), _ours(result.seeds), ', '.join(f'{value:.3f}' for value in result.seeds) or '-',
                 difference, *extra_cells, str(max(result.steps, default='-')),
                 f'{statistics.fmean(result.wall_s):.0f} s' if result.wall_s else '-',
                 f'{result.num_params:,}' if result.num_params else '-',
                 *([f'{result.compiled_mb:,.0f} MB' if result.compiled_mb is not None else '-'] if memory else []),
                 f'`{_escaped(flags)}`']
        lines.append('| ' + ' | '.join(cells) + ' |')
    unfinished = [name for result in results for name in result.unfinished]
    found = findings(results, table.mode)
    if found:
        lines += [''] + found
    if unfinished:
        lines += ['', f'Not finished ({len(unfinished)} runs; the same command goes on): ' + '; '.join(unfinished) + '.']
    if table.notes.get(scale):
        lines += ['', table.notes[scale]]
    lines += ['']
    for caption, path in plots.items():
        relative = os.path.relpath(path, os.path.dirname(os.path.abspath(output))).replace(' ', '%20')
        lines += [f'![{caption}]({relative})', '']
    return '\n'.join(lines)


def _escaped(text: str) -> str:
    """Text for a Markdown table's cell: a ``|`` would end the cell."""
    return text.replace('|', '\\|')


def plot_rows(table: Table, scale: str, results: list[RowResult], path: str) -> None:
    """Each row's final metric: every seed, the mean with its standard deviation, and the paper's value."""
    figure, axes = plt.subplots(figsize=(max(5.0, 1.1 * len(results) + 2), 4))
    unlabelled = {'each seed', 'ours: mean ± std', 'the paper'}   # each in the legend once

    def label(text):
        if text not in unlabelled:
            return None
        unlabelled.remove(text)
        return text

    for index, result in enumerate(results):
        if result.seeds:
            axes.scatter([index] * len(result.seeds), result.seeds, color='tab:blue', alpha=0.5, s=14,
                         label=label('each seed'))
            axes.errorbar(index, result.mean, yerr=result.std or 0.0, fmt='o', color='tab:blue', capsize=4,
                          label=label('ours: mean ± std'))
        if result.paper is not None:
            axes.scatter(index, result.paper, marker='x', color='tab:red', s=50, label=label('the paper'))
    axes.set_xticks(range(len(results)), [result.row.label for result in results], rotation=15)
    axes.set_ylabel(table.metrics[scale])
    axes.set_title(textwrap.fill(table.title, 70), fontsize='small')
    axes.grid(alpha=0.3)
    axes.legend(fontsize='small')
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def plot_curves(table: Table, scale: str, results: list[RowResult], seeds: int, workdir: str, path: str) -> None:
    """The metric against the step for every run, one colour per row."""
    metric = table.metrics[scale]
    figure, axes = plt.subplots(figsize=(7, 4))
    for index, result in enumerate(results):
        labelled = False
        for seed in range(seeds):
            try:
                records = read_metrics(os.path.join(workdir, 'runs', run_name(result.row, seed)))
            except (OSError, ValueError):
                continue
            points = [(record['step'], record[metric]) for record in records if metric in record]
            if points:
                axes.plot(*zip(*points), color=f'C{index % 10}', marker='.', alpha=0.7,
                          label=None if labelled else result.row.label)
                labelled = True
    axes.set_xlabel('step')
    axes.set_ylabel(metric)
    axes.set_title(f'{metric} during training, every seed', fontsize='small')
    axes.grid(alpha=0.3)
    if results:
        axes.legend(fontsize='x-small')
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
