"""Preparing a dataset once (scripts/prepare_data.py): never half-written, never silently stale.

- A dataset is generated into a temporary folder in the data dir and moved into its place only once
  complete, so a failure (a bad file, a full disk, Ctrl-C) leaves what was there before.
- A dataset made from files the user brings (``--manual_dir``) records them in ``source.json`` beside
  the prepared data (data/provenance.py). Asked again, preparing says ``already prepared`` while they
  are the same and warns when they changed; ``overwrite=True`` prepares it again, replacing the old
  version and the sentencepiece models trained on it. Training warns too (data/source.py).
- Files the builder could not use (``builder.skipped``: path, reason) are counted, the first few shown,
  all listed in ``skipped.txt`` beside the prepared data.
"""

from __future__ import annotations

import dataclasses
import glob
import importlib
import os
import pathlib
import shutil
import tempfile
import warnings

import tensorflow_datasets as tfds

from transformer_lab.data.builders.folders import DataSourceError, FolderConfig
from transformer_lab.data.provenance import record, stale
from transformer_lab.data.source import Dataset

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
        existing = dataset.builder(data_dir)   # DamagedDatasetError where it cannot be read
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


def inside(path: str, folder: str) -> bool:
    """Whether ``path`` is ``folder`` or under it (links resolved)."""
    path, folder = (pathlib.Path(p).expanduser().resolve() for p in (path, folder))
    return folder.is_dir() and path.is_relative_to(folder)
