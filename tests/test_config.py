"""Config variants (big_vision style), the shipped configs' paper values, and validation errors."""

import json
import re

import pytest

from helpers import load_config
from transformer_lab.config import ConfigError, parse_arg
from transformer_lab.training.validation import validate


def test_parse_arg_flags_values_and_errors():
    arg = parse_arg('big,layers=4', big=False, tiny=False, layers=6, rate=0.1)
    assert arg.big and not arg.tiny and arg.layers == 4 and arg.rate == 0.1
    assert parse_arg('rate=0.3', rate=0.1).rate == 0.3
    with pytest.raises(ConfigError, match=r"unknown config variant 'huge'; valid: \['big'"):
        parse_arg('huge', big=False)
    with pytest.raises(ConfigError, match='is not a int'):
        parse_arg('layers=four', layers=6)


def test_wmt_configs_are_the_papers_table_3_rows():
    base, big = load_config('configs/transformer_wmt14_ende.py:base'), load_config('configs/transformer_wmt14_ende.py:big')
    for config in (base, big):
        assert config.model.num_encoder_layers == config.model.num_decoder_layers == 6
        assert config.model.d_model // config.model.num_heads == 64      # d_k = d_v = 64
        assert config.train.label_smoothing == 0.1 and config.train.warmup_steps == 4000
        assert (config.train.b1, config.train.b2, config.train.eps) == (0.9, 0.98, 1e-9)
        assert config.model.tie_output and config.model.share_embeddings and config.model.norm == 'post'
        assert 24_000 <= config.data.batch_size * config.data.max_length <= 26_000  # ~25K tokens per side
    assert (base.model.d_model, base.model.d_ff, base.model.num_heads, base.model.dropout_rate) == (512, 2048, 8, 0.1)
    assert (big.model.d_model, big.model.d_ff, big.model.num_heads, big.model.dropout_rate) == (1024, 4096, 16, 0.3)
    assert (base.train.num_steps, big.train.num_steps) == (100_000, 300_000)
    for config in (base, big):
        assert (config.eval.beam_size, config.eval.length_penalty, config.eval.extra_length) == (4, 0.6, 50)
    assert (base.checkpoint.max_to_keep, big.checkpoint.max_to_keep) == (5, 20)   # checkpoints averaged


def test_variants_combine():
    config = load_config('configs/transformer_wmt14_ende.py:big,tiny')
    assert config.model.d_model == 32 and config.model.dropout_rate == 0.3
    config = load_config('configs/transformer_bible_enes.py:steps=7,layers=4')
    assert config.train.num_steps == 7
    assert config.model.num_encoder_layers == config.model.num_decoder_layers == 4
    tiny_deep = load_config('configs/transformer_lm_kjv.py:tiny,layers=3')
    assert tiny_deep.model.num_decoder_layers == 3 and tiny_deep.model.d_model == 32


@pytest.mark.parametrize('field,value,message', [
    ('model.attention.type', 'local_3d',
     "'local_3d' is not one of ['dot_product', 'local_1d', 'local_2d', 'relative', 'relative_local_1d']"),
    ('model.norm', 'middle', 'model.norm'),
    ('data.name', 'imagenet', "data.name: 'imagenet' is not one of"),
    ('eval.evaluators', ('nll', 'rouge'), "eval.evaluators: 'rouge'"),
    ('data.max_length', 999, 'exceeds model.max_length'),
    ('train.schedule', 'linear', 'train.schedule'),
    ('parallel.mode', 'pjit', "parallel.mode: 'pjit' is not one of ['jit', 'pmap']"),
    ('parallel.stop_check_every_steps', 0, 'parallel.stop_check_every_steps: must be a positive whole number of '
                                           'steps, got 0'),
    ('train.nonfinite', 'ignore', "train.nonfinite: 'ignore' is not one of ['skip', 'stop']"),
    ('checkpoint.best_metric', 'validation/rouge', "checkpoint.best_metric: 'validation/rouge' is not one of"),
    ('train.profile_steps', (0, 2), 'train.profile_steps: 0,2: valid: START,COUNT'),
    ('eval.evaluator_every_steps.bleu', 0, 'eval.evaluator_every_steps.bleu: must be a positive number of steps, got 0'),
    ('eval.evaluator_every_steps.rouge', 5, "eval.evaluator_every_steps: 'rouge' is not one of"),
    ('sample.every_steps', -5, 'sample.every_steps: must be a number of steps, 0 for none, got -5'),
    ('sample.num_samples', 0, 'sample.num_samples: must be positive, got 0'),
])
def test_validation_names_the_field(field, value, message):
    config = load_config('configs/transformer_bible_enes.py:tiny')
    section, _, name = field.rpartition('.')
    target = config
    for part in section.split('.'):
        target = target[part]
    target[name] = value
    with pytest.raises(ConfigError, match=message.replace('[', r'\[').replace(']', r'\]')):
        validate(config)


def test_a_run_saved_before_a_field_existed_is_refused_in_one_line(tmp_path):
    """No release yet, so no shims: a config.json without a field of today's configs names the file and
    the missing field, and is not read; the config as saved today is."""
    from transformer_lab.training.workdir import DamagedRunError, saved_config
    config = load_config('configs/transformer_lm_kjv.py:tiny')
    saved = json.loads(config.to_json_best_effort())
    (tmp_path / 'config.json').write_text(json.dumps(saved))
    assert saved_config(str(tmp_path)) == saved
    del saved['parallel']['stop_check_every_steps']
    (tmp_path / 'config.json').write_text(json.dumps(saved))
    with pytest.raises(DamagedRunError, match=r'config.json was written by an earlier version of transformer_lab '
                                              r'\(it has no parallel.stop_check_every_steps\)'):
        saved_config(str(tmp_path))


def test_each_evaluator_runs_on_its_own_cadence_and_all_of_them_at_the_end():
    from transformer_lab.training.evaluators import due
    config = load_config('configs/transformer_bible_enes.py')     # NLL every 300 steps, BLEU every 600
    assert [due(config, step, last=step == 1000) for step in (300, 600, 700, 1000)] == [
        ('nll',), ('nll', 'bleu'), (), ('nll', 'bleu')]
    config.eval.every_steps = 0                                      # 0: at the end only
    assert due(config, 300, last=False) == () and due(config, 1200, last=False) == ('bleu',)


def test_unknown_attention_option_is_refused():
    config = load_config('configs/transformer_bible_enes.py:tiny')
    config.model.attention.block_size = 8
    with pytest.raises(ConfigError, match=r"model.attention.block_size: not an option of attention type 'dot_product'"):
        validate(config)


def test_pmap_mode_cannot_shard_parameters():
    config = load_config('configs/transformer_bible_enes.py:tiny')
    config.parallel.mode, config.parallel.shard_parameters = 'pmap', True
    with pytest.raises(ConfigError, match="parallel.shard_parameters: pmap replicates parameters"):
        validate(config)


def test_a_batch_that_does_not_split_over_devices_and_micro_batches_names_both():
    from transformer_lab.training import parallel
    with pytest.raises(ConfigError, match=r'data.batch_size: 6 rows do not split evenly over the 1 devices x '
                                          r'4 micro-batches \(train.grad_accum_steps\); use a multiple of 4'):
        parallel.batch_layout(6, micro_batches=4)
    assert parallel.batch_layout(8, micro_batches=4).describe() == (
        'batch: 8 rows per update = 1 devices x 4 micro-batches x 2 rows (8 rows per host, 1 hosts)')


MUSIC, IMAGE = 'configs/music_transformer_bach_chorales.py:tiny', 'configs/image_transformer_cifar10.py:dmol,tiny'


@pytest.mark.parametrize('path,changes,message', [
    (MUSIC, {'model.positional': 'sinusoidal_concat'}, 'model.position_features: must be even and in (0, d_model=32)'),
    (MUSIC, {'model.positional': 'sinusoidal_concat', 'model.position_features': 16, 'model.tie_output': True},
     "model.tie_output: must be False with positional='sinusoidal_concat'"),
    (MUSIC, {'model.num_voices': 3}, "model.num_voices: 3 voices, but data.tokenizer='chorale' has 4; valid: [0, 4]"),
    (MUSIC, {'data.time_stretches': (0.95, 1.05)}, "data.time_stretches: stretches performances only"),
    (MUSIC, {'model.attention_dims': 31}, 'model.attention_dims: 31 is not divisible by model.num_heads=2'),
    (IMAGE, {'train.label_smoothing': 0.1}, 'train.label_smoothing: must be 0 with model.head=dmol'),
    (IMAGE, {'model.head': 'softmax'}, "model.head: 'softmax' is not one of ['categorical', 'dmol']"),
    (IMAGE, {'model.positional': 'sinusoidal_concat'}, "model.positional: 'sinusoidal_concat' is not one of"),
    (IMAGE, {'data.tokenizer': 'bytes'}, "data.tokenizer: 'bytes' is not one of ['pixels']"),
    (MUSIC, {'eval.evaluators': ('nll', 'bleu')}, "eval.evaluators: 'bleu' does not apply to a music model; valid: nll"),
    (MUSIC, {'model.name': 'encoder_decoder'}, "data.inputs_feature: '' with model.name='encoder_decoder': an "
                                               "encoder-decoder music model reads a melody"),
    (IMAGE, {'eval.evaluators': ('bits_per_char',)},
     "eval.evaluators: 'bits_per_char' does not apply to an image model; valid: bits_per_dim, nll"),
])
def test_music_and_image_fields_are_validated(path, changes, message):
    config = load_config(path)
    for field, value in changes.items():
        section, name = field.split('.')
        config[section][name] = value
    with pytest.raises(ConfigError, match=re.escape(message)):
        validate(config)


def test_music_configs_are_the_papers_models():
    jsb = load_config('configs/music_transformer_jsb.py:relative')
    assert (jsb.model.num_decoder_layers, jsb.model.d_model, jsb.model.d_ff, jsb.model.num_heads) == (5, 512, 512, 8)
    assert jsb.model.attention.to_dict() == {'type': 'relative', 'max_relative_position': 256}
    assert jsb.data.max_length == 1024 and jsb.data.transpose == 3
    relative, local, baseline = (load_config(f'configs/music_transformer_maestro.py:{variant}')
                                 for variant in ('relative', 'local', 'baseline'))
    for config in (relative, local, baseline):
        assert (config.model.num_decoder_layers, config.model.d_model, config.model.attention_dims) == (6, 256, 512)
        assert config.data.max_length == 2048 and tuple(config.data.time_stretches) == (0.95, 0.975, 1.0, 1.025, 1.05)
        validate(config)
    assert relative.model.attention.max_relative_position == 1024 and relative.model.d_ff == 2048
    assert local.model.attention.to_dict() == {'type': 'relative_local_1d', 'max_relative_position': 2048,
                                               'block_length': 512}
    assert local.model.d_ff == 1024 and baseline.model.attention.type == 'dot_product'
    assert load_config('configs/music_transformer_maestro.py').model.attention.type == 'relative'
    combined = load_config('configs/music_transformer_bach_chorales.py:relative,concat,voices')
    assert combined.model.positional == 'sinusoidal_concat' and combined.model.position_features == 64
    assert combined.model.num_voices == 4 and not combined.model.tie_output
    with pytest.raises(ConfigError, match='pick one attention variant'):
        load_config('configs/music_transformer_bach_chorales.py:relative,local')

