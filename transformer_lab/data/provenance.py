"""What a prepared dataset was made from: ``source.json`` beside the prepared data of a dataset made
from files the user brings (``--manual_dir``), and what changed since.

The record holds the folder, the number and total size of the files the builder reads there (of its
suffixes; or the single file and its partner), a digest of their names and sizes, and the builder's
options. Preparing writes it (data/prepare.py); preparing again and training read it (``stale``).
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib

from transformer_lab.data.builders.folders import visible_files

SOURCE_RECORD = 'source.json'


def options_of(builder) -> dict:
    """The options a user dataset was prepared with, defaults included (``FolderBuilder.OPTIONS``)."""
    return {name: getattr(builder.builder_config, name) for name in getattr(builder, 'OPTIONS', ())}


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
    nothing was recorded, or when the recorded folder is gone (the prepared data stand on their own).
    An unreadable record is one such sentence: the data can still be read, but not checked."""
    path = os.path.join(prepared_dir, SOURCE_RECORD)
    if not os.path.exists(path):
        return []
    try:
        with open(path) as file:
            then = json.load(file)
    except ValueError:   # not JSON (overwritten, cut short)
        return [f'{path} cannot be read, so changes to the files it was prepared from go unnoticed']
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
