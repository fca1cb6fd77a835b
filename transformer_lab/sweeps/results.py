"""A sweep's results, rewritten whenever a run ends and at the end of the sweep:

- ``results.csv``: one row per run: every swept field, status, final and best metric, steps, wall
  time, parameter count, workdir, error;
- ``results.md``: the same as a Markdown table sorted by the metric (failed and pruned runs last);
- ``plots/``: the final metric against each swept field (one line per value of a second swept field)
  and the learning curves of every run (the metric, the training loss), with matplotlib.

Each run's own TensorBoard folder holds its config as an HParams session (training/logging.py), so that
``tensorboard --logdir SWEEP`` shows a table of the runs beside their curves.
"""

from __future__ import annotations

import csv
import io
import os

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the file-only backend)

from transformer_lab.sweeps.study import Run  # noqa: E402
from transformer_lab.training.logging import read_metrics  # noqa: E402


def swept_fields(runs: list[Run]) -> list[str]:
    return list(dict.fromkeys(field for run in runs for field in run.overrides))


def table(runs: list[Run], metric: str, workdir: str) -> tuple[list[str], list[dict]]:
    """(columns, rows) of the results, one row per run, in the order the runs were added."""
    fields = swept_fields(runs)
    columns = ['run', *fields, 'status', f'final {metric}', f'best {metric}', 'steps', 'wall_s', 'num_params',
               'workdir', 'error']
    rows = []
    for run in runs:
        row = {'run': run.name, **{field: run.overrides.get(field, '') for field in fields}, 'status': run.status,
               f'final {metric}': run.attribute('final', ''), f'best {metric}': run.attribute('best', ''),
               'steps': run.attribute('steps', ''), 'wall_s': round(run.wall_s, 1) if run.wall_s else '',
               'num_params': run.attribute('num_params', ''),
               'workdir': os.path.join(workdir, 'runs', run.name), 'error': run.error}
        rows.append(row)
    return columns, rows


def write_all(runs: list[Run], *, metric: str, mode: str, workdir: str, command: str) -> None:
    os.makedirs(workdir, exist_ok=True)   # a --join'ed machine's workdir exists only once it trained a run
    columns, rows = table(runs, metric, workdir)
    _write_csv(os.path.join(workdir, 'results.csv'), columns, rows)
    _atomic_write(os.path.join(workdir, 'results.md'), markdown(columns, rows, metric, mode, command))
    os.makedirs(os.path.join(workdir, 'plots'), exist_ok=True)
    for field in swept_fields(runs):
        plot_metric(runs, field, metric, os.path.join(workdir, 'plots', f'{metric_file(metric)}_vs_{field}.png'))
    plot_learning_curves(runs, metric, workdir, os.path.join(workdir, 'plots', 'learning_curves.png'))


def metric_file(metric: str) -> str:
    return metric.replace('/', '_')


def _sort_key(row: dict, metric: str, mode: str):
    value = row[f'final {metric}']
    finished = row['status'] == 'complete' and value != ''
    return (not finished, row['status'] != 'pruned', (value if mode == 'min' else -value) if finished else 0)


def markdown(columns: list[str], rows: list[dict], metric: str, mode: str, command: str) -> str:
    """The results as a Markdown table, best first by the final metric (``mode``: min or max)."""
    shown = [column for column in columns if column not in ('workdir', 'error')]
    done = sum(row['status'] in ('complete', 'pruned', 'failed') for row in rows)
    lines = [f'# Sweep results: {metric} ({mode})', '', f'`{command}`', '',
             f'{done} of {len(rows)} runs finished; workdirs under `runs/`.', '',
             '| ' + ' | '.join(shown) + ' |', '|' + '---|' * len(shown)]
    failures = []
    for row in sorted(rows, key=lambda row: _sort_key(row, metric, mode)):
        lines.append('| ' + ' | '.join(_cell(row[column]) for column in shown) + ' |')
        if row['error']:
            failures.append(f'- `{row["run"]}`: {row["error"]}')
    if failures:
        lines += ['', 'Failed runs:', *failures]
    return '\n'.join(lines) + '\n'


def _cell(value) -> str:
    if isinstance(value, float):
        return f'{value:.4g}'
    return str(value).replace('|', '\\|')


def _write_csv(path: str, columns: list[str], rows: list[dict]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)
    _atomic_write(path, buffer.getvalue())


def _atomic_write(path: str, text: str) -> None:
    """Readers (a user's editor, TensorBoard, a second machine) never see a half-written file."""
    with open(path + '.tmp', 'w') as f:
        f.write(text)
    os.replace(path + '.tmp', path)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def plot_metric(runs: list[Run], field: str, metric: str, path: str) -> None:
    """The final metric of the complete runs against ``field``, one line per value of the next swept
    field (if there is one); a log axis for positive numbers spanning a factor of 10 or more."""
    done = [run for run in runs if run.status == 'complete' and run.attribute('final') is not None
            and field in run.overrides]
    others = [other for other in swept_fields(runs) if other != field
              and len({repr(run.overrides.get(other)) for run in done}) > 1]
    group_by = others[0] if others else None
    values = list(dict.fromkeys(repr(run.overrides[field]) for run in done))
    numeric = all(_is_number(run.overrides[field]) for run in done)
    figure, axes = plt.subplots(figsize=(6, 4))
    groups = dict.fromkeys(repr(run.overrides.get(group_by)) for run in done)
    for group in groups:
        members = [run for run in done if repr(run.overrides.get(group_by)) == group]
        if numeric:
            members.sort(key=lambda run: run.overrides[field])
            xs = [run.overrides[field] for run in members]
        else:
            xs = [values.index(repr(run.overrides[field])) for run in members]
        axes.plot(xs, [run.attribute('final') for run in members], marker='o',
                  label=f'{group_by} = {group}' if group_by else None)
    if numeric and done:
        positive = [run.overrides[field] for run in done if run.overrides[field] > 0]
        if len(positive) == len(done) and max(positive) >= 10 * min(positive):
            axes.set_xscale('log')
    elif done:
        axes.set_xticks(range(len(values)), [_short_label(value) for value in values], rotation=15)
    axes.set_xlabel(field)
    axes.set_ylabel(f'final {metric}')
    axes.set_title(f'{metric} against {field} ({len(done)} complete runs)')
    if group_by:
        axes.legend(fontsize='small')
    axes.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def _short_label(text: str) -> str:
    return text if len(text) <= 30 else text[:27] + '...'


def plot_learning_curves(runs: list[Run], metric: str, workdir: str, path: str) -> None:
    """Every run's ``metric`` and training loss against the step, from its metrics.jsonl."""
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for run in runs:
        try:
            records = read_metrics(os.path.join(workdir, 'runs', run.name))
        except (OSError, ValueError):
            continue
        for axes, name in ((left, metric), (right, 'train/loss')):
            points = [(record['step'], record[name]) for record in records if name in record]
            if points:
                axes.plot(*zip(*points), label=run.name, marker='.' if axes is left else None)
    for axes, name in ((left, metric), (right, 'train/loss')):
        axes.set_xlabel('step')
        axes.set_ylabel(name)
        axes.grid(alpha=0.3)
    left.set_title(f'{metric} (evaluations)')
    right.set_title('training loss')
    if len(runs) <= 12:
        left.legend(fontsize='x-small')
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
