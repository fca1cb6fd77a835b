"""CIFAR-10 (Krizhevsky 2009) from its standard python-pickle files, stored as raw uint8 (no TensorFlow).

TFDS's own ``cifar10`` builder needs TensorFlow to encode PNGs; this one reads
``cifar-10-python.tar.gz`` (https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz), either already in
the TFDS ``manual_dir`` (the archive, or its extracted ``cifar-10-batches-py/`` folder) or downloaded.

Splits: ``train`` = data_batch_1-4 and the first half of data_batch_5 (45,000), ``validation`` = the
second half of data_batch_5 (5,000), ``test`` = test_batch (10,000; the split of the papers' bits/dim).
Features: ``image`` uint8 [32, 32, 3], ``label`` (10 classes).
"""

from __future__ import annotations

import os
import pickle

import numpy as np
import tensorflow_datasets as tfds

from transformer_lab.data.builders.folders import DataSourceError

URL = 'https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz'
FOLDER = 'cifar-10-batches-py'
CLASSES = ('airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck')


def rows_to_images(rows: np.ndarray, size: int = 32) -> np.ndarray:
    """[count, 3 * size * size] rows (the red plane, then green, then blue, each row-major) -> uint8
    images [count, size, size, 3]: the layout of the CIFAR and official downsampled-ImageNet files."""
    return np.asarray(rows, np.uint8).reshape(-1, 3, size, size).transpose(0, 2, 3, 1)


def read_batch(path: str) -> tuple[np.ndarray, np.ndarray]:
    """One pickled batch file -> (images [count, 32, 32, 3] uint8, labels [count] int)."""
    with open(path, 'rb') as f:
        batch = pickle.load(f, encoding='bytes')
    labels = batch.get(b'labels', batch.get('labels'))
    data = batch.get(b'data', batch.get('data'))
    return rows_to_images(data), np.asarray(labels, np.int64)


def find_folder(dl_manager) -> str:
    """The extracted ``cifar-10-batches-py`` folder: from the manual_dir when one is given (an error if it
    holds no CIFAR-10 files: never a silent download instead), else downloaded."""
    try:
        manual = os.fspath(dl_manager.manual_dir)
    except AssertionError:  # TFDS: no manual_dir exists
        manual = None
    if manual:
        for candidate in (os.path.join(manual, FOLDER), manual):
            if os.path.exists(os.path.join(candidate, 'data_batch_1')):
                return candidate
        archive = os.path.join(manual, 'cifar-10-python.tar.gz')
        if os.path.exists(archive):
            return os.path.join(os.fspath(dl_manager.extract(archive)), FOLDER)
        raise DataSourceError(f'{manual} holds no CIFAR-10 files (cifar-10-python.tar.gz, or {FOLDER}/ with '
                              f'data_batch_1..5 and test_batch); for a folder of your own images use '
                              f'--dataset=image_folder')
    return os.path.join(os.fspath(dl_manager.download_and_extract(URL)), FOLDER)


class Cifar10Files(tfds.core.GeneratorBasedBuilder):
    """CIFAR-10 32x32 colour images from the standard python files."""

    VERSION = tfds.core.Version('1.0.0')
    RELEASE_NOTES = {'1.0.0': 'Initial release.'}
    MANUAL_DOWNLOAD_INSTRUCTIONS = f'Optional: put cifar-10-python.tar.gz ({URL}) or its extracted folder here.'

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self, description=__doc__,
            features=tfds.features.FeaturesDict({
                'image': tfds.features.Tensor(shape=(32, 32, 3), dtype=np.uint8),
                'label': tfds.features.ClassLabel(names=CLASSES),
            }),
            disable_shuffling=True, homepage='https://www.cs.toronto.edu/~kriz/cifar.html')

    def _split_generators(self, dl_manager):
        folder = find_folder(dl_manager)
        batches = [read_batch(os.path.join(folder, f'data_batch_{i}')) for i in range(1, 6)]
        images = np.concatenate([b[0] for b in batches])
        labels = np.concatenate([b[1] for b in batches])
        cut = len(images) * 9 // 10
        test_images, test_labels = read_batch(os.path.join(folder, 'test_batch'))
        return {
            'train': self._generate_examples(images[:cut], labels[:cut], 'train', 0),
            'validation': self._generate_examples(images[cut:], labels[cut:], 'train', cut),
            'test': self._generate_examples(test_images, test_labels, 'test', 0),
        }

    def _generate_examples(self, images, labels, source: str, first_index: int):
        for index, (image, label) in enumerate(zip(images, labels), start=first_index):
            yield f'{source}_{index}', {'image': image, 'label': int(label)}
