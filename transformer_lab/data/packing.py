"""Batches of whole examples from kept token ids (data/token_store.py), made with numpy a batch at a time:
packed or padded rows of translation pairs (``PackedRows``), and the windows of a concatenated token
stream for language models and music evaluation (``Windows``). Both are ``assemble`` functions of
data/batching.py: (order, cursor) -> (batch, cursor after it).

Packed rows carry, per feature ``f``, ``f_segment_ids`` (1, 2, ... for the examples of a row, 0 for
padding) and ``f_positions`` (0, 1, ... within each example), the layout the models' masks read.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from transformer_lab.data.batching import Cursor, Order
from transformer_lab.data.token_store import Ragged, spans


def first_fit(lengths: np.ndarray, rows: int, length: int, *, one_per_row: bool = False):
    """First-fit packing (as grain's ``FirstFitPackIterDataset`` with ``rows`` bins): the examples, in
    order, each into the first of ``rows`` rows with room for every feature (``length`` positions a
    feature), until one fits in none; that one starts the next batch.

    lengths: int [n, features]. Returns (row int64 [m], start int64 [m, features], segment int64 [m]) for
    the m examples packed: each example's row, its first position in the row per feature, and its
    number within its row (1, 2, ...). ``one_per_row``: one example a row (padded, unpacked rows).
    """
    room = np.full((rows, lengths.shape[1]), length, np.int64)
    used = np.zeros(rows, np.int64)
    row, start, segment = [], [], []
    for need in lengths:
        fits = np.all(room >= need, axis=1)
        if one_per_row:
            fits &= used == 0
        chosen = int(fits.argmax())
        if not fits[chosen]:
            break
        row.append(chosen)
        start.append(length - room[chosen])
        room[chosen] -= need
        used[chosen] += 1
        segment.append(used[chosen])
    count = len(row)
    return (np.asarray(row, np.int64), np.asarray(start, np.int64).reshape(count, lengths.shape[1]),
            np.asarray(segment, np.int64))


@dataclasses.dataclass
class PackedRows:
    """Rows of ``length`` positions made from ``stores`` (feature -> Ragged; e.g. inputs and targets of
    translation pairs): packed first-fit (``pack``) with segment ids and positions, or one example a row.
    ``truncate`` cuts examples to ``length`` (evaluation; training orders hold only examples that fit).
    Packed rows are put in a random order drawn from the cursor (grain shuffles its bins alike), so
    that the fullest rows do not always land on the first device or micro-batch."""
    stores: dict[str, Ragged]
    rows: int
    length: int
    pack: bool
    truncate: bool = False

    def __post_init__(self):
        self.mean_length = max([1.0] + [float(store.lengths.mean()) for store in self.stores.values() if len(store)])

    def __call__(self, order: Order, cursor: Cursor):
        position, _ = cursor
        names = list(self.stores)
        lookahead = self._lookahead()
        while True:
            indices = order.take(position, lookahead)
            if not len(indices):
                return None
            lengths = np.stack([self.stores[name].lengths[indices] for name in names], axis=1)
            if self.truncate:
                lengths = np.minimum(lengths, self.length)
            row, start, segment = first_fit(lengths, self.rows, self.length, one_per_row=not self.pack)
            if len(row) < len(indices) or len(indices) < lookahead:
                break
            lookahead *= 2   # all fitted: the batch may take more examples than were looked at
        count = len(row)
        indices, lengths = indices[:count], lengths[:count]
        batch = {}
        for column, name in enumerate(names):
            sizes = lengths[:, column]
            where = spans(row * self.length + start[:, column], sizes)
            batch[name] = self._scatter(where, self.stores[name].gather(indices, 0, sizes))
            if self.pack:
                batch[f'{name}_segment_ids'] = self._scatter(where, np.repeat(segment, sizes))
                batch[f'{name}_positions'] = self._scatter(where, spans(np.zeros(count, np.int64), sizes))
        if self.pack and order.seed is not None:
            shuffle = np.random.default_rng([order.seed, order.start, order.step, position]).permutation(self.rows)
            batch = {name: value[shuffle] for name, value in batch.items()}
        return batch, (position + count, 0)

    def _scatter(self, where: np.ndarray, values: np.ndarray) -> np.ndarray:
        out = np.zeros(self.rows * self.length, np.int32)
        out[where] = values
        return out.reshape(self.rows, self.length)

    def _lookahead(self) -> int:
        """How many examples to look at for one batch: twice what fills it at the mean example length."""
        return 2 * (self.rows if not self.pack else int(self.rows * self.length / self.mean_length) + 1)


@dataclasses.dataclass
class Windows:
    """``rows`` windows of ``length`` tokens of the examples of ``stores`` joined end to end (the same
    windows of every feature): language-model text, or music evaluated as one stream. A window runs on
    across example boundaries; the cursor is (position in the order, tokens of that example already
    used). At the end of a once-through order the last window and batch are zero-padded."""
    stores: dict[str, Ragged]
    rows: int
    length: int

    def __post_init__(self):
        first = next(iter(self.stores.values()))
        self.mean_length = max(1.0, float(first.lengths.mean()) if len(first) else 1.0)

    def __call__(self, order: Order, cursor: Cursor):
        position, offset = cursor
        need = self.rows * self.length
        first = next(iter(self.stores.values()))
        lookahead = int(need / self.mean_length) + 2
        while True:
            indices = order.take(position, lookahead)
            sizes = first.lengths[indices].copy()
            if len(sizes):
                sizes[0] -= offset
            total = np.cumsum(sizes)
            if (len(total) and total[-1] >= need) or len(indices) < lookahead:
                break
            lookahead *= 2
        if not len(indices) or total[-1] == 0:
            return None
        # The examples this batch reads from: all up to the one in which its last token lies.
        last = int(np.searchsorted(total, need))   # == len(total) when the order ends first
        used = min(last + 1, len(indices))
        starts = np.zeros(used, np.int64)
        starts[0] = offset
        batch = {}
        for name, store in self.stores.items():
            tokens = store.gather(indices[:used], starts, sizes[:used])[:need]
            batch[name] = np.pad(tokens, (0, need - len(tokens))).reshape(self.rows, self.length)
        if last >= len(total):
            return batch, (position + len(indices), 0)
        # The example holding the last token: finished exactly, or continued by the next batch.
        taken = need - (total[last - 1] if last else 0) + (offset if last == 0 else 0)
        if taken == first.lengths[indices[last]]:
            return batch, (position + last + 1, 0)
        return batch, (position + last, int(taken))
