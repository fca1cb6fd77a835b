"""The training bar's rate and ETA: steps counted when their results are back, the compiling first
step and the evaluation pauses kept out of the rate, the remaining evaluations added to the ETA."""

import os
import sys

import pytest

from transformer_lab.training import logging


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_rate_and_eta_leave_out_compilation_and_count_the_evaluations_to_come(monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(logging.time, 'perf_counter', clock)
    progress = logging.Progress(first_step=0, num_steps=100, eval_every=25)
    clock.now = 30.0                      # the first step compiles for 30 s
    progress.done(1)
    assert progress.rate(1) is None and progress.eta_seconds(1) is None
    for step in range(2, 26):             # then 0.5 s a step
        clock.now += 0.5
        progress.done(step)
    assert progress.rate(25) == pytest.approx(2.0)
    assert progress.evaluations_after(25) == 3
    assert progress.eta_seconds(25) == pytest.approx(75 / 2.0)          # no evaluation timed yet,
    assert progress.eta_text(25) == '00:37 + 3 evals'                    # and the bar says so
    with progress.paused():
        clock.now += 12.0                 # an evaluation of 12 s
    for step in range(26, 31):
        clock.now += 0.5
        progress.done(step)
    assert progress.rate(30) == pytest.approx(2.0)                       # the pause is not in the rate
    assert progress.eta_seconds(30) == pytest.approx(70 / 2.0 + 3 * 12.0)
    assert progress.eta_text(30) == '01:11'
    progress.close()


@pytest.mark.parametrize('num_steps,every,step,expected', [(100, 25, 0, 4), (100, 30, 0, 4), (100, 30, 90, 1),
                                                           (100, 0, 10, 1), (100, 25, 100, 0)])
def test_the_evaluations_to_come_include_the_final_one(num_steps, every, step, expected):
    progress = logging.Progress(first_step=0, num_steps=num_steps, eval_every=every)
    assert progress.evaluations_after(step) == expected
    progress.close()


def test_without_a_terminal_progress_is_one_plain_line_per_logged_step(capsys):
    progress = logging.Progress(first_step=0, num_steps=20, eval_every=10, plain=True)
    for step in range(1, 21):
        progress.done(step)
        if step % 5 == 0:
            progress.set(step, loss=f'{1 / step:.3f}')
    progress.close()
    lines = capsys.readouterr().err.splitlines()
    assert [line.split(':')[0] for line in lines] == ['step 5/20', 'step 10/20', 'step 15/20', 'step 20/20']
    assert lines[1].startswith('step 10/20: loss=0.100, rate=') and 'eta=' in lines[1]


@pytest.mark.slow
def test_a_batch_jobs_log_has_no_bar_redraws_absls_flags_show_the_libraries_logs_and_steps_can_be_profiled(
        tmp_path):
    import re

    from helpers import run_script
    absl_line = re.compile(r'^[IWE]\d{4} ', re.MULTILINE)     # absl's own format: level, month, day
    result = run_script('train.py', '--config=configs/music_transformer_bach_chorales.py:tiny',
                        f'--workdir={tmp_path / "plain"}', '--config.train.log_every_steps=5')
    assert result.returncode == 0, result.stderr[-3000:]
    assert '\r' not in result.stderr + result.stdout and not absl_line.search(result.stderr)
    logged = [line for line in result.stderr.splitlines() if line.startswith('step ') and '/20: loss=' in line]
    assert [line.split(':')[0] for line in logged] == ['step 5/20', 'step 10/20', 'step 15/20', 'step 20/20']
    (tmp_path / 'logs').mkdir()
    result = run_script('train.py', '--config=configs/music_transformer_bach_chorales.py:tiny',
                        f'--workdir={tmp_path / "absl"}', '--config.train.num_steps=3', '--verbosity=0',
                        '--alsologtostderr', f'--log_dir={tmp_path / "logs"}', '--config.train.profile_steps=2,2')
    assert result.returncode == 0, result.stderr[-3000:]
    assert absl_line.search(result.stderr) and any(name.endswith('INFO') for name in os.listdir(tmp_path / 'logs'))
    # train.profile_steps: a trace of steps 2-3 where TensorBoard's profile tab looks for it.
    traces = list((tmp_path / 'absl' / 'tensorboard' / 'plugins' / 'profile').glob('*/*.xplane.pb'))
    assert len(traces) == 1 and traces[0].stat().st_size > 1000
    assert 'profile of steps 2-3 written to' in result.stdout + result.stderr
    # The README's `tensorboard --logdir WORKDIR` and its profile tab: installed by `make`, from the lock.
    from importlib.metadata import entry_points
    assert os.path.exists(os.path.join(os.path.dirname(sys.executable), 'tensorboard'))
    assert 'profile' in {plugin.name for plugin in entry_points(group='tensorboard_plugins')}
