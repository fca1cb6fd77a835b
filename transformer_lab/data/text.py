"""The input pipeline for text: TFDS array_record source -> token ids (computed once per tokenizer and
kept, data/token_store.py) -> packed or padded batches (data/packing.py).

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
import numpy as np

from transformer_lab.data import token_store
from transformer_lab.data.batching import Batches, Order
from transformer_lab.data.packing import PackedRows, Windows
from transformer_lab.data.source import Dataset, TfdsPipeline, text
from transformer_lab.data.token_store import Ragged
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

    # --- token ids, once per tokenizer ------------------------------------------------------------
    def token_ids(self, split: str) -> dict[str, Ragged]:
        """Every example of ``split`` tokenized once with this tokenizer and kept beside the prepared data
        (data/token_store.py), untruncated: translation ``inputs`` and ``targets``, each ending with EOS;
        running text ``targets``, each record's text and a newline (no EOS: it is cut into windows)."""
        folder = os.path.join(os.fspath(self.builder.data_dir), 'token_ids',
                              f'{split}-{"-".join(self._features())}-{self.tokenizer.fingerprint}')
        return token_store.kept(folder, lambda: self._tokenize_split(split))

    def _tokenize_split(self, split: str, chunk: int = 10_000) -> dict[str, Ragged]:
        source = self.source(split)
        features = ({'inputs': self.config.inputs_feature, 'targets': self.config.targets_feature}
                    if self.is_translation else {'targets': self.config.targets_feature})
        ids = {name: [] for name in features}
        for start in range(0, len(source), chunk):
            examples = source.__getitems__(list(range(start, min(start + chunk, len(source)))))
            for name, feature in features.items():
                texts = [text(example[feature]) for example in examples]
                if self.is_translation:
                    ids[name] += [tokens + [EOS_ID] for tokens in self.tokenizer.encode_batch(texts)]
                else:
                    ids[name] += self.tokenizer.encode_batch([line + '\n' for line in texts])
        return {name: Ragged.from_sequences(sequences) for name, sequences in ids.items()}

    # --- batches ---------------------------------------------------------------------------------
    def train_batches(self, rows: int, *, seed: int, shard_index: int = 0,
                      shard_count: int = 1) -> grain.IterDataset:
        """An endless, shuffled (reshuffled every epoch) stream of training batches for one host.

        ``rows`` is this host's share of the global batch; host ``shard_index`` reads every
        ``shard_count``-th example of the shuffled order, so hosts never see the same example.
        Translation pairs longer than ``max_length`` on either side are left out.
        """
        ids = self.token_ids(self.config.train_split)
        length = self.config.max_length
        if self.is_translation:
            fits = np.all([store.lengths <= length for store in ids.values()], axis=0)
            order = Order.shuffled(np.flatnonzero(fits), seed=seed, shard_index=shard_index, shard_count=shard_count)
            return Batches(order, PackedRows(ids, rows, length, pack=self.config.packing))
        order = Order.shuffled(np.arange(len(ids['targets'])), seed=seed, shard_index=shard_index,
                               shard_count=shard_count)
        return Batches(order, Windows(ids, rows, length))

    def eval_batches(self, split: str, rows: int, *, max_examples: int = -1, shard_index: int = 0,
                     shard_count: int = 1) -> Iterator[dict]:
        """Every example of ``split`` (or of its first ``max_examples``) once, in order, unpacked and
        truncated to ``max_length``; host ``shard_index`` of ``shard_count`` takes every
        ``shard_count``-th example. The last batch is padded with empty rows."""
        ids = self.token_ids(split)
        order = Order.evaluation(len(ids['targets']), max_examples=max_examples, shard_index=shard_index,
                                 shard_count=shard_count)
        length = self.config.max_length
        assemble = (PackedRows(ids, rows, length, pack=False, truncate=True) if self.is_translation
                    else Windows(ids, rows, length))
        yield from Batches(order, assemble)

    def translation_pairs(self, split: str, max_examples: int = -1) -> list[tuple[str, str]]:
        """(source, reference) texts of a translation split, in order: what BLEU is computed on."""
        source = self.source(split)
        count = len(source) if max_examples < 0 else min(max_examples, len(source))
        return [(text(source[i][self.config.inputs_feature]), text(source[i][self.config.targets_feature]))
                for i in range(count)]
