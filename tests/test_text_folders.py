"""parallel_text and text_file: a user's own text files, prepared without TensorFlow and read back."""

from __future__ import annotations

import pytest

from transformer_lab.data.builders.folders import DataSourceError, FolderConfig
from transformer_lab.data.builders.parallel_text import ParallelText
from transformer_lab.data.builders.pieces import split_of
from transformer_lab.data.builders.text_file import TextFile


def write(root, files: dict[str, str | bytes]):
    for relative_path, content in files.items():
        path = root / relative_path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode('utf-8'))
    return root


def prepare(builder_class, tmp_path, source, **options):
    config = FolderConfig(name='mine', source=str(source), **options)
    builder = builder_class(config=config, data_dir=tmp_path / 'data')
    builder.download_and_prepare(file_format='array_record')
    return builder


def splits(builder) -> dict[str, list[dict[str, str]]]:
    """Every split the dataset has, all examples, Text features (bytes without TF) decoded."""
    read = {}
    for split in builder.info.splits:
        source = builder.as_data_source(split=split)
        read[split] = [{key: value.decode('utf-8') for key, value in example.items()}
                       for example in source.__getitems__(range(len(source)))]
    return read


def pairs(*rows: tuple[str, str]) -> list[dict[str, str]]:
    return [{'en': en, 'fr': fr} for en, fr in rows]


def prepare_pairs(tmp_path, files, source_name=''):
    """Writes ``files`` under tmp_path/pairs and prepares that folder (or its file ``source_name``)."""
    source = write(tmp_path / 'pairs', files) / source_name
    return prepare(ParallelText, tmp_path, source, source_lang='en', target_lang='fr')


# --- parallel_text ----------------------------------------------------------------------------------

def test_aligned_files_go_to_the_split_of_their_stem_or_folder(tmp_path):
    builder = prepare_pairs(tmp_path, {
        'train.en': 'Hello.\n  The cat sleeps.  \r\n',
        'train.fr': 'Bonjour.\nLe chat dort.',          # no final newline: still 2 lines
        'dev.en': 'Good evening.\n',
        'dev.fr': 'Bonsoir.\n',
        'test.EN': 'Thank you.\n',                    # the suffix's case does not matter
        'test.fr': 'Merci.\n',
        'news/valid/n1.en': 'It rains.\n',              # a split folder wins over a stem
        'news/valid/n1.fr': 'Il pleut.\n',
        'notes.txt': 'not a pair',
    })
    assert splits(builder) == {
        'train': pairs(('Hello.', 'Bonjour.'), ('The cat sleeps.', 'Le chat dort.')),
        'validation': pairs(('Good evening.', 'Bonsoir.'), ('It rains.', 'Il pleut.')),
        'test': pairs(('Thank you.', 'Merci.')),
    }
    assert builder.info.supervised_keys == ('en', 'fr')
    assert builder.skipped == []


def test_a_tsv_file_as_source_lists_its_unusable_lines(tmp_path):
    builder = prepare_pairs(tmp_path, {'train.tsv': b'en\tfr\n'               # a header: ignored, not listed
                                                    b'Yes.\tOui.\n'
                                                    b'one column only\n'
                                                    b'a\tb\tc\n'
                                                    b'No.\t  \n'
                                                    b'\tPourquoi ?\n'
                                                    b'\n'
                                                    b'caf\xe9\tcaf\xc3\xa9\n'  # latin-1, not UTF-8
                                                    b'Why not?\tPourquoi pas ?\r\n'},
                            source_name='train.tsv')
    assert splits(builder) == {'train': pairs(('Yes.', 'Oui.'), ('Why not?', 'Pourquoi pas ?'))}
    tsv = str(tmp_path / 'pairs' / 'train.tsv')
    assert builder.skipped == [(f'{tsv}:3', 'not 2 columns (source TAB target) but 1'),
                               (f'{tsv}:4', 'not 2 columns (source TAB target) but 3'),
                               (f'{tsv}:5', 'empty target'), (f'{tsv}:6', 'empty source'),
                               (f'{tsv}:7', 'empty line'), (f'{tsv}:8', 'not UTF-8')]


def test_a_line_that_is_not_utf8_skips_its_pair_only(tmp_path):
    builder = prepare_pairs(tmp_path, {'train.en': 'One.\nTwo.\nThree.\n',
                                       'train.fr': b'\xef\xbb\xbfUn.\nD\xe9ux.\nTrois.\n'})  # BOM, then latin-1
    assert splits(builder) == {'train': pairs(('One.', 'Un.'), ('Three.', 'Trois.'))}
    assert builder.skipped == [(f'{tmp_path / "pairs" / "train.fr"}:2', 'not UTF-8')]


def test_unsplit_files_are_split_pair_by_pair_by_a_hash_of_the_source(tmp_path):
    english = [f'Sentence number {i}.' for i in range(60)]
    builder = prepare_pairs(tmp_path, {
        'corpus.en': ''.join(f'{line}\n' for line in english[:40]) + '\n',
        'corpus.fr': ''.join(f'Phrase {i}.\n' for i in range(40)) + 'Vide.\n',
        'more/extra.tsv': b''.join(f'{line}\tPhrase {i}.\n'.encode() for i, line in enumerate(english[40:], 40))
                          + b'\xff\tx\n'})
    read = splits(builder)
    assert set(read) == {'train', 'validation', 'test'}   # splits without a pair would be left out
    kept = [(example['en'], example['fr'], split) for split, examples in read.items() for example in examples]
    assert sorted(kept) == sorted((line, f'Phrase {i}.', split_of(line)) for i, line in enumerate(english))
    # Read once per split, each unusable line is still listed once.
    assert builder.skipped == [(f'{tmp_path / "pairs" / "corpus.en"}:41', 'empty source'),
                               (f'{tmp_path / "pairs" / "more" / "extra.tsv"}:21', 'not UTF-8')]


def test_train_files_alone_give_only_a_train_split(tmp_path):
    builder = prepare_pairs(tmp_path, {'train/a.en': 'A.\n', 'train/a.fr': 'Ah.\n'})
    assert splits(builder) == {'train': pairs(('A.', 'Ah.'))}


def test_one_file_of_an_aligned_pair_as_source_brings_its_partner(tmp_path):
    builder = prepare_pairs(tmp_path, {'test.en': 'A.\n', 'test.fr': 'Ah.\n', 'dev.en': 'B.\n', 'dev.fr': 'Bé.\n'},
                            source_name='test.fr')
    assert splits(builder) == {'test': pairs(('A.', 'Ah.'))}


def test_misaligned_files_are_an_error_naming_both(tmp_path):
    with pytest.raises(DataSourceError) as error:
        prepare_pairs(tmp_path, {'dev.en': 'A.\nB.\nC.\n', 'dev.fr': 'Ah.\nBé.\n'})
    assert str(error.value).startswith(
        f'misaligned: {tmp_path / "pairs" / "dev.en"} has 3 lines, {tmp_path / "pairs" / "dev.fr"} has 2')


def test_a_file_without_its_partner_is_an_error_naming_both(tmp_path):
    with pytest.raises(DataSourceError, match=r'/pairs/sub/news\.fr has no partner news\.en in .*/pairs/sub'):
        prepare_pairs(tmp_path, {'train.en': 'A.\n', 'train.fr': 'Ah.\n', 'sub/news.fr': 'Il pleut.\n'})


@pytest.mark.parametrize('files, message', [
    ({}, r'/pairs is empty'),
    ({'notes.txt': 'hello', 'train.de': 'Hallo'}, r'/pairs has no \.en/\.fr/\.tsv files'),
    ({'train.tsv': '\n\nonly one column\n'}, r'/pairs has no usable translation pairs'),
])
def test_a_source_without_pairs_is_an_error(tmp_path, files, message):
    (tmp_path / 'pairs').mkdir()
    with pytest.raises(DataSourceError, match=message):
        prepare_pairs(tmp_path, files)


@pytest.mark.parametrize('source_lang, target_lang, message', [
    ('en', 'EN', 'both'), ('en', 'tsv', 'target_lang'), ('en.gz', 'fr', 'source_lang'), ('', 'fr', 'source_lang')])
def test_languages_must_be_distinct_feature_names(tmp_path, source_lang, target_lang, message):
    with pytest.raises(DataSourceError, match=message):
        ParallelText(config=FolderConfig(name='mine', source=str(tmp_path), source_lang=source_lang,
                                         target_lang=target_lang), data_dir=tmp_path / 'data')


# --- text_file --------------------------------------------------------------------------------------

def test_text_folder_paragraphs_and_splits(tmp_path):
    source = write(tmp_path / 'text', {
        'book/chapter.txt': b'\xef\xbb\xbf  The first line,\r\n'
                            b'  the second \xff line,  \r\n'       # not UTF-8: dropped from its paragraph
                            b'  and the third.  \r\n'
                            b'\r\n \t\n\n'
                            b'Second paragraph.\n',
        'validation/held_out.txt': 'Held out.\n\nAlso held out.',
        'test.txt': 'Tested.\n',
        'blank.txt': '\n   \n',
        'notes.md': 'not a .txt file',
    })
    builder = prepare(TextFile, tmp_path, source)
    assert splits(builder) == {
        'train': [{'text': 'The first line,\n  and the third.'}, {'text': 'Second paragraph.'}],
        'validation': [{'text': 'Held out.'}, {'text': 'Also held out.'}],
        'test': [{'text': 'Tested.'}],
    }
    assert split_of('The first line,\n  and the third.') == split_of('Second paragraph.') == 'train'
    assert sorted(builder.skipped) == [(str(source / 'blank.txt'), 'no text'),
                                       (f'{source / "book" / "chapter.txt"}:2', 'not UTF-8')]


def test_text_paragraphs_of_unsplit_files_are_hashed(tmp_path):
    paragraphs = [f'Paragraph {i},\nline two.' for i in range(40)]
    source = write(tmp_path / 'text', {'story.md': '\n\n'.join(paragraphs) + '\n'})
    read = splits(prepare(TextFile, tmp_path, source / 'story.md'))   # one file: any suffix
    assert {split: [example['text'] for example in examples] for split, examples in read.items()} == {
        split: [text for text in paragraphs if split_of(text) == split] for split in ('train', 'validation', 'test')}


def test_text_without_a_paragraph_is_an_error(tmp_path):
    source = write(tmp_path / 'text', {'a.txt': b'\xff\xfe\n\n', 'b.txt': ''})
    with pytest.raises(DataSourceError, match=r'/text has no usable text; .*/a\.txt:1: not UTF-8; .*/b\.txt: no'):
        prepare(TextFile, tmp_path, source)


def test_a_binary_file_among_text_files_is_skipped(tmp_path):
    source = write(tmp_path / 'text', {'book.txt': 'A paragraph.\n\nAnother one.\n',
                                       'picture.txt': b'\x89PNG\r\n\x1a\n\0\0\0\rIHDR\n\nmore\n'})
    builder = prepare(TextFile, tmp_path, source)
    assert sorted(row['text'] for rows in splits(builder).values() for row in rows) == ['A paragraph.', 'Another one.']
    assert builder.skipped == [(str(source / 'picture.txt'), 'not UTF-8 text: it holds NUL bytes (a binary file, '
                                                              'or UTF-16 text)')]
