"""A user's own files: midi_folder and image_folder on folders the tests write, prepare_data.py's --name,
--overwrite and warnings through the command line, and a tiny run of each own-data config."""

from __future__ import annotations

import pathlib
import warnings

import numpy as np
import pretty_midi
import pytest
from PIL import Image

from helpers import load_config, run_script, train_losses
from test_cli_failures import assert_one_error_line, tree_checksums
from test_text_folders import write
from transformer_lab.data import midi, prepare, provenance
from transformer_lab.data.builders.folders import DataSourceError, by_split
from transformer_lab.data.builders.pieces import split_of
from transformer_lab.data.catalog import DATASETS

ALL = ('train', 'validation', 'test')


def write_midi(path, notes):
    """A one-piano MIDI file of (pitch, velocity, start, end) notes, written with pretty_midi."""
    performance, piano = pretty_midi.PrettyMIDI(), pretty_midi.Instrument(program=0)
    piano.notes = [pretty_midi.Note(velocity=v, pitch=p, start=s, end=e) for p, v, s, e in notes]
    performance.instruments = [piano]
    path.parent.mkdir(parents=True, exist_ok=True)
    performance.write(str(path))


def midi_folder(root, count=12):
    """``count`` random pieces at two depths, one piece in a validation/ folder, a damaged file, a file
    without notes and a file of another kind."""
    rng = np.random.default_rng(0)
    for index in range(count):
        starts = np.sort(rng.uniform(0, 6, 40))
        write_midi(root / ('deep/er' if index % 3 else '') / f'piece_{index}.mid',
                   [(int(p), 80, float(s), float(s) + 0.3) for p, s in zip(rng.integers(40, 90, 40), starts)])
    write_midi(root / 'validation' / 'held_out.midi', [(60, 100, 0.0, 0.5), (64, 90, 0.5, 1.0)])
    write_midi(root / 'silence.mid', [])
    (root / 'broken.mid').write_bytes(b'MThd but not really')
    (root / 'notes.txt').write_text('not music')
    return root


def prepared(dataset_name, data_dir, source, **options):
    dataset = DATASETS[dataset_name].named('mine')
    return prepare.prepare(dataset, str(data_dir), manual_dir=str(source), options=options)


def test_midi_folder_splits_by_folder_and_hash_reads_notes_and_skips_unreadable_files(tmp_path):
    source = midi_folder(tmp_path / 'midi')
    done = prepared('midi_folder', tmp_path / 'data', source)
    assert sorted(path.split('/')[-1] for path, _ in done.skipped) == ['broken.mid', 'silence.mid']
    assert dict(done.skipped)[str(source / 'silence.mid')] == 'no notes'
    assert 'not a readable MIDI file' in dict(done.skipped)[str(source / 'broken.mid')]
    import tensorflow_datasets as tfds
    builder = tfds.builder_from_directory(done.path)
    pieces = {split: [example['piece'].decode() for example in builder.as_data_source(split=split)]
              for split in builder.info.splits}
    assert sorted(sum(pieces.values(), [])) == sorted(
        [f'{"deep/er/" if i % 3 else ""}piece_{i}.mid' for i in range(12)] + ['validation/held_out.midi'])
    assert 'validation/held_out.midi' in pieces['validation']
    for name in sum(pieces.values(), []):   # the rest by the music builders' hash of the path
        if name != 'validation/held_out.midi' and split_of(name) != 'train':
            assert name in pieces[split_of(name)], name
    held_out = next(e for e in builder.as_data_source(split='validation') if e['piece'] == b'validation/held_out.midi')
    np.testing.assert_allclose(held_out['notes'], [[60, 100, 0.0, 0.5], [64, 90, 0.5, 1.0]], atol=1e-3)
    for example in builder.as_data_source(split='train'):   # the melody a melody-conditioned model reads
        np.testing.assert_array_equal(example['melody'], midi.skyline(example['notes']))


def test_a_small_folder_lends_validation_and_test_a_training_file_each(tmp_path):
    files = [tmp_path / f'{name}.png' for name in 'abcd']
    splits = by_split(files, tmp_path)
    assert set(splits) == set(ALL) and sorted(sum(splits.values(), [])) == sorted(files)
    assert by_split(files[:1], tmp_path) == {split_of('a.png'): files[:1]}
    named = by_split([tmp_path / 'train' / 'x.png', tmp_path / 'y.png', tmp_path / 'z.png'], tmp_path)
    assert tmp_path / 'train' / 'x.png' in named['train']   # a file named into a split is never lent
    hashed_to_train = [tmp_path / f'{index}.png' for index in range(40) if split_of(f'{index}.png') == 'train'][:5]
    readable = hashed_to_train[-1]
    alone = by_split(hashed_to_train, tmp_path, usable=lambda path: path == readable)
    assert alone == {'train': hashed_to_train}   # the one readable file is not lent away from train
    two = by_split(hashed_to_train, tmp_path, usable=lambda path: path in hashed_to_train[-2:])
    assert len(two['validation']) == 1 and two['validation'][0] in hashed_to_train[-2:] and 'test' not in two


def image_folder(root):
    """Images of several sizes and modes in two class folders and at the top, and one damaged file."""
    rgba = np.zeros((20, 40, 4), np.uint8)          # wide, fully transparent but for a red centre column
    rgba[:, 19:21] = (255, 0, 0, 255)
    (root / 'cats').mkdir(parents=True)
    Image.fromarray(rgba, 'RGBA').save(root / 'cats' / 'wide.png')
    palette = Image.fromarray(np.repeat([[0] * 4 + [1] * 4], 8, axis=0).astype(np.uint8), 'P')
    palette.putpalette([0, 0, 255] + [0, 255, 0] * 255)
    palette.save(root / 'cats' / 'palette.png', transparency=0)   # index 0 (blue) is transparent
    (root / 'dogs').mkdir()
    Image.new('L', (30, 30), 50).save(root / 'dogs' / 'grey.png')
    Image.new('RGB', (16, 16), (10, 200, 30)).save(root / 'dogs' / 'green.jpg', quality=100)
    Image.new('RGB', (12, 12), (200, 10, 10)).save(root / 'dogs' / 'red.gif')
    Image.new('RGB', (9, 9), (0, 0, 0)).save(root / 'dogs' / 'black.webp', lossless=True)
    Image.new('LA', (10, 10), (255, 0)).save(root / 'top.png')
    (root / 'dogs' / 'damaged.png').write_bytes(b'\x89PNG\r\n\x1a\n garbage')
    return root


def test_image_folder_squares_composites_and_labels_images(tmp_path):
    source = image_folder(tmp_path / 'images')
    (source / 'birds').mkdir()
    (source / 'birds' / 'truncated.jpg').write_bytes(b'\xff\xd8\xff\xe0 not a whole JPEG')
    done = prepared('image_folder', tmp_path / 'data', source, image_size=8, background='white')
    assert [path for path, _ in done.skipped] == [str(source / 'birds' / 'truncated.jpg'),
                                                  str(source / 'dogs' / 'damaged.png')]
    assert sum(done.splits.values()) == 7
    import tensorflow_datasets as tfds
    builder = tfds.builder_from_directory(done.path)
    assert builder.info.features['label'].names == ['cats', 'dogs', 'none']   # no class without an image
    images = {e['file'].decode(): (np.asarray(e['image']), int(e['label']))
              for split in builder.info.splits for e in builder.as_data_source(split=split)}
    assert all(image.shape == (8, 8, 3) and image.dtype == np.uint8 for image, _ in images.values())
    wide, label = images['cats/wide.png']
    assert label == 0 and images['dogs/grey.png'][1] == 1 and images['top.png'][1] == 2
    # Centre-cropped: the red column stays in the middle, the transparent rest becomes white.
    assert (wide[:, 0] == 255).all() and wide[:, 3:5, 0].min() >= 250 and wide[:, 3:5, 1].max() < 200
    palette = images['cats/palette.png'][0]
    assert (palette[:, :4] == 255).all() and (palette[:, 4:] == (0, 255, 0)).all()   # transparent blue -> white
    assert (images['top.png'][0] == 255).all()             # fully transparent grey-with-alpha -> white
    assert np.abs(images['dogs/green.jpg'][0].astype(int) - (10, 200, 30)).max() <= 3
    assert (images['dogs/grey.png'][0] == 50).all()
    grey = prepare.prepare(DATASETS['image_folder'].named('grey'), str(tmp_path / 'data'), manual_dir=str(source),
                           options={'image_size': 4, 'channels': 1, 'background': 'black'})
    first = tfds.builder_from_directory(grey.path)
    assert first.info.features['image'].shape == (4, 4, 1)


@pytest.mark.slow
def test_prepare_data_names_keeps_and_replaces_user_datasets(tmp_path):
    """--name keeps datasets side by side; preparing again keeps the data and warns when the folder or
    an option changed; --overwrite prepares again; a bad folder is one error line and changes nothing."""
    source = image_folder(tmp_path / 'images')
    data = tmp_path / 'data'

    def prepare_data(*args):
        return run_script('prepare_data.py', '--dataset=image_folder', f'--data_dir={data}', *args)

    first = prepare_data(f'--manual_dir={source}', '--name=a', '--image_size=4')
    assert first.returncode == 0, first.stderr
    assert 'image_folder/a: prepared' in first.stdout and 'skipped 1 unusable' in first.stdout
    assert 'damaged.png' in (data / 'image_folder' / 'a' / '1.0.0' / 'skipped.txt').read_text()
    assert prepare_data(f'--manual_dir={source}', '--name=b', '--image_size=6').returncode == 0
    before = tree_checksums(data)
    again = prepare_data(f'--manual_dir={source}', '--name=a', '--image_size=6')
    assert 'already prepared' in again.stdout and 'prepared with --image_size=4, not 6' in again.stderr
    Image.new('RGB', (5, 5)).save(source / 'dogs' / 'new.png')
    changed = prepare_data(f'--manual_dir={source}', '--name=a')
    assert 'changed since it was prepared' in changed.stderr and '--overwrite' in changed.stderr
    assert tree_checksums(data) == before
    (source / 'empty').mkdir()
    assert_one_error_line(prepare_data(f'--manual_dir={source / "empty"}', '--name=a', '--overwrite'),
                          str(source / 'empty'), 'is empty')
    (source / 'empty' / 'readme.md').write_text('no images here')
    assert_one_error_line(prepare_data(f'--manual_dir={source / "empty"}', '--name=a', '--overwrite'),
                          'has no .png/.jpg')
    assert_one_error_line(prepare_data('--name=new'), '--manual_dir=DIR')
    assert_one_error_line(prepare_data(f'--manual_dir={source}', '--name=a/b'), '--name')
    assert tree_checksums(data) == before
    (source / 'dogs' / 'damaged.png').unlink()
    replaced = prepare_data(f'--manual_dir={source}', '--name=a', '--overwrite')
    assert 'image_folder/a: prepared' in replaced.stdout and 'train' in replaced.stdout
    import tensorflow_datasets as tfds
    files = {e['file'].decode() for split in ALL
             for e in tfds.builder_from_directory(str(data / 'image_folder' / 'a' / '1.0.0')).as_data_source(split=split)}
    assert 'dogs/new.png' in files and len(files) == 8
    assert not (data / 'image_folder' / 'a' / '1.0.0' / 'skipped.txt').exists()   # nothing skipped this time
    assert tree_checksums(data)['image_folder/b/1.0.0/dataset_info.json'] == before[
        'image_folder/b/1.0.0/dataset_info.json']
    assert not list(data.glob('.preparing*'))


def test_an_unprepared_user_dataset_names_the_whole_command():
    from transformer_lab.data.source import DatasetNotPreparedError
    with pytest.raises(DatasetNotPreparedError, match='--dataset=midi_folder --name=mine --manual_dir=DIR'):
        DATASETS['midi_folder'].named('mine').builder('/nonexistent')
    with pytest.raises(DatasetNotPreparedError, match='--dataset=maestro --manual_dir=DIR'):
        DATASETS['maestro'].builder('/nonexistent')


@pytest.mark.slow
def test_misaligned_parallel_files_are_one_error_line(tmp_path):
    source = write(tmp_path / 'pairs', {'train.en': 'a\nb\nc\n', 'train.fr': 'A\nB\n'})
    result = run_script('prepare_data.py', '--dataset=parallel_text', f'--manual_dir={source}',
                        '--source_lang=en', '--target_lang=fr', f'--data_dir={tmp_path / "data"}')
    assert_one_error_line(result, 'train.en', 'train.fr', 'misaligned')
    assert not (tmp_path / 'data' / 'parallel_text').exists()


@pytest.fixture(scope='module')
def own_data_dir(tmp_path_factory):
    """The four kinds of own data, small, prepared as data.name='KIND/mine'."""
    root = tmp_path_factory.mktemp('own')
    rng = np.random.default_rng(1)
    words = 'the a cat dog sees runs red big small house'.split()
    sentences = [' '.join(rng.choice(words, size=rng.integers(3, 8))) for _ in range(120)]
    text = '\n\n'.join(f'{s}.\n{s.upper()}.' for s in sentences)
    write(root / 'text', {'book.txt': text})
    write(root / 'pairs', {'pairs.tsv': ''.join(f'{s}\t{s.upper()}\n' for s in sentences)})
    images = root / 'images'
    for index in range(12):
        (images / f'class_{index % 2}').mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (10, 10, 3), dtype=np.uint8)).save(images / f'class_{index % 2}' /
                                                                                   f'{index}.png')
    midi_folder(root / 'midi')
    data = root / 'data'
    prepared('text_file', data, root / 'text')
    prepared('parallel_text', data, root / 'pairs', source_lang='en', target_lang='fr')
    prepared('image_folder', data, images, image_size=4)
    prepared('midi_folder', data, root / 'midi')
    return str(data)


@pytest.mark.slow
@pytest.mark.parametrize('config_name', [
    'transformer_lm_text.py:name=mine,tiny', 'transformer_parallel_text.py:name=mine,source=en,target=fr,tiny',
    'image_transformer_folder.py:name=mine,size=4,classes=2,tiny', 'music_transformer_midi_folder.py:name=mine,tiny'])
def test_own_data_configs_train_and_evaluate(tmp_path, config_name, own_data_dir):
    from transformer_lab.training.loop import train_and_evaluate
    config = load_config(f'configs/{config_name}')
    config.data.data_dir = own_data_dir
    config.train.num_steps = 10
    metrics = train_and_evaluate(config, str(tmp_path))
    losses = train_losses(str(tmp_path))
    assert losses[-1] < losses[0], losses
    assert metrics and all(np.isfinite(v) for v in metrics.values() if not isinstance(v, str))


def test_a_dataset_whose_files_changed_warns_when_training(tmp_path):
    """Training on prepared data whose folder has changed since says so (once, as a warning line)."""
    from transformer_lab.data.source import TfdsPipeline
    source = midi_folder(tmp_path / 'midi', count=3)
    dataset = DATASETS['midi_folder'].named('changing')
    prepare.prepare(dataset, str(tmp_path / 'data'), manual_dir=str(source))
    config = load_config('configs/music_transformer_midi_folder.py:name=changing,tiny').data
    config.data_dir = str(tmp_path / 'data')
    with warnings.catch_warnings(record=True) as unchanged:
        warnings.simplefilter('always')
        TfdsPipeline(config, dataset)
    assert not unchanged
    write_midi(source / 'added.mid', [(60, 80, 0.0, 1.0)])
    with pytest.warns(UserWarning, match=r'changed since it was prepared .*--overwrite'):
        TfdsPipeline(config, dataset)
    with pytest.raises(DataSourceError):
        prepared('midi_folder', tmp_path / 'other', tmp_path / 'nothing_here')


@pytest.mark.slow
def test_the_unigram_baseline_scores_held_out_intensities_by_training_frequencies(own_data_dir):
    """scripts/baseline.py against the same unigram model computed from the prepared images directly."""
    import tensorflow_datasets as tfds
    builder = tfds.builder_from_directory(f'{own_data_dir}/image_folder/mine/1.0.0')
    pixels = {split: np.concatenate([np.asarray(e['image']).reshape(-1) for e in builder.as_data_source(split=split)])
              for split in ('train', 'validation')}
    frequencies = np.bincount(pixels['train'], minlength=256) + 1
    expected = -np.log(frequencies / frequencies.sum())[pixels['validation']].mean()
    result = run_script('baseline.py', '--config=configs/image_transformer_folder.py:name=mine,size=4,tiny',
                        f'--config.data.data_dir={own_data_dir}')
    assert result.returncode == 0, result.stderr
    assert f'unigram {expected:.4f} nats/token' in result.stdout, (expected, result.stdout)


def test_maestro_reads_a_folder_without_metadata_as_a_midi_folder(tmp_path):
    source = midi_folder(tmp_path / 'midi', count=4)
    done = prepare.prepare(DATASETS['maestro'], str(tmp_path / 'data'), manual_dir=str(source))
    assert sum(done.splits.values()) == 5 and set(done.splits) == set(ALL)
    assert sorted(path.split('/')[-1] for path, _ in done.skipped) == ['broken.mid', 'silence.mid']


def test_the_source_record_counts_only_the_files_a_builder_reads(tmp_path):
    """Adding a file of another kind, a hidden file or the split table of another tool is no change;
    adding, removing or editing an image is."""
    source = image_folder(tmp_path / 'images')
    done = prepared('image_folder', tmp_path / 'data', source, image_size=4)
    (source / 'notes.md').write_text('about my pictures')
    (source / '.DS_Store').write_bytes(b'\0\1')
    (source / 'dogs' / '.hidden.png').write_bytes(b'\0')
    assert provenance.stale(done.path) == []
    Image.new('RGB', (5, 5)).save(source / 'cats' / 'new.png')
    assert 'changed since it was prepared' in provenance.stale(done.path)[0]
    (source / 'cats' / 'new.png').unlink()
    assert provenance.stale(done.path) == []
    (source / 'top.png').write_bytes((source / 'top.png').read_bytes() + b'edited')
    assert provenance.stale(done.path)


def test_an_unreadable_source_record_is_a_change_not_a_failure(tmp_path):
    done = prepared('image_folder', tmp_path / 'data', image_folder(tmp_path / 'images'), image_size=4)
    pathlib.Path(done.path, provenance.SOURCE_RECORD).write_bytes(b'\xcd garbled')
    assert 'cannot be read' in provenance.stale(done.path)[0]


def test_a_data_dir_inside_the_source_folder_is_refused(tmp_path):
    source = image_folder(tmp_path / 'images')
    with pytest.raises(DataSourceError, match='inside --manual_dir'):
        prepared('image_folder', source / 'prepared', source)
    assert not (source / 'prepared').exists()


def test_a_dataset_without_training_examples_is_refused(tmp_path):
    source = write(tmp_path / 'text', {'test.txt': 'Only a test paragraph.\n\nAnd another.\n'})
    with pytest.raises(DataSourceError, match=r'gave no training examples \(only test: 2\).*train/'):
        prepared('text_file', tmp_path / 'data', source)
    assert not (tmp_path / 'data' / 'text_file').exists() and not list((tmp_path / 'data').glob('.preparing*'))


def test_a_midi_folder_uses_only_a_csv_with_split_columns(tmp_path):
    from transformer_lab.data.builders.midi_folder import pieces_by_split
    source = midi_folder(tmp_path / 'midi', count=4)
    (source / 'inventory.csv').write_text('title,composer\nA,B\n')       # another tool's table: ignored
    (source / '._splits.csv').write_bytes(b'\0\x05\x16\x07 resource fork')   # macOS metadata: ignored
    skipped = []
    pieces = {split: [name for name, _ in found] for split, found in pieces_by_split(source, lambda *skip: skipped.append(skip)).items()}
    assert 'validation/held_out.midi' in pieces['validation'] and sum(map(len, pieces.values())) == 5
    table = '\ufeffsplit,midi_filename\ntrain,piece_0.mid\ndev,deep/er/piece_1.mid\ntest,deep/er/piece_2.mid\n'
    (source / 'splits.csv').write_text(table, encoding='utf-8')            # as a spreadsheet saves it
    pieces = {split: [name for name, _ in found] for split, found in pieces_by_split(source, lambda *skip: skipped.append(skip)).items()}
    assert pieces == {'train': ['piece_0.mid'], 'validation': ['deep/er/piece_1.mid'], 'test': ['deep/er/piece_2.mid']}
    (source / 'splits.csv').write_text('split,midi_filename\ntrain,piece_0.mid\ntest\n')
    with pytest.raises(DataSourceError, match=r'splits.csv, row 2 after the header: no split or midi_filename'):
        pieces_by_split(source, lambda *skip: skipped.append(skip))
    (source / 'splits.csv').write_bytes('split,midi_filename\ntrain,pi\u00e8ce.mid\n'.encode('latin-1'))
    with pytest.raises(DataSourceError, match='splits.csv is not UTF-8'):
        pieces_by_split(source, lambda *skip: skipped.append(skip))


def test_a_wrong_image_size_or_class_count_names_what_the_dataset_has(own_data_dir):
    from transformer_lab.config import ConfigError
    from transformer_lab.training.loop import setup
    for variant, message in (('size=6', 'name=mine,size=4,channels=3'),
                             ('size=4,classes=3', r'model.num_classes.*has 2 classes')):
        config = load_config(f'configs/image_transformer_folder.py:name=mine,{variant},tiny')
        config.data.data_dir = own_data_dir
        with pytest.raises(ConfigError, match=message):
            setup(config)
