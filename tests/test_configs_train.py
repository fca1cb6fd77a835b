"""Every config's tiny variant, and bfloat16 against float32."""


import numpy as np
import pytest

from helpers import compilations_of, load_config, run_script, train_losses
from transformer_lab.training.loop import train_and_evaluate

pytestmark = pytest.mark.slow   # end-to-end: the command lines, several processes


@pytest.mark.parametrize('config_name', ['transformer_lm_kjv.py:tiny', 'transformer_wmt14_ende.py:tiny'])
def test_every_config_tiny_variant_trains_and_evaluates(tmp_path, config_name, fake_wmt14_data_dir):
    """... and compiles its train step once: fixed shapes, no recompilation after the first step."""
    config = load_config(f'configs/{config_name}')
    if config.data.name == 'wmt14_ende':
        config.data.data_dir = fake_wmt14_data_dir
    with compilations_of('train_step') as compiled:
        metrics = train_and_evaluate(config, str(tmp_path))
    assert len(compiled) == 1, compiled
    losses = train_losses(str(tmp_path))
    assert losses[-1] < losses[0], losses
    assert all(np.isfinite(v) for v in metrics.values() if not isinstance(v, str))
    if config.data.name == 'kjv_text':
        assert 2.0 < metrics['validation/bits_per_char'] < 8.0
        sample = run_script('sample.py', f'--workdir={tmp_path}', '--num_samples=2', '--max_length=24')
        assert sample.returncode == 0, sample.stderr[-3000:]
        with open(tmp_path / 'samples' / 'step_20.txt') as f:
            assert f.read().startswith(config.sample.prompt)
        (tmp_path / 'opening.txt').write_text('In the beginning God\n')     # a text file as the primer
        sample = run_script('sample.py', f'--workdir={tmp_path}', f'--primer={tmp_path / "opening.txt"}',
                            '--num_samples=2', '--max_length=32')
        assert sample.returncode == 0, sample.stderr[-3000:]
        with open(tmp_path / 'samples' / 'step_20.txt') as f:
            continued = f.read().split('\n\n')
        assert len(continued) == 2 and all(text.startswith('In the beginning God') for text in continued)


def test_bfloat16_compute_tracks_float32(tmp_path):
    """bf16 carries 8 mantissa bits (relative rounding ~0.4% per op); over 50 steps of a tiny model the
    loss curves agree to a few percent, far tighter than the ~2 nats the loss falls by, and the last
    losses within 1% (issue 16's condition for counting a bfloat16 speed-up), both for bfloat16
    throughout and for bfloat16 products with float32 results (``model.activation_dtype='float32'``)."""
    curves = {}
    for dtype, activation_dtype in (('float32', ''), ('bfloat16', ''), ('bfloat16', 'float32')):
        config = load_config('configs/transformer_lm_kjv.py:tiny')
        config.model.dtype, config.model.activation_dtype = dtype, activation_dtype
        config.train.num_steps, config.eval.evaluators = 50, ()
        train_and_evaluate(config, str(tmp_path / f'{dtype}{activation_dtype}'))
        curves[dtype, activation_dtype] = np.array(train_losses(str(tmp_path / f'{dtype}{activation_dtype}')))
    reference = curves['float32', '']
    assert reference[-1] < reference[0] - 1.0, reference
    for variant in (('bfloat16', ''), ('bfloat16', 'float32')):
        np.testing.assert_allclose(curves[variant], reference, rtol=0.03, err_msg=str(variant))
        np.testing.assert_allclose(curves[variant][-1], reference[-1], rtol=0.01, err_msg=str(variant))


@pytest.mark.parametrize('config_name', ['music_transformer_jsb.py:tiny,relative,voices',
                                         'music_transformer_maestro.py:tiny,local'])
def test_music_configs_on_manual_dir_data_train_and_evaluate(tmp_path, config_name, fake_music_data_dir):
    config = load_config(f'configs/{config_name}')
    config.data.data_dir = fake_music_data_dir
    metrics = train_and_evaluate(config, str(tmp_path))
    losses = train_losses(str(tmp_path))
    assert losses[-1] < losses[0], losses
    assert all(np.isfinite(v) for v in metrics.values() if not isinstance(v, str))
