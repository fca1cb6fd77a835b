"""A table's runs evaluated past the length they trained on (a table's ``LONGER``): each complete run on
the first LONGER x L tokens of every piece, L its trained length, with the NLL per token in the bins of
positions [0, L), [L, 2L), [2L, 4L), ... (``scripts/evaluate.py --length``), written up as a section of
the table's document with a plot. Huang et al. (2018, Sec. 3 and 5.2) claim that relative attention lets the Music
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
from transformer_lab.training.logging import read_metrics  # noqa: E402

KEPT = 'nll_by_position_x{factor}.json'   # in each run's directory: its evaluation, made once per step


def evaluate_runs(results: list[RowResult], workdir: str, factor: int, evaluate_script: str
                  ) -> tuple[dict[str, dict[str, list[float]]], dict[str, int]]:
    """({row label: {bin 'A-B': [NLL of each complete run]}}, {bin: tokens in it}): each run evaluated by
    ``evaluate_script`` on the first ``factor`` x ``data.max_length`` tokens of each piece, once per
    checkpoint step, the answer kept in the run's directory. A run whose evaluation fails is left out,
    with a note; a bin no piece reaches has no values."""
    by_row, tokens = {}, {}
    for result in results:
        bins: dict[str, list[float]] = {}
        for name in result.complete:
            found = evaluated(os.path.join(workdir, 'runs', name), factor, evaluate_script)
            if found is None:
                continue
            tokens.update(found['tokens_by_position'])
            for label, value in found['nll_by_position'].items():
                if value is not None:
                    bins.setdefault(label, []).append(value)
        by_row[result.row.label] = bins
    return by_row, tokens


def evaluated(run_dir: str, factor: int, evaluate_script: str) -> dict | None:
    """The evaluate.py --length answer for the run's latest step (kept), or None (and a note)."""
    kept = os.path.join(run_dir, KEPT.format(factor=factor))
    step = read_metrics(run_dir)[-1]['step']
    if os.path.exists(kept):
        with open(kept) as file:
            answer = json.load(file)
        if answer.get('step') == step:
            return answer
    with open(os.path.join(run_dir, 'config.json')) as file:
        trained = json.load(file)['data']['max_length']
    done = subprocess.run([sys.executable, evaluate_script, f'--workdir={run_dir}', f'--length={factor * trained}'],
                          capture_output=True, text=True)
    if done.returncode or '{' not in done.stdout:
        print(f'note: {run_dir} was not evaluated past its length: {done.stderr.strip()[-500:]}')
        return None
    answer = json.loads(done.stdout[done.stdout.index('{'):])
    with open(kept, 'w') as file:
        json.dump(answer, file)
    return answer


def section(by_row: dict[str, dict], tokens: dict[str, int], factor: int, plot: str, output: str) -> list[str]:
    """The document's lines: a table of each row's NLL per bin, the change from the first bin to the
    last beside the seeds' spread, and the plot."""
    labels = [label for label, count in tokens.items() if count]
    if not labels:
        return []
    lines = ['', '## Past the trained length', '',
             f'Each complete run evaluated on the first {factor} L tokens of every validation piece that long, L '
             f'the length it trained on (`python scripts/evaluate.py --workdir=RUN --length={factor}L`): NLL per '
             f'token (nats) at the positions of each bin, position p predicted from the p tokens of its own piece '
             f'before it, the same pieces in every bin; mean ± standard deviation over the seeds (each seed).', '',
             '| row | ' + ' | '.join(f'positions {label} ({tokens[label]:,} tokens)' for label in labels)
             + ' | last bin - first bin |',
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
    return lines + ['', f'![NLL per token by position in the piece, every seed]({relative})', '']


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
    axes.set_title('NLL by position in the piece, past the length trained on', fontsize='small')
    axes.grid(alpha=0.3)
    axes.legend(fontsize='small')
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
