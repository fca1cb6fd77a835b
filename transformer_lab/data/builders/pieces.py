"""What the music builders share: a dataset of named pieces, one example each, ``{FEATURE: array,
'piece': name}``, where the array is a chorale grid (``voices`` uint8 [steps, 4]) or a performance
(``notes`` float32 [n, 4]), a performance with its ``melody`` (notes, one at a time: what a
melody-conditioned model reads); and the split by piece name of the datasets that have no split of
their own.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Iterable

import numpy as np
import tensorflow_datasets as tfds

from transformer_lab.data import midi

SPLITS = ('train', 'validation', 'test')


def split_of(piece: str) -> str:
    """A fixed split per piece name: md5(name) % 10 is 0 for ``test``, 1 for ``validation``, else ``train``."""
    bucket = int(hashlib.md5(piece.encode()).hexdigest(), 16) % 10
    return 'test' if bucket == 0 else 'validation' if bucket == 1 else 'train'


def by_split(pieces: list[tuple]) -> dict[str, list[tuple]]:
    """(name, array, ...) pieces -> the pieces of each split (``split_of`` of the name), in their order."""
    return {split: [piece for piece in pieces if split_of(piece[0]) == split] for split in SPLITS}


class PiecesBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """A builder of named pieces: a subclass sets FEATURE, HOMEPAGE (and CITATION) and makes each split
    ``self._generate_examples(pieces)`` over (name, array) pairs, which may be read lazily; performances
    may come as (name, notes, melody), else their melody is the notes' skyline (``midi.skyline``). Its
    module's docstring is the dataset's description."""

    VERSION = tfds.core.Version('1.0.0')
    RELEASE_NOTES = {'1.0.0': 'Initial release.'}
    FEATURE = 'notes'        # or 'voices'
    HOMEPAGE = ''
    CITATION = ''

    def _info(self) -> tfds.core.DatasetInfo:
        dtype = np.uint8 if self.FEATURE == 'voices' else np.float32
        return tfds.core.DatasetInfo(
            builder=self, description=sys.modules[type(self).__module__].__doc__,
            features=tfds.features.FeaturesDict({
                self.FEATURE: tfds.features.Tensor(shape=(None, 4), dtype=dtype),
                'piece': tfds.features.Text(),
                **({'melody': tfds.features.Tensor(shape=(None, 4), dtype=np.float32)} if self.FEATURE == 'notes'
                   else {}),
            }),
            disable_shuffling=True, homepage=self.HOMEPAGE, citation=self.CITATION or None)

    def _generate_examples(self, pieces: Iterable[tuple]):
        for name, array, *melody in pieces:
            example = {self.FEATURE: array, 'piece': name}
            if self.FEATURE == 'notes':
                example['melody'] = melody[0] if melody else midi.skyline(array)
            yield name, example
