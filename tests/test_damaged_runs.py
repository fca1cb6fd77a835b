"""Each file of a tiny run's directory removed, truncated or garbled in turn, then the commands that read
it: one ``error:`` line naming the file and nothing written, or (where the command does not need the
file) a warning and success. Never a traceback. The same for a file of a prepared dataset: training
answers in one ``error:`` line naming it and the command that prepares the dataset again.

About 30 commands of a few seconds each: run after the suite by ``make damaged`` (.ci/run), not by
``make test``.
"""

import os
import pathlib
import shutil

import pytest

from helpers import run_script
from transformer_lab.data.catalog import DATASETS
from transformer_lab.data.source import resolve_data_dir

pytestmark = pytest.mark.damaged

CONFIG = '--config=configs/transformer_bible_enes.py:tiny'
COMMANDS = {
    'evaluate': ('evaluate.py', '--evaluators=nll'),
    'translate': ('translate.py',),
    'sample': ('sample.py', '--num_samples=1', '--max_length=8'),
    'visualize_attention': ('visualize_attention.py',),
    'train': ('train.py', CONFIG, '--config.train.num_steps=22'),
}


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    """A tiny translation run of 20 steps (checkpoints at 10 and 20)."""
    workdir = tmp_path_factory.mktemp('run') / 'run'
    result = run_script('train.py', CONFIG, f'--workdir={workdir}', '--config.train.num_steps=20')
    assert result.returncode == 0, result.stderr[-3000:]
    return workdir


def damage(path, how: str) -> None:
    """Removes, halves or overwrites with random bytes ``path`` (a folder: each of its files)."""
    files = [os.path.join(root, name) for root, _, names in os.walk(path) for name in names] if path.is_dir() else [path]
    if how == 'removed':
        shutil.rmtree(path) if path.is_dir() else path.unlink()
        return
    for name in files:
        size = os.path.getsize(name)
        with open(name, 'r+b') as f:
            if how == 'truncated':
                f.truncate(size // 2)
            else:
                f.write(os.urandom(max(size, 16)))


def snapshot(workdir) -> dict:
    return {os.path.join(root, name): os.path.getmtime(os.path.join(root, name))
            for root, _, names in os.walk(workdir) for name in names}


def run(command: str, workdir, tmp_path):
    script, *flags = COMMANDS[command]
    extra = [f'--out={tmp_path / "pictures"}'] if command == 'visualize_attention' else []
    return run_script(script, f'--workdir={workdir}', *flags, *extra, stdin='In the beginning\n')


# (file, damage, command, what the command must do: the file named in one error line, or success)
CASES = [
    *[('config.json', how, command, 'error') for how in ('truncated', 'garbled') for command in COMMANDS],
    ('config.json', 'removed', 'evaluate', 'error'),
    *[('tokenizer.model', how, command, 'error') for how in ('removed', 'garbled')
      for command in ('evaluate', 'translate', 'sample')],
    ('tokenizer.model', 'garbled', 'train', 'success'),       # rewritten from the prepared tokenizer
    ('metrics.jsonl', 'garbled', 'train', 'success'),         # a warning; the readable records kept
    ('metrics.jsonl', 'removed', 'evaluate', 'success'),
    ('checkpoints/20', 'truncated', 'evaluate', 'success'),   # a warning; the older checkpoint read
    ('checkpoints/20', 'garbled', 'train', 'success'),        # set aside; resumed from step 10
    ('checkpoints', 'garbled', 'evaluate', 'error'),
    ('checkpoints', 'removed', 'translate', 'error'),
    ('checkpoints', 'removed', 'train', 'success'),           # a fresh start, the old record kept aside
    ('lock', 'garbled', 'train', 'success'),
]


@pytest.mark.parametrize('file,how,command,expected', CASES, ids=['-'.join(case[:3]) for case in CASES])
def test_a_damaged_run_directory_is_answered_in_one_line(trained, tmp_path, file, how, command, expected):
    workdir = tmp_path / 'run'
    shutil.copytree(trained, workdir)
    damage(workdir / file, how)
    before = snapshot(workdir)
    result = run(command, workdir, tmp_path)
    assert 'Traceback' not in result.stderr + result.stdout, result.stderr[-3000:]
    if expected == 'success':
        assert result.returncode == 0, result.stderr[-3000:]
        return
    lines = [line for line in result.stderr.splitlines() if line.startswith('error:')]
    assert result.returncode == 1 and len(lines) == 1, result.stderr[-3000:]
    assert os.path.join(workdir, file.split('/')[0]) in lines[0] or file in lines[0], lines[0]
    assert snapshot(workdir) == before


# (file of the prepared bach_chorales, damage): a shard cut short, overwritten or removed (the dataset's
# other splits whole), the description of the dataset overwritten or removed
DATASET_CASES = [('bach_chorales-train.array_record-00000-of-00001', 'truncated'),
                 ('bach_chorales-train.array_record-00000-of-00001', 'garbled'),
                 ('bach_chorales-validation.array_record-00000-of-00001', 'removed'),
                 ('dataset_info.json', 'garbled'),
                 ('dataset_info.json', 'removed')]


@pytest.mark.parametrize('file,how', DATASET_CASES, ids=['-'.join(case) for case in DATASET_CASES])
def test_a_damaged_prepared_dataset_is_answered_in_one_line(tmp_path, file, how):
    prepared = DATASETS['bach_chorales'].prepared_dir(resolve_data_dir())
    copy = DATASETS['bach_chorales'].prepared_dir(str(tmp_path / 'data'))
    shutil.copytree(prepared, copy, ignore=shutil.ignore_patterns('token_ids'))
    damage(pathlib.Path(copy, file), how)
    before = snapshot(tmp_path / 'data')
    result = run_script('train.py', '--config=configs/music_transformer_bach_chorales.py:tiny',
                        f'--config.data.data_dir={tmp_path / "data"}', f'--workdir={tmp_path / "run"}')
    assert 'Traceback' not in result.stderr + result.stdout, result.stderr[-3000:]
    lines = [line for line in result.stderr.splitlines() if line.startswith('error:')]
    assert result.returncode == 1 and len(lines) == 1, result.stderr[-3000:]
    assert "data.name='bach_chorales'" in lines[0] and os.path.join(copy, file) in lines[0], lines[0]
    assert lines[0].endswith(f'python scripts/prepare_data.py --dataset=bach_chorales --data_dir={tmp_path / "data"} '
                             f'--overwrite'), lines[0]
    assert snapshot(tmp_path / 'data') == before
