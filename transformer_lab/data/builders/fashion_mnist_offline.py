"""Fashion-MNIST (Xiao et al. 2017) read from local files: Debian's ``dataset-fashion-mnist`` package,
or the same four files in a TFDS ``manual_dir``. Named so it does not shadow TFDS's own
``fashion_mnist`` (which downloads).

Files: ``{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz`` (IDX format: big-endian header, then one
byte per pixel or label), looked for in the manual_dir first, then ``/usr/share/datasets/fashion-mnist``.

Splits: ``train`` = the first 11/12 of the training images (55,000), ``validation`` = the last 1/12
(5,000), ``test`` = the 10,000 test images. Features: ``image`` uint8 [28, 28, 1] (raw, no PNG encoding, so no TensorFlow is
needed) and ``label`` (10 classes).
"""

from __future__ import annotations

import gzip
import os

import numpy as np
import tensorflow_datasets as tfds

DEBIAN_DIRECTORY = '/usr/share/datasets/fashion-mnist'
INSTALL_HINT = 'sudo apt-get install dataset-fashion-mnist'
CLASSES = ('t-shirt/top', 'trouser', 'pullover', 'dress', 'coat', 'sandal', 'shirt', 'sneaker', 'bag',
           'ankle boot')


def read_idx(path: str) -> np.ndarray:
    """An IDX file (optionally gzipped) -> uint8 array of the shape its header gives."""
    with (gzip.open if path.endswith('.gz') else open)(path, 'rb') as f:
        data = f.read()
    dimensions = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], 'big') for i in range(dimensions))
    return np.frombuffer(data, np.uint8, offset=4 + 4 * dimensions).reshape(shape)


def find_files(manual_dir: str | None) -> str:
    """The directory holding the four files: the manual_dir if it has them, else Debian's."""
    for directory in filter(None, (manual_dir, DEBIAN_DIRECTORY)):
        if os.path.exists(os.path.join(directory, 'train-images-idx3-ubyte.gz')):
            return directory
    raise FileNotFoundError(f'Fashion-MNIST files not found in {manual_dir or "(no manual_dir)"} nor in '
                            f'{DEBIAN_DIRECTORY}: `{INSTALL_HINT}`, or put the four *-ubyte.gz files in a '
                            f'manual_dir (python scripts/prepare_data.py --manual_dir=DIR)')


class FashionMnistOffline(tfds.core.GeneratorBasedBuilder):
    """Fashion-MNIST 28x28 grey-level images from local files."""

    VERSION = tfds.core.Version('1.0.0')
    RELEASE_NOTES = {'1.0.0': 'Initial release.'}
    MANUAL_DOWNLOAD_INSTRUCTIONS = (f'Optional: `{INSTALL_HINT}` provides the files; otherwise put '
                                    '{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz in manual_dir.')

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description=__doc__,
            features=tfds.features.FeaturesDict({
                'image': tfds.features.Tensor(shape=(28, 28, 1), dtype=np.uint8),
                'label': tfds.features.ClassLabel(names=CLASSES),
            }),
            disable_shuffling=True,
            homepage='https://github.com/zalandoresearch/fashion-mnist',
            license='MIT',
        )

    def _split_generators(self, dl_manager):
        manual_dir = None
        try:
            manual_dir = os.fspath(dl_manager.manual_dir)
        except AssertionError:  # TFDS: the manual_dir does not exist; Debian's files will do
            pass
        directory = find_files(manual_dir)

        def load(prefix):
            images = read_idx(os.path.join(directory, f'{prefix}-images-idx3-ubyte.gz'))
            labels = read_idx(os.path.join(directory, f'{prefix}-labels-idx1-ubyte.gz'))
            return images[..., None], labels

        train_images, train_labels = load('train')
        test_images, test_labels = load('t10k')
        cut = len(train_images) * 11 // 12
        return {
            'train': self._generate_examples(train_images[:cut], train_labels[:cut], 'train', 0),
            'validation': self._generate_examples(train_images[cut:], train_labels[cut:], 'train', cut),
            'test': self._generate_examples(test_images, test_labels, 'test', 0),
        }

    def _generate_examples(self, images, labels, source: str, first_index: int):
        for index, (image, label) in enumerate(zip(images, labels), start=first_index):
            yield f'{source}_{index}', {'image': image, 'label': int(label)}
