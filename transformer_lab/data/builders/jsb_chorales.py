"""JSB Chorales on a 16th-note grid: Coconet's ``Jsb16thSeparated.npz`` (Huang et al. 2017, "Counterpoint
by Convolution"), the data and split of the Music Transformer's JSB experiments (Huang et al. 2018,
Sec. 5.1), read from a TFDS ``manual_dir``.

The file (https://github.com/czhuang/JSB-Chorales-dataset, whose README describes it) holds the
Boulanger-Lewandowski et al. (2012) train / valid / test split of 229 / 76 / 77 chorales, each four
voices on a 16th-note grid. It is an npz of three pickled object arrays, ``train``, ``valid`` and
``test``, one [steps, 4] array per piece (float16 in the current file; int64 and float64, the same
values, in its first version): the MIDI pitch of each voice at each step, NaN where the voice is silent
(the README; pitches 36-81 in the file). The arrays were pickled under Python 2, whose byte strings
Python 3 decodes as ASCII unless told otherwise, so reading them takes ``allow_pickle=True,
encoding='latin1'``, as Coconet's loader (magenta ``models/coconet/lib_data.py``) does. The columns run
from high to low, soprano, alto, tenor, bass: Coconet's MIDI decoder (``lib_pianoroll.py``) assumes that
order, and in the file the column means fall (train: 70.4, 65.0, 59.5, 50.6) and S >= A >= T >= B at
97% of the steps, so no reordering is needed.

Features, as ``bach_chorales`` so the same pipeline reads either: ``voices`` uint8 [steps, 4], the
pitch of S, A, T, B at each 16th note (0 = rest, from NaN), and ``piece``, the file's array and the
piece's index in it (``train/0``, ``valid/0``, ``test/0``). Splits ``train``, ``validation`` (the
file's ``valid``) and ``test`` keep the file's order.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import numpy as np

from transformer_lab.data.builders.pieces import PiecesBuilder

FILE_NAME = 'Jsb16thSeparated.npz'
URL = 'https://github.com/czhuang/JSB-Chorales-dataset/raw/master/Jsb16thSeparated.npz'
SPLITS = {'train': 'train', 'validation': 'valid', 'test': 'test'}   # TFDS split -> array in the file
NUM_VOICES = 4


def piece_grid(piece, path: str, name: str) -> np.ndarray:
    """One piece of the file (MIDI pitches, NaN = rest) -> uint8 [steps, 4], 0 = rest."""
    pitches = np.asarray(piece, np.float64)
    if pitches.ndim != 2 or pitches.shape[1] != NUM_VOICES:
        raise ValueError(f'{path}: piece {name} has shape {pitches.shape}, not [steps, {NUM_VOICES}] '
                         f'(S, A, T, B)')
    return np.nan_to_num(pitches, nan=0).astype(np.uint8)


def named_grids(path: str, fold: str, pieces) -> Iterator[tuple[str, np.ndarray]]:
    """The pieces of one array of the file -> (``fold/index``, grid), read as TFDS asks for them."""
    for index, piece in enumerate(pieces):
        name = f'{fold}/{index}'
        yield name, piece_grid(piece, path, name)


class JsbChorales(PiecesBuilder):
    """JSB Chorales, four voices on a 16th-note grid (Coconet's Jsb16thSeparated.npz)."""

    FEATURE = 'voices'
    HOMEPAGE = 'https://github.com/czhuang/JSB-Chorales-dataset'
    MANUAL_DOWNLOAD_INSTRUCTIONS = f'Download {FILE_NAME} ({URL}) into manual_dir.'

    def _split_generators(self, dl_manager):
        try:
            path = os.path.join(os.fspath(dl_manager.manual_dir), FILE_NAME)
        except AssertionError as error:  # TFDS: the manual_dir is missing or empty; its message names it
            raise FileNotFoundError(f'{FILE_NAME} not found: {error}') from error
        if not os.path.exists(path):
            raise FileNotFoundError(f'{FILE_NAME} not found in the manual_dir {os.path.dirname(path)}: '
                                    f'{self.MANUAL_DOWNLOAD_INSTRUCTIONS}')
        with np.load(path, allow_pickle=True, encoding='latin1') as arrays:
            folds = {fold: list(arrays[fold]) for fold in SPLITS.values()}
        return {split: self._generate_examples(named_grids(path, fold, folds[fold])) for split, fold in SPLITS.items()}
