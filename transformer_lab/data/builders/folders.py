"""What the builders of a user's own files share (midi_folder, image_folder, parallel_text, text_file).

A user's dataset is one TFDS builder config: ``prepare_data.py --dataset=image_folder --name=faces
--manual_dir=DIR`` prepares ``DATA_DIR/image_folder/faces/1.0.0`` from the files under DIR, and a config
reads it as ``data.name='image_folder/faces'`` (``--name`` defaults to ``default``). The config carries
the source and the builder's options (image size, languages); once prepared, the dataset is read back
from its files alone.

Splits, the same rule for every kind of file: a file under a folder (at any depth) named ``train``,
``validation`` or ``test`` (also ``valid``, ``dev``), or named so itself (``dev.en``, ``test.png``),
belongs to that split; any other file goes by a hash of its path relative to the source
(``pieces.split_of``: about 80 / 10 / 10; the text builders hash each sentence or paragraph instead).
In the builders of files (midi_folder, image_folder), a folder too small for the hash to fill
validation and test lends them a training file each (``by_split``); a split that still gets nothing
is left out: TFDS cannot write an empty split (and preparing refuses a dataset without a train split).

Files that cannot be read (lines, for the text builders) are skipped and listed in ``skipped`` (path,
reason), never a traceback; an empty source, or one without a single usable file, is a
``DataSourceError`` naming it.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import pathlib
from collections.abc import Callable

import tensorflow_datasets as tfds

from transformer_lab.data.builders.pieces import SPLITS, split_of

SPLIT_FOLDERS = {'train': 'train', 'validation': 'validation', 'valid': 'validation', 'dev': 'validation',
                 'test': 'test'}


class DataSourceError(OSError):
    """A user's files cannot make a dataset; the message names the file or folder and what is wrong."""


@dataclasses.dataclass
class FolderConfig(tfds.core.BuilderConfig):
    """A user's dataset: ``source``, the folder (or single file) its files are read from, and the
    builder's options (each builder reads those it knows)."""
    source: str = ''
    image_size: int = 32
    channels: int = 3
    background: str = 'white'
    source_lang: str = 'source'
    target_lang: str = 'target'


class FolderBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """A builder over a user's files: a subclass sets SUFFIXES and KIND and makes its splits from
    ``self.files()`` (by ``files_by_split``, which asks ``usable`` of a few files, or by a rule of
    its own); unusable files go to ``self.skip``."""

    VERSION = tfds.core.Version('1.0.0')
    RELEASE_NOTES = {'1.0.0': 'Initial release.'}
    SUFFIXES: tuple[str, ...] = ()
    KIND = 'files'
    OPTIONS: tuple[str, ...] = ()     # the FolderConfig fields this builder reads (prepare_data's flags)

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.skipped: list[tuple[str, str]] = []

    @property
    def source(self) -> pathlib.Path:
        if not self.builder_config.source:
            raise DataSourceError(f'{self.name} reads your own {self.KIND}: give their folder with --manual_dir=DIR')
        return pathlib.Path(self.builder_config.source).expanduser()

    def files(self) -> list[pathlib.Path]:
        return files_of(self.source, self.SUFFIXES, self.KIND)

    @property
    def read_suffixes(self) -> tuple[str, ...]:
        """The suffixes of every file in a source folder that the builder reads: what makes a prepared
        dataset stale when such a file is added, removed or changed (provenance.py ``record``)."""
        return self.SUFFIXES

    @property
    def root(self) -> pathlib.Path:
        """The folder that file names, classes and splits are relative to."""
        return self.source if self.source.is_dir() else self.source.parent

    def files_by_split(self) -> dict[str, list[pathlib.Path]]:
        """The source's files of each split that has any (``by_split``), in path order."""
        return by_split(self.files(), self.root, self.usable)

    def usable(self, path: pathlib.Path) -> bool:
        """Whether a file can be read (asked only of a few, see ``by_split``); a subclass checks."""
        del path
        return True

    def skip(self, path, reason: str) -> None:
        """Lists an unusable file (or ``FILE:LINE``) once, however often it is read."""
        if (str(path), reason) not in self.skipped:
            self.skipped.append((str(path), reason))


def files_of(source: pathlib.Path, suffixes: tuple[str, ...], kind: str) -> list[pathlib.Path]:
    """Every file under ``source`` (recursively, hidden ones aside) whose suffix is one of ``suffixes``
    (any case), sorted; ``source`` itself when it is such a file. Raises DataSourceError when there is
    none."""
    if not source.exists():
        raise DataSourceError(f'{source} does not exist; give the folder of your {kind} with --manual_dir=DIR')
    if source.is_file():
        found = [source] if source.suffix.lower() in suffixes else []
    else:
        found = visible_files(source, suffixes)
    if not found:
        what = 'is empty' if source.is_dir() and not any(source.iterdir()) else f'has no {"/".join(suffixes)} files'
        raise DataSourceError(f'{source} {what}; {kind} are read from files named *{", *".join(suffixes)} '
                              f'(in sub-folders too)')
    return found


def visible_files(folder: pathlib.Path, suffixes: tuple[str, ...] | None = None) -> list[pathlib.Path]:
    """The files under ``folder`` (recursively; hidden files and folders aside) whose suffix is one of
    ``suffixes`` (any case; every file when None), sorted."""
    return sorted(path for path in folder.rglob('*') if path.is_file()
                  and (suffixes is None or path.suffix.lower() in suffixes)
                  and not any(part.startswith('.') for part in path.relative_to(folder).parts))


def named_split(path: pathlib.Path, root: pathlib.Path) -> str | None:
    """The split that ``path``'s name gives: that of its nearest enclosing folder below ``root`` named
    like a split (``SPLIT_FOLDERS``), else that of its stem (``dev.en``, ``test.png``); None when
    neither is a split's name."""
    relative = path.relative_to(root) if path != root else pathlib.Path(path.name)
    for name in [*reversed(relative.parts[:-1]), path.stem]:
        if name.lower() in SPLIT_FOLDERS:
            return SPLIT_FOLDERS[name.lower()]
    return None


def split_by_name_or_hash(path: pathlib.Path, root: pathlib.Path) -> str:
    """``path``'s split: the one its name gives (``named_split``), else ``split_of`` its path relative
    to ``root``."""
    relative = path.relative_to(root) if path != root else pathlib.Path(path.name)
    return named_split(path, root) or split_of(relative.as_posix())


def by_split(files: list[pathlib.Path], root: pathlib.Path,
             usable: Callable[[pathlib.Path], bool] = lambda path: True) -> dict[str, list[pathlib.Path]]:
    """The files of each split (``split_by_name_or_hash``) in their order. A small folder can hash no
    file (or only files that ``usable`` rejects) to validation or test: then each such split takes the
    usable training file of the lowest hash (``hash_order``) while another usable one stays in train,
    so that 3 or more usable files make all three splits. Splits without a file are left out (TFDS
    cannot write an empty split)."""
    usable = functools.cache(usable)
    splits = {split: [f for f in files if split_by_name_or_hash(f, root) == split] for split in SPLITS}
    lendable = sorted((f for f in splits['train'] if named_split(f, root) is None), key=lambda f: hash_order(f, root))
    for split in ('validation', 'test'):
        if len(splits[split]) > FEW_FILES or any(map(usable, splits[split])):
            continue
        lent = next((f for f in lendable if usable(f)), None)
        if lent is not None and any(usable(f) for f in splits['train'] if f != lent):
            lendable.remove(lent)
            splits['train'].remove(lent)
            splits[split].append(lent)
    return {split: found for split, found in splits.items() if found}


FEW_FILES = 3   # a validation or test split of at most this many files is checked for a usable one


def hash_order(path: pathlib.Path, root: pathlib.Path) -> str:
    relative = path.relative_to(root) if path != root else pathlib.Path(path.name)
    return hashlib.md5(relative.as_posix().encode()).hexdigest()
