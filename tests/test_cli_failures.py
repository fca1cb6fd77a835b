"""What a user sees when something goes wrong, through the command line (subprocesses): one ``error:``
line and exit status 1 for each mistake, nothing written, no traceback; one run per workdir; read-only
commands that write nothing. The loop's recovery itself is tested in test_robust_training.py."""

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from helpers import ROOT, device_env, load_config, run_script, truncate_array_files
from transformer_lab import cli
from transformer_lab.training import logging as metrics_logging
from transformer_lab.training.loop import train_and_evaluate
from transformer_lab.training.workdir import WorkdirError, check_usable

pytestmark = pytest.mark.slow   # end-to-end: the command lines, several processes

TINY = 'configs/transformer_lm_kjv.py:tiny'


def tree_checksums(directory) -> dict[str, str]:
    """Every file under ``directory`` (relative path -> sha256): any file written, changed or removed shows."""
    sums = {}
    for root, _, files in os.walk(directory):
        for name in files:
            path = os.path.join(root, name)
            with open(path, 'rb') as f:
                sums[os.path.relpath(path, directory)] = hashlib.sha256(f.read()).hexdigest()
    return sums


def assert_one_error_line(result, *fragments):
    assert result.returncode == 1, result.stderr
    assert 'Traceback' not in result.stderr and 'Exception ignored' not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith('error:')]
    assert len(errors) == 1, result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr


@pytest.fixture(scope='module')
def trained_run(tmp_path_factory):
    """A finished 20-step run of the tiny LM (checkpoints 10 and 20), trained in this process."""
    workdir = tmp_path_factory.mktemp('run')
    config = load_config(TINY)
    config.train.num_steps = 20
    train_and_evaluate(config, str(workdir))
    return workdir


def copy_of(run, tmp_path):
    shutil.copytree(run, tmp_path / 'run')
    return tmp_path / 'run'


@pytest.mark.parametrize('config, fragment', [
    ('configs/transformer_bible_enes.py:nosuch', "unknown config variant 'nosuch'; valid: ['layers', 'steps', 'tiny']"),
    ('configs/transformer_bible_enes.py:steps=abc', "config.arg:steps: 'abc' is not a int"),
    ('configs/music_transformer_bach_chorales.py:relative,local,tiny', 'pick one attention variant'),
    ('configs/no_such_file.py', 'configs/no_such_file.py is not a file'),
])
def test_a_bad_config_flag_is_one_error_line_and_writes_nothing(trained_run, tmp_path, config, fragment):
    workdir = copy_of(trained_run, tmp_path)
    before = tree_checksums(workdir)
    assert_one_error_line(run_script('train.py', f'--config={config}', f'--workdir={workdir}'), fragment)
    assert tree_checksums(workdir) == before


def test_an_override_of_a_missing_field_is_one_error_line(tmp_path):
    result = run_script('train.py', f'--config={TINY}', '--config.model.no_such_field=1', f'--workdir={tmp_path / "w"}')
    assert_one_error_line(result, "no such config field: 'no_such_field'", '--config.model.no_such_field')
    assert not os.path.exists(tmp_path / 'w')


def test_a_workdir_that_is_a_file_is_one_error_line(tmp_path):
    (tmp_path / 'file').write_text('mine')
    result = run_script('train.py', f'--config={TINY}', f'--workdir={tmp_path / "file" / "run"}')
    assert_one_error_line(result, f'{tmp_path / "file"} is a file, not a directory')
    assert (tmp_path / 'file').read_text() == 'mine'
    with pytest.raises(WorkdirError, match='object-store workdirs are not supported yet'):
        check_usable('gs://bucket/run')   # would otherwise be split between the bucket and ./gs:/


def test_errors_in_a_users_config_file_name_its_line(tmp_path):
    parser = cli.ConfigFileParser(name='config')
    (tmp_path / 'broken.py').write_text('def get_config(arg=None):\n    x = 1\n    return undefined_name\n')
    with pytest.raises(ValueError, match=r"broken.py:3: NameError: name 'undefined_name' is not defined"):
        parser.parse(str(tmp_path / 'broken.py'))
    (tmp_path / 'syntax.py').write_text('def get_config(arg=None):\n    return (\n')
    with pytest.raises(ValueError, match=r'syntax.py:2: SyntaxError'):
        parser.parse(str(tmp_path / 'syntax.py'))


@pytest.fixture
def small_mount(tmp_path):
    """A tmpfs of 1 MiB at tmp_path/mount, unmounted after; skipped where mounting is not permitted."""
    mount_point = tmp_path / 'mount'
    mount_point.mkdir()
    if subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', str(mount_point)],
                      capture_output=True).returncode != 0:
        pytest.skip('mounting a tmpfs needs root (CI and the developers\' machines run as root)')
    yield mount_point
    subprocess.run(['umount', '-l', str(mount_point)], check=True)


def remount_read_only(mount_point):
    subprocess.run(['mount', '-o', 'remount,ro', str(mount_point)], check=True)


def test_a_workdir_on_a_read_only_filesystem_is_one_error_line(small_mount):
    remount_read_only(small_mount)
    result = run_script('train.py', f'--config={TINY}', f'--workdir={small_mount / "run"}')
    assert_one_error_line(result, f'--workdir={small_mount / "run"} cannot be written (Read-only file system)')


def test_a_full_disk_is_one_error_line_naming_what_failed(small_mount):
    """1 MiB fills up during the first checkpoints or the metrics: whichever write fails first is reported."""
    result = run_script('train.py', f'--config={TINY}', f'--workdir={small_mount / "run"}',
                        '--config.train.num_steps=200', '--config.checkpoint.every_steps=5')
    assert_one_error_line(result, 'No space left on device')
    assert 'failed' in result.stderr or 'errno 28' in result.stderr


def test_a_torn_metrics_write_leaves_no_partial_line(tmp_path, monkeypatch):
    writer = metrics_logging.MetricsWriter(str(tmp_path))
    writer.write(1, {'train/loss': 1.0})
    real_write = os.write
    monkeypatch.setattr(metrics_logging.os, 'write', lambda fd, data: real_write(fd, data[:7]))  # disk full mid-line
    with pytest.raises(metrics_logging.MetricsWriteError, match=r'metrics of step 2 to .*metrics.jsonl failed'):
        writer.write(2, {'train/loss': 2.0})
    monkeypatch.undo()
    writer.write(3, {'train/loss': 3.0})
    writer.close()
    assert [record['step'] for record in metrics_logging.read_metrics(tmp_path)] == [1, 3]


def test_a_failed_metrics_write_stops_the_run_saying_what_is_on_disk(tmp_path, monkeypatch):
    real_write = metrics_logging.MetricsWriter.write

    def write(self, step, metrics):
        if step == 15:
            raise metrics_logging.MetricsWriteError('writing the metrics of step 15 failed: No space left on device')
        real_write(self, step, metrics)

    monkeypatch.setattr(metrics_logging.MetricsWriter, 'write', write)
    config = load_config(TINY)
    config.train.num_steps = 20
    with pytest.raises(metrics_logging.MetricsWriteError, match=r'step 15 failed: No space left on device\. '
                                                                r'Saved steps still on disk: \[10\]'):
        train_and_evaluate(config, str(tmp_path))


def test_corrupt_checkpoints_give_short_messages_and_the_detail_goes_to_the_log(trained_run, tmp_path):
    workdir = copy_of(trained_run, tmp_path)
    truncate_array_files(workdir / 'checkpoints' / '20')
    result = run_script('train.py', f'--config={TINY}', f'--workdir={workdir}', '--config.train.num_steps=25')
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith('warning:')]
    assert len(warnings) == 1 and 'checkpoint 20' in warnings[0] and len(warnings[0]) < 400, result.stderr
    assert 'Traceback' not in result.stderr and 'Exception ignored' not in result.stderr
    assert 'resumed from step 10' in result.stdout
    assert 'Traceback' in (workdir / 'train.log').read_text()   # the libraries' detail is kept

    for step in os.listdir(workdir / 'checkpoints'):
        truncate_array_files(workdir / 'checkpoints' / step)
    before = tree_checksums(workdir)
    result = run_script('train.py', f'--config={TINY}', f'--workdir={workdir}', '--config.train.num_steps=30')
    assert_one_error_line(result, f'no checkpoint in {workdir / "checkpoints"} is readable')
    assert len(result.stderr) < 2000, result.stderr
    result = run_script('evaluate.py', f'--workdir={workdir}')
    assert_one_error_line(result, 'is readable')
    after = tree_checksums(workdir)
    assert {name: value for name, value in after.items() if name not in ('lock', 'train.log')} == \
        {name: value for name, value in before.items() if name not in ('lock', 'train.log')}


def test_evaluate_works_on_a_read_only_copy_and_writes_nothing(trained_run, small_mount):
    shutil.copytree(trained_run, small_mount / 'run', ignore=shutil.ignore_patterns('tensorboard', 'train.log'))
    shutil.rmtree(small_mount / 'run' / 'checkpoints' / '10')
    remount_read_only(small_mount)
    before = tree_checksums(small_mount)
    result = run_script('evaluate.py', f'--workdir={small_mount / "run"}')
    assert result.returncode == 0, result.stderr
    assert '"step": 20' in result.stdout and 'validation/nll' in result.stdout
    assert tree_checksums(small_mount) == before


def test_read_only_commands_create_nothing_outside_samples(trained_run, tmp_path):
    workdir = copy_of(trained_run, tmp_path)
    shutil.rmtree(workdir / 'checkpoints')
    before = tree_checksums(workdir)
    assert_one_error_line(run_script('evaluate.py', f'--workdir={workdir}'), 'holds no checkpoint')
    assert_one_error_line(run_script('sample.py', f'--workdir={workdir}'), 'holds no checkpoint')
    assert tree_checksums(workdir) == before and not os.path.exists(workdir / 'checkpoints')


def _wait_for_lock_holder(workdir, process, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if os.path.exists(workdir / 'lock') and f'"pid": {process.pid}' in (workdir / 'lock').read_text():
            return
        assert process.poll() is None, process.communicate()
        time.sleep(0.2)
    raise AssertionError('the run did not lock its workdir')


def start_training(workdir, *overrides):
    return subprocess.Popen([sys.executable, 'scripts/train.py', f'--config={TINY}', f'--workdir={workdir}',
                             *overrides], cwd=ROOT, env=device_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_one_run_owns_its_workdir_and_a_killed_run_leaves_no_stale_lock(tmp_path):
    workdir = tmp_path / 'run'
    first = start_training(workdir, '--config.train.num_steps=100000', '--config.eval.every_steps=0')
    _wait_for_lock_holder(workdir, first)
    second = run_script('train.py', f'--config={TINY}', f'--workdir={workdir}', '--config.train.num_steps=100000',
                        '--config.eval.every_steps=0')
    assert_one_error_line(second, f'--workdir={workdir} is in use by pid {first.pid} on host ')
    assert first.poll() is None   # the first run went on
    first.send_signal(signal.SIGTERM)
    _, stderr = first.communicate(timeout=120)
    assert first.returncode == 128 + signal.SIGTERM, stderr
    steps = [record['step'] for record in metrics_logging.read_metrics(workdir)]
    assert steps == sorted(set(steps)) and steps   # logged once each: no second writer

    killed = start_training(workdir, '--config.train.num_steps=100000', '--config.eval.every_steps=0')
    _wait_for_lock_holder(workdir, killed)
    killed.kill()
    killed.communicate()
    result = run_script('train.py', f'--config={TINY}', f'--workdir={workdir}', '--config.train.num_steps=1')
    assert result.returncode == 0, result.stderr
    assert 'resumed from step' in result.stdout


@pytest.mark.parametrize('setting', [None, ''])
def test_commands_keep_compiled_programs_in_the_users_cache_unless_told_not_to(tmp_path, setting):
    """``cli.run`` commands keep what they compile under $XDG_CACHE_HOME/transformer_lab/jax for the next
    command; JAX's own $JAX_COMPILATION_CACHE_DIR set empty turns that off."""
    env = {**os.environ, 'XDG_CACHE_HOME': str(tmp_path), 'JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS': '0'}
    env.pop('JAX_COMPILATION_CACHE_DIR', None)
    if setting is not None:
        env['JAX_COMPILATION_CACHE_DIR'] = setting
    program = ('from transformer_lab import cli; cli.use_compilation_cache(); import jax, jax.numpy as jnp; '
               'jax.jit(lambda x: jnp.tanh(x @ x)).lower(jnp.ones((8, 8))).compile()')
    result = subprocess.run([sys.executable, '-c', program], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    cache = tmp_path / 'transformer_lab' / 'jax'
    assert (cache.is_dir() and any(cache.iterdir())) == (setting is None)
