"""Fixtures shared by the tests (helpers.py holds the helper functions), and the JAX compilation cache."""

import os
import tempfile

# A persistent compilation cache shared by the test processes and the subprocesses they start (fake
# device counts, signals, two hosts), which compile the same tiny programs again and again.
os.environ.setdefault('JAX_COMPILATION_CACHE_DIR', os.path.join(tempfile.gettempdir(), 'transformer_lab_jax_cache'))
os.environ.setdefault('JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS', '0')

import numpy as np
import pytest

from transformer_lab.config import base_config
from transformer_lab.data import standins


@pytest.fixture
def tiny_model_config():
    config = base_config().model
    config.d_model, config.num_heads, config.d_ff = 32, 4, 64
    config.num_encoder_layers = config.num_decoder_layers = 2
    config.max_length = 32
    return config


@pytest.fixture(scope='session')
def fake_wmt14_data_dir(tmp_path_factory):
    """wmt14_ende prepared from small generated files in the standard manual layout ("German": the
    English upper-cased)."""
    from transformer_lab.data.builders import wmt14
    root = tmp_path_factory.mktemp('wmt14')
    return standins.prepare_from_files(wmt14.Wmt14Ende, str(root / 'data'),
                                       lambda folder: standins.write_wmt14(folder, 40, np.random.default_rng(0)))


@pytest.fixture(scope='session')
def fake_music_data_dir(tmp_path_factory):
    """jsb_chorales and maestro prepared from small generated files in their manual_dir layouts: random
    four-voice pieces (some rests) and random piano performances, 3 / 2 / 2 per split."""
    from transformer_lab.data.builders import jsb_chorales, maestro
    rng = np.random.default_rng(0)
    data_dir, counts = str(tmp_path_factory.mktemp('music') / 'data'), {'train': 3, 'validation': 2, 'test': 2}
    standins.prepare_from_files(jsb_chorales.JsbChorales, data_dir, lambda f: standins.write_jsb(f, counts, 40, rng))
    return standins.prepare_from_files(maestro.Maestro, data_dir,
                                       lambda f: standins.write_random_maestro(f, counts, 60, rng))
