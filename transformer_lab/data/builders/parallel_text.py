"""Your own translation pairs: aligned text files ``STEM.SRC`` + ``STEM.TGT``, or ``.tsv`` files, in a
folder (at any depth); or a single ``.tsv`` file (or one of an aligned pair, read with its partner).

    python scripts/prepare_data.py --dataset=parallel_text --manual_dir=MY_PAIRS --source_lang=en \\
        --target_lang=fr [--name=mine]
    python scripts/train.py ... --config.data.name=parallel_text/mine \\
        --config.data.inputs_feature=en --config.data.targets_feature=fr

Format: UTF-8 text, one sentence per line. Aligned files share a stem and end in the languages
(``train.en`` + ``train.fr``): line i of one is the translation of line i of the other, so files of
different line counts, or one without its partner, are a ``DataSourceError``. A ``.tsv`` file holds
one pair per line, source TAB target (no quoting); a first line that is just the two language names
is a header and ignored. Sides are stripped. A pair with a line that is not UTF-8, an empty side, or
(TSV) not exactly two columns is skipped and listed as ``FILE:LINE`` with the reason. Features: the
two languages (``en``, ``fr``); examples keep file order (files sorted by path), keyed ``FILE:LINE``
of their source side.

Splits: a file under a folder named ``train``, ``validation`` (``valid``, ``dev``) or ``test``, else
one whose stem is such a name (``dev.en`` + ``dev.fr``, ``test.tsv``, any case), belongs to that split
as a whole. The pairs of every other file (``corpus.en``, ``pairs.tsv``) are split one by one by a
hash of the stripped source sentence (``pieces.split_of``: about 80 / 10 / 10), so a repeated source
sentence never straddles two splits. Files named ``train`` alone give no validation or test split:
add ``dev`` and ``test`` files, or name the files otherwise to have them hashed. A split that gets
no pair is left out of the dataset.
"""

from __future__ import annotations

import pathlib
import re

import tensorflow_datasets as tfds

from transformer_lab.data.builders.folders import DataSourceError, files_of, named_split
from transformer_lab.data.builders.text_file import NOT_UTF8, TextFolderBuilder, decode_line

LANGUAGE = re.compile(r'[A-Za-z][A-Za-z0-9_-]*')


def line_count(path: pathlib.Path) -> int:
    """Lines of a file as reading it in binary yields them (a last line needs no newline)."""
    count, last = 0, b'\n'
    with path.open('rb') as file:
        while chunk := file.read(1 << 20):
            count, last = count + chunk.count(b'\n'), chunk[-1:]
    return count + (last != b'\n')


def empty_side(source: str, target: str) -> str:
    """'' when both sides of a pair have text, else the reason to skip it."""
    return '' if source and target else 'empty target' if source else 'empty source' if target else 'empty line'


class ParallelText(TextFolderBuilder):
    """Translation pairs from aligned files or TSV files; ``source_lang`` and ``target_lang`` name the
    files' suffixes and the features."""

    KIND = 'translation pairs'
    OPTIONS = ('source_lang', 'target_lang')

    @property
    def langs(self) -> tuple[str, str]:
        source, target = self.builder_config.source_lang, self.builder_config.target_lang
        for flag, lang in (('source_lang', source), ('target_lang', target)):
            if not LANGUAGE.fullmatch(lang) or lang.lower() == 'tsv':
                raise DataSourceError(f'--{flag}={lang!r} cannot name files and a feature; valid: a letter '
                                      f'then letters, digits, _ or - (en, fr, pt_BR), not tsv')
        if source.lower() == target.lower():
            raise DataSourceError(f'--source_lang and --target_lang are both {source!r}; they must differ')
        return source, target

    @property
    def suffixes(self) -> tuple[str, str, str]:
        return (*(f'.{lang.lower()}' for lang in self.langs), '.tsv')

    @property
    def read_suffixes(self) -> tuple[str, ...]:
        return self.suffixes

    def _info(self) -> tfds.core.DatasetInfo:
        source, target = self.langs
        return tfds.core.DatasetInfo(
            builder=self, description=__doc__,
            features=tfds.features.FeaturesDict({source: tfds.features.Text(), target: tfds.features.Text()}),
            supervised_keys=(source, target), disable_shuffling=True)

    def files(self) -> list[pathlib.Path]:
        """The source's .SRC, .TGT and .tsv files; a single aligned file comes with its partner."""
        found = files_of(self.source, self.suffixes, f'{self.KIND} ({"/".join(self.langs)})')
        if self.source.is_file() and self.source.suffix.lower() != '.tsv':
            partners = (self.source.with_suffix(suffix) for suffix in self.suffixes[:2])
            found += [path for path in partners if path.is_file() and path.name != self.source.name]
        return sorted(found)

    def units(self):
        """(split, (tsv,) or (source file, target file)) of each TSV and aligned pair, in path order;
        raises DataSourceError for a file without its partner and for files of different lengths."""
        source_suffix, target_suffix, _ = self.suffixes
        by_stem: dict[pathlib.Path, dict[str, pathlib.Path]] = {}
        units = []
        for path in self.files():
            if path.suffix.lower() == '.tsv':
                units.append((path,))
            else:
                by_stem.setdefault(path.with_suffix(''), {})[path.suffix.lower()] = path
        for stem, pair in by_stem.items():
            if len(pair) == 1:
                (suffix, path), = pair.items()
                missing = stem.with_name(stem.name + (target_suffix if suffix == source_suffix else source_suffix))
                raise DataSourceError(f'{path} has no partner {missing.name} in {path.parent}: aligned files '
                                      f'come in pairs STEM{source_suffix} + STEM{target_suffix}')
            counts = {path: line_count(path) for path in (pair[source_suffix], pair[target_suffix])}
            if len(set(counts.values())) > 1:
                (source, n), (target, m) = counts.items()
                raise DataSourceError(f'misaligned: {source} has {n} lines, {target} has {m}; line i of one '
                                      f'must be the translation of line i of the other')
            units.append(tuple(counts))
        return [(named_split(unit[0], self.root), unit) for unit in sorted(units)]

    def examples(self, unit: tuple[pathlib.Path, ...]):
        source_lang, target_lang = self.langs
        name = unit[0].relative_to(self.root).as_posix()
        for number, path, pair in (self.tsv_pairs(*unit) if len(unit) == 1 else self.aligned_pairs(*unit)):
            reason = pair if isinstance(pair, str) else empty_side(*pair)
            if reason:
                self.skip(f'{path}:{number}', reason)
            else:
                yield f'{name}:{number}', pair[0], {source_lang: pair[0], target_lang: pair[1]}

    def aligned_pairs(self, source: pathlib.Path, target: pathlib.Path):
        """(line number, file a skip names, (source, target) stripped or the reason to skip) per line."""
        with source.open('rb') as source_file, target.open('rb') as target_file:
            for number, raws in enumerate(zip(source_file, target_file), start=1):
                lines = [decode_line(raw, number) for raw in raws]
                if None in lines:
                    yield number, (source, target)[lines.index(None)], NOT_UTF8
                else:
                    pair = tuple(line.strip() for line in lines)
                    yield number, target if pair[0] and not pair[1] else source, pair

    def tsv_pairs(self, path: pathlib.Path):
        """As ``aligned_pairs``, for the lines of a TSV file."""
        header = [lang.lower() for lang in self.langs]
        with path.open('rb') as file:
            for number, raw in enumerate(file, start=1):
                line = decode_line(raw, number)
                columns = [] if line is None else line.split('\t')
                if line is None:
                    yield number, path, NOT_UTF8
                elif not line.strip():
                    yield number, path, 'empty line'
                elif len(columns) != 2:
                    yield number, path, f'not 2 columns (source TAB target) but {len(columns)}'
                elif number > 1 or [column.strip().lower() for column in columns] != header:
                    yield number, path, tuple(column.strip() for column in columns)
