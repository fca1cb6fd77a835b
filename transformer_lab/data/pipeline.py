"""The grain input pipeline for text: TFDS array_record source -> tokens -> packed or padded batches.

Every batch is a dict of int32 numpy arrays with fixed shapes (so jit compiles once):

    targets [rows, max_length]                       always
    inputs  [rows, max_length]                       translation only
    targets_segment_ids, targets_positions, ...      packed rows only (segment 0 = padding)

Translation examples become ``inputs = encode(source) + [EOS]``, ``targets = encode(target) + [EOS]``.
Language-model text is concatenated (each record followed by a newline) and split into windows of
``max_length`` tokens, the usual protocol for bits/char; windows carry no segment ids, so attention
runs across record boundaries. Training examples longer than ``max_length`` are dropped; evaluation
examples are truncated, so that every example of a split counts.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import warnings
from collections.abc import Iterator

import grain
import grain.experimental
import numpy as np
import tensorflow_datasets as tfds

from transformer_lab.config import ConfigError, positive, require
from transformer_lab.data.prepare import stale
from transformer_lab.data.tokenizers import (EOS_ID, ByteTokenizer, SentencePieceTokenizer, check_tokenizer,
                                             train_sentencepiece)


def check_data(data, model) -> None:
    """The ``data`` section against the model it feeds (``data.name`` is the registry's to check)."""
    check_tokenizer(data, model)
    if 'image_shape' in data and 'image_shape' in model:
        require(tuple(data.image_shape) == tuple(model.image_shape), 'model.image_shape',
                f'{tuple(model.image_shape)} differs from data.image_shape={tuple(data.image_shape)}')
    require(data.max_length <= model.max_length, 'data.max_length',
            f'{data.max_length} exceeds model.max_length={model.max_length}')
    positive(data, 'data', 'batch_size')


class DatasetNotPreparedError(FileNotFoundError):
    """The dataset is not in the data dir; the message names the command that prepares it."""


@dataclasses.dataclass(frozen=True)
class Dataset:
    """A TFDS dataset: its builder module (imported to register it), how to prepare it, and which
    pipeline reads it (``modality``: text here, image in data/images.py, music in data/music.py).

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
    """What every pipeline shares: the prepared TFDS builder and its random-access split sources."""

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


class TextPipeline(TfdsPipeline):
    """Sources, tokenizer and batches of one text dataset as configured by the ``data`` section."""

    def __init__(self, data_config, dataset: Dataset, *, tokenizer=None):
        super().__init__(data_config, dataset)
        self.is_translation = bool(data_config.inputs_feature)
        self.tokenizer = tokenizer or self._load_or_train_tokenizer()

    # --- tokenizer ---------------------------------------------------------------------------

    def _features(self) -> list[str]:
        return [f for f in (self.config.inputs_feature, self.config.targets_feature) if f]

    def tokenizer_path(self) -> str:
        """Sentencepiece models live with the prepared data, one per vocabulary size and features."""
        return os.path.join(self.data_dir, self.dataset.name,
                            f'sentencepiece_{"_".join(self._features())}_{self.config.vocab_size}.model')

    def _load_or_train_tokenizer(self):
        if self.config.tokenizer == 'bytes':
            return ByteTokenizer()
        path = self.tokenizer_path()
        if os.path.exists(path):
            return SentencePieceTokenizer(path)
        return train_sentencepiece(self._training_texts(), path, self.config.vocab_size)

    def _training_texts(self, max_examples: int = 500_000, chunk: int = 10_000) -> Iterator[str]:
        """Texts of an evenly spaced subset of the training split (all of it when small), read in chunks."""
        train = self.source(self.config.train_split)
        indices = np.unique(np.linspace(0, len(train) - 1, min(len(train), max_examples)).astype(int))
        for start in range(0, len(indices), chunk):
            for example in train.__getitems__(indices[start:start + chunk].tolist()):
                yield from (text(example[feature]) for feature in self._features())

    # --- examples --------------------------------------------------------------------------------
    def tokenize(self, example: dict, truncate: bool) -> dict[str, np.ndarray]:
        """A raw example -> {'targets'} (+ {'inputs'}) int32 token arrays ending with EOS."""
        def ids(feature):
            tokens = self.tokenizer.encode(text(example[feature])) + [EOS_ID]
            if truncate:
                tokens = tokens[:self.config.max_length]
            return np.asarray(tokens, np.int32)

        if not self.is_translation:  # running text: cut into windows later, so no EOS, no truncation
            record = text(example[self.config.targets_feature]) + '\n'
            return {'targets': np.asarray(self.tokenizer.encode(record), np.int32)}
        return {'inputs': ids(self.config.inputs_feature), 'targets': ids(self.config.targets_feature)}

    def _fits(self, example: dict) -> bool:
        return all(len(v) <= self.config.max_length for v in example.values())

    def _rows(self, dataset: grain.IterDataset, rows: int, *, pack: bool) -> grain.IterDataset:
        """Tokenized examples -> batches of ``rows`` rows, packed or padded to max_length."""
        length = self.config.max_length
        if not self.is_translation:
            windows = grain.experimental.ConcatThenSplitIterDataset(dataset, length_struct={'targets': length})
            dataset = windows.map(lambda w: {'targets': w['targets']})
        elif pack:
            dataset = grain.experimental.FirstFitPackIterDataset(
                dataset, length_struct={'inputs': length, 'targets': length}, num_packing_bins=rows,
                shuffle_bins=True)
        return dataset.map(lambda row: {k: pad_to(v, length) for k, v in row.items()}).batch(
            rows, drop_remainder=False)

    def train_batches(self, rows: int, *, seed: int, shard_index: int = 0,
                      shard_count: int = 1) -> grain.IterDataset:
        """An endless, shuffled (reshuffled every epoch) stream of training batches for one host.

        ``rows`` is this host's share of the global batch; host ``shard_index`` reads every
        ``shard_count``-th example of the shuffled order, so hosts never see the same example.
        """
        dataset = (grain.MapDataset.source(self.source(self.config.train_split))
                   .shuffle(seed=seed).repeat()[shard_index::shard_count]
                   .map(lambda example: self.tokenize(example, truncate=False)))
        if self.is_translation:
            dataset = dataset.filter(self._fits)
        return self._rows(dataset.to_iter_dataset(), rows, pack=self.config.packing)

    def eval_batches(self, split: str, rows: int, *, max_examples: int = -1, shard_index: int = 0,
                     shard_count: int = 1) -> Iterator[dict]:
        """Every example of ``split`` (or of its first ``max_examples``) once, in order, unpacked; host
        ``shard_index`` of ``shard_count`` takes every ``shard_count``-th example. The last batch is
        padded with empty rows."""
        dataset = grain.MapDataset.source(self.source(split))
        if max_examples > 0:
            dataset = dataset[:max_examples]
        dataset = dataset[shard_index::shard_count]
        dataset = dataset.map(lambda example: self.tokenize(example, truncate=True))
        for batch in self._rows(dataset.to_iter_dataset(), rows, pack=False):
            yield {k: pad_to(v, rows, axis=0) for k, v in batch.items()}


    def translation_pairs(self, split: str, max_examples: int = -1) -> list[tuple[str, str]]:
        """(source, reference) texts of a translation split, in order: what BLEU is computed on."""
        source = self.source(split)
        count = len(source) if max_examples < 0 else min(max_examples, len(source))
        return [(text(source[i][self.config.inputs_feature]), text(source[i][self.config.targets_feature]))
                for i in range(count)]


def pad_to(array: np.ndarray, size: int, axis: int = -1) -> np.ndarray:
    """Zero-pads ``axis`` to ``size`` (0 = padding for tokens, segment ids and weights alike)."""
    widths = [(0, 0)] * array.ndim
    widths[axis] = (0, size - array.shape[axis])
    return np.pad(np.asarray(array, np.int32), widths)
