"""The loop across processes: jit / pmap / FSDP / gradient accumulation on 8 fake devices, checkpoints
moved between device counts, pre-emption signals, and two processes on the loopback address. Each
check runs in subprocesses (device counts are fixed at JAX start-up) sharing the compilation cache."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest

import transformer_lab
from helpers import ROOT, device_env, run_script
from transformer_lab.training import preemption
from transformer_lab.training.logging import read_metrics

pytestmark = pytest.mark.slow   # end-to-end: the command lines, several processes

LM_TINY = '--config=configs/transformer_lm_kjv.py:tiny'


def start(args, devices=1):
    return subprocess.Popen([sys.executable, *args], cwd=ROOT, env=device_env(devices), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def finish(process, timeout=300):
    stdout, stderr = process.communicate(timeout=timeout)
    assert process.returncode == 0, stderr[-3000:]
    return stdout


def train_cli(workdir, num_steps, devices, *overrides):
    return start(['scripts/train.py', LM_TINY, f'--workdir={workdir}', f'--config.train.num_steps={num_steps}',
                  '--config.eval.evaluators=nll', *overrides], devices)


def test_jit_pmap_fsdp_and_accumulation_agree_on_eight_devices():
    """Three Adam steps from one initialisation on the same batches, against one device under jit."""
    report = json.loads(finish(start(['tests/parallel_checks.py'], devices=8)).strip().splitlines()[-1])
    assert report['devices'] == 8
    for variant in ('jit_8', 'pmap_8', 'fsdp_8', 'jit_8_accum_2', 'pmap_8_accum_2'):
        result = report[variant]
        assert result['loss_difference'] < 1e-5, (variant, result)
        assert result['param_difference'] < 1e-4, (variant, result)   # Adam steps are ~1e-3 here
        assert result['loss_change'] > 0.1, (variant, result)
    assert report['fsdp_8']['sharded_params'] > 0 and report['jit_8']['sharded_params'] == 0


def test_checkpoints_move_between_device_counts_and_modes(tmp_path):
    """8 -> 1, 8 -> 2 (continued in pmap mode) and 1 -> 8 (continued with FSDP-sharded parameters) devices:
    the restored run evaluates as logged and trains on identically."""
    finish(train_cli(tmp_path / 'from8', 10, 8))
    finish(train_cli(tmp_path / 'from1', 10, 1))
    logged = [r['validation/nll'] for r in read_metrics(tmp_path / 'from8') if 'validation/nll' in r][-1]
    evaluation = run_script('evaluate.py', f'--workdir={tmp_path / "from8"}', '--evaluators=nll', devices=1)
    assert evaluation.returncode == 0, evaluation.stderr[-3000:]
    assert json.loads(evaluation.stdout[evaluation.stdout.index('{'):])['validation/nll'] == pytest.approx(logged, rel=1e-5)

    shutil.copytree(tmp_path / 'from8', tmp_path / 'from8_to2')
    continued = {'from8': train_cli(tmp_path / 'from8', 20, 1),
                 'from8_to2': train_cli(tmp_path / 'from8_to2', 20, 2, '--config.parallel.mode=pmap'),
                 'from1': train_cli(tmp_path / 'from1', 20, 8, '--config.parallel.shard_parameters=True',
                                    '--config.parallel.min_shard_size=1024')}
    outputs = {name: finish(process) for name, process in continued.items()}
    assert 'batch: 8 rows per update = 2 devices x 1 micro-batches x 4 rows' in outputs['from8_to2']
    assert '(pmap mode)' in outputs['from8_to2']
    final_losses = {name: [r['train/loss'] for r in read_metrics(tmp_path / name) if r['step'] == 20
                           and 'train/loss' in r] for name in continued}
    assert all(len(losses) == 1 for losses in final_losses.values()), final_losses
    values = [losses[0] for losses in final_losses.values()]
    assert max(values) - min(values) < 1e-4 * max(values), final_losses


def test_sigterm_saves_a_checkpoint_and_the_same_command_resumes(tmp_path):
    process = train_cli(tmp_path, 100_000, 1)
    for line in process.stdout:   # evaluations are printed on stdout, unbuffered
        if line.startswith('step 10:'):
            break
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 128 + signal.SIGTERM, stderr[-3000:]
    stopped = int(stderr.split('stopped at step ')[1].split()[0])
    assert 'Run the same command again' in stderr and f'to resume from step {stopped}' in stderr
    assert stopped >= 10 and str(stopped) in os.listdir(tmp_path / 'checkpoints')
    assert max(r['step'] for r in read_metrics(tmp_path)) == stopped   # the partial window is logged

    finish(train_cli(tmp_path, stopped + 3, 1))
    steps = [r['step'] for r in read_metrics(tmp_path) if 'train/loss' in r]
    assert steps == sorted(set(steps)) and steps[-1] == stopped + 3
    assert transformer_lab.load(tmp_path).step == stopped + 3


def test_a_second_signal_exits_at_once():
    program = ('import os, signal\n'
               'from transformer_lab.training.preemption import StopSignals\n'
               'with StopSignals() as signals:\n'
               '    os.kill(os.getpid(), signal.SIGTERM)\n'
               '    print("stop requested:", signals.requested(1) == signal.SIGTERM, flush=True)\n'
               '    os.kill(os.getpid(), signal.SIGINT)\n'
               '    print("still running", flush=True)\n')
    result = subprocess.run([sys.executable, '-c', program], cwd=ROOT, env=device_env(1), capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 128 + signal.SIGINT
    assert result.stdout.splitlines() == ['stop requested: True']
    assert 'SIGINT received again: exiting now, without a checkpoint' in result.stderr


def stop_answers(monkeypatch, processes, signal_step, other_host_signal=0):
    """{step: requested(step)} over 10 steps, checking every 4, with ``processes`` faked and the
    all-gather recorded (the other host's flag is ``other_host_signal``); this host receives SIGTERM
    in ``signal_step`` (0: never). Returns (answers, the steps that all-gathered)."""
    monkeypatch.setattr(jax, 'process_count', lambda: processes)
    gathers = []

    def process_allgather(flag):
        gathers.append(int(flag))
        return np.array([flag, other_host_signal], np.int32)

    monkeypatch.setattr(preemption.multihost_utils, 'process_allgather', process_allgather)
    answers, gathered_at = {}, []
    with preemption.StopSignals(4, last_step=10) as signals:
        for step in range(1, 11):
            if step == signal_step:
                signal.raise_signal(signal.SIGTERM)
            before = len(gathers)
            answers[step] = signals.requested(step)
            gathered_at += [step] * (len(gathers) - before)
    return answers, gathered_at


def test_many_hosts_agree_on_a_stop_only_every_few_steps_and_at_the_last(monkeypatch):
    """An all-gather waits for the queued steps, so with several hosts only the check steps (multiples of
    parallel.stop_check_every_steps, and the last step) all-gather; one host checks its flag every step."""
    answers, gathered_at = stop_answers(monkeypatch, 2, signal_step=2)
    assert gathered_at == [4, 8, 10]
    assert [step for step, answer in answers.items() if answer] == [4, 8, 10]   # the loop stops at the first
    assert answers[4] == signal.SIGTERM
    answers, gathered_at = stop_answers(monkeypatch, 2, signal_step=0, other_host_signal=signal.SIGINT)
    assert gathered_at == [4, 8, 10] and answers[4] == signal.SIGINT and answers[3] is None   # the other host's
    answers, gathered_at = stop_answers(monkeypatch, 1, signal_step=2, other_host_signal=signal.SIGINT)
    assert gathered_at == [] and answers[1] is None and answers[2] == signal.SIGTERM   # no collective


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(('127.0.0.1', 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize('mode', ['jit', 'pmap'])
def test_two_processes_on_loopback_train_like_one_process_on_the_same_global_batches(tmp_path, mode):
    workdir, port = tmp_path / 'run', free_port()
    hosts = [start(['tests/two_hosts.py', 'host', str(index), str(port), str(workdir), mode]) for index in range(2)]
    reference = start(['tests/two_hosts.py', 'reference', str(tmp_path / 'reference.npz')], devices=2)
    outputs = [finish(process) for process in (*hosts, reference)]
    assert 'step 10: validation/nll=' in outputs[0] and 'step 10' not in outputs[1]   # only the chief reports

    records = read_metrics(workdir)
    assert [r['step'] for r in records if 'train/loss' in r] == [5, 10]      # written once, by the chief
    assert len(os.listdir(workdir / 'tensorboard')) == 1
    assert sorted(os.listdir(workdir / 'checkpoints' / '10' / 'data')) == [
        'commit_success.txt', 'process_0-of-2.json', 'process_1-of-2.json']   # each host's data position

    expected = np.load(tmp_path / 'reference.npz')
    logged = [r['train/loss'] for r in records if 'train/loss' in r]
    np.testing.assert_allclose(logged, [expected['losses'][:5].mean(), expected['losses'][5:].mean()], rtol=1e-5)
    params = jax.tree.leaves(transformer_lab.load(workdir).params)
    for index, leaf in enumerate(params):
        np.testing.assert_allclose(np.asarray(leaf), expected[f'param_{index}'], atol=1e-5)
    # Each host evaluates its own examples, so the windows of text differ slightly from one process's.
    nll = [r['validation/nll'] for r in records if 'validation/nll' in r][0]
    assert nll == pytest.approx(float(expected['nll']), rel=0.01)


def test_a_sigterm_on_one_host_stops_both_at_the_same_check_step_and_the_run_resumes(tmp_path):
    """Host 1 receives SIGTERM in step 2; the hosts agree every 4 steps, so both stop at step 4, save it
    (each host's data position in the one checkpoint) and exit 143; the same command resumes there."""
    workdir, port = tmp_path / 'run', free_port()
    hosts = [start(['tests/two_hosts.py', 'host', str(index), str(port), str(workdir), 'jit', '10', '4',
                    '2' if index == 1 else '0']) for index in range(2)]
    try:
        outputs = [process.communicate(timeout=300) for process in hosts]
    finally:
        for process in hosts:
            process.kill()
    for process, (_, stderr) in zip(hosts, outputs):
        assert process.returncode == 128 + signal.SIGTERM, stderr[-3000:]
        assert 'stopped: SIGTERM received: stopped at step 4 and saved a checkpoint' in stderr, stderr[-3000:]
    assert 'SIGTERM received: saving a checkpoint within 4 steps' in outputs[1][1]
    assert 'saving a checkpoint within' not in outputs[0][1]   # host 0 stopped on host 1's signal
    assert [name for name in os.listdir(workdir / 'checkpoints') if name.isdigit()] == ['4']
    assert sorted(os.listdir(workdir / 'checkpoints' / '4' / 'data')) == [
        'commit_success.txt', 'process_0-of-2.json', 'process_1-of-2.json']
    assert [r['step'] for r in read_metrics(workdir) if 'train/loss' in r] == [4]   # the partial window

    port = free_port()
    resumed = [start(['tests/two_hosts.py', 'host', str(index), str(port), str(workdir), 'jit', '6', '4'])
               for index in range(2)]
    outputs = [finish(process) for process in resumed]
    assert 'resumed from step 4' in outputs[0]
    assert [r['step'] for r in read_metrics(workdir) if 'train/loss' in r] == [4, 5, 6]
    assert transformer_lab.load(workdir).step == 6
