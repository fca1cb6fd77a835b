"""Your own MIDI files: any folder of ``.mid`` / ``.midi`` files (at any depth) as performances.

    python scripts/prepare_data.py --dataset=midi_folder --manual_dir=MY_MIDI [--name=mine]
    python scripts/train.py --config=configs/music_transformer_midi_folder.py --config.data.name=midi_folder/mine ...

Splits: a CSV directly in the folder with ``split`` and ``midi_filename`` columns (MAESTRO's metadata
layout, paths relative to the CSV; other CSVs are ignored) when there is one; else folders named
``train/ validation/ test/``; else a hash of each file's path (folders.py). Features as for MAESTRO: ``notes`` float32 [n, 4] (pitch,
velocity, start s, end s; every non-drum track, the sustain pedal applied, data/midi.py) and ``piece``
(the path relative to the folder). Files that do not parse, or hold no notes, are skipped and listed.
"""

from __future__ import annotations

import csv
import pathlib
from collections.abc import Callable, Iterator

import numpy as np

from transformer_lab.data import midi
from transformer_lab.data.builders.folders import SPLIT_FOLDERS, DataSourceError, FolderBuilder, by_split, files_of
from transformer_lab.data.builders.pieces import SPLITS, PiecesBuilder

SUFFIXES = ('.mid', '.midi')


def readable_pieces(paths: list[pathlib.Path], root: pathlib.Path,
                    skip: Callable[[pathlib.Path, str], None]) -> Iterator[tuple[str, np.ndarray]]:
    """(path relative to ``root``, notes) of each file that parses and holds notes; the others go to
    ``skip`` with the parser's reason (MIDI parsers raise all kinds of errors on a damaged file)."""
    for path in paths:
        try:
            notes = midi.read_notes(path)
        except Exception as error:  # noqa: BLE001 - any parser failure means: skip this file
            skip(path, f'not a readable MIDI file ({type(error).__name__}: {error})')
            continue
        if len(notes) == 0:
            skip(path, 'no notes')
            continue
        yield path.relative_to(root).as_posix(), notes


SPLIT_COLUMNS = ('split', 'midi_filename')


def split_table(folder: pathlib.Path) -> pathlib.Path | None:
    """The CSV directly in ``folder`` whose header has the columns ``split`` and ``midi_filename``, if
    there is one (other CSVs are not split tables and are ignored); several are a DataSourceError."""
    tables = [path for path in sorted(folder.glob('*.csv')) if not path.name.startswith('.')
              and set(SPLIT_COLUMNS) <= set(csv_header(path))]
    if len(tables) > 1:
        raise DataSourceError(f'{folder} has several split tables ({", ".join(t.name for t in tables)}); '
                              f'keep one CSV with the columns {" and ".join(SPLIT_COLUMNS)}')
    return tables[0] if tables else None


def csv_header(path: pathlib.Path) -> list[str]:
    """The column names of a CSV's first line (a byte-order mark dropped, undecodable bytes replaced)."""
    with open(path, 'rb') as file:
        first = file.readline().decode('utf-8-sig', errors='replace')
    return [name.strip() for name in next(csv.reader([first]), [])]


def csv_splits(path: pathlib.Path) -> dict[str, list[pathlib.Path]]:
    """The files of each split listed by a CSV with ``split`` and ``midi_filename`` columns (UTF-8,
    a byte-order mark allowed, as spreadsheets write it)."""
    try:
        with open(path, newline='', encoding='utf-8-sig') as file:
            rows = list(csv.DictReader(file, skipinitialspace=True))
    except UnicodeDecodeError as error:
        raise DataSourceError(f'{path} is not UTF-8 (byte {error.start}); save it as UTF-8 CSV') from None
    return listed_splits(path, rows)


def listed_splits(table: pathlib.Path, rows: list[dict]) -> dict[str, list[pathlib.Path]]:
    """The files of each split of a metadata table's rows (``split``: train, validation or test, also
    valid or dev; ``midi_filename`` relative to the table's folder), all checked to exist before
    anything is written: a half-extracted zip fails here, not hours later."""
    for number, row in enumerate(rows, start=1):
        if not all(isinstance(row.get(column), str) and row[column].strip() for column in SPLIT_COLUMNS):
            raise DataSourceError(f'{table}, row {number} after the header: no {" or ".join(SPLIT_COLUMNS)} '
                                  f'({row}); every row needs both')
        if row['split'].strip().lower() not in SPLIT_FOLDERS:
            raise DataSourceError(f'{table}, row {number} after the header: unknown split {row["split"]!r}; '
                                  f'valid: {", ".join(SPLIT_FOLDERS)}')
    root = pathlib.Path(table).parent
    missing = [row['midi_filename'] for row in rows if not (root / row['midi_filename'].strip()).is_file()]
    if missing:
        raise DataSourceError(f'{table} lists {len(missing)} MIDI files that are not under {root}, '
                              f'e.g. {missing[:3]}')
    splits = {split: [root / row['midi_filename'].strip() for row in rows
                      if SPLIT_FOLDERS[row['split'].strip().lower()] == split] for split in SPLITS}
    return {split: paths for split, paths in splits.items() if paths}   # TFDS cannot write an empty split


def pieces_by_split(source: pathlib.Path, skip: Callable[[pathlib.Path, str], None]
                    ) -> dict[str, Iterator[tuple[str, np.ndarray]]]:
    """The readable pieces of each split of a folder (or one file) of MIDI files: split by its split
    table if it has one (``split_table``), else by folder names or a hash of each path (folders.py)."""
    root = source if source.is_dir() else source.parent
    table = split_table(source) if source.is_dir() else None
    if table is not None:
        splits = csv_splits(table)
    else:
        files = files_of(source, SUFFIXES, 'MIDI files')
        splits = by_split(files, root, usable=lambda path: any(readable_pieces([path], root, lambda *_: None)))
    return {split: readable_pieces(paths, root, skip) for split, paths in splits.items()}


class MidiFolder(FolderBuilder, PiecesBuilder):
    """Performances from a folder of MIDI files."""

    SUFFIXES = SUFFIXES
    KIND = 'MIDI files'

    @property
    def read_suffixes(self) -> tuple[str, ...]:
        return (*SUFFIXES, '.csv')   # a split table too

    def _split_generators(self, dl_manager):
        del dl_manager  # the files are the user's, under the config's source
        return {split: self._generate_examples(pieces) for split, pieces in
                pieces_by_split(self.source, self.skip).items()}
