"""What every data pipeline shares: the dataset entry, its prepared TFDS source, grain worker processes,
and the checks of the ``data`` section (the order of examples and the batches: data/batching.py).

The pipelines of each modality build on ``TfdsPipeline``: data/text.py, data/images.py, data/music.py.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import warnings

import grain
import numpy as np
import tensorflow_datasets as tfds

from transformer_lab.config import ConfigError, positive, require
from transformer_lab.data.prepare import stale


class DatasetNotPreparedError(FileNotFoundError):
    """The dataset is not in the data dir; the message names the command that prepares it."""


@dataclasses.dataclass(frozen=True)
class Dataset:
    """A TFDS dataset: its builder module (imported to register it), how to prepare it, and which
    pipeline reads it (``modality``: text in data/text.py, image in data/images.py, music in data/music.py).

    ``manual_dir`` says what a dataset prepared from files the user brings needs in ``--manual_dir``
    ('' when it needs none). A ``user_files`` dataset (image_folder, midi_folder, ...) is prepared once
    per ``--name`` from the user's folder: ``named(NAME)`` is the one that a config's
    ``data.name='BUILDER/NAME'`` reads, in ``DATA_DIR/BUILDER/NAME``, from its files alone."""
    tfds_name: str
    builder_module: str
    description: str
    modality: str = 'text'
    manual_dir: str = ''
    user_files: bool = False
    config_name: str = ''

    def named(self, name: str) -> Dataset:
        return dataclasses.replace(self, config_name=name or DEFAULT_NAME)

    @property
    def name(self) -> str:
        """What ``data.name`` says: ``bible_translation``, ``image_folder/mine``."""
        return f'{self.tfds_name}/{self.config_name}' if self.config_name else self.tfds_name

    def prepare_command(self, data_dir: str) -> str:
        name = f' --name={self.config_name}' if self.config_name else ''
        manual_dir = ' --manual_dir=DIR' if self.manual_dir else ''
        command = f'python scripts/prepare_data.py --dataset={self.tfds_name}{name}{manual_dir} --data_dir={data_dir}'
        return f'{command} (DIR: {self.manual_dir})' if self.manual_dir else command

    def prepared_dir(self, data_dir: str) -> str:
        """Where the prepared version of this dataset lives (its ``dataset_info.json``)."""
        importlib.import_module(self.builder_module)
        version = str(tfds.builder_cls(self.tfds_name).VERSION)
        return os.path.join(data_dir, self.name, version)

    def builder(self, data_dir: str) -> tfds.core.DatasetBuilder:
        """The prepared dataset's builder, to read it; DatasetNotPreparedError (naming the command that
        prepares it) when it is not in ``data_dir``. A user's dataset is read from its files alone."""
        importlib.import_module(self.builder_module)
        if self.user_files:
            path = self.prepared_dir(data_dir)
            builder = tfds.builder_from_directory(path) if os.path.exists(
                os.path.join(path, 'dataset_info.json')) else None
        else:
            builder = tfds.builder(self.tfds_name, data_dir=data_dir)
        if builder is None or not builder.is_prepared():
            raise DatasetNotPreparedError(f'data.name={self.name!r} is not prepared in {data_dir}. '
                                          f'Prepare it with: {self.prepare_command(data_dir)}')
        return builder


DEFAULT_NAME = 'default'


def resolve_data_dir(data_dir: str = '') -> str:
    """The TFDS data dir: ``data_dir`` (config data.data_dir), else $TFDS_DATA_DIR, else ~/tensorflow_datasets."""
    return os.path.expanduser(data_dir or os.environ.get('TFDS_DATA_DIR') or '~/tensorflow_datasets')


def text(value) -> str:
    """TFDS Text features come back as bytes."""
    return value.decode('utf-8') if isinstance(value, bytes) else str(value)


class TfdsPipeline:
    """What every pipeline shares: the prepared TFDS builder, its random-access split sources and the
    grain chains over them. ``TOKENIZERS`` names the tokenizers a modality's pipeline reads with (None:
    trained on the dataset)."""

    TOKENIZERS: dict = {}

    @classmethod
    def check_config(cls, data, model) -> None:
        """The ``data`` section against this pipeline and the model it feeds."""
        require(data.tokenizer in cls.TOKENIZERS, 'data.tokenizer',
                f'{data.tokenizer!r} is not one of {sorted(cls.TOKENIZERS)} (the tokenizers of {cls.__name__})')
        tokenizer = cls.TOKENIZERS[data.tokenizer]
        voices = getattr(tokenizer, 'voices', 0)
        require(model.num_voices in (0, voices), 'model.num_voices', f'{model.num_voices} voices, but '
                f'data.tokenizer={data.tokenizer!r} has {voices}; valid: {sorted({0, voices})}')
        require(not data.get('time_stretches') or hasattr(tokenizer, 'stretch'), 'data.time_stretches',
                f"stretches performances only (data.tokenizer='performance'), not {data.tokenizer!r}; valid: ()")
        require(data.max_length <= model.max_length, 'data.max_length',
                f'{data.max_length} exceeds model.max_length={model.max_length}')
        positive(data, 'data', 'batch_size')
        require(isinstance(data.workers, int) and data.workers >= 0, 'data.workers',
                f'{data.workers!r}; valid: 0 (batches made in the training process) or a number of worker processes')

    def __init__(self, data_config, dataset: Dataset):
        self.config = data_config
        self.dataset = dataset
        self.data_dir = resolve_data_dir(data_config.data_dir)
        self.builder = dataset.builder(self.data_dir)
        for change in stale(os.fspath(self.builder.data_dir)):
            warnings.warn(f'data.name={dataset.name!r}: {change}; to prepare it again, add --overwrite to '
                          f'{dataset.prepare_command(self.data_dir)}')

    def source(self, split: str):
        """The random-access TFDS source of a split (a clear error for unknown splits)."""
        splits = self.builder.info.splits
        if split not in splits:
            raise ConfigError('data.train_split/eval_split', f'split {split!r} of {self.dataset.name} '
                              f'does not exist; valid: {sorted(splits)}')
        return self.builder.as_data_source(split=split)


def in_workers(batches: grain.IterDataset, workers: int) -> grain.IterDataset:
    """``batches`` made in ``workers`` grain worker processes (``data.workers``; 0: in this process). Each
    worker makes whole batches from every ``workers``-th example of this host's order, and the batches
    come back in turn, so the stream is deterministic for a given worker count; the iterator's state (each
    worker's position) goes into checkpoints as in one process."""
    if not workers:
        return batches
    from absl import flags
    if not flags.FLAGS.is_parsed():   # grain reads its absl flags; a notebook or a test never parsed any
        flags.FLAGS.mark_as_parsed()
    return batches.mp_prefetch(grain.MultiprocessingOptions(num_workers=workers))


def pad_to(array: np.ndarray, size: int, axis: int = -1) -> np.ndarray:
    """Zero-pads ``axis`` to ``size`` (0 = padding for tokens, segment ids and weights alike)."""
    widths = [(0, 0)] * array.ndim
    widths[axis] = (0, size - array.shape[axis])
    return np.pad(np.asarray(array, np.int32), widths)
