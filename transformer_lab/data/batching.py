"""Which examples a host reads, in what order, and the grain dataset that turns them into batches.

Every pipeline's batches are ``Batches``: an ``Order`` of example indices and an ``assemble`` function
that makes one whole batch from the examples at a cursor in that order, with numpy over the whole
batch (gathers from kept token ids, vectorised packing) rather than per example through a chain of
grain transformations. The cursor is (position in the order, tokens of that example already used: 0
except for windows that split an example). The iterator's state is that cursor, so a checkpoint
resumes the stream exactly; under ``data.workers`` (grain's ``mp_prefetch``) each worker takes every
k-th example of the host's order (``Order.sliced``) and keeps its own position.

Why not grain's own shuffle: it computes every index lookup on its own, in Python, and a packed WMT
batch reads hundreds of examples (docs/benchmarks.md, issue 30); an epoch's permutation drawn at once
with numpy costs next to nothing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import grain
import numpy as np


@dataclasses.dataclass(frozen=True)
class Order:
    """The stream of example indices one reader takes: ``examples`` (indices into a split) in a new
    random order every epoch (``seed``), endlessly, or in their own order once (``seed=None``). Of the
    whole stream the reader takes positions ``start``, ``start + step``, ... (host ``i`` of ``k``:
    ``start=i, step=k``; a worker slices its host's share again)."""
    examples: np.ndarray
    seed: int | None = None
    start: int = 0
    step: int = 1
    # The last epochs' permutations, shared by the slices of one order (they depend on seed and epoch only).
    permutations: dict = dataclasses.field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def shuffled(cls, examples, *, seed: int, shard_index: int = 0, shard_count: int = 1) -> Order:
        return cls(np.asarray(examples, np.int64), seed, shard_index, shard_count)

    @classmethod
    def in_order(cls, examples, *, shard_index: int = 0, shard_count: int = 1) -> Order:
        return cls(np.asarray(examples, np.int64), None, shard_index, shard_count)

    @classmethod
    def evaluation(cls, count: int, *, max_examples: int, shard_index: int = 0, shard_count: int = 1) -> Order:
        """A split's ``count`` examples (its first ``max_examples`` when that is positive) once, in order."""
        return cls.in_order(np.arange(min(count, max_examples) if max_examples > 0 else count),
                            shard_index=shard_index, shard_count=shard_count)

    def sliced(self, part: slice) -> Order:
        """This order's positions ``part.start``, ``part.start + part.step``, ... (grain's worker slices)."""
        return dataclasses.replace(self, start=self.start + (part.start or 0) * self.step,
                                   step=self.step * (part.step or 1))

    def take(self, position: int, count: int) -> np.ndarray:
        """The example indices at this reader's positions ``position .. position + count - 1``; fewer
        (down to none) where a once-through order ends."""
        positions = self.start + self.step * np.arange(position, position + count, dtype=np.int64)
        size = len(self.examples)
        if self.seed is None:
            return self.examples[positions[positions < size]]
        epochs, within = np.divmod(positions, size)
        indices = np.empty(count, np.int64)
        for epoch in np.unique(epochs):
            chosen = epochs == epoch
            indices[chosen] = self.examples[self._permutation(int(epoch))[within[chosen]]]
        return indices

    def _permutation(self, epoch: int) -> np.ndarray:
        if epoch not in self.permutations:
            while len(self.permutations) >= 2:
                del self.permutations[min(self.permutations)]
            self.permutations[epoch] = np.random.default_rng([self.seed, epoch]).permutation(len(self.examples))
        return self.permutations[epoch]


Cursor = tuple[int, int]
# assemble(order, cursor) -> (batch, the cursor after it), or None where a once-through order has ended.
Assemble = Callable[[Order, Cursor], 'tuple[dict[str, np.ndarray], Cursor] | None']


class Batches(grain.IterDataset):
    """The batches ``assemble`` makes along ``order``, as a grain dataset (checkpointable, sliceable
    into grain worker processes). ``assemble`` must pickle (workers receive it): a small object holding
    token stores and sizes, not a pipeline."""

    def __init__(self, order: Order, assemble: Assemble):
        super().__init__()
        self.order, self.assemble = order, assemble

    def set_slice(self, part: slice, sequential_slice: bool = False) -> None:
        """grain's hook for a worker process: read only its share of the order."""
        del sequential_slice
        self.order = self.order.sliced(part)

    def __iter__(self) -> grain.DatasetIterator:
        return _BatchIterator(self.order, self.assemble)

    def __str__(self) -> str:
        return f'Batches({type(self.assemble).__name__}, {len(self.order.examples)} examples)'


class _BatchIterator(grain.DatasetIterator):
    def __init__(self, order: Order, assemble: Assemble):
        super().__init__()
        self.order, self.assemble, self.cursor = order, assemble, (0, 0)

    def __next__(self) -> dict[str, np.ndarray]:
        made = self.assemble(self.order, self.cursor)
        if made is None:
            raise StopIteration
        batch, self.cursor = made
        return batch

    def get_state(self) -> dict:
        return {'position': self.cursor[0], 'offset': self.cursor[1]}

    def set_state(self, state: dict) -> None:
        self.cursor = (int(state['position']), int(state['offset']))
