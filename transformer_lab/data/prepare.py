"""Preparing a dataset once (scripts/prepare_data.py): never half-written, never silently stale.

- A dataset is generated into a temporary folder in the data dir and moved into its place only once
  complete, so a failure (a bad file, a full disk, Ctrl-C) leaves what was there before.
- A dataset made from files the user brings (``--manual_dir``) records them in ``source.json`` beside
  the prepared data: the folder, the number and total size of the files the builder reads there (of
  its suffixes; or the single file and its partner) and a digest of their names and sizes, and the
  builder's options. Asked again, preparing says ``already prepared`` while they are
  the same and warns when they changed; ``overwrite=True`` prepares it again, replacing the old version
  and the sentencepiece models trained on it. Training warns too (``source_change``).
- Files the builder could not use (``builder.skipped``: path, reason) are counted, the first few shown,
  all listed in ``skipped.txt`` beside the prepared data.
"""

from __future__ import annotations

import dataclasses
import glob
import hashlib
import importlib
import json
import os
import pathlib
import shutil
import tempfile
import warnings

from typing import TYPE_CHECKING

import tensorflow_datasets as tfds

from transformer_lab.data.builders.folders import DataSourceError, FolderConfig, visible_files

if TYPE_CHECKING:  # source.py imports this module to warn of stale data
    from transformer_lab.data.source import Dataset

SOURCE_RECORD = 'source.json'
SKIPPED_LIST = 'skipped.txt'


@dataclasses.dataclass
class Prepared:
    """What one preparation did: ``prepared`` False when the data were already there."""
    dataset: Dataset
    path: str
    prepared: bool
    splits: dict[str, int]
    skipped: list[tuple[str, str]]
    classes: list[str]      # the names of the ``label`` feature's classes, if it has one


def prepare(dataset: Dataset, data_dir: str, *, manual_dir: str | None = None, overwrite: bool = False,
            options: dict | None = None) -> Prepared:
    """Prepares ``dataset`` in ``data_dir`` as array_record, from ``manual_dir`` where it reads files the
    user brings; ``options`` are a user dataset's builder options (image_size, source_lang, ...).
    Raises DataSourceError for unusable files, before anything in ``data_dir`` changed."""
    options = options or {}
    target = dataset.prepared_dir(data_dir)
    if manual_dir and inside(data_dir, manual_dir):
        raise DataSourceError(f'the data dir {data_dir} is inside --manual_dir={manual_dir}: the prepared data would '
                              f'be read as your files; give a data dir (--data_dir or TFDS_DATA_DIR) outside it')
    if os.path.exists(os.path.join(target, 'dataset_info.json')) and not overwrite:
        for change in stale(target, manual_dir, options):
            warnings.warn(f'{dataset.name} in {target}: {change}; prepare it again with --overwrite')
        existing = tfds.builder_from_directory(target)
        return Prepared(dataset, target, False, split_sizes(existing), [], class_names(existing))
    if dataset.user_files and not manual_dir:
        raise DataSourceError(f'{dataset.tfds_name} is made from your own files: give their folder with '
                              f'--manual_dir=DIR ({dataset.manual_dir})')
    os.makedirs(data_dir, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=data_dir, prefix=f'.preparing_{dataset.tfds_name}_') as scratch:
        builder = new_builder(dataset, scratch, manual_dir, options)
        try:
            builder.download_and_prepare(
                file_format='array_record', download_dir=os.path.join(data_dir, 'downloads'),
                download_config=tfds.download.DownloadConfig(manual_dir=manual_dir))
        except AssertionError as error:   # TFDS: a split whose every file was skipped
            if 'No examples were yielded' not in str(error):
                raise
            raise DataSourceError(f'{manual_dir}: {str(error).split(":")[0].lower()}: none of its files could be '
                                  f'used, e.g. ' + '; '.join(f'{path}: {reason}' for path, reason in
                                                            getattr(builder, 'skipped', [])[:3])) from None
        splits, skipped = split_sizes(builder), list(getattr(builder, 'skipped', []))
        if 'train' not in splits:
            raise DataSourceError(f'{manual_dir or dataset.name} gave no training examples (only '
                                  f'{", ".join(f"{split}: {n}" for split, n in splits.items())}); add files, or put '
                                  f'some in a folder named train/')
        if manual_dir:
            record(builder, manual_dir)
        if skipped:
            with open(os.path.join(builder.data_dir, SKIPPED_LIST), 'w', encoding='utf-8') as file:
                file.writelines(f'{path}\t{reason}\n' for path, reason in skipped)
        replace(builder.data_dir, target)
    if overwrite:
        for model in glob.glob(os.path.join(data_dir, dataset.name, 'sentencepiece_*')):
            os.remove(model)   # trained on the old data
    return Prepared(dataset, target, True, splits, skipped, class_names(builder))


def new_builder(dataset: Dataset, data_dir: str, manual_dir: str | None, options: dict):
    importlib.import_module(dataset.builder_module)
    if not dataset.user_files:
        return tfds.builder(dataset.tfds_name, data_dir=data_dir)
    config = FolderConfig(name=dataset.config_name, source=str(pathlib.Path(manual_dir).expanduser()), **options)
    return tfds.builder_cls(dataset.tfds_name)(config=config, data_dir=data_dir)


def options_of(builder) -> dict:
    """The options a user dataset was prepared with, defaults included (``FolderBuilder.OPTIONS``)."""
    return {name: getattr(builder.builder_config, name) for name in getattr(builder, 'OPTIONS', ())}


def class_names(builder) -> list[str]:
    features = builder.info.features
    label = features['label'] if 'label' in features.keys() else None
    return list(label.names) if isinstance(label, tfds.features.ClassLabel) else []


def split_sizes(builder) -> dict[str, int]:
    return {split: info.num_examples for split, info in builder.info.splits.items()}


def replace(new: str, target: str) -> None:
    """Moves the prepared folder ``new`` to ``target``; an old ``target`` is removed only after."""
    os.makedirs(os.path.dirname(target), exist_ok=True)
    old = f'{new}.old'
    if os.path.exists(target):
        os.rename(target, old)
    os.rename(new, target)
    shutil.rmtree(old, ignore_errors=True)


# --- the record of the source ----------------------------------------------------------------------

def inside(path: str, folder: str) -> bool:
    """Whether ``path`` is ``folder`` or under it (links resolved)."""
    path, folder = (pathlib.Path(p).expanduser().resolve() for p in (path, folder))
    return folder.is_dir() and path.is_relative_to(folder)


def describe_source(source: str, suffixes: list[str] | None = None, names: list[str] | None = None) -> dict:
    """The files a builder reads from ``source``: a folder's files with one of ``suffixes`` (every file
    when None; hidden ones aside), or a single file with ``names`` (the files beside it read with it,
    itself by default). Returns the source's path, those files' number, total size and a digest of
    (relative path, size): what notices an added, removed, renamed or edited file."""
    root = pathlib.Path(source).expanduser().resolve()
    if root.is_file():
        base, names = root.parent, names or [root.name]
        paths = [base / name for name in names]
    else:
        base, paths = root, visible_files(root, tuple(suffixes) if suffixes is not None else None)
    entries = [(path.relative_to(base).as_posix(), path.stat().st_size if path.exists() else None)
               for path in paths]
    digest = hashlib.sha256(json.dumps(entries).encode()).hexdigest()
    return {'source': str(root), 'suffixes': suffixes, 'names': names, 'files': len(entries),
            'bytes': sum(size or 0 for _, size in entries), 'digest': digest}


def record(builder, source: str) -> None:
    """Writes ``source.json`` into the builder's (scratch) data dir: ``describe_source`` of the files it
    read (a user's dataset: ``FolderBuilder.read_suffixes``, ``files()``; others: every file) and its
    options."""
    suffixes = getattr(builder, 'read_suffixes', None)
    names = ([path.name for path in builder.files()]
             if suffixes is not None and pathlib.Path(source).expanduser().is_file() else None)
    described = describe_source(source, list(suffixes) if suffixes is not None else None, names)
    with open(os.path.join(builder.data_dir, SOURCE_RECORD), 'w') as file:
        json.dump({**described, 'options': options_of(builder)}, file)


def stale(prepared_dir: str, source: str | None = None, options: dict | None = None) -> list[str]:
    """What differs between the prepared data and ``source`` (default: the folder it was prepared from)
    with ``options`` (default: those it was prepared with), as sentences; [] when nothing does, when
    nothing was recorded, or when the recorded folder is gone (the prepared data stand on their own)."""
    path = os.path.join(prepared_dir, SOURCE_RECORD)
    if not os.path.exists(path):
        return []
    with open(path) as file:
        then = json.load(file)
    changes = [f'prepared with --{name}={then["options"][name]}, not {value}'
               for name, value in (options or {}).items() if then['options'].get(name, value) != value]
    source = source or then['source']
    if not os.path.exists(source):
        return changes
    now = describe_source(source, then.get('suffixes'), then.get('names'))
    if now['source'] != then['source']:
        changes.append(f'prepared from {then["source"]}, not {now["source"]}')
    elif now['digest'] != then['digest']:
        changes.append(f'{now["source"]} changed since it was prepared ({then["files"]} files of '
                       f'{then["bytes"]:,} bytes then, {now["files"]} files of {now["bytes"]:,} bytes now)')
    return changes
