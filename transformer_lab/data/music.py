"""The grain pipeline for symbolic music: pieces -> token windows for a decoder-only model.

A piece is a chorale grid (``voices`` uint8 [steps, 4], tokenizer ``chorale``) or a performance
(``notes`` float32 [n, 4], tokenizer ``performance``: MIDI events). Every batch is a dict of int32
numpy arrays: ``targets`` [rows, max_length], each row a window of the concatenated token stream
(each piece ending with EOS), the usual protocol for NLL per token, attention running across the EOS
between pieces; chorales add ``targets_voices`` (1..4 = S, A, T, B; 0 at EOS and padding).

Training pieces are augmented as in the Music Transformer (Huang et al. 2018, Sec. 5.1-5.2):
transposed by a random number of semitones in [-data.transpose, data.transpose] and (performances)
time-stretched by a factor drawn from ``data.time_stretches``, drawn by grain from a seed so the stream
and its checkpointed position are reproducible; evaluation pieces are not augmented.
"""

from __future__ import annotations

from collections.abc import Iterator

import grain
import grain.experimental
import numpy as np

from transformer_lab.data.pipeline import Dataset, TfdsPipeline, pad_to
from transformer_lab.data.tokenizers import EOS_ID, FIXED_TOKENIZERS


class MusicPipeline(TfdsPipeline):
    """Token windows of one music dataset as configured by the ``data`` section (``targets_feature``
    names the piece feature, ``tokenizer`` how it becomes tokens)."""

    def __init__(self, data_config, dataset: Dataset, *, tokenizer=None):
        super().__init__(data_config, dataset)
        self.tokenizer = tokenizer or FIXED_TOKENIZERS[data_config.tokenizer]()
        self.features = ('targets', 'targets_voices') if self.tokenizer.voices else ('targets',)

    def tokens(self, piece: np.ndarray) -> dict[str, np.ndarray]:
        """A piece -> its tokens ending with EOS (and each token's voice, EOS having none)."""
        tokens = {'targets': np.asarray(self.tokenizer.encode(piece) + [EOS_ID], np.int32)}
        if self.tokenizer.voices:
            tokens['targets_voices'] = np.asarray(self.tokenizer.voice_ids(piece) + [0], np.int32)
        return tokens

    def augmented(self, piece: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        limit, stretches = self.config.transpose, tuple(self.config.time_stretches)
        if limit:
            piece = self.tokenizer.transpose(piece, int(rng.integers(-limit, limit + 1)))
        if stretches:
            piece = self.tokenizer.stretch(piece, float(rng.choice(stretches)))
        return piece

    def piece(self, record) -> np.ndarray:
        return np.asarray(record[self.config.targets_feature])

    def _windows(self, dataset: grain.IterDataset, rows: int) -> grain.IterDataset:
        length = self.config.max_length
        windows = grain.experimental.ConcatThenSplitIterDataset(
            dataset, length_struct={name: length for name in self.features})
        return windows.map(lambda w: {name: pad_to(w[name], length) for name in self.features}).batch(
            rows, drop_remainder=False)

    def train_batches(self, rows: int, *, seed: int, shard_index: int = 0,
                      shard_count: int = 1) -> grain.IterDataset:
        """An endless stream of batches of ``rows`` windows (this host's share), pieces reshuffled and
        augmented anew every epoch; host ``shard_index`` reads every ``shard_count``-th piece."""
        dataset = (grain.MapDataset.source(self.source(self.config.train_split))
                   .shuffle(seed=seed).repeat()[shard_index::shard_count]
                   .random_map(lambda record, rng: self.tokens(self.augmented(self.piece(record), rng)), seed=seed))
        return self._windows(dataset.to_iter_dataset(), rows)

    def eval_batches(self, split: str, rows: int, *, max_examples: int = -1, shard_index: int = 0,
                     shard_count: int = 1) -> Iterator[dict]:
        """Every piece of ``split`` (or its first ``max_examples``) once, in windows; the last batch is
        padded with empty rows."""
        dataset = grain.MapDataset.source(self.source(split))
        if max_examples > 0:
            dataset = dataset[:max_examples]
        dataset = dataset[shard_index::shard_count].map(lambda record: self.tokens(self.piece(record)))
        for batch in self._windows(dataset.to_iter_dataset(), rows):
            yield {name: pad_to(value, rows, axis=0) for name, value in batch.items()}

    def primers(self, split: str, count: int, length: int) -> np.ndarray:
        """int32 [count, length]: the opening ``length`` tokens of the first ``count`` pieces of
        ``split`` that are that long, to continue by sampling (pieces start where decoding does)."""
        source, openings = self.source(split), []
        for index in range(len(source)):
            tokens = self.tokens(self.piece(source[index]))['targets']
            if len(tokens) > length:
                openings.append(tokens[:length])
            if len(openings) == count:
                return np.stack(openings)
        raise ValueError(f'{split!r} has {len(openings)} pieces longer than {length} tokens, {count} asked for; '
                         f'ask for fewer samples or a shorter primer')
