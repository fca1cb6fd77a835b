"""A table's runs evaluated past the length they trained on (a table's ``LONGER``): each complete run in
windows of LONGER x its trained length L, with the NLL per token in the bins of window positions [0, L),
[L, 2L), [2L, 4L), ... (``scripts/evaluate.py --length``), written up as a section of the table's
document with a plot. Huang et al. (2018, Sec. 3 and 5.2) claim that relative attention lets the Music
Transformer go on past the length it was trained on where absolute positions do not.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the file-only backend)

from transformer_lab.sweeps.tables import RowResult, mean_std  # noqa: E402

KEPT = 'nll_by_position_x{factor}.json'   # in each run's directory: its evaluation, made once


def evaluate_runs(results: list[RowResult], workdir: str, factor: int, evaluate_script: str) -> dict[str, dict]:
    """{row label: {bin 'A-B': [NLL of each complete run]}}, each run evaluated by ``evaluate_script`` in
    windows of ``factor`` x its ``data.max_length`` once, the answer kept in the run's directory. A run
    whose evaluation fails is left out, with a note."""
    by_row = {}
    for result in results:
        bins: dict[str, list[float]] = {}
        for name in result.complete:
            found = evaluated(os.path.join(workdir, 'runs', name), factor, evaluate_script)
            for label, value in (found or {}).items():
                bins.setdefault(label, []).append(value)
        by_row[result.row.label] = bins
    return by_row


def evaluated(run_dir: str, factor: int, evaluate_script: str) -> dict[str, float] | None:
    """The run's NLL by position bin in windows of ``factor`` x its trained length, or None (a note)."""
    kept = os.path.join(run_dir, KEPT.format(factor=factor))
    if os.path.exists(kept):
        with open(kept) as file:
            return json.load(file)
    with open(os.path.join(run_dir, 'config.json')) as file:
        trained = json.load(file)['data']['max_length']
    done = subprocess.run([sys.executable, evaluate_script, f'--workdir={run_dir}', f'--length={factor * trained}'],
                          capture_output=True, text=True)
    if done.returncode:
        print(f'note: {run_dir} was not evaluated past its length: {done.stderr.strip()[-500:]}')
        return None
    bins = json.loads(done.stdout[done.stdout.index('{'):])['nll_by_position']
    with open(kept, 'w') as file:
        json.dump(bins, file)
    return bins


def section(by_row: dict[str, dict], factor: int, plot: str, output: str) -> list[str]:
    """The document's lines: a table of each row's NLL per bin, the change from the first bin to the
    last beside the seeds' spread, and the plot."""
    labels = next((list(bins) for bins in by_row.values() if bins), [])
    if not labels:
        return []
    lines = ['', '## Past the trained length', '',
             f'Each complete run evaluated on the validation split in windows of {factor} times the length L it '
             f'trained on (`python scripts/evaluate.py --workdir=RUN --length={factor}L`): NLL per token (nats) '
             f'at the window positions of each bin, mean ± standard deviation over the seeds (each seed).', '',
             '| row | ' + ' | '.join(f'positions {label}' for label in labels) + ' | last bin - first bin |',
             '|---|' + '---|' * (len(labels) + 1)]
    for label, bins in by_row.items():
        cells = []
        for name in labels:
            values = bins.get(name, [])
            mean, std = mean_std(values)
            cells.append('-' if mean is None else f'{mean:.3f}' + (f' ± {std:.3f}' if std is not None else '') +
                         f' ({", ".join(f"{value:.3f}" for value in values)})')
        change = _change(bins, labels)
        lines.append(f'| {label} | ' + ' | '.join(cells) + f' | {"-" if change is None else f"{change[0]:+.3f}"} |')
    lines.append('')
    for label, bins in by_row.items():
        change = _change(bins, labels)
        if change is not None:
            difference, spread = change
            compared = ('one seed: no spread to compare it with' if spread is None else
                        f'{"more than" if abs(difference) > spread else "within"} the seeds\' spread ({spread:.3f})')
            lines.append(f'{label}: from positions {labels[0]} to {labels[-1]} the NLL changes by {difference:+.3f}, '
                         f'{compared}.')
    draw(by_row, labels, plot)
    relative = os.path.relpath(plot, os.path.dirname(os.path.abspath(output))).replace(' ', '%20')
    return lines + ['', f'![NLL per token by window position, every seed]({relative})', '']


def _change(bins: dict[str, list[float]], labels: list[str]) -> tuple[float, float | None] | None:
    """(mean of the last bin - mean of the first, the larger standard deviation of the two (None with one
    seed)), or None without values."""
    first, last = bins.get(labels[0], []), bins.get(labels[-1], [])
    if not first or not last:
        return None
    (first_mean, first_std), (last_mean, last_std) = mean_std(first), mean_std(last)
    spreads = [std for std in (first_std, last_std) if std is not None]
    return last_mean - first_mean, max(spreads) if spreads else None


def draw(by_row: dict[str, dict], labels: list[str], path: str) -> None:
    """NLL against the position bin, a line per row (its mean) over its seeds' points."""
    figure, axes = plt.subplots(figsize=(6, 4))
    for index, (label, bins) in enumerate(by_row.items()):
        means = []
        for place, name in enumerate(labels):
            values = bins.get(name, [])
            axes.scatter([place] * len(values), values, color=f'C{index % 10}', alpha=0.4, s=12)
            means.append(mean_std(values)[0] if values else float('nan'))
        axes.plot(range(len(labels)), means, color=f'C{index % 10}', marker='o', label=label)
    axes.set_xticks(range(len(labels)), [f'positions\n{name}' for name in labels])
    axes.set_ylabel('NLL per token (nats)')
    axes.set_title('NLL by position in windows longer than the training crops', fontsize='small')
    axes.grid(alpha=0.3)
    axes.legend(fontsize='small')
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
