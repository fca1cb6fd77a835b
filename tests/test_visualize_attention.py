"""scripts/visualize_attention.py on tiny image and music runs: the pictures of Fig. 2 and of arcs over
the notes, at the sizes their layout gives (1 layer, 2 heads). Text runs: tests/test_training.py."""

import os

import pytest
from PIL import Image

from helpers import run_script

pytestmark = pytest.mark.slow   # end-to-end: the command lines


def trained(tmp_path, config):
    result = run_script('train.py', f'--config={config}', f'--workdir={tmp_path}', '--config.train.num_steps=4',
                        '--config.eval.every_steps=4')
    assert result.returncode == 0, result.stderr[-3000:]
    return str(tmp_path)


def test_an_image_runs_queries_show_their_block_and_memory(tmp_path):
    workdir = trained(tmp_path / 'run', 'configs/image_transformer_fashion_mnist.py:2d,tiny')
    result = run_script('visualize_attention.py', f'--workdir={workdir}', '--position=0', '--position=400')
    assert result.returncode == 0, result.stderr[-3000:]
    names = sorted(os.listdir(os.path.join(workdir, 'attention')))
    assert names == ['query0_layer0.png', 'query400_layer0.png']
    with Image.open(os.path.join(workdir, 'attention', 'query400_layer0.png')) as picture:
        assert picture.size == (660, 260)                  # the image and 2 heads


def test_a_music_run_draws_arcs_over_its_notes(tmp_path):
    workdir = trained(tmp_path / 'run', 'configs/music_transformer_bach_chorales.py:relative,tiny')
    result = run_script('visualize_attention.py', f'--workdir={workdir}', '--example=1')
    assert result.returncode == 0, result.stderr[-3000:]
    with Image.open(os.path.join(workdir, 'attention', 'music_layer0.png')) as picture:
        assert picture.size == (800, 300)                  # 2 heads side by side
    wrong = run_script('visualize_attention.py', f'--workdir={workdir}', '--input=hello')
    assert wrong.returncode != 0 and '--input is for text runs' in wrong.stderr
