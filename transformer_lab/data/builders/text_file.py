"""Your own running text: one plain text file (any suffix), or a folder of ``.txt`` files (at any
depth), as paragraphs for a language model.

    python scripts/prepare_data.py --dataset=text_file --manual_dir=MY_TEXT [--name=mine]
    python scripts/train.py ... --config.data.name=text_file/mine \\
        --config.data.inputs_feature='' --config.data.targets_feature=text

Format: UTF-8 text. A paragraph is a block of non-blank lines; blank (or whitespace-only) lines
separate paragraphs. Each paragraph is one example: its lines joined with ``\\n`` (trailing spaces of
each line and a ``\\r`` of Windows line ends removed, a leading byte-order mark dropped), the whole
paragraph stripped. A line that is not UTF-8 is skipped and listed (``FILE:LINE``), its paragraph
keeping its other lines; a file without any text, or with a NUL byte in its first 8 KiB (a binary
file: text has none), is skipped and listed; a source without a single paragraph is a
``DataSourceError``. Feature: ``text``; examples keep file order (files sorted by path), keyed
``FILE:LINE`` of their first line.

Splits: a file under a folder named ``train``, ``validation`` (``valid``, ``dev``) or ``test``, or
named so itself (``train.txt``, ``valid.txt``, ``dev.txt``, ``test.txt``, any case), belongs to that
split as a whole; the paragraphs of every other file are split one by one by a hash of the
paragraph's text (``pieces.split_of``: about 80 / 10 / 10), so a repeated paragraph never straddles
two splits. A split that gets no paragraph is left out of the dataset.

Read by the text pipeline (data/text.py ``TextPipeline``) as a language model, with
``data.inputs_feature=''`` and ``data.targets_feature='text'``: each paragraph followed by one ``\\n``
(so the blank line between paragraphs becomes a single newline) is tokenized, and the records are
concatenated and cut into windows of ``max_length`` tokens, across paragraph boundaries. Training
reads the paragraphs in a shuffled order (reshuffled every epoch), evaluation in file order.
"""

from __future__ import annotations

import pathlib
from collections.abc import Iterator

import tensorflow_datasets as tfds

from transformer_lab.data.builders.folders import DataSourceError, FolderBuilder, files_of, named_split
from transformer_lab.data.builders.pieces import SPLITS, split_of

NOT_UTF8 = 'not UTF-8'
BINARY_SNIFF = 8192   # bytes read to tell a binary file (one with a NUL byte) from text


def decode_line(raw: bytes, number: int) -> str | None:
    """A line read in binary -> its text without the line end (and, on line 1, a byte-order mark);
    None when it is not UTF-8."""
    try:
        line = raw.decode('utf-8')
    except UnicodeDecodeError:
        return None
    return (line.removeprefix('\ufeff') if number == 1 else line).rstrip('\r\n')


class TextFolderBuilder(FolderBuilder, skip_registration=True):
    """A builder of text examples from a user's files, split by their names or else one example at a
    time by a hash of its text. A subclass lists its ``units()`` (a file, or files read together) and
    reads each with ``examples(unit)`` as (key, text to hash, example); unusable lines go to
    ``self.skip`` (which lists each once: a unit may be read more than once)."""

    def units(self) -> list[tuple[str | None, object]]:
        """(split given by its name or None, unit) of every unit to read, in order."""
        raise NotImplementedError

    def examples(self, unit) -> Iterator[tuple[str, str, dict[str, str]]]:
        raise NotImplementedError

    def _split_generators(self, dl_manager):
        del dl_manager  # the files are the user's, under the config's source
        units = self.units()
        present = self.splits_present(units)
        return {split: self._generate_examples(units, split) for split in SPLITS if split in present}

    def splits_present(self, units: list[tuple[str | None, object]]) -> set[str]:
        """The splits that get at least one example (TFDS cannot write an empty split), found by
        reading until each split that could get one has one: usually only the first lines."""
        could = set(SPLITS) if any(split is None for split, _ in units) else {split for split, _ in units}
        present: set[str] = set()
        for split, unit in units:
            if split in present:
                continue
            for _, hashed, _ in self.examples(unit):
                present.add(split or split_of(hashed))
                if split or present >= could:
                    break
            if present >= could:
                break
        if not present:
            examples = ''.join(f'; {path}: {reason}' for path, reason in self.skipped[:3])
            raise DataSourceError(f'{self.source} has no usable {self.KIND}{examples}')
        return present

    def _generate_examples(self, units, split: str):
        for named, unit in units:
            if named in (split, None):
                for key, hashed, example in self.examples(unit):
                    if (named or split_of(hashed)) == split:
                        yield key, example


class TextFile(TextFolderBuilder):
    """Paragraphs of running text from a text file or a folder of ``.txt`` files."""

    SUFFIXES = ('.txt',)
    KIND = 'text'

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self, description=__doc__,
            features=tfds.features.FeaturesDict({'text': tfds.features.Text()}),
            disable_shuffling=True)

    def files(self) -> list[pathlib.Path]:
        """The source itself when it is a file (any suffix), else its ``.txt`` files."""
        return [self.source] if self.source.is_file() else files_of(self.source, self.SUFFIXES, 'text files')

    def units(self):
        return [(named_split(path, self.root), path) for path in self.files()]

    def examples(self, path: pathlib.Path):
        name = path.relative_to(self.root).as_posix()
        for first, paragraph in self.paragraphs(path):
            yield f'{name}:{first}', paragraph, {'text': paragraph}

    def paragraphs(self, path: pathlib.Path) -> Iterator[tuple[int, str]]:
        """(number of its first line, text) of each paragraph of a file (see the module docstring)."""
        lines, first, found = [], 0, False
        with path.open('rb') as file:
            if b'\0' in file.read(BINARY_SNIFF):
                self.skip(path, 'not UTF-8 text: it holds NUL bytes (a binary file, or UTF-16 text)')
                return
            file.seek(0)
            for number, raw in enumerate(file, start=1):
                line = decode_line(raw, number)
                if line is None:
                    self.skip(f'{path}:{number}', NOT_UTF8)
                    found = True
                elif line.strip():
                    first = first if lines else number
                    lines.append(line.rstrip())
                elif lines:
                    yield first, '\n'.join(lines).strip()
                    lines, found = [], True
        if lines:
            yield first, '\n'.join(lines).strip()
        elif not found:
            self.skip(path, 'no text')
