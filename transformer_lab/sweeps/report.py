"""A table's results written up beside the paper's (sweeps/tables.py reads the table and collects its
runs): the Markdown document, per row the paper's value, ours as mean ± standard deviation over the
seeds and each seed, the difference, steps, wall time and parameters, under a header naming the machine,
the date, the versions, the commit and the lock file's hash (``environment``), with two plots.
"""

from __future__ import annotations

import datetime
import hashlib
import importlib.metadata
import os
import pathlib
import platform
import statistics
import subprocess
import textwrap

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the file-only backend)

from transformer_lab.sweeps.spec import format_value  # noqa: E402
from transformer_lab.sweeps.tables import SMOKE_ROWS, SMOKE_STEPS, RowResult, Table, mean_std, run_name  # noqa: E402
from transformer_lab.training.logging import read_metrics  # noqa: E402

VERSIONS = ('jax', 'jaxlib', 'flax', 'optax', 'orbax-checkpoint')
LOCK_FILE = 'requirements.lock'


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
