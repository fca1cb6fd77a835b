"""Fixtures shared by the tests (helpers.py holds the helper functions), and the JAX compilation cache."""

import os
import tempfile

# A persistent compilation cache shared by the test processes and the subprocesses they start (fake
# device counts, signals, two hosts), which compile the same tiny programs again and again.
os.environ.setdefault('JAX_COMPILATION_CACHE_DIR', os.path.join(tempfile.gettempdir(), 'transformer_lab_jax_cache'))
os.environ.setdefault('JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS', '0')

import numpy as np
import pytest

from helpers import WORDS, object_array, write_maestro
from transformer_lab.config import base_config


@pytest.fixture
def tiny_model_config():
    config = base_config().model
    config.d_model, config.num_heads, config.d_ff = 32, 4, 64
    config.num_encoder_layers = config.num_decoder_layers = 2
    config.max_length = 32
    return config


@pytest.fixture(scope='session')
def fake_wmt14_data_dir(tmp_path_factory):
    """wmt14_ende prepared from small generated files in the standard manual layout."""
    import tensorflow_datasets as tfds

    import transformer_lab.data.builders.wmt14 as wmt14

    rng = np.random.default_rng(0)
    root = tmp_path_factory.mktemp('wmt14')

    def pairs(count):
        english = [' '.join(rng.choice(WORDS, size=rng.integers(3, 9))) for _ in range(count)]
        return english, [sentence.upper() for sentence in english]  # "German": the same, upper-cased

    files = {}
    for name, count in (('europarl-v7.de-en', 120), ('commoncrawl.de-en', 40), ('news-commentary-v9.de-en', 40),
                        ('newstest2013', 20)):
        en, de = pairs(count)
        files[f'{name}.en'], files[f'{name}.de'] = '\n'.join(en) + '\n', '\n'.join(de) + '\n'
    en, de = pairs(20)
    for side, lines in (('src.en', en), ('ref.de', de)):
        segments = ''.join(f'<seg id="{i}">{line}</seg>\n' for i, line in enumerate(lines, start=1))
        files[f'newstest2014-deen-{side}.sgm'] = f'<srcset>\n<doc docid="d">\n{segments}</doc>\n</srcset>\n'
    for name, content in files.items():
        (root / 'manual' / name).parent.mkdir(parents=True, exist_ok=True)
        (root / 'manual' / name).write_text(content)
    wmt14.Wmt14Ende(data_dir=root / 'data').download_and_prepare(
        file_format='array_record', download_config=tfds.download.DownloadConfig(manual_dir=root / 'manual'))
    return str(root / 'data')


@pytest.fixture(scope='session')
def fake_music_data_dir(tmp_path_factory):
    """jsb_chorales and maestro prepared from small generated files in their manual_dir layouts: random
    four-voice pieces (some rests) and random piano performances, 3 / 2 / 2 per split."""
    import tensorflow_datasets as tfds

    from transformer_lab.data.builders import jsb_chorales, maestro
    rng = np.random.default_rng(0)
    root = tmp_path_factory.mktemp('music')
    counts = {'train': 3, 'validation': 2, 'test': 2}
    folds = {fold: object_array([np.where(rng.random((40, 4)) < 0.05, np.nan, rng.integers(40, 80, (40, 4)))
                                 .astype(np.float16) for _ in range(counts[split])])
             for split, fold in jsb_chorales.SPLITS.items()}
    (root / 'jsb').mkdir()
    np.savez(root / 'jsb' / jsb_chorales.FILE_NAME, **folds)

    def performance():
        starts = np.sort(rng.uniform(0, 8, 60))
        return [(int(p), int(v), float(s), float(s + d)) for p, v, s, d in
                zip(rng.integers(40, 90, 60), rng.integers(30, 110, 60), starts, rng.uniform(0.05, 1.0, 60))]

    write_maestro(root / 'maestro', [(split, f'2004/{split}_{i}.midi', performance(), [])
                                     for split, count in counts.items() for i in range(count)])
    for builder, manual in ((jsb_chorales.JsbChorales, 'jsb'), (maestro.Maestro, 'maestro')):
        builder(data_dir=root / 'data').download_and_prepare(
            file_format='array_record', download_config=tfds.download.DownloadConfig(manual_dir=root / manual))
    return str(root / 'data')
