"""Sweeps (scripts/sweep.py on Optuna): expansion and checks before anything is written, each run
trained once whatever the workers, a re-run that starts nothing, a killed worker's run handed over
and resumed, median pruning, a search, and a shared PostgreSQL storage started by the test."""

import contextlib
import csv
import dataclasses
import glob
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import optuna
import pytest

from helpers import ROOT, device_env, run_script, tensorboard_events
from transformer_lab.sweeps import spec, study

pytestmark = pytest.mark.slow   # end-to-end: the command lines, several processes

# A user's own config file: the Bible config's tiny variant (NLL only), and the sweeps under test.
SWEEP_CONFIG = '''
import importlib.util

_spec = importlib.util.spec_from_file_location('bible', {bible!r})
_bible = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_bible)


def get_config(arg=None):
    config = _bible.get_config('tiny')
    config.eval.evaluators = ('nll',)
    return config


def sweep_two(add):
    for learning_rate in (0.5, 2.0):
        add(**{{'train.learning_rate': learning_rate}})


def sweep_bad(add):
    add(**{{'train.learning_rate': 1.0}})
    add(**{{'train.learning_rat': 2.0}})


def sweep_long(add):
    for learning_rate in (0.5, 1.0):
        add(**{{'train.learning_rate': learning_rate, 'train.num_steps': 600, 'checkpoint.every_steps': 20}})


def sweep_shared(add):
    for learning_rate in (0.5, 1.0):
        add(**{{'train.learning_rate': learning_rate, 'train.num_steps': 1500, 'checkpoint.every_steps': 500}})


def sweep_prune(add):
    add(**{{'train.learning_rate': 1.0}})
    add(**{{'train.learning_rate': 1e-5, 'train.num_steps': 3000, 'checkpoint.every_steps': 1000}})
    add(**{{'data.data_dir': '/nonexistent'}})


def search_lr(trial):
    trial.suggest_float('train.learning_rate', 0.3, 3.0, log=True)
'''


@pytest.fixture
def sweep_config(tmp_path):
    path = tmp_path / 'my_sweeps.py'
    path.write_text(SWEEP_CONFIG.format(bible=os.path.join(ROOT, 'configs/transformer_bible_enes.py')))
    return str(path)


def sweep_flags(config, workdir):
    return [f'--config={config}', f'--workdir={workdir}', '--heartbeat_interval=1', '--grace_period=5']


def sweep(config, workdir, *flags):
    return run_script('sweep.py', *sweep_flags(config, workdir), *flags)


@contextlib.contextmanager
def sweep_in_background(config, workdir, *flags):
    """A sweep's process, stopped (its workers and runs with it) if the test fails before it ends."""
    process = subprocess.Popen([sys.executable, 'scripts/sweep.py', *sweep_flags(config, workdir), *flags], cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=device_env())
    try:
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)   # passed on to the workers, which stop their runs
            process.communicate(timeout=120)


def results(workdir):
    with open(os.path.join(workdir, 'results.csv')) as f:
        return {row['run']: row for row in csv.DictReader(f)}


def launches(workdir, run):
    """How many times the sweep started the run's train.py (console.log has a '$ command' line each)."""
    with open(os.path.join(workdir, 'runs', run, 'console.log')) as f:
        return sum(line.startswith('$ ') for line in f)


def trials(workdir, name, storage=''):
    storage = optuna.storages.RDBStorage(study.storage_url(storage, workdir))
    return optuna.load_study(study_name=name, storage=storage).get_trials()


def test_sweeps_expand_to_named_checked_runs_and_a_bad_field_is_refused_before_anything_is_written(
        sweep_config, tmp_path):
    bible = spec.load('configs/transformer_bible_enes.py', 'lr')
    runs = spec.grid(bible)
    assert [name for name, _ in runs][:2] == ['learning_rate=0.5,warmup_steps=100', 'learning_rate=0.5,warmup_steps=300']
    assert runs[-1][1] == {'train.learning_rate': 2.0, 'train.warmup_steps': 300} and len(runs) == 6
    spec.check(bible, runs, 'validation/nll')
    with pytest.raises(spec.SweepError, match='validation/bleu.*does not report it'):
        spec.check(spec.load(sweep_config, 'two'), spec.grid(spec.load(sweep_config, 'two')), 'validation/bleu')

    chorales = spec.load('configs/music_transformer_bach_chorales.py:tiny', 'attention', ('--config.train.num_steps=5',))
    runs = spec.grid(chorales)
    assert [name for name, _ in runs] == ['attention=dot_product', 'attention=relative-256',
                                          'attention=relative_local_1d-256-128']
    spec.check(chorales, runs, 'validation/nll')
    assert chorales.build_config(runs[2][1], runs[2][0]).model.attention.block_length == 128

    assert spec.run_names([{'model.size': 1, 'data.size': 2}]) == ['model.size=1,data.size=2']
    with pytest.raises(spec.SweepError, match='no sweep_ or search_ function.*its sweeps: bad, long, lr, prune, shared, two'):
        spec.load(sweep_config, 'missing')

    workdir = tmp_path / 'refused'
    bad = sweep(sweep_config, workdir, '--sweep=bad')
    assert bad.returncode == 1
    assert bad.stderr.strip().splitlines()[-1].startswith('error: run learning_rat=2 of sweep_bad')
    assert 'no such config field' in bad.stderr and 'Traceback' not in bad.stderr
    assert not workdir.exists()


@pytest.mark.workers
def test_two_workers_train_each_run_once_and_the_same_command_again_starts_nothing(sweep_config, tmp_path):
    """The workers as submitit jobs on this machine (--launcher=local, the path of --launcher=slurm); the
    other tests start them as processes (the default)."""
    workdir = str(tmp_path / 'two')
    first = sweep(sweep_config, workdir, '--sweep=two', '--workers=2', '--launcher=local')
    assert first.returncode == 0, first.stderr[-3000:]
    assert '2 runs enqueued' in first.stdout
    # Two jobs, each a worker, each named with its log.
    submitted = [line for line in first.stdout.splitlines() if line.startswith('submitted job ')]
    assert sorted(line.rpartition(' ')[2] for line in submitted) == sorted(
        glob.glob(os.path.join(workdir, 'jobs', '*_0_log.out')))
    rows = results(workdir)
    assert sorted(rows) == ['learning_rate=0.5', 'learning_rate=2']
    assert all(row['status'] == 'complete' and float(row['final validation/nll']) > 0 for row in rows.values())
    assert rows['learning_rate=0.5']['final validation/nll'] != rows['learning_rate=2']['final validation/nll']
    assert all(launches(workdir, run) == 1 for run in rows)
    assert len(trials(workdir, 'two/two')) == 2
    for plot in ('validation_nll_vs_train.learning_rate.png', 'learning_curves.png'):
        assert os.path.getsize(os.path.join(workdir, 'plots', plot)) > 1000
    assert all(tensorboard_events(os.path.join(workdir, 'runs', run)).PluginTagToContent('hparams') for run in rows)
    with open(os.path.join(workdir, 'results.md')) as f:
        assert '| learning_rate=' in f.read()

    with open(os.path.join(workdir, 'results.csv')) as f:
        table = f.read()
    again = sweep(sweep_config, workdir, '--sweep=two', '--workers=2')
    assert again.returncode == 0 and '0 runs enqueued' in again.stdout
    with open(os.path.join(workdir, 'results.csv')) as f:
        assert f.read() == table
    assert all(launches(workdir, run) == 1 for run in rows) and len(trials(workdir, 'two/two')) == 2


def test_slurm_needs_a_database_server_and_sbatch_and_says_so_in_one_line(sweep_config, tmp_path):
    for flags, message in (((), '--launcher=slurm: SLURM runs the workers on other machines, which cannot share '
                                'the SQLite file of --workdir; start a database server and give '
                                '--storage=postgresql://'),
                           (('--storage=postgresql://sweeper@/postgres?host=/nowhere',),
                            "--launcher=slurm: sbatch is not on this machine's PATH")):
        refused = sweep(sweep_config, tmp_path / 'slurm', '--sweep=two', '--launcher=slurm', *flags)
        assert refused.returncode == 1 and 'Traceback' not in refused.stderr
        assert refused.stderr.strip().splitlines()[-1].startswith(f'error: {message}'), refused.stderr[-2000:]
        assert not (tmp_path / 'slurm').exists()


def test_each_slurm_job_asks_for_its_partition_gpus_cpus_and_time(tmp_path, monkeypatch):
    """The sbatch script submitit makes of a worker's job parameters (rendered: no cluster needed; submitit
    looks for srun, so a stand-in is on the PATH)."""
    import submitit
    from submitit.slurm import slurm
    from transformer_lab.sweeps import launch, worker
    (tmp_path / 'srun').write_text('#!/bin/sh\n')
    (tmp_path / 'srun').chmod(0o755)
    monkeypatch.setenv('PATH', f'{tmp_path}:{os.environ["PATH"]}')
    options = worker.Options(**{field.name: '' for field in dataclasses.fields(worker.Options)})
    request = launch.SlurmRequest(partition='gpu', gpus_per_worker=2, cpus_per_worker=8, time_minutes=90)
    executor = submitit.AutoExecutor(folder=str(tmp_path / 'jobs'), cluster='slurm')
    executor.update_parameters(**launch.job_parameters(launch.Launch(
        dataclasses.replace(options, study_name='bible/lr'), 4, False, 'min', 1, False, '', 'slurm', request)))
    script = slurm._make_sbatch_string(command='python -m submitit', folder=str(tmp_path / 'jobs'),
                                       **executor._executor.parameters).splitlines()
    for line in ('#SBATCH --partition=gpu', '#SBATCH --gpus-per-node=2', '#SBATCH --cpus-per-task=8',
                 '#SBATCH --time=90', '#SBATCH --nodes=1', '#SBATCH --ntasks-per-node=1',
                 '#SBATCH --job-name=sweep:bible/lr'):
        assert line in script, script


@pytest.mark.workers
@pytest.mark.parametrize('storage', ['default', 'postgresql'])
def test_a_killed_workers_run_is_handed_over_and_resumes_from_its_checkpoint(sweep_config, tmp_path, storage,
                                                                             request):
    workdir = str(tmp_path / 'long')
    url = request.getfixturevalue('postgres_url') if storage == 'postgresql' else ''
    victim = 'learning_rate=0.5,num_steps=600,every_steps=20'
    with sweep_in_background(sweep_config, workdir, '--sweep=long', '--workers=2',
                             *([f'--storage={url}'] if url else [])) as process:
        deadline = time.time() + 240
        while not glob.glob(os.path.join(workdir, 'runs', victim, 'checkpoints', '[0-9]*')):
            assert time.time() < deadline and process.poll() is None
            time.sleep(0.5)
        worker = next(trial.user_attrs['worker'] for trial in trials(workdir, 'long/long', url)
                      if trial.user_attrs.get('run') == victim)
        os.kill(int(worker.rsplit(':', 1)[1]), signal.SIGKILL)
        out, err = process.communicate(timeout=280)
    assert process.returncode == 0, err[-3000:]
    rows = results(workdir)
    assert [rows[run]['status'] for run in sorted(rows)] == ['complete', 'complete']
    assert int(rows[victim]['steps']) == 600 and launches(workdir, victim) == 2
    with open(os.path.join(workdir, 'runs', victim, 'console.log')) as f:
        resumed = [line for line in f if 'resumed from step' in line]
    assert resumed and int(resumed[0].split('resumed from step ')[1].split()[0]) > 0
    assert len(trials(workdir, 'long/long', url)) == 3   # the lost trial, its retry, the other run


def test_median_pruning_stops_a_clearly_worse_run_and_a_failed_run_says_why(sweep_config, tmp_path):
    workdir = str(tmp_path / 'prune')
    result = sweep(sweep_config, workdir, '--sweep=prune', '--prune=median', '--prune_startup_runs=1')
    assert result.returncode == 1
    rows = results(workdir)
    good, bad = rows['learning_rate=1'], rows['learning_rate=1e-05,num_steps=3000,every_steps=1000']
    assert good['status'] == 'complete' and bad['status'] == 'pruned'
    assert 0 < int(bad['steps']) < 3000
    failed = rows['data_dir=_nonexistent']
    assert failed['status'] == 'failed' and failed['error'].startswith('error: ') and 'nonexistent' in failed['error']
    assert result.stderr.strip().splitlines()[-1] == f'failed: data_dir=_nonexistent: {failed["error"]}'


def test_workers_split_the_gpus_or_share_them_with_a_memory_fraction():
    from transformer_lab.sweeps.launch import worker_environments
    split = worker_environments(2, ['0', '1', '2', '3'])
    assert [env['CUDA_VISIBLE_DEVICES'] for env in split] == ['0,1', '2,3']
    assert all('XLA_PYTHON_CLIENT_MEM_FRACTION' not in env for env in split)
    shared = worker_environments(4, ['0', '1'])
    assert [env['CUDA_VISIBLE_DEVICES'] for env in shared] == ['0', '1', '0', '1']
    assert {env['XLA_PYTHON_CLIENT_MEM_FRACTION'] for env in shared} == {'0.450'}


def test_a_search_draws_its_trials_once(sweep_config, tmp_path):
    workdir = str(tmp_path / 'search')
    result = sweep(sweep_config, workdir, '--sweep=lr', '--trials=3', '--sampler=random')
    assert result.returncode == 0, result.stderr[-3000:]
    rows = results(workdir)
    assert len(rows) == 3 and all(row['status'] == 'complete' for row in rows.values())
    rates = {float(row['train.learning_rate']) for row in rows.values()}
    assert len(rates) == 3 and all(0.3 <= rate <= 3.0 for rate in rates)
    assert sorted(name[:4] for name in rows) == ['000,', '001,', '002,']
    again = sweep(sweep_config, workdir, '--sweep=lr', '--trials=3', '--sampler=random')
    assert again.returncode == 0 and '0 runs enqueued' in again.stdout and len(results(workdir)) == 3


@pytest.fixture
def postgres_url():
    """A PostgreSQL server of this test's own on a Unix socket in a temporary directory, stopped after.
    As root (CI), the server runs as the Debian package's ``postgres`` user, which PostgreSQL requires."""
    binaries = sorted(glob.glob('/usr/lib/postgresql/*/bin/initdb'))
    if not binaries:
        pytest.skip('PostgreSQL is not installed (make setup installs the Debian package postgresql)')
    bin_dir = os.path.dirname(binaries[-1])
    as_user = ['runuser', '-u', 'postgres', '--'] if os.geteuid() == 0 else []
    directory = tempfile.mkdtemp(prefix='tl_pg_')
    if as_user:
        shutil.chown(directory, 'postgres')
    data, log = os.path.join(directory, 'data'), os.path.join(directory, 'log')
    subprocess.run([*as_user, f'{bin_dir}/initdb', '-D', data, '-U', 'sweeper', '--auth=trust'], check=True,
                   capture_output=True)
    subprocess.run([*as_user, f'{bin_dir}/pg_ctl', '-D', data, '-l', log, '-w', '-o',
                    f"-k {directory} -c listen_addresses=''", 'start'], check=True, capture_output=True)
    try:
        yield f'postgresql://sweeper@/postgres?host={directory}'
    finally:
        subprocess.run([*as_user, f'{bin_dir}/pg_ctl', '-D', data, '-m', 'fast', 'stop'], capture_output=True)
        shutil.rmtree(directory, ignore_errors=True)


@pytest.mark.workers
def test_two_machines_share_a_postgresql_storage(sweep_config, tmp_path, postgres_url):
    """The second invocation joins from a workdir of its own, as a machine with no shared filesystem.
    Runs of 1500 steps (~10 s of the tiny model) keep the first machine busy with one while the second
    starts, even on a loaded machine (with short runs the first could finish both before the second
    claims one)."""
    here, there = str(tmp_path / 'here'), str(tmp_path / 'there')
    shared = ('--sweep=shared', f'--storage={postgres_url}', '--study_name=shared')
    with sweep_in_background(sweep_config, here, *shared) as first:
        assert 'shared: 2 runs enqueued' in first.stdout.readline()
        joined = sweep(sweep_config, there, *shared, '--join')
        out, err = first.communicate(timeout=280)
    assert first.returncode == 0 and joined.returncode == 0, err[-3000:] + joined.stderr[-3000:]
    assert not os.path.exists(os.path.join(here, study.STORAGE_FILE))
    rows = results(here)
    assert sorted(row['status'] for row in rows.values()) == ['complete', 'complete']
    launched = sum(launches(workdir, run) for run in rows for workdir in (here, there)
                   if os.path.exists(os.path.join(workdir, 'runs', run, 'console.log')))
    assert launched == 2   # each run trained once, by one machine or the other
    assert glob.glob(os.path.join(there, 'runs', '*', 'console.log'))   # the joined machine trained one
    storage = optuna.storages.RDBStorage(postgres_url)
    assert len(optuna.load_study(study_name='shared', storage=storage).get_trials()) == 2
    status = sweep(sweep_config, there, '--sweep=shared', f'--storage={postgres_url}', '--study_name=shared', '--status')
    assert status.returncode == 0 and status.stdout.count('| complete |') == 2

    unreachable = sweep(sweep_config, tmp_path / 'nowhere', '--sweep=two',
                        f'--storage=postgresql://sweeper@/postgres?host={tmp_path}/no_server')
    assert unreachable.returncode == 1 and 'Traceback' not in unreachable.stderr
    assert not (tmp_path / 'nowhere').exists()
    assert unreachable.stderr.strip().splitlines()[-1].startswith('error: --storage=postgresql://')


def test_one_stop_request_delivered_twice_counts_once(monkeypatch):
    """SLURM signals every process of a job and a sweep's worker passes the signal on: one request."""
    from transformer_lab.training import preemption
    clock = iter([100.0, 100.2, 100.3, 102.0])
    monkeypatch.setattr(preemption.time, 'monotonic', lambda: next(clock))
    deliveries = preemption.Deliveries()
    assert [deliveries.new(number) for number in (signal.SIGTERM, signal.SIGTERM, signal.SIGINT, signal.SIGINT)] == [
        True, False, True, True]
    assert deliveries.count == 3


def test_submitits_time_limit_notice_stops_a_worker_and_its_run_as_sigterm_does():
    from transformer_lab.sweeps import worker
    saved = {number: signal.getsignal(number) for number in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR2)}
    run = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])
    try:
        stops = worker.StopRequests()
        stops.process = run
        os.kill(os.getpid(), signal.SIGUSR2)   # submitit: SIGUSR2 90 s before a SLURM job's time limit
        assert run.wait(timeout=30) == -signal.SIGTERM
        assert stops.count == 1 and stops.first == signal.SIGUSR2
    finally:
        run.kill()
        for number, handler in saved.items():
            signal.signal(number, handler)
