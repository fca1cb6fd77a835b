"""MAESTRO piano performances (Hawthorne et al. 2019), from the files placed by hand in a TFDS manual_dir.

Any release (v2.0.0, v3.0.0) as its zip extracts: the metadata ``maestro-v*.csv`` (or, without a csv,
``maestro-v*.json``: v3's is column-oriented, {column: {row: value}}, v2's a list of rows) directly in
the manual_dir or one folder down, and the MIDI files at the metadata's ``midi_filename`` paths,
relative to the metadata's folder. Without metadata, the manual_dir is read as a ``midi_folder``:
every MIDI file under it, split by folders named train/ validation/ test/ or by a hash of its path,
unreadable files skipped.

Splits: the metadata's ``split`` column (train / validation / test; v3.0.0 has 962 / 137 / 177
performances). Features: ``notes`` float32 [n, 4] (pitch, velocity, start s, end s; every non-drum
track, the sustain pedal lengthening the notes it holds, see data/midi.py) and ``piece`` (the
``midi_filename``). Examples keep metadata order.
"""

from __future__ import annotations

import csv
import json
import pathlib

import tensorflow_datasets as tfds
from etils import epath

from transformer_lab.data.builders import midi_folder
from transformer_lab.data.builders.folders import DataSourceError
from transformer_lab.data.builders.pieces import PiecesBuilder


_CITATION = """\
@inproceedings{hawthorne2018enabling,
  title = {Enabling Factorized Piano Music Modeling and Generation with the {MAESTRO} Dataset},
  author = {Curtis Hawthorne and Andriy Stasyuk and Adam Roberts and Ian Simon and Cheng-Zhi Anna Huang
            and Sander Dieleman and Erich Elsen and Jesse Engel and Douglas Eck},
  booktitle = {International Conference on Learning Representations},
  year = {2019},
  url = {https://openreview.net/forum?id=r1lYRjC9F7},
}
"""


def find_metadata(manual_dir: epath.Path) -> epath.Path | None:
    """The one ``maestro-v*.csv`` (else ``maestro-v*.json``) in ``manual_dir`` or one folder down, if any."""
    for suffix in ('csv', 'json'):
        found = sorted([*manual_dir.glob(f'maestro-v*.{suffix}'), *manual_dir.glob(f'*/maestro-v*.{suffix}')])
        if len(found) > 1:
            raise DataSourceError(f'Several MAESTRO metadata files under {manual_dir}, keep one release: {found}')
        if found:
            return found[0]
    return None


def read_metadata(path: epath.Path) -> list[dict]:
    """The metadata's rows, each {column: value}, in file order."""
    text = path.read_text(encoding='utf-8')
    if path.suffix == '.csv':
        return list(csv.DictReader(text.splitlines()))
    table = json.loads(text)
    if isinstance(table, list):
        return table
    rows = sorted(table['midi_filename'], key=int)
    return [{column: values[row] for column, values in table.items()} for row in rows]


class Maestro(PiecesBuilder):
    """MAESTRO piano performances as notes, from a manual_dir."""

    VERSION = tfds.core.Version('1.1.0')
    RELEASE_NOTES = {'1.0.0': 'Initial release.', '1.1.0': 'Each performance with its melody.'}

    HOMEPAGE = 'https://magenta.tensorflow.org/datasets/maestro'
    CITATION = _CITATION
    MANUAL_DOWNLOAD_INSTRUCTIONS = """\
Download the MIDI-only zip of MAESTRO (e.g. maestro-v3.0.0-midi.zip) from
https://magenta.tensorflow.org/datasets/maestro and extract it into manual_dir, so that manual_dir holds
maestro-v3.0.0.csv (or .json) and the year folders of MIDI files, directly or in one folder
(manual_dir/maestro-v3.0.0/...): python scripts/prepare_data.py --dataset=maestro --manual_dir=DIR
Your own MIDI files need no metadata: any folder of .mid/.midi files (split by sub-folders train/
validation/ test/, else by a hash of each path), best prepared as --dataset=midi_folder --name=NAME.
"""

    def _split_generators(self, dl_manager):
        try:
            manual_dir = dl_manager.manual_dir
        except AssertionError as error:  # TFDS: the manual_dir does not exist or is empty
            raise FileNotFoundError(str(error)) from error
        self.skipped = []   # (path, reason) of the MIDI files that could not be read
        skip = lambda path, reason: self.skipped.append((str(path), reason))  # noqa: E731
        metadata = find_metadata(manual_dir)
        if metadata is None:
            try:
                by_split = midi_folder.pieces_by_split(pathlib.Path(manual_dir), skip)
            except DataSourceError as error:
                raise DataSourceError(f'{error}; nor is there MAESTRO metadata (maestro-v*.csv or maestro-v*.json) '
                                      f'in it or one folder down.\n{self.MANUAL_DOWNLOAD_INSTRUCTIONS}') from None
            return {split: self._generate_examples(pieces) for split, pieces in by_split.items()}
        root = pathlib.Path(metadata.parent)
        return {split: self._generate_examples(midi_folder.readable_pieces(paths, root, skip))
                for split, paths in midi_folder.listed_splits(pathlib.Path(metadata), read_metadata(metadata)).items()}
