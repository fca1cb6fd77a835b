"""The jsb_chorales builder over small files in the format of Coconet's Jsb16thSeparated.npz: object
arrays 'train', 'valid', 'test' of [steps, 4] float pieces (S, A, T, B MIDI pitches, NaN = rest)."""

from __future__ import annotations

import io
import pickle
import struct
import zipfile

import numpy as np
import pytest
import tensorflow_datasets as tfds

from transformer_lab.data.standins import object_array
from transformer_lab.data.builders import jsb_chorales

NAN = np.nan
PIECES = {
    'train': [
        np.array([[74, 70, 65, 58], [74, 70, 65, NAN], [75, NAN, NAN, 55]], np.float16),
        np.array([[72, 67, 64, 48]] * 2, np.float16),
        np.array([[69, 64, 61, 45], [NAN, NAN, NAN, NAN]], np.float64),   # the file's first version
    ],
    'valid': [np.array([[81, 76, 69, 36]], np.float16)],
    'test': [np.array([[NAN, 66, 62, 50], [71, 66, 62, 50], [71, 67, 62, 43]], np.float16),
             np.array([[76, 71, 67, 52]], np.float16)],
}
# The same pieces as the builder must write them: uint8, 0 = rest, columns still S, A, T, B.
EXPECTED = {
    'train': [[[74, 70, 65, 58], [74, 70, 65, 0], [75, 0, 0, 55]], [[72, 67, 64, 48]] * 2,
              [[69, 64, 61, 45], [0, 0, 0, 0]]],
    'validation': [[[81, 76, 69, 36]]],
    'test': [[[0, 66, 62, 50], [71, 66, 62, 50], [71, 67, 62, 43]], [[76, 71, 67, 52]]],
}


def prepare(tmp_path, manual_dir):
    builder = jsb_chorales.JsbChorales(data_dir=tmp_path / 'data')
    builder.download_and_prepare(file_format='array_record',
                                 download_config=tfds.download.DownloadConfig(manual_dir=manual_dir))
    return builder


def read_splits(builder) -> dict[str, list[dict]]:
    return {split: [source[i] for i in range(len(source))]
            for split in ('train', 'validation', 'test')
            for source in [builder.as_data_source(split=split)]}


def assert_pieces_as_expected(builder):
    splits = read_splits(builder)
    assert {split: len(examples) for split, examples in splits.items()} == {
        'train': 3, 'validation': 1, 'test': 2}
    assert [[e['piece'].decode() for e in examples] for examples in splits.values()] == [
        ['train/0', 'train/1', 'train/2'], ['valid/0'], ['test/0', 'test/1']]
    for split, examples in splits.items():
        for example, expected in zip(examples, EXPECTED[split], strict=True):
            assert example['voices'].dtype == np.uint8
            np.testing.assert_array_equal(example['voices'], expected)


def test_pieces_are_read_in_order_with_rests_as_zero(tmp_path):
    manual_dir = tmp_path / 'manual'
    manual_dir.mkdir()
    np.savez(manual_dir / jsb_chorales.FILE_NAME, **{fold: object_array(p) for fold, p in PIECES.items()})
    assert_pieces_as_expected(prepare(tmp_path, manual_dir))


class Python2Pickler(pickle._Pickler):
    """Writes bytes as Python 2 wrote its str (BINSTRING opcodes), which Python 3 decodes with the
    unpickler's `encoding`: how the arrays' raw data is stored in the real file."""

    def save_bytes(self, data):
        size = bytes([len(data)]) if len(data) < 256 else struct.pack('<i', len(data))
        self.write((pickle.SHORT_BINSTRING if len(data) < 256 else pickle.BINSTRING) + size + data)
        self.memoize(data)

    dispatch = {**pickle._Pickler.dispatch, bytes: save_bytes}


def write_python2_npz(path):
    with zipfile.ZipFile(path, 'w') as archive:
        for fold, pieces in PIECES.items():
            array, npy = object_array(pieces), io.BytesIO()
            np.lib.format.write_array_header_1_0(npy, np.lib.format.header_data_from_array_1_0(array))
            Python2Pickler(npy, protocol=2).dump(array)
            archive.writestr(f'{fold}.npy', npy.getvalue())


def test_a_file_pickled_by_python_2_is_read(tmp_path):
    manual_dir = tmp_path / 'manual'
    manual_dir.mkdir()
    write_python2_npz(manual_dir / jsb_chorales.FILE_NAME)
    with pytest.raises(UnicodeError):   # the real file's failure without encoding='latin1'
        np.load(manual_dir / jsb_chorales.FILE_NAME, allow_pickle=True)['train']
    assert_pieces_as_expected(prepare(tmp_path, manual_dir))


def test_a_missing_file_names_the_manual_dir_and_the_file(tmp_path):
    manual_dir = tmp_path / 'manual'
    with pytest.raises(FileNotFoundError, match=rf'Jsb16thSeparated\.npz.*{manual_dir}'):
        prepare(tmp_path, manual_dir)          # no manual_dir at all
    manual_dir.mkdir()
    (manual_dir / 'jsb-chorales-16th.pkl').write_bytes(b'')
    with pytest.raises(FileNotFoundError, match=rf'Jsb16thSeparated\.npz.*{manual_dir}'):
        prepare(tmp_path, manual_dir)          # a manual_dir without the file


def test_a_piece_without_four_voices_names_the_file(tmp_path):
    manual_dir = tmp_path / 'manual'
    manual_dir.mkdir()
    pieces = dict(PIECES, valid=[np.array([[81, 76, 69]], np.float16)])
    np.savez(manual_dir / jsb_chorales.FILE_NAME, **{fold: object_array(p) for fold, p in pieces.items()})
    with pytest.raises(ValueError, match=rf'{manual_dir / jsb_chorales.FILE_NAME}: piece valid/0'):
        prepare(tmp_path, manual_dir)
