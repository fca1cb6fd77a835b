"""The training loop end to end through the CLIs on the real data: loss, files, resume, bad configs."""

import json
import os

import pytest

import transformer_lab
from helpers import run_script, tensorboard_events, train_losses
from transformer_lab.training.logging import read_metrics

pytestmark = pytest.mark.slow   # end-to-end: the command lines, several processes


@pytest.fixture(scope='module')
def bible_run(tmp_path_factory):
    """The CLI trains the tiny translation config 40 steps (sampling translations every 20), then resumes it
    to 50 in the same workdir."""
    workdir = str(tmp_path_factory.mktemp('bible'))
    config = '--config=configs/transformer_bible_enes.py:tiny'
    first = run_script('train.py', config, f'--workdir={workdir}', '--config.train.num_steps=40',
                       '--config.sample.every_steps=20', '--config.sample.num_samples=2')
    assert first.returncode == 0, first.stderr[-3000:]
    steps_after_first = sorted(os.listdir(os.path.join(workdir, 'checkpoints')))
    second = run_script('train.py', config, f'--workdir={workdir}', '--config.train.num_steps=50')
    assert second.returncode == 0, second.stderr[-3000:]
    return workdir, first.stdout, second.stdout, steps_after_first


def test_tiny_translation_lowers_its_loss(bible_run):
    workdir, first_stdout, _, _ = bible_run
    losses = train_losses(workdir)
    assert losses[-1] < losses[0] - 0.5, losses
    evaluations = [r for r in read_metrics(workdir) if 'validation/nll' in r]
    assert [r['step'] for r in evaluations] == [10, 20, 30, 40, 50]
    # BLEU decodes, so it has a cadence of its own (600 steps): here only at the end of each of the two runs,
    # each time with its signature beside it.
    assert [r['step'] for r in evaluations if 'validation/bleu' in r] == [40, 50]
    assert all(r['validation/bleu_signature'].startswith('nrefs:1|') for r in evaluations if 'validation/bleu' in r)
    assert evaluations[-1]['validation/nll'] < evaluations[0]['validation/nll']
    assert 'validation/bleu=' in first_stdout


def test_run_writes_checkpoints_metrics_and_config(bible_run):
    workdir, _, _, steps_after_first = bible_run
    assert steps_after_first == ['10', '20', '30', '40']  # every 10 steps, the last 5 kept
    with open(os.path.join(workdir, 'config.json')) as f:
        assert json.load(f)['model']['d_model'] == 32
    assert os.path.exists(os.path.join(workdir, 'tokenizer.model'))
    assert os.listdir(os.path.join(workdir, 'tensorboard'))


def test_tensorboard_shows_the_runs_hyperparameters_metrics_signatures_and_sampled_translations(bible_run):
    from tensorboard.plugins.hparams import plugin_data_pb2
    workdir = bible_run[0]
    events = tensorboard_events(workdir)
    assert [event.step for event in events.Scalars('validation/nll')] == [10, 20, 30, 40, 50]
    signature = events.Tensors('validation/bleu_signature/text_summary')[-1].tensor_proto.string_val[0].decode()
    assert signature.startswith('nrefs:1|')
    # Translations sampled by the loop every 20 steps of the first run: files and TensorBoard text alike.
    texts = events.Tensors('samples/txt/text_summary')
    assert [event.step for event in texts] == [20, 40]
    with open(os.path.join(workdir, 'samples', 'step_40.txt')) as f:
        assert texts[-1].tensor_proto.string_val[0].decode() == ''.join('    ' + line for line in f)
    # One HParams session (the resumed run adds none): every config field, the evaluations' metrics.
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
    folder = os.path.join(workdir, 'tensorboard')
    assert len(os.listdir(folder)) == 2   # an events file per run
    assert sum(value.tag == '_hparams_/session_start_info' for name in os.listdir(folder)
               for event in EventFileLoader(os.path.join(folder, name)).Load() for value in event.summary.value) == 1
    sessions = events.PluginTagToContent('hparams')
    start = plugin_data_pb2.HParamsPluginData.FromString(sessions['_hparams_/session_start_info'])
    assert start.session_start_info.hparams['model.d_model'].number_value == 32
    assert start.session_start_info.hparams['data.name'].string_value == 'bible_translation'
    experiment = plugin_data_pb2.HParamsPluginData.FromString(sessions['_hparams_/experiment']).experiment
    assert {'validation/nll', 'validation/bleu'} <= {info.name.tag for info in experiment.metric_infos}


def test_second_run_resumes_from_the_saved_step(bible_run):
    workdir, _, second_stdout, _ = bible_run
    logged_steps = [r['step'] for r in read_metrics(workdir) if 'train/loss' in r]
    assert logged_steps == sorted(set(logged_steps)), 'a resumed run must not log a step twice'
    assert logged_steps[-1] == 50 and 45 in logged_steps
    assert max(int(s) for s in os.listdir(os.path.join(workdir, 'checkpoints'))) == 50
    assert 'validation/bleu=' in second_stdout


def test_load_evaluate_and_sample_a_trained_run(bible_run):
    workdir = bible_run[0]
    run = transformer_lab.load(workdir)
    assert run.step == 50 and run.config.model.d_model == 32
    evaluation = run_script('evaluate.py', f'--workdir={workdir}', '--evaluators=nll')
    assert evaluation.returncode == 0, evaluation.stderr[-3000:]
    reported = json.loads(evaluation.stdout[evaluation.stdout.index('{'):])
    logged = [r for r in read_metrics(workdir) if r['step'] == 50 and 'validation/nll' in r][-1]
    assert reported['step'] == 50
    assert reported['validation/nll'] == pytest.approx(logged['validation/nll'], rel=1e-4)
    unknown_split = run_script('evaluate.py', f'--workdir={workdir}', '--split=dev')
    assert unknown_split.returncode != 0
    assert "split 'dev' of bible_translation does not exist; valid: ['test', 'train', 'validation']" in unknown_split.stderr
    sample = run_script('sample.py', f'--workdir={workdir}', '--num_samples=2', '--temperature=0')
    assert sample.returncode == 0, sample.stderr[-3000:]
    with open(os.path.join(workdir, 'samples', 'step_50.txt')) as f:
        assert f.read().count('->') == 2


@pytest.mark.parametrize('override,message', [
    ('--config.model.name=transformr', "model.name: 'transformr' is not one of ['decoder_only', 'encoder_decoder', 'image_transformer']"),
    ('--config.model.num_heads=3', 'model.d_model: 32 is not divisible by model.num_heads=3'),
    ('--config.data.data_dir=/nonexistent', 'python scripts/prepare_data.py --dataset=bible_translation'),
])
def test_bad_config_exits_nonzero_naming_the_problem_and_leaves_the_workdir_alone(bible_run, override, message):
    workdir = bible_run[0]
    before = {p: os.path.getmtime(os.path.join(workdir, p)) for p in ('config.json', 'metrics.jsonl')}
    result = run_script('train.py', '--config=configs/transformer_bible_enes.py:tiny', f'--workdir={workdir}', override)
    assert result.returncode != 0
    assert message in result.stderr, result.stderr[-2000:]
    assert before == {p: os.path.getmtime(os.path.join(workdir, p)) for p in before}


def test_changed_model_on_an_existing_workdir_is_refused(bible_run):
    result = run_script('train.py', '--config=configs/transformer_bible_enes.py:tiny', f'--workdir={bible_run[0]}',
                           '--config.model.d_ff=128')
    assert result.returncode != 0 and 'model.d_ff: 64 in the run, 128 now' in result.stderr


def test_averaging_the_last_checkpoints_is_their_element_wise_mean(bible_run, tmp_path):
    import jax
    import numpy as np
    workdir = bible_run[0]       # checkpoints 10 ... 50
    single = {step: transformer_lab.load(workdir, step).params for step in (30, 40, 50)}
    for last, steps in ((3, (30, 40, 50)), (2, (40, 50))):
        averaged = transformer_lab.load(workdir, average_last=last)
        assert averaged.step == 50
        expected = jax.tree.map(lambda *params: np.mean(params, axis=0), *[single[s] for s in steps])
        jax.tree.map(lambda got, want: np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7),
                     averaged.params, expected)
    with pytest.raises(FileNotFoundError, match=r'--average_last=6, but .* holds 5 checkpoints .*max_to_keep >= 6'):
        transformer_lab.load(workdir, average_last=6)

    output = tmp_path / 'averaged'
    written = run_script('average_checkpoints.py', f'--workdir={workdir}', '--last=3', f'--output={output}')
    assert written.returncode == 0, written.stderr[-3000:]
    reloaded = transformer_lab.load(str(output))
    assert reloaded.step == 50
    jax.tree.map(lambda got, want: np.testing.assert_allclose(got, want, rtol=1e-6),
                 reloaded.params, transformer_lab.load(workdir, average_last=3).params)
    again = run_script('average_checkpoints.py', f'--workdir={workdir}', '--last=2', f'--output={output}')
    assert again.returncode != 0 and 'is not empty' in again.stderr
    assert sorted(os.listdir(output / 'checkpoints')) == ['50']


def test_translate_cli_reads_stdin_and_evaluate_reports_bleu_both_ways(bible_run):
    from transformer_lab.decoding import translate
    workdir = bible_run[0]
    sources = ['In the beginning God created the heaven and the earth.', 'And God said, Let there be light.']
    result = run_script('translate.py', f'--workdir={workdir}', '--beam_size=1', stdin='\n'.join(sources) + '\n')
    assert result.returncode == 0, result.stderr[-3000:]
    run = transformer_lab.load(workdir)
    expected = translate(run.graphdef, run.params, run.tokenizer, sources, rows=32,
                         source_length=run.config.data.max_length, max_length=run.config.data.max_length)
    assert result.stdout.splitlines() == expected

    evaluation = run_script('evaluate.py', f'--workdir={workdir}', '--evaluators=bleu', '--beam_size=2',
                            '--average_last=2')
    assert evaluation.returncode == 0, evaluation.stderr[-3000:]
    reported = json.loads(evaluation.stdout[evaluation.stdout.index('{'):])
    assert reported['averaged_checkpoints'] == 2 and reported['step'] == 50
    assert 0 <= reported['validation/bleu'] <= 100 and 0 <= reported['validation/tokenized_bleu'] <= 100
    assert reported['validation/bleu_signature'].startswith('nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:')
    assert reported['validation/tokenized_bleu_signature'].endswith('|prepared:quotes+moses-es+compounds')


def test_visualize_attention_draws_every_kind_for_an_example_and_for_a_sentence(bible_run, tmp_path):
    from PIL import Image
    workdir = bible_run[0]
    result = run_script('visualize_attention.py', f'--workdir={workdir}', f'--out={tmp_path}', '--head=1')
    assert result.returncode == 0, result.stderr[-3000:]
    names = sorted(os.listdir(tmp_path))
    assert names == sorted(f'{kind}_{what}.png' for kind in ('encoder_self', 'decoder_self', 'encoder_decoder')
                           for what in ('layer0_head1', 'all'))
    with Image.open(tmp_path / 'encoder_decoder_all.png') as page:
        assert page.size == (360, 220)                     # 1 layer x 2 heads of the tiny config
    sentence = run_script('visualize_attention.py', f'--workdir={workdir}', f'--out={tmp_path}/sentence',
                          '--input=In the beginning God created the heaven and the earth.', '--layer=0')
    assert sentence.returncode == 0, sentence.stderr[-3000:]
    with Image.open(tmp_path / 'sentence' / 'encoder_self_layer0_head0.png') as heatmap:
        width, height = heatmap.size
    assert (width - 200) % 25 == 0 and width > 200 + 25 * 5 and (height - 150) % 25 == 0   # a column per piece
    bad = run_script('visualize_attention.py', f'--workdir={workdir}', '--layer=7')
    assert bad.returncode != 0 and 'the model has 1 layers' in bad.stderr and 'Traceback' not in bad.stderr
