"""The loop under the failures of real runs: exact resume, non-finite losses, unreadable checkpoints,
best-checkpoint retention, config drift. In-process, on the tiny byte-level LM (no tokenizer to train).
Multi-device, signal and multi-host checks live in test_parallel_training.py."""

import json
import os
import shutil

import jax
import numpy as np
import pytest
from etils import epath

import transformer_lab
from helpers import load_config, run_script, truncate_array_files
from transformer_lab.data.text import TextPipeline
from transformer_lab.training.checkpoints import CheckpointError
from transformer_lab.training.logging import read_metrics
from transformer_lab.training.loop import NonFiniteLossError, WorkdirConflictError, train_and_evaluate


def tiny_lm(num_steps=20, **sections):
    """The tiny LM: checkpoints and NLL evaluations every 10 steps, logs every 5."""
    config = load_config('configs/transformer_lm_kjv.py:tiny')
    config.train.num_steps = num_steps
    config.eval.evaluators = ('nll',)
    for path, value in sections.items():
        section, name = path.split('__')
        config[section][name] = value
    return config


def params_of(workdir, step=None):
    return [np.asarray(leaf) for leaf in jax.tree.leaves(transformer_lab.load(workdir, step).params)]


def logged_train_steps(workdir):
    return [r['step'] for r in read_metrics(workdir) if 'train/loss' in r]


def test_a_moving_average_of_the_parameters_resumes_exactly_and_is_evaluated_beside_them(tmp_path):
    from transformer_lab import tasks
    from transformer_lab.config import ConfigError
    from transformer_lab.models.catalog import build_model
    from transformer_lab.training.state import assemble
    options = dict(train__ema_decay=0.9, checkpoint__every_steps=4)
    metrics = train_and_evaluate(tiny_lm(num_steps=14, **options), str(tmp_path / 'straight'))
    assert metrics['validation_ema/nll'] != metrics['validation/nll'] and np.isfinite(metrics['validation_ema/nll'])
    train_and_evaluate(tiny_lm(num_steps=7, **options), str(tmp_path / 'resumed'))
    train_and_evaluate(tiny_lm(num_steps=14, **options), str(tmp_path / 'resumed'))

    def averaged(workdir):
        return [np.asarray(leaf) for leaf in jax.tree.leaves(transformer_lab.load(workdir, ema=True).params)]
    for straight, resumed in zip(averaged(tmp_path / 'straight'), averaged(tmp_path / 'resumed')):
        np.testing.assert_array_equal(straight, resumed)
    # After one update the average is 0.9 x the initial parameters + 0.1 x the updated ones.
    config = tiny_lm(num_steps=1, **options)
    train_and_evaluate(config, str(tmp_path / 'one'))
    model = build_model(config.model, tasks.FIXED_TOKENIZERS[config.data.tokenizer]().vocab_size,
                                 seed=config.seed)
    initial = jax.tree.leaves(assemble(config, model).initial.params)
    for first, start, updated in zip(averaged(tmp_path / 'one'), initial, params_of(tmp_path / 'one')):
        np.testing.assert_allclose(first, 0.9 * np.asarray(start) + 0.1 * updated, rtol=1e-5, atol=1e-7)
    train_and_evaluate(tiny_lm(num_steps=1), str(tmp_path / 'plain'))
    with pytest.raises(ConfigError, match='the run kept no moving average of its parameters'):
        transformer_lab.load(str(tmp_path / 'plain'), ema=True)
    # The commands read it with --ema: evaluate.py's NLL of the average is the one the run logged.
    evaluation = run_script('evaluate.py', f'--workdir={tmp_path / "straight"}', '--ema')
    reported = json.loads(evaluation.stdout[evaluation.stdout.index('{'):])
    assert reported['ema'] and reported['validation/nll'] == pytest.approx(metrics['validation_ema/nll'], rel=1e-5)


@pytest.mark.parametrize('dropout_rng', ['threefry2x32', 'rbg'])
def test_stopped_and_resumed_run_is_bitwise_identical_to_an_uninterrupted_one(tmp_path, dropout_rng):
    """With dropout on, so the restored RNG matters, and the input pipeline restored mid-epoch; for
    each bit generator of the dropout masks (rbg's keys are 4 words, threefry's 2)."""
    options = dict(model__dropout_rate=0.1, checkpoint__every_steps=4, train__dropout_rng=dropout_rng)
    train_and_evaluate(tiny_lm(num_steps=14, **options), str(tmp_path / 'straight'))
    train_and_evaluate(tiny_lm(num_steps=7, **options), str(tmp_path / 'resumed'))
    assert sorted(os.listdir(tmp_path / 'resumed' / 'checkpoints')) == ['4', '7']
    train_and_evaluate(tiny_lm(num_steps=14, **options), str(tmp_path / 'resumed'))
    for straight, resumed in zip(params_of(tmp_path / 'straight'), params_of(tmp_path / 'resumed')):
        np.testing.assert_array_equal(straight, resumed)
    assert logged_train_steps(tmp_path / 'resumed') == [5, 7, 10, 14]
    assert logged_train_steps(tmp_path / 'straight') == [5, 10, 14]
    if dropout_rng == 'rbg':   # other masks than threefry's: the same run ends elsewhere
        train_and_evaluate(tiny_lm(num_steps=14, **dict(options, train__dropout_rng='threefry2x32')),
                           str(tmp_path / 'threefry'))
        assert not all(np.array_equal(a, b) for a, b in zip(params_of(tmp_path / 'straight'),
                                                            params_of(tmp_path / 'threefry')))


def test_with_worker_processes_a_resumed_run_is_bitwise_identical_and_each_workers_position_is_kept(tmp_path):
    """data.workers=2: batches made in grain worker processes; the checkpoint holds each worker's
    position, and the stream they make is the same every time (so a resumed run replays nothing). A
    run may change data.workers when it resumes."""
    options = dict(checkpoint__every_steps=4, data__workers=2)
    train_and_evaluate(tiny_lm(num_steps=10, **options), str(tmp_path / 'straight'))
    train_and_evaluate(tiny_lm(num_steps=5, **options), str(tmp_path / 'resumed'))
    with open(tmp_path / 'resumed' / 'checkpoints' / '5' / 'data' / 'process_0-of-1.json') as file:
        assert len(json.load(file)['iterators_in_use_states']) == 2   # grain's record of each worker's position
    train_and_evaluate(tiny_lm(num_steps=10, **options), str(tmp_path / 'resumed'))
    for straight, resumed in zip(params_of(tmp_path / 'straight'), params_of(tmp_path / 'resumed')):
        np.testing.assert_array_equal(straight, resumed)
    # Saved without workers, resumed with them: the position cannot carry over, so a new shuffle, said once.
    train_and_evaluate(tiny_lm(num_steps=5, checkpoint__every_steps=4), str(tmp_path / 'moved'))
    with pytest.warns(UserWarning, match='input pipeline position of another form'):
        train_and_evaluate(tiny_lm(num_steps=8, **options), str(tmp_path / 'moved'))
    assert logged_train_steps(tmp_path / 'moved') == [5, 8]


def test_records_logged_after_the_restored_checkpoint_are_not_repeated(tmp_path):
    """A run killed after logging steps beyond its last checkpoint trains them again on resume."""
    workdir = tmp_path / 'run'
    train_and_evaluate(tiny_lm(num_steps=15), str(workdir))   # checkpoints 10 and 15
    shutil.rmtree(workdir / 'checkpoints' / '15')             # as if killed between the log and the save
    train_and_evaluate(tiny_lm(num_steps=15), str(workdir))
    assert logged_train_steps(workdir) == [5, 10, 15]
    evaluations = [r['step'] for r in read_metrics(workdir) if 'validation/nll' in r]
    assert evaluations == [10, 15]


def corrupt(batch):
    """The first token of every row becomes an id beyond the vocabulary, whose embedding lookup is NaN:
    the kind of bad batch that turns a real run's loss into NaN."""
    targets = batch['targets'].copy()
    targets[:, 0] += 10 ** 6
    return {**batch, 'targets': targets}


def corrupt_batches(monkeypatch, is_corrupt):
    """Training batches whose 0-based index satisfies ``is_corrupt`` are corrupted."""
    original = TextPipeline.train_batches
    monkeypatch.setattr(TextPipeline, 'train_batches', lambda self, *args, **kwargs: original(
        self, *args, **kwargs).map_with_index(lambda index, batch: corrupt(batch) if is_corrupt(index) else batch))


def test_a_nan_loss_stops_the_run_with_the_step_and_the_last_good_checkpoint_intact(tmp_path, monkeypatch):
    corrupt_batches(monkeypatch, lambda index: index == 12)   # consumed by step 13
    with pytest.raises(NonFiniteLossError, match='step 13: loss=nan') as error:
        train_and_evaluate(tiny_lm(num_steps=20), str(tmp_path))
    assert 'the last good checkpoint is step 10' in str(error.value)
    assert os.listdir(tmp_path / 'checkpoints') == ['10']
    assert all(np.isfinite(p).all() for p in params_of(tmp_path))
    assert max(r['step'] for r in read_metrics(tmp_path)) == 10


def test_skip_mode_drops_the_non_finite_update_and_counts_it(tmp_path, monkeypatch):
    corrupt_batches(monkeypatch, lambda index: index == 12)
    metrics = train_and_evaluate(tiny_lm(num_steps=20, train__nonfinite='skip'), str(tmp_path))
    skipped = {r['step']: r['train/skipped_steps'] for r in read_metrics(tmp_path) if 'train/loss' in r}
    assert skipped == {5: 0, 10: 0, 15: 1, 20: 0}
    assert transformer_lab.load(tmp_path).params is not None and np.isfinite(metrics['validation/nll'])
    assert all(np.isfinite(p).all() for p in params_of(tmp_path))


def test_skip_mode_still_stops_after_too_many_consecutive_non_finite_steps(tmp_path, monkeypatch):
    corrupt_batches(monkeypatch, lambda index: index >= 11)
    config = tiny_lm(num_steps=20, train__nonfinite='skip', train__max_consecutive_skips=3)
    with pytest.raises(NonFiniteLossError, match='4 consecutive non-finite steps up to step 15'):
        train_and_evaluate(config, str(tmp_path))
    assert os.listdir(tmp_path / 'checkpoints') == ['10']


def test_a_failed_asynchronous_save_stops_the_run_with_the_step_and_what_is_on_disk(tmp_path, monkeypatch):
    """The save of step 20 fails in orbax's background thread, where the tmp directory is committed."""
    path_type = type(epath.Path(tmp_path))
    rename = path_type.rename

    def failing_rename(self, target):
        if os.path.basename(str(target)) == '20':
            raise OSError('No space left on device')
        return rename(self, target)

    monkeypatch.setattr(path_type, 'rename', failing_rename)
    with pytest.raises(CheckpointError, match=r"checkpoint of step 20 .* failed: OSError: No space left on device"
                                              r"\. Saved steps still on disk: \[10\]"):
        train_and_evaluate(tiny_lm(num_steps=40), str(tmp_path))
    assert max(r['step'] for r in read_metrics(tmp_path)) < 40   # reported once the save ends, not at the end
    assert [s for s in os.listdir(tmp_path / 'checkpoints') if s.isdigit()] == ['10']


def test_an_unreadable_latest_checkpoint_is_set_aside_and_the_previous_one_used(tmp_path):
    train_and_evaluate(tiny_lm(num_steps=20), str(tmp_path))
    truncate_array_files(tmp_path / 'checkpoints' / '20')
    with pytest.warns(UserWarning, match='checkpoint 20 .* is unreadable'):
        train_and_evaluate(tiny_lm(num_steps=30), str(tmp_path))
    assert sorted(os.listdir(tmp_path / 'checkpoints'), key=int) == ['10', '20', '30']
    assert os.listdir(tmp_path / 'checkpoints_unreadable') == ['20']
    assert logged_train_steps(tmp_path) == [5, 10, 15, 20, 25, 30]   # 15 and 20 trained again, logged once


def test_a_workdir_whose_checkpoints_are_all_unreadable_stops_and_is_left_alone(tmp_path):
    train_and_evaluate(tiny_lm(num_steps=20), str(tmp_path))
    for step in ('10', '20'):
        truncate_array_files(tmp_path / 'checkpoints' / step)
    before = {name: os.path.getmtime(tmp_path / name) for name in ('config.json', 'metrics.jsonl')}
    with pytest.raises(CheckpointError, match='no checkpoint in .* is readable') as error, pytest.warns(UserWarning):
        train_and_evaluate(tiny_lm(num_steps=30), str(tmp_path))
    assert 'step 20' in str(error.value) and 'step 10' in str(error.value)
    assert before == {name: os.path.getmtime(tmp_path / name) for name in before}
    assert sorted(os.listdir(tmp_path / 'checkpoints')) == ['10', '20']


def test_the_best_checkpoint_is_kept_besides_the_latest_and_never_instead_of_it(tmp_path):
    """best_mode='max' on the NLL makes the first evaluation the best: an old step that only the
    best-keeping policy retains, next to the latest that max_to_keep=1 retains."""
    config = tiny_lm(num_steps=30, checkpoint__max_to_keep=1, checkpoint__best_metric='validation/nll',
                     checkpoint__best_mode='max')
    train_and_evaluate(config, str(tmp_path))
    assert sorted(os.listdir(tmp_path / 'checkpoints'), key=int) == ['10', '30']
    config.checkpoint.best_mode = 'min'   # now the latest is also the best: only it remains
    config.train.num_steps = 40
    train_and_evaluate(config, str(tmp_path))
    assert sorted(os.listdir(tmp_path / 'checkpoints'), key=int) == ['40']


def test_resuming_with_changed_shapes_lists_every_differing_field(tmp_path):
    train_and_evaluate(tiny_lm(num_steps=10), str(tmp_path))
    changed = tiny_lm(num_steps=10)
    changed.model.d_ff, changed.data.max_length, changed.train.learning_rate = 128, 16, 2.0
    with pytest.raises(WorkdirConflictError) as error:
        train_and_evaluate(changed, str(tmp_path))
    message = str(error.value)
    for line in ('data.max_length: 32 in the run, 16 now', 'model.d_ff: 64 in the run, 128 now',
                 'train.learning_rate: 1.0 in the run, 2.0 now'):
        assert line in message
    with open(tmp_path / 'config.json') as f:
        assert json.load(f)['model']['d_ff'] == 64


def test_cadences_steps_and_topology_may_change_on_resume(tmp_path):
    train_and_evaluate(tiny_lm(num_steps=10), str(tmp_path))
    resumed = tiny_lm(num_steps=12, train__log_every_steps=2, eval__every_steps=6, checkpoint__every_steps=6,
                      train__grad_accum_steps=2, parallel__stop_check_every_steps=3)
    train_and_evaluate(resumed, str(tmp_path))
    assert logged_train_steps(tmp_path) == [5, 10, 12]


def test_read_only_commands_read_the_parameters_without_the_optimizer_state(tmp_path):
    """runs.load reads only a checkpoint's parameters (orbax's partial restore): a checkpoint whose
    optimizer state no optimizer of this config would make still loads, its parameters exact."""
    from transformer_lab.training.checkpoints import Checkpoints
    train_and_evaluate(tiny_lm(num_steps=2), str(tmp_path / 'run'))
    trained = transformer_lab.load(str(tmp_path / 'run'))
    (tmp_path / 'other').mkdir()
    shutil.copy(tmp_path / 'run' / 'config.json', tmp_path / 'other' / 'config.json')
    store = Checkpoints(str(tmp_path / 'other'), max_to_keep=1)
    store.save(2, {'step': np.int32(2), 'params': trained.params, 'opt_state': {'another_optimizer': np.ones(3)}})
    store.close()
    loaded = transformer_lab.load(str(tmp_path / 'other'))
    assert loaded.step == 2
    for expected, got in zip(jax.tree.leaves(trained.params), jax.tree.leaves(loaded.params), strict=True):
        np.testing.assert_array_equal(np.asarray(got), np.asarray(expected))
