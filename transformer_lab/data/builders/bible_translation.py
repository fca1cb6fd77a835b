"""English/Spanish Bible verse pairs: King James Version / Reina-Valera 1909.

Data: the public-domain SWORD modules ``engKJV2006eb`` (King James, 1769 text) and ``spaRV1909eb``
(Reina-Valera 1909) from the Debian packages ``sword-text-kjv`` and ``sword-text-sparv``
(``/usr/share/sword``), read with pysword. Both use the KJV versification, so verses align by
reference. Markup is removed, and with it the KJV's paragraph marks (``¶``) and a few stray USFM
``\\nd`` markers, which are not text and have no Spanish counterpart; whitespace runs collapse to one
space, and pairs with an empty side (a verse one translation merges into its neighbour) are dropped.

Split, by whole chapters so that neighbouring verses never straddle two splits: number the 1189
chapters in canonical order (Genesis 1 -> 0, Genesis 2 -> 1, ..., Revelation 22 -> 1188); chapter
index % 40 == 1 -> ``validation``, % 40 == 21 -> ``test``, anything else -> ``train``. Each split
keeps canonical order. Features: ``en``, ``es`` and ``reference`` (e.g. ``'Genesis 1:1'``).
"""

from __future__ import annotations

import functools
import os
import re

import tensorflow_datasets as tfds

DEFAULT_SWORD_PATH = '/usr/share/sword'
ENGLISH_MODULE = 'engKJV2006eb'
SPANISH_MODULE = 'spaRV1909eb'
INSTALL_HINT = 'apt-get install sword-text-kjv sword-text-sparv'

CHAPTER_CYCLE = 40
VALIDATION_RESIDUE = 1
TEST_RESIDUE = 21

_NON_TEXT_MARKS = re.compile(r'¶|\\nd\*?')


def clean_verse(text: str) -> str:
    """The verse without paragraph/USFM marks, stripped, whitespace runs collapsed to one space."""
    return ' '.join(_NON_TEXT_MARKS.sub(' ', text).split())


def split_for_chapter(chapter_index: int) -> str:
    """The split of the chapter at this position in canonical order (Genesis 1 is 0)."""
    residue = chapter_index % CHAPTER_CYCLE
    if residue == VALIDATION_RESIDUE:
        return 'validation'
    if residue == TEST_RESIDUE:
        return 'test'
    return 'train'


def open_bible(sword_path: str, module_name: str):
    """The pysword bible of a module, with its block decompression cached."""
    from pysword.modules import SwordModules

    modules = SwordModules(sword_path)
    # pysword raises a bare FileNotFoundError for a directory without mods.d.
    if not os.path.isdir(os.path.join(sword_path, 'mods.d')) or module_name not in modules.parse_modules():
        raise FileNotFoundError(
            f'SWORD module {module_name} not found under {sword_path}: install it with '
            f'`{INSTALL_HINT}`, or pass sword_path= pointing at a SWORD directory that has it.')
    bible = modules.get_bible_from_module(module_name)
    # pysword decompresses a whole book's block again for every verse; keeping the last few blocks
    # decompresses each block once, the rest of the time of preparing this dataset.
    bible._decompress = functools.lru_cache(maxsize=4)(bible._decompress)
    return bible


def verses_in_canonical_order(bible):
    """Yields ``(chapter_index, reference, raw_text)`` for every verse of the versification."""
    books = bible.get_structure().get_books()
    chapter_index = 0
    for book in books['ot'] + books['nt']:
        verses = bible.get_iter(books=[book.name], clean=True)
        for chapter, num_verses in enumerate(book.chapter_lengths, start=1):
            for verse in range(1, num_verses + 1):
                yield chapter_index, f'{book.name} {chapter}:{verse}', next(verses)
            chapter_index += 1


class BibleTranslation(tfds.core.GeneratorBasedBuilder):
    """Aligned KJV English / Reina-Valera 1909 Spanish verses; ``sword_path`` overrides the source."""

    VERSION = tfds.core.Version('1.0.0')
    RELEASE_NOTES = {'1.0.0': 'Initial release.'}

    def __init__(self, *, sword_path: str = DEFAULT_SWORD_PATH, **kwargs):
        self._sword_path = sword_path
        super().__init__(**kwargs)

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description=__doc__,
            features=tfds.features.FeaturesDict({
                'en': tfds.features.Text(),
                'es': tfds.features.Text(),
                'reference': tfds.features.Text(),
            }),
            supervised_keys=('en', 'es'),
            disable_shuffling=True,
            homepage='https://crosswire.org/sword/',
            license='Public domain',
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # Everything comes from the local SWORD directory.
        english = verses_in_canonical_order(open_bible(self._sword_path, ENGLISH_MODULE))
        spanish = verses_in_canonical_order(open_bible(self._sword_path, SPANISH_MODULE))
        pairs_by_split = {'train': [], 'validation': [], 'test': []}
        for (chapter_index, reference, en), (_, _, es) in zip(english, spanish, strict=True):
            en, es = clean_verse(en), clean_verse(es)
            if en and es:
                pairs_by_split[split_for_chapter(chapter_index)].append((reference, en, es))
        return {split: self._generate_examples(pairs) for split, pairs in pairs_by_split.items()}

    def _generate_examples(self, pairs):
        for reference, en, es in pairs:
            yield reference, {'en': en, 'es': es, 'reference': reference}
