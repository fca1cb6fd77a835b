"""Token ids computed once and kept on disk, so that training reads them instead of tokenizing every
example again at every epoch (sentencepiece on text, performance events of music).

A store is a folder of ragged arrays, one per feature: ``NAME.values.npy`` (every example's ids, one
after another, uint16 when they fit) and ``NAME.offsets.npy`` (int64 [examples + 1]). It is written
once, atomically (a scratch folder renamed into place, so concurrent builders, e.g. several hosts, do not
clash), next to the prepared data it was computed from, and memory-mapped by every process that reads
it: grain workers and hosts share the page cache instead of a copy each.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Sequence

import numpy as np


class Ragged:
    """Sequences of different lengths in one flat array: sequence ``i`` is
    ``values[offsets[i]:offsets[i + 1]]``. Pickles as its folder when it was read from one (workers)."""

    def __init__(self, values: np.ndarray, offsets: np.ndarray, path: tuple[str, str] | None = None):
        self.values, self.offsets, self._path = values, offsets, path
        self.lengths = np.diff(offsets)

    @classmethod
    def from_sequences(cls, sequences: Sequence[Sequence[int]]) -> Ragged:
        lengths = np.fromiter((len(s) for s in sequences), np.int64, len(sequences))
        values = np.concatenate([np.asarray(s, np.int64) for s in sequences]) if len(sequences) else np.zeros(0, np.int64)
        dtype = np.uint16 if values.size == 0 or (values.min() >= 0 and values.max() < 2**16) else np.int32
        return cls(values.astype(dtype), np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64))

    @classmethod
    def read(cls, folder: str, name: str) -> Ragged:
        return cls(np.load(os.path.join(folder, f'{name}.values.npy'), mmap_mode='r'),
                   np.load(os.path.join(folder, f'{name}.offsets.npy')), (folder, name))

    def write(self, folder: str, name: str) -> None:
        np.save(os.path.join(folder, f'{name}.values.npy'), np.ascontiguousarray(self.values))
        np.save(os.path.join(folder, f'{name}.offsets.npy'), self.offsets)

    def __reduce__(self):
        if self._path is not None:
            return Ragged.read, self._path
        return Ragged, (self.values, self.offsets)

    def __len__(self) -> int:
        return len(self.lengths)

    def __getitem__(self, index: int) -> np.ndarray:
        return np.asarray(self.values[self.offsets[index]:self.offsets[index + 1]], np.int32)

    def gather(self, indices: np.ndarray, starts: np.ndarray | int, lengths: np.ndarray) -> np.ndarray:
        """int32: sequence ``indices[j]`` from ``starts[j]`` for ``lengths[j]`` ids, for every j, one after
        another: one fancy index instead of a slice per sequence."""
        begins = self.offsets[np.asarray(indices, np.int64)] + starts
        return np.asarray(self.values[spans(begins, lengths)], np.int32)


def spans(begins: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """int64: ``begins[j], begins[j] + 1, ..., begins[j] + lengths[j] - 1`` for every j, concatenated."""
    lengths = np.asarray(lengths, np.int64)
    before = np.cumsum(lengths) - lengths
    return np.repeat(np.asarray(begins, np.int64) - before, lengths) + np.arange(int(lengths.sum()), dtype=np.int64)


def kept(folder: str, build: Callable[[], dict[str, Ragged]]) -> dict[str, Ragged]:
    """The store in ``folder``, built first with ``build()`` (name -> Ragged) if it is not there. Where
    ``folder`` cannot be written (a shared, read-only data dir), the store is kept in the user's cache
    instead (``unwritable_fallback``)."""
    for place in (folder, unwritable_fallback(folder)):
        if os.path.exists(os.path.join(place, COMPLETE)):
            return _read(place)
    try:
        _write(folder, build)
        return _read(folder)
    except PermissionError:
        _write(unwritable_fallback(folder), build)
        return _read(unwritable_fallback(folder))


COMPLETE = 'complete'   # written last, with the names of the features: the store is whole


def unwritable_fallback(folder: str) -> str:
    """Where the store of ``folder`` is kept when ``folder`` cannot be written: the same path under
    ``~/.cache/transformer_lab/token_ids``."""
    return os.path.join(os.path.expanduser('~/.cache/transformer_lab/token_ids'),
                        os.path.abspath(folder).lstrip(os.sep))


def _write(folder: str, build: Callable[[], dict[str, Ragged]]) -> None:
    parent = os.path.dirname(os.path.abspath(folder))
    os.makedirs(parent, exist_ok=True)
    scratch = tempfile.mkdtemp(prefix='.building_', dir=parent)
    try:
        features = build()
        for name, ragged in features.items():
            ragged.write(scratch, name)
        with open(os.path.join(scratch, COMPLETE), 'w') as file:
            file.write('\n'.join(features) + '\n')
        try:
            os.rename(scratch, folder)
        except OSError:   # another process kept the same store first
            if not os.path.exists(os.path.join(folder, COMPLETE)):
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _read(folder: str) -> dict[str, Ragged]:
    with open(os.path.join(folder, COMPLETE)) as file:
        names = file.read().split()
    return {name: Ragged.read(folder, name) for name in names}
