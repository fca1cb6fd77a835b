"""ImageNet 32x32 (Chrabaszcz et al. 2017, the downsampled ImageNet of the Image Transformer's Table 2)
from the official files in a TFDS ``manual_dir``, stored as raw uint8.

TFDS's ``downsampled_imagenet`` download URL is dead (tensorflow/datasets#4662). Download
``Imagenet32_train.zip`` and ``Imagenet32_val.zip`` from https://image-net.org/download-images.php
(a free account is needed) and extract them into the manual_dir: ``train_data_batch_1`` ...
``train_data_batch_10`` and ``val_data`` (pickled dicts: ``data`` [count, 3072] as red, green, blue
planes, ``labels`` 1..1000), directly in manual_dir or one folder below it.

Splits: ``train`` (1,281,167) and ``validation`` (50,000; the split the papers report, e.g. the Image
Transformer's 3.77 bits/dim). Features: ``image`` uint8 [32, 32, 3], ``label`` 0..999.
"""

from __future__ import annotations

import glob
import os

import numpy as np
import tensorflow_datasets as tfds

from transformer_lab.data.builders.cifar10_files import read_batch


def find_file(manual_dir: str, name: str) -> str:
    matches = sorted(glob.glob(os.path.join(manual_dir, name)) + glob.glob(os.path.join(manual_dir, '*', name)))
    if not matches:
        raise FileNotFoundError(f'{name} not found in {manual_dir} (or one folder below): see the '
                                f'imagenet32_files builder docstring for where to get the official files')
    return matches[0]


class Imagenet32Files(tfds.core.GeneratorBasedBuilder):
    """ImageNet 32x32 from the official downsampled files."""

    VERSION = tfds.core.Version('1.0.0')
    RELEASE_NOTES = {'1.0.0': 'Initial release.'}
    MANUAL_DOWNLOAD_INSTRUCTIONS = __doc__

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self, description=__doc__,
            features=tfds.features.FeaturesDict({
                'image': tfds.features.Tensor(shape=(32, 32, 3), dtype=np.uint8),
                'label': tfds.features.ClassLabel(num_classes=1000),
            }),
            disable_shuffling=True, homepage='https://patrykchrabaszcz.github.io/Imagenet32/')

    def _split_generators(self, dl_manager):
        manual_dir = os.fspath(dl_manager.manual_dir)
        train_files = [find_file(manual_dir, f'train_data_batch_{i}') for i in range(1, 11)]
        return {'train': self._generate_examples(train_files),
                'validation': self._generate_examples([find_file(manual_dir, 'val_data')])}

    def _generate_examples(self, files):
        for path in files:
            images, labels = read_batch(path)
            for index, (image, label) in enumerate(zip(images, labels)):
                yield f'{os.path.basename(path)}_{index}', {'image': image, 'label': int(label) - 1}
