"""Your own MIDI files: any folder of ``.mid`` / ``.midi`` files (at any depth) as performances.

    python scripts/prepare_data.py --dataset=midi_folder --manual_dir=MY_MIDI [--name=mine]
    python scripts/train.py --config=configs/music_transformer_midi_folder.py --config.data.name=midi_folder/mine ...

Splits: a CSV in the folder with ``split`` and ``midi_filename`` columns (MAESTRO's metadata layout,
paths relative to the CSV) when there is one; else folders named ``train/ validation/ test/``; else a
hash of each file's path (folders.py). Features as for MAESTRO: ``notes`` float32 [n, 4] (pitch,
velocity, start s, end s; every non-drum track, the sustain pedal applied, data/midi.py) and ``piece``
(the path relative to the folder). Files that do not parse, or hold no notes, are skipped and listed.
"""

from __future__ import annotations

import csv
import pathlib
from collections.abc import Callable, Iterator

import numpy as np

from transformer_lab.data import midi
from transformer_lab.data.builders.folders import DataSourceError, FolderBuilder, by_split, files_of
from transformer_lab.data.builders.pieces import SPLITS, PiecesBuilder

SUFFIXES = ('.mid', '.midi')


def read_notes(path: pathlib.Path) -> np.ndarray:
    """A MIDI file -> float32 [n, 4] notes, sustain applied."""
    import pretty_midi  # imported here like in data/midi.py: only reading MIDI needs it
    with path.open('rb') as file:
        return midi.notes_from_midi(pretty_midi.PrettyMIDI(file), sustain=True)


def readable_pieces(paths: list[pathlib.Path], root: pathlib.Path,
                    skip: Callable[[pathlib.Path, str], None]) -> Iterator[tuple[str, np.ndarray]]:
    """(path relative to ``root``, notes) of each file that parses and holds notes; the others go to
    ``skip`` with the parser's reason (MIDI parsers raise all kinds of errors on a damaged file)."""
    for path in paths:
        try:
            notes = read_notes(path)
        except Exception as error:  # noqa: BLE001 - any parser failure means: skip this file
            skip(path, f'not a readable MIDI file ({type(error).__name__}: {error})')
            continue
        if len(notes) == 0:
            skip(path, 'no notes')
            continue
        yield path.relative_to(root).as_posix(), notes


def csv_splits(path: pathlib.Path) -> dict[str, list[pathlib.Path]]:
    """The files of each split listed by a CSV with ``split`` and ``midi_filename`` columns."""
    with open(path, newline='', encoding='utf-8') as file:
        rows = list(csv.DictReader(file))
    if not rows or not {'split', 'midi_filename'} <= set(rows[0]):
        raise DataSourceError(f'{path}: a split CSV needs the columns split and midi_filename '
                              f'(found: {", ".join(rows[0]) if rows else "no rows"})')
    return listed_splits(path, rows)


def listed_splits(table: pathlib.Path, rows: list[dict]) -> dict[str, list[pathlib.Path]]:
    """The files of each split of a metadata table's rows (``split``, ``midi_filename`` relative to the
    table's folder), all checked to exist before anything is written: a half-extracted zip fails here,
    not hours later."""
    unknown = sorted({row['split'] for row in rows} - set(SPLITS))
    if unknown:
        raise DataSourceError(f'{table}: unknown splits {unknown}; valid: {", ".join(SPLITS)}')
    root = pathlib.Path(table).parent
    missing = [row['midi_filename'] for row in rows if not (root / row['midi_filename']).exists()]
    if missing:
        raise DataSourceError(f'{table} lists {len(missing)} MIDI files that are not under {root}, '
                              f'e.g. {missing[:3]}')
    splits = {split: [root / row['midi_filename'] for row in rows if row['split'] == split] for split in SPLITS}
    return {split: paths for split, paths in splits.items() if paths}   # TFDS cannot write an empty split


def pieces_by_split(source: pathlib.Path, skip: Callable[[pathlib.Path, str], None]
                    ) -> dict[str, Iterator[tuple[str, np.ndarray]]]:
    """The readable pieces of each split of a folder (or one file) of MIDI files: split by its one CSV
    if it has one, else by folder names or a hash of each path (folders.py)."""
    root = source if source.is_dir() else source.parent
    tables = sorted(source.glob('*.csv')) if source.is_dir() else []
    if len(tables) == 1:
        splits = csv_splits(tables[0])
    else:
        files = files_of(source, SUFFIXES, 'MIDI files')
        splits = by_split(files, root, usable=lambda path: any(readable_pieces([path], root, lambda *_: None)))
    return {split: readable_pieces(paths, root, skip) for split, paths in splits.items()}


class MidiFolder(FolderBuilder, PiecesBuilder):
    """Performances from a folder of MIDI files."""

    SUFFIXES = SUFFIXES
    KIND = 'MIDI files'

    def _split_generators(self, dl_manager):
        del dl_manager  # the files are the user's, under the config's source
        return {split: self._generate_examples(pieces) for split, pieces in
                pieces_by_split(self.source, self.skip).items()}
