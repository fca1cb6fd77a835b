"""WMT14 English-German from the official files, placed by hand in the TFDS manual directory.

TFDS's own ``wmt14_translate`` needs TensorFlow even to be found, hence this builder.

Splits, the standard WMT14 en-de setup (about 4.5M / 3000 / 3003 pairs):
  train: Europarl v7 + Common Crawl + News Commentary v9, in that order;
  validation: newstest2013; test: newstest2014 (full version, as in sacreBLEU's ``wmt14``).
Lines are paired by position; sides are stripped, and pairs with an empty side are dropped (the
newstest sets have none). Examples keep file order, so test example i is newstest2014 sentence i.
Features: ``en``, ``de``.
"""

from __future__ import annotations

import itertools
import re

import tensorflow_datasets as tfds
from etils import epath

# (English file, German file) per split; a ``.sgm`` file is read as its <seg> elements.
SPLIT_FILES = {
    'train': [
        ('europarl-v7.de-en.en', 'europarl-v7.de-en.de'),
        ('commoncrawl.de-en.en', 'commoncrawl.de-en.de'),
        ('news-commentary-v9.de-en.en', 'news-commentary-v9.de-en.de'),
    ],
    'validation': [('newstest2013.en', 'newstest2013.de')],
    'test': [('newstest2014-deen-src.en.sgm', 'newstest2014-deen-ref.de.sgm')],
}

_CITATION = """\
@inproceedings{bojar-etal-2014-findings,
  title = {Findings of the 2014 Workshop on Statistical Machine Translation},
  author = {Bojar, Ond{\\v{r}}ej and others},
  booktitle = {Proceedings of the Ninth Workshop on Statistical Machine Translation},
  year = {2014},
  address = {Baltimore, Maryland, USA},
  publisher = {Association for Computational Linguistics},
  pages = {12--58},
}
"""

_SEGMENT = re.compile(r'<seg[^>]*>(.*?)</seg>', re.DOTALL)


def _find(manual_dir: epath.Path, file_name: str) -> epath.Path | None:
    # One folder down covers the archives' own layout (training/, dev/, test-full/).
    matches = [path for path in [manual_dir / file_name, *sorted(manual_dir.glob(f'*/{file_name}'))]
               if path.exists()]
    if len(matches) > 1:
        raise ValueError(f'Several copies of {file_name} under {manual_dir}, keep one: {matches}')
    return matches[0] if matches else None


def _read_lines(path: epath.Path):
    if path.name.endswith('.sgm'):
        # Segment text is kept verbatim (no entity decoding), as sacreBLEU does.
        yield from _SEGMENT.findall(path.read_text(encoding='utf-8'))
        return
    # Binary mode splits on '\n' only, the separator the two sides are aligned by; text mode would
    # also split at a stray '\r' inside a crawled sentence and misalign them.
    with path.open('rb') as lines:
        for line in lines:
            yield line.decode('utf-8')


class Wmt14Ende(tfds.core.GeneratorBasedBuilder):
    """WMT14 English-German parallel text from manually downloaded files."""

    VERSION = tfds.core.Version('1.0.0')
    RELEASE_NOTES = {'1.0.0': 'Initial release.'}
    MANUAL_DOWNLOAD_INSTRUCTIONS = """\
Download from https://www.statmt.org/wmt14/translation-task.html and extract into manual_dir
(default ~/tensorflow_datasets/downloads/manual/). Each file may sit directly in manual_dir or one
folder down, as the archives extract (training/, dev/, test-full/), but each name must occur once:
  training-parallel-europarl-v7.tgz -> europarl-v7.de-en.en, europarl-v7.de-en.de
  training-parallel-commoncrawl.tgz -> commoncrawl.de-en.en, commoncrawl.de-en.de
  training-parallel-nc-v9.tgz       -> news-commentary-v9.de-en.en, news-commentary-v9.de-en.de
  dev.tgz                           -> newstest2013.en, newstest2013.de
  test-full.tgz                     -> newstest2014-deen-src.en.sgm, newstest2014-deen-ref.de.sgm
Use test-full.tgz (3003 sentences), not the filtered test.tgz, whose files have the same names.
"""

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description=__doc__,
            features=tfds.features.FeaturesDict({
                'en': tfds.features.Text(),
                'de': tfds.features.Text(),
            }),
            supervised_keys=('en', 'de'),
            disable_shuffling=True,
            homepage='https://www.statmt.org/wmt14/translation-task.html',
            citation=_CITATION,
        )

    def _split_generators(self, dl_manager):
        manual_dir = dl_manager.manual_dir
        paths = {name: _find(manual_dir, name)
                 for pairs in SPLIT_FILES.values() for pair in pairs for name in pair}
        missing = [str(manual_dir / name) for name, path in paths.items() if path is None]
        if missing:
            raise FileNotFoundError(
                'WMT14 files missing (each may also sit one folder down):\n  '
                + '\n  '.join(missing) + '\n' + self.MANUAL_DOWNLOAD_INSTRUCTIONS)
        return {split: self._generate_examples([(paths[en], paths[de]) for en, de in pairs])
                for split, pairs in SPLIT_FILES.items()}

    def _generate_examples(self, file_pairs):
        for en_path, de_path in file_pairs:
            for line_number, (en, de) in enumerate(
                    itertools.zip_longest(_read_lines(en_path), _read_lines(de_path))):
                if en is None or de is None:
                    raise ValueError(f'{en_path} and {de_path} differ in length at line {line_number}')
                en, de = en.strip(), de.strip()
                if en and de:
                    yield f'{en_path.name}:{line_number}', {'en': en, 'de': de}

