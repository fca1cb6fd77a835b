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

import os
from collections.abc import Iterator

import grain
import grain.experimental
import numpy as np

from transformer_lab.data.source import Dataset, TfdsPipeline, pad_to, padded_batches, text
from transformer_lab.data.tokenizers import EOS_ID, ByteTokenizer, SentencePieceTokenizer, train_sentencepiece


class TextPipeline(TfdsPipeline):
    """Sources, tokenizer and batches of one text dataset as configured by the ``data`` section."""

    TOKENIZERS = {'sentencepiece': None, 'bytes': ByteTokenizer}

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
        dataset = (self.training_records(seed=seed, shard_index=shard_index, shard_count=shard_count)
                   .map(lambda example: self.tokenize(example, truncate=False)))
        if self.is_translation:
            dataset = dataset.filter(self._fits)
        return self._rows(dataset.to_iter_dataset(), rows, pack=self.config.packing)

    def eval_batches(self, split: str, rows: int, *, max_examples: int = -1, shard_index: int = 0,
                     shard_count: int = 1) -> Iterator[dict]:
        """Every example of ``split`` (or of its first ``max_examples``) once, in order, unpacked; host
        ``shard_index`` of ``shard_count`` takes every ``shard_count``-th example. The last batch is
        padded with empty rows."""
        dataset = self.evaluation_records(split, max_examples=max_examples, shard_index=shard_index,
                                          shard_count=shard_count)
        dataset = dataset.map(lambda example: self.tokenize(example, truncate=True))
        yield from padded_batches(self._rows(dataset.to_iter_dataset(), rows, pack=False), rows)

    def translation_pairs(self, split: str, max_examples: int = -1) -> list[tuple[str, str]]:
        """(source, reference) texts of a translation split, in order: what BLEU is computed on."""
        source = self.source(split)
        count = len(source) if max_examples < 0 else min(max_examples, len(source))
        return [(text(source[i][self.config.inputs_feature]), text(source[i][self.config.targets_feature]))
                for i in range(count)]
