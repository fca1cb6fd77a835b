"""Shared test helpers: small configs, the naive attention reference, running the CLIs."""

import os
import subprocess
import sys
import tempfile

# A persistent compilation cache shared by the test processes and the subprocesses they start (fake
# device counts, signals, two hosts), which compile the same tiny programs again and again.
os.environ.setdefault('JAX_COMPILATION_CACHE_DIR', os.path.join(tempfile.gettempdir(), 'transformer_lab_jax_cache'))
os.environ.setdefault('JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS', '0')

import numpy as np
import pytest

from transformer_lab.config import base_config


def naive_attention(query, key, value, mask=None):
    """Obviously-correct numpy attention: loops over batch and head; mask True = may attend.

    query [B, Q, H, D], key/value [B, K, H, D], mask broadcastable to [B, H, Q, K].
    """
    batch, q_len, heads, dim = query.shape
    k_len = key.shape[1]
    mask = np.ones((batch, heads, q_len, k_len), bool) if mask is None else np.broadcast_to(
        mask, (batch, heads, q_len, k_len))
    out = np.zeros((batch, q_len, heads, value.shape[-1]))
    for b in range(batch):
        for h in range(heads):
            logits = query[b, :, h] @ key[b, :, h].T / np.sqrt(dim)
            logits = np.where(mask[b, h], logits, -np.inf)
            with np.errstate(invalid='ignore'):  # fully masked rows are NaN here; callers skip them
                weights = np.exp(logits - logits.max(-1, keepdims=True))
                weights /= weights.sum(-1, keepdims=True)
            out[b, :, h] = weights @ value[b, :, h]
    return out


@pytest.fixture
def tiny_model_config():
    config = base_config().model
    config.d_model, config.num_heads, config.d_ff = 32, 4, 64
    config.num_encoder_layers = config.num_decoder_layers = 2
    config.max_length = 32
    return config


def load_config(path_and_arg: str):
    """``'configs/x.py:tiny'`` -> the ConfigDict, as ``--config`` would load it."""
    import importlib.util
    import pathlib
    path, _, arg = path_and_arg.partition(':')
    spec = importlib.util.spec_from_file_location('config_module', pathlib.Path(__file__).parents[1] / path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config(arg or None)


WORDS = 'the a house cat dog runs sleeps sees big small red green river tree stone light'.split()


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


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def truncate_array_files(step_directory):
    """Corrupts a checkpoint: every array file of its state cut to 8 bytes (a save cut off by a crash)."""
    for root, _, files in os.walk(step_directory / 'state'):
        for name in files:
            if 'ocdbt.process' in root:
                with open(os.path.join(root, name), 'r+b') as f:
                    f.truncate(8)


def train_losses(workdir):
    from transformer_lab.training.logging import read_metrics
    return [r['train/loss'] for r in read_metrics(workdir) if 'train/loss' in r]


def device_env(devices: int = 1) -> dict:
    """The environment of a subprocess on ``devices`` fake CPU devices, with unbuffered output."""
    return {**os.environ, 'XLA_FLAGS': f'--xla_force_host_platform_device_count={devices}',
            'JAX_PLATFORMS': 'cpu', 'PYTHONUNBUFFERED': '1', 'PYTHONPATH': os.path.join(ROOT, 'tests')}


def run_script(script, *args, devices: int = 1, stdin: str | None = None):
    return subprocess.run([sys.executable, f'scripts/{script}', *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=300, env=device_env(devices), input=stdin)




MAESTRO_COLUMNS = ('canonical_composer', 'canonical_title', 'split', 'year', 'midi_filename', 'audio_filename',
                   'duration')


def write_maestro(folder, rows):
    """A MAESTRO manual_dir as its zip extracts: MIDI files (written with pretty_midi) and the csv.
    rows: (split, midi_filename, notes [(pitch, velocity, start, end)], sustain pedal [(value, time)])."""
    import csv

    import pretty_midi
    folder.mkdir(parents=True)
    for _, midi_filename, notes, pedal in rows:
        performance = pretty_midi.PrettyMIDI()
        piano = pretty_midi.Instrument(program=0)
        piano.notes = [pretty_midi.Note(velocity=v, pitch=p, start=s, end=e) for p, v, s, e in notes]
        piano.control_changes = [pretty_midi.ControlChange(64, value, time) for value, time in pedal]
        performance.instruments = [piano]
        (folder / midi_filename).parent.mkdir(parents=True, exist_ok=True)
        performance.write(str(folder / midi_filename))
    with open(folder / 'maestro-v3.0.0.csv', 'w', newline='') as file:
        writer = csv.writer(file)
        writer.writerow(MAESTRO_COLUMNS)
        for split, midi_filename, _, _ in rows:
            writer.writerow(['Frédéric Chopin', 'Ballade No. 1, Op. 23', split, midi_filename[:4], midi_filename,
                             midi_filename.replace('.midi', '.wav'), '3.0'])


def object_array(pieces) -> np.ndarray:
    """A 1-D object array of pieces, as in Jsb16thSeparated.npz (np.array would stack equal-shaped pieces)."""
    array = np.empty(len(pieces), object)
    array[:] = pieces
    return array


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
