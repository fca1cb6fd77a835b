"""What every data pipeline shares: the dataset entry, its prepared TFDS source, grain worker processes,
and the checks of the ``data`` section (the order of examples and the batches: data/batching.py).

The pipelines of each modality build on ``TfdsPipeline``: data/text.py, data/images.py, data/music.py.
"""

from __future__ import annotations

import bisect
import dataclasses
import importlib
import json
import os
import warnings

import grain
import numpy as np
import tensorflow_datasets as tfds

from transformer_lab.config import ConfigError, UserError, positive, require
from transformer_lab.data.provenance import stale


class DatasetNotPreparedError(FileNotFoundError):
    """The dataset is not in the data dir; the message names the command that prepares it."""


class DamagedDatasetError(UserError):
    """A file of a prepared dataset is missing or cannot be read (cut short, overwritten); the message
    names it and the command that prepares the dataset again."""


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

    def prepare_command(self, data_dir: str, *, overwrite: bool = False) -> str:
        name = f' --name={self.config_name}' if self.config_name else ''
        manual_dir = ' --manual_dir=DIR' if self.manual_dir else ''
        command = (f'python scripts/prepare_data.py --dataset={self.tfds_name}{name}{manual_dir} --data_dir={data_dir}'
                   + (' --overwrite' if overwrite else ''))
        return f'{command} (DIR: {self.manual_dir})' if self.manual_dir else command

    def prepared_dir(self, data_dir: str) -> str:
        """Where the prepared version of this dataset lives (its ``dataset_info.json``)."""
        importlib.import_module(self.builder_module)
        version = str(tfds.builder_cls(self.tfds_name).VERSION)
        return os.path.join(data_dir, self.name, version)

    def builder(self, data_dir: str) -> tfds.core.DatasetBuilder:
        """The prepared dataset's builder, to read it: DatasetNotPreparedError (naming the command that
        prepares it) when it is not in ``data_dir``, DamagedDatasetError when a file that describes it is
        missing or not JSON. A user's dataset is read from its files alone (its features.json too)."""
        path = self.prepared_dir(data_dir)
        if not os.path.isdir(path):   # preparing moves a dataset in only once it is whole
            raise DatasetNotPreparedError(f'data.name={self.name!r} is not prepared in {data_dir}. '
                                          f'Prepare it with: {self.prepare_command(data_dir)}')
        for name in ('dataset_info.json', 'features.json') if self.user_files else ('dataset_info.json',):
            try:
                with open(os.path.join(path, name), 'rb') as file:
                    json.load(file)
            except (FileNotFoundError, ValueError):
                raise self.damaged(data_dir, os.path.join(path, name), 'not JSON') from None
        return tfds.builder_from_directory(path) if self.user_files else tfds.builder(self.tfds_name, data_dir=data_dir)

    def damaged(self, data_dir: str, path: str, problem: str) -> DamagedDatasetError:
        """The error for ``path``, a file of this dataset prepared in ``data_dir``: missing, or unreadable
        for ``problem``."""
        state = f'cannot be read ({problem})' if os.path.exists(path) else 'is missing'
        return DamagedDatasetError(f'data.name={self.name!r}: {path} {state}; prepare it again: '
                                   f'{self.prepare_command(data_dir, overwrite=True)}')


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
            warnings.warn(f'data.name={dataset.name!r}: {change}; to prepare it again: '
                          f'{dataset.prepare_command(self.data_dir, overwrite=True)}')
        for split in self.builder.info.splits:   # damage found now: not mid-run, nor hidden by kept token ids
            self.source(split).check()

    def source(self, split: str) -> Records:
        """The records of a split (a clear error for unknown splits)."""
        splits = self.builder.info.splits
        if split not in splits:
            raise ConfigError('data.train_split/eval_split', f'split {split!r} of {self.dataset.name} '
                              f'does not exist; valid: {sorted(splits)}')
        info = splits[split]
        held = [(start, path) for start, length, path in
                zip(np.cumsum([0, *info.shard_lengths]).tolist(), info.shard_lengths, info.filepaths) if length]
        return Records(self.builder.as_data_source(split=split), self.dataset, self.data_dir,
                       [start for start, _ in held], [os.fspath(path) for _, path in held])


@dataclasses.dataclass
class Records:
    """The records of one split of a prepared dataset, read from its random-access TFDS source; a shard
    that cannot be read (cut short, overwritten, removed) raises DamagedDatasetError, naming it."""
    source: object      # the split's random-access TFDS source
    dataset: Dataset
    data_dir: str
    starts: list[int]   # the index of the first record of each shard that holds any
    paths: list[str]    # those shards' files

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: int):
        try:
            return self.source[index]
        except RuntimeError as error:   # array_record's, for a shard it cannot open or read
            path = self.paths[bisect.bisect_right(self.starts, index) - 1]
            raise self.dataset.damaged(self.data_dir, path, str(error).split(':')[0]) from None

    def __getitems__(self, indices: list[int]) -> list:
        try:
            return self.source.__getitems__(indices)
        except RuntimeError:   # one at a time, to name the shard at fault
            return [self[index] for index in indices]

    def __iter__(self):
        return (self[index] for index in range(len(self)))

    def check(self) -> None:
        """Reads the first record of every shard, which opens it: a shard cut short, overwritten or
        removed is found without reading the data."""
        for start in self.starts:
            self[start]


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
