"""Stand-ins for the paper datasets that a machine without the web cannot fetch: random files in each
dataset's official layout (what a user puts in the TFDS ``manual_dir``), prepared by the dataset's own
builder, so that its real pipeline (file parsing, record reading, tokenizing, batching) runs at the
paper's shapes. The values are random; only the formats, shapes and code paths are the paper data's.

``prepare(name, data_dir)`` prepares one (``STANDINS``: wmt14_ende, cifar10_files, imagenet32_files,
maestro, jsb_chorales) in ``data_dir``, once; ``scripts/bench.py --mode=input`` and
``scripts/reproduce.py --smoke`` read them, and the tests build small ones with the writers here.
"""

from __future__ import annotations

import csv
import os
import pickle
from collections.abc import Callable

import numpy as np

from transformer_lab.data.builders import cifar10_files, imagenet32_files, jsb_chorales, maestro, wmt14

CIFAR10_FILES = ('data_batch_1', 'data_batch_2', 'data_batch_3', 'data_batch_4', 'data_batch_5', 'test_batch')
WORDS = 'the a house cat dog runs sleeps sees big small red green river tree stone light'.split()
MAESTRO_COLUMNS = ('canonical_composer', 'canonical_title', 'split', 'year', 'midi_filename', 'audio_filename',
                   'duration')


def write_image_batch(path: str, count: int, rng: np.random.Generator, *, first_label: int = 0,
                      classes: int = 10) -> tuple[np.ndarray, list[int]]:
    """One pickled batch of the CIFAR / downsampled-ImageNet python files: ``data`` uint8 [count, 3072]
    (the red, green and blue planes, each row-major) and ``labels`` from ``first_label``."""
    rows = rng.integers(0, 256, (count, 3072), dtype=np.uint8)
    labels = rng.integers(first_label, first_label + classes, count).tolist()
    with open(path, 'wb') as file:
        pickle.dump({b'data': rows, b'labels': labels}, file)
    return rows, labels


def write_cifar10(folder: str, images_per_file: int, rng: np.random.Generator) -> str:
    """CIFAR-10's ``cifar-10-batches-py`` in ``folder`` (its manual_dir); returns ``folder``."""
    batches = os.path.join(folder, 'cifar-10-batches-py')
    os.makedirs(batches, exist_ok=True)
    for name in CIFAR10_FILES:
        write_image_batch(os.path.join(batches, name), images_per_file, rng)
    return folder


def write_imagenet32(folder: str, images_per_file: int, rng: np.random.Generator) -> str:
    """ImageNet 32x32's ``Imagenet32_train/train_data_batch_1..10`` and ``val_data`` (labels 1..1000)."""
    train = os.path.join(folder, 'Imagenet32_train')
    os.makedirs(train, exist_ok=True)
    for index in range(1, 11):
        write_image_batch(os.path.join(train, f'train_data_batch_{index}'), images_per_file, rng,
                          first_label=1, classes=1000)
    write_image_batch(os.path.join(folder, 'val_data'), images_per_file, rng, first_label=1, classes=1000)
    return folder


def sentences(count: int, rng: np.random.Generator) -> tuple[list[str], list[str]]:
    """``count`` random English sentences of 3-8 words, and their "German": the same, upper-cased."""
    english = [' '.join(rng.choice(WORDS, size=rng.integers(3, 9))) for _ in range(count)]
    return english, [sentence.upper() for sentence in english]


def write_wmt14(folder: str, pairs_per_corpus: int, rng: np.random.Generator) -> str:
    """The WMT14 English-German files that data/builders/wmt14.py reads: the three training corpora as
    line-aligned text, newstest2013 likewise, newstest2014 as SGML."""
    os.makedirs(folder, exist_ok=True)
    files = {}
    for name in ('europarl-v7.de-en', 'commoncrawl.de-en', 'news-commentary-v9.de-en', 'newstest2013'):
        english, german = sentences(pairs_per_corpus, rng)
        files[f'{name}.en'], files[f'{name}.de'] = '\n'.join(english) + '\n', '\n'.join(german) + '\n'
    english, german = sentences(max(pairs_per_corpus // 2, 1), rng)
    for side, lines in (('src.en', english), ('ref.de', german)):
        segments = ''.join(f'<seg id="{i}">{line}</seg>\n' for i, line in enumerate(lines, start=1))
        files[f'newstest2014-deen-{side}.sgm'] = f'<srcset>\n<doc docid="d">\n{segments}</doc>\n</srcset>\n'
    for name, content in files.items():
        with open(os.path.join(folder, name), 'w') as file:
            file.write(content)
    return folder


def random_performance(notes: int, rng: np.random.Generator, seconds_per_note: float = 0.13) -> list[tuple]:
    """(pitch, velocity, start s, end s) of ``notes`` random piano notes."""
    starts = np.sort(rng.uniform(0, notes * seconds_per_note, notes))
    return [(int(p), int(v), float(s), float(s + d)) for p, v, s, d in
            zip(rng.integers(21, 109, notes), rng.integers(30, 110, notes), starts, rng.uniform(0.05, 1.0, notes))]


def write_maestro(folder: str, rows: list[tuple]) -> str:
    """A MAESTRO manual_dir as its zip extracts: MIDI files (written with pretty_midi) and the csv.
    rows: (split, midi_filename, notes [(pitch, velocity, start, end)], sustain pedal [(value, time)])."""
    import pretty_midi
    for _, midi_filename, notes, pedal in rows:
        performance = pretty_midi.PrettyMIDI()
        piano = pretty_midi.Instrument(program=0)
        piano.notes = [pretty_midi.Note(velocity=v, pitch=p, start=s, end=e) for p, v, s, e in notes]
        piano.control_changes = [pretty_midi.ControlChange(64, value, time) for value, time in pedal]
        performance.instruments = [piano]
        os.makedirs(os.path.dirname(os.path.join(folder, midi_filename)), exist_ok=True)
        performance.write(os.path.join(folder, midi_filename))
    with open(os.path.join(folder, 'maestro-v3.0.0.csv'), 'w', newline='') as file:
        writer = csv.writer(file)
        writer.writerow(MAESTRO_COLUMNS)
        for split, midi_filename, _, _ in rows:
            writer.writerow(['Frédéric Chopin', 'Ballade No. 1, Op. 23', split, midi_filename[:4], midi_filename,
                             midi_filename.replace('.midi', '.wav'), '3.0'])
    return folder


def write_random_maestro(folder: str, pieces: dict[str, int], notes: int, rng: np.random.Generator) -> str:
    """MAESTRO's layout with ``pieces[split]`` random performances of ``notes`` notes per split."""
    return write_maestro(folder, [(split, f'2004/{split}_{i}.midi', random_performance(notes, rng), [])
                                  for split, count in pieces.items() for i in range(count)])


def object_array(pieces) -> np.ndarray:
    """A 1-D object array of pieces, as in Jsb16thSeparated.npz (np.array would stack equal-shaped pieces)."""
    array = np.empty(len(pieces), object)
    array[:] = pieces
    return array


def write_jsb(folder: str, pieces: dict[str, int], steps: int, rng: np.random.Generator) -> str:
    """``Jsb16thSeparated.npz``: per fold, float16 [steps, 4] pitches of random four-voice pieces (NaN for
    a rest, as in the file)."""
    os.makedirs(folder, exist_ok=True)
    folds = {fold: object_array([np.where(rng.random((steps, 4)) < 0.05, np.nan, rng.integers(40, 80, (steps, 4)))
                                 .astype(np.float16) for _ in range(pieces[split])])
             for split, fold in jsb_chorales.SPLITS.items()}
    np.savez(os.path.join(folder, jsb_chorales.FILE_NAME), **folds)
    return folder


def prepare_from_files(builder_class, data_dir: str, write: Callable[[str], str]) -> str:
    """``builder_class`` prepared in ``data_dir`` from the files ``write(manual_dir)`` makes there (once:
    a prepared dataset is kept); returns ``data_dir``, for ``data.data_dir``."""
    import tensorflow_datasets as tfds
    builder = builder_class(data_dir=data_dir)
    if not builder.is_prepared():
        manual = write(os.path.join(data_dir, 'manual', builder.name))
        builder.download_and_prepare(file_format='array_record',
                                     download_config=tfds.download.DownloadConfig(manual_dir=manual))
    return data_dir


SPLITS = {'train': 6, 'validation': 2, 'test': 2}   # pieces per split of the music stand-ins
# name -> (its builder, what writes its files into a manual_dir)
STANDINS = {
    'wmt14_ende': (wmt14.Wmt14Ende, lambda folder, rng: write_wmt14(folder, 300, rng)),
    'cifar10_files': (cifar10_files.Cifar10Files, lambda folder, rng: write_cifar10(folder, 1000, rng)),
    'imagenet32_files': (imagenet32_files.Imagenet32Files, lambda folder, rng: write_imagenet32(folder, 100, rng)),
    'maestro': (maestro.Maestro, lambda folder, rng: write_random_maestro(folder, SPLITS, 800, rng)),
    'jsb_chorales': (jsb_chorales.JsbChorales, lambda folder, rng: write_jsb(folder, SPLITS, 128, rng)),
}


def prepare(name: str, data_dir: str, seed: int = 0) -> str:
    """The stand-in of dataset ``name`` (one of ``STANDINS``) prepared in ``data_dir``; returns it."""
    builder_class, write = STANDINS[name]
    rng = np.random.default_rng(seed)
    return prepare_from_files(builder_class, data_dir, lambda folder: write(folder, rng))
