"""Paper tables (scripts/reproduce.py): a table file checked before anything runs, a two-row table with
two seeds run to its document, the document rebuilt from finished runs, a re-run that trains nothing."""

from __future__ import annotations

import json
import os
import re
import statistics

import pytest

from helpers import run_script
from test_cli_failures import assert_one_error_line
from test_sweeps import launches
from transformer_lab.sweeps import spec, tables
from transformer_lab.training.logging import read_metrics

pytestmark = pytest.mark.slow   # end-to-end: the command lines, several processes

TINY_TABLE = '''
TITLE = 'A tiny table (Nobody et al., Table 9)'
METRIC = 'validation/nll'
MODE = 'min'
PAPER_METRIC = 'nats per token'
SEEDS = {{'cpu': 2}}
STEPS = {{'train.num_steps': 4, 'checkpoint.every_steps': 2}}
ROWS = {{'cpu': [
    {{'label': 'baseline', 'config': 'configs/music_transformer_bach_chorales.py:baseline,tiny',
      'overrides': STEPS, 'paper': {{'validation/nll': 0.417, 'validation/accuracy': 0.5}}, 'reference': 'row 1'}},
    {{'label': 'relative', 'config': 'configs/music_transformer_bach_chorales.py:relative,tiny',
      'overrides': {{**STEPS, {extra}}}, 'paper': 0.357, 'reference': 'row 2'}},
]}}
NOTES = {{'cpu': 'Tiny models: only the mechanics are real.'}}
EXTRA_METRICS = ('validation/accuracy',)
COMPILED_MEMORY = True
LONGER = 2
'''


def write_table(folder, extra="'model.dropout_rate': 0.0"):
    path = folder / 'tiny.py'
    path.write_text(TINY_TABLE.format(extra=extra))
    return str(path)


def reproduce(table, workdir, output, *flags):
    return run_script('reproduce.py', f'--table={table}', f'--workdir={workdir}', f'--output={output}', *flags)


def table_lines(path) -> list[str]:
    """The lines of the document's first table (the rows)."""
    with open(path) as file:
        text = file.read().split('\n## ')[0]
    return [line for line in text.splitlines(keepends=True) if line.startswith('| ')]


def test_a_table_file_is_checked_before_anything_runs(tmp_path):
    rows = tables.scale_named(tables.load(write_table(tmp_path)), 'cpu')
    assert [name for name, _ in tables.runs(rows, 2)] == ['baseline,seed=0', 'baseline,seed=1',
                                                          'relative,seed=0', 'relative,seed=1']
    table = write_table(tmp_path, "'model.dropout_rat': 0.0")
    result = reproduce(table, tmp_path / 'runs', tmp_path / 'out.md')
    assert_one_error_line(result, 'relative,seed=0', 'model.dropout_rat', 'no such config field')
    assert not (tmp_path / 'runs').exists() and not (tmp_path / 'out.md').exists()
    assert_one_error_line(reproduce(table, tmp_path / 'runs', tmp_path / 'out.md', '--scale=paper'),
                          '--scale=paper', 'cpu')
    (tmp_path / 'broken.py').write_text("TITLE = 't'\nMETRIC = 'validation/nll'\nMODE = 'min'\nPAPER_METRIC = 'x'\n"
                                        "SEEDS = {'cpu': 1}\nROWS = {'cpu': [{'config': 'configs/x.py'}]}\n")
    assert_one_error_line(reproduce(tmp_path / 'broken.py', tmp_path / 'runs', tmp_path / 'out.md'),
                          "ROWS['cpu'][0]", 'label')
    (tmp_path / 'twins.py').write_text(TINY_TABLE.format(extra="'model.dropout_rate': 0.0")
                                       .replace("'label': 'baseline'", "'label': 'a/b'")
                                       .replace("'label': 'relative'", "'label': 'a b'"))
    assert_one_error_line(reproduce(tmp_path / 'twins.py', tmp_path / 'runs', tmp_path / 'out.md'),
                          "labels that name the same runs: ['a b', 'a/b']")


def test_the_shipped_tables_build_every_row(tmp_path):
    for name in tables.available('configs/tables'):
        path = f'configs/tables/{name}.py'
        table = tables.load(path)
        for scale in table.rows:
            rows = tables.scale_named(table, scale)
            sweep = tables.load_sweep(path, scale)
            spec.check(sweep, tables.runs(rows, 1), table.metrics[scale])


def test_smoke_rows_keep_each_rows_model_on_two_rows_of_stand_in_data(tmp_path):
    """--smoke: the paper rows' own models and sequence lengths, 2 steps of 2 rows, read from a stand-in
    of the paper's dataset that the row's pipeline reads at the model's shapes."""
    from transformer_lab import tasks
    path = 'configs/tables/music_transformer_jsb.py'
    table = tables.load(path)
    rows, sweep = tables.scale_named(table, 'paper'), tables.load_sweep(path, 'paper')

    def config_of(row):
        return sweep.build_config(tables.runs([row], 1)[0][1], row.label)

    smoked, said = tables.smoke(rows, str(tmp_path), config_of)
    assert len(said) == len(rows) and 'a stand-in of jsb_chorales' in said[0]
    for row, smoke_row in zip(rows, smoked):
        paper, smoke = config_of(row), config_of(smoke_row)
        assert smoke.model == paper.model and smoke.data.max_length == paper.data.max_length
        assert (smoke.data.batch_size, smoke.train.num_steps, smoke.data.workers) == (tables.SMOKE_ROWS, tables.SMOKE_STEPS, 0)
        assert smoke.data.data_dir == str(tmp_path) and paper.data.data_dir != str(tmp_path)
    batch = next(iter(tasks.build_pipeline(smoke.data).train_batches(smoke.data.batch_size, seed=0)))
    assert batch['targets'].shape == (tables.SMOKE_ROWS, paper.data.max_length)


def test_reproduce_writes_ours_beside_the_paper_and_collects_without_training(tmp_path):
    table, workdir, output = write_table(tmp_path), tmp_path / 'runs', tmp_path / 'results' / 'tiny.md'
    first = reproduce(table, workdir, output, '--workers=2')
    assert first.returncode == 0, first.stderr[-3000:]
    text = output.read_text()
    assert text.startswith('# A tiny table (Nobody et al., Table 9): cpu scale')
    assert re.search(r'jax \d+\.\d+.*flax \d+.*optax \d+.*orbax-checkpoint \d+.*commit \w+.*requirements\.lock '
                     r'sha256 [0-9a-f]{16}', text)
    assert '--workers=2' in text and 'Tiny models: only the mechanics are real.' in text
    rows = {line.split(' | ')[0][2:]: line.split(' | ') for line in table_lines(output)[1:]}
    assert sorted(rows) == ['baseline', 'relative']
    for label, paper in (('baseline', 0.417), ('relative', 0.357)):
        cells = rows[label]
        finals = [read_metrics(str(workdir / 'runs' / f'{label},seed={seed}'))[-1] for seed in (0, 1)]
        seeds = [final['validation/nll'] for final in finals]
        assert cells[1] == f'{paper:g} (row {1 if label == "baseline" else 2})'
        assert cells[3] == ', '.join(f'{value:.3f}' for value in seeds)
        mean, std = statistics.fmean(seeds), statistics.stdev(seeds)
        assert cells[2] == f'{mean:.3f} ± {std:.3f} (2)'
        assert cells[4] == f'{mean - paper:+.3f}' and cells[6] == '4'
        accuracy = [final['validation/accuracy'] for final in finals]
        assert cells[5] == f'{statistics.fmean(accuracy):.3f} ± {statistics.stdev(accuracy):.3f} (2)' + (
            ' (0.5)' if label == 'baseline' else '')
        assert re.fullmatch(r'\d+ s', cells[7]) and int(cells[8].replace(',', '')) > 1000
        assert re.fullmatch(r'\d+ MB', cells[9])
    assert 'Ordering of the rows by the metric: ours' in text
    for plot in ('rows.png', 'curves.png', 'positions.png'):
        assert os.path.getsize(tmp_path / 'results' / 'tiny' / plot) > 1000
        assert f'](tiny/{plot})' in text
    # LONGER: each run evaluated in windows of twice its 32 tokens, the bins as evaluate.py --length gives them.
    assert '## Past the trained length' in text
    section = text[text.index('## Past the trained length'):]
    longer = run_script('evaluate.py', f'--workdir={workdir / "runs" / "relative,seed=1"}', '--length=64')
    bins = json.loads(longer.stdout[longer.stdout.index('{'):])['nll_by_position']
    assert list(bins) == ['0-32', '32-64']
    kept = [json.loads((workdir / 'runs' / f'relative,seed={seed}' / 'nll_by_position_x2.json').read_text())
            for seed in (0, 1)]
    assert kept[1]['nll_by_position'] == pytest.approx(bins, rel=1e-6) and kept[1]['step'] == 4
    row = next(line for line in section.splitlines() if line.startswith('| relative |')).split(' | ')
    for cell, name in zip(row[1:3], bins):
        values = [run['nll_by_position'][name] for run in kept]
        assert cell == (f'{statistics.fmean(values):.3f} ± {statistics.stdev(values):.3f} '
                        f'({", ".join(f"{value:.3f}" for value in values)})')

    before = table_lines(output)
    output.unlink()
    collected = reproduce(table, workdir, output, '--collect_only')
    assert collected.returncode == 0, collected.stderr[-3000:]
    assert table_lines(output) == before
    environment = (workdir / 'environment.txt').stat().st_mtime_ns
    again = reproduce(table, workdir, output)
    assert again.returncode == 0 and '0 runs enqueued' in again.stdout
    assert table_lines(output) == before
    assert (workdir / 'environment.txt').stat().st_mtime_ns == environment   # the stack that trained them
    original = open(table).read()
    with open(table, 'w') as file:              # the same table, edited
        file.write(original.replace("'train.num_steps': 4", "'train.num_steps': 5"))
    assert_one_error_line(reproduce(table, workdir, output),
                          'run baseline,seed=0', "train.num_steps: 4 then, 5 now", 'new --workdir')
    other = tmp_path / 'other.py'                # another table in the same workdir
    other.write_text(open(table).read())
    assert_one_error_line(reproduce(other, workdir, output), 'holds the runs of another table', 'tiny_cpu')
    assert all(launches(str(workdir), f'{label},seed={seed}') == 1 for label in rows for seed in (0, 1))
    assert_one_error_line(reproduce(table, tmp_path / 'elsewhere', output, '--collect_only'), 'holds no runs')
