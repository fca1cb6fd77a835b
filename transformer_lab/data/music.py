"""The grain pipeline for symbolic music: chorale grids -> token windows for a decoder-only model.

Every batch is a dict of int32 numpy arrays: ``targets`` [rows, max_length], each row a window of the
concatenated token stream (chorales serialised S, A, T, B at each 16th note, each ending with EOS),
the usual protocol for NLL per token; attention runs across the EOS between pieces. Training pieces
are transposed by a random number of semitones in [-data.transpose, data.transpose] (the Music
Transformer's augmentation, Huang et al. 2018, Sec. 5.1), drawn by grain from a seed so the stream and
its checkpointed position are reproducible; evaluation pieces are not transposed.
"""

from __future__ import annotations

from collections.abc import Iterator

import grain
import grain.experimental
import numpy as np

from transformer_lab.data.pipeline import Dataset, TfdsPipeline, pad_to
from transformer_lab.data.tokenizers import EOS_ID, ChoraleTokenizer

LOWEST, HIGHEST = 1, 127      # MIDI pitches a transposed note may take (0 is the rest)


def transpose(grid: np.ndarray, semitones: int) -> np.ndarray:
    """Moves every sounding pitch by ``semitones``, keeping rests and the MIDI range."""
    shifted = np.clip(grid.astype(np.int32) + semitones, LOWEST, HIGHEST)
    return np.where(grid > 0, shifted, 0).astype(grid.dtype)


class MusicPipeline(TfdsPipeline):
    """Token windows of one chorale dataset as configured by the ``data`` section (``targets_feature``
    is the grid feature, ``voices``)."""

    def __init__(self, data_config, dataset: Dataset, *, tokenizer=None):
        super().__init__(data_config, dataset)
        self.tokenizer = tokenizer or ChoraleTokenizer()

    def tokens(self, grid: np.ndarray) -> dict[str, np.ndarray]:
        return {'targets': np.asarray(self.tokenizer.encode(grid) + [EOS_ID], np.int32)}

    def _windows(self, dataset: grain.IterDataset, rows: int) -> grain.IterDataset:
        length = self.config.max_length
        windows = grain.experimental.ConcatThenSplitIterDataset(dataset, length_struct={'targets': length})
        return windows.map(lambda w: {'targets': pad_to(w['targets'], length)}).batch(rows, drop_remainder=False)

    def train_batches(self, rows: int, *, seed: int, shard_index: int = 0,
                      shard_count: int = 1) -> grain.IterDataset:
        """An endless stream of batches of ``rows`` windows (this host's share), pieces reshuffled and
        transposed anew every epoch; host ``shard_index`` reads every ``shard_count``-th piece."""
        limit = self.config.get('transpose', 0)

        def augment(record, rng: np.random.Generator):
            grid = np.asarray(record[self.config.targets_feature])
            return self.tokens(transpose(grid, int(rng.integers(-limit, limit + 1))) if limit else grid)

        dataset = (grain.MapDataset.source(self.source(self.config.train_split))
                   .shuffle(seed=seed).repeat()[shard_index::shard_count].random_map(augment, seed=seed))
        return self._windows(dataset.to_iter_dataset(), rows)

    def eval_batches(self, split: str, rows: int, *, max_examples: int = -1, shard_index: int = 0,
                     shard_count: int = 1) -> Iterator[dict]:
        """Every piece of ``split`` (or its first ``max_examples``) once, in windows; the last batch is
        padded with empty rows."""
        dataset = grain.MapDataset.source(self.source(split))
        if max_examples > 0:
            dataset = dataset[:max_examples]
        dataset = dataset[shard_index::shard_count].map(
            lambda record: self.tokens(np.asarray(record[self.config.targets_feature])))
        for batch in self._windows(dataset.to_iter_dataset(), rows):
            yield {name: pad_to(value, rows, axis=0) for name, value in batch.items()}
