"""Stand-ins for the paper datasets that a machine without the web cannot fetch: random files in each
dataset's official layout, prepared by the dataset's own builder, so that its real pipeline (record
reading, decoding, batching) runs at the paper's shapes. The values are random; only the shapes,
formats and code paths are the paper data's. Used by ``scripts/bench.py --mode=input``.
"""

from __future__ import annotations

import os
import pickle

import numpy as np

from transformer_lab.data.builders import cifar10_files

CIFAR10_BATCHES = ('data_batch_1', 'data_batch_2', 'data_batch_3', 'data_batch_4', 'data_batch_5', 'test_batch')


def write_cifar10(folder: str, images_per_file: int, seed: int = 0) -> str:
    """Random CIFAR-10 python batches (``data`` uint8 [n, 3072] in the red, green, blue planes,
    ``labels``) in ``folder/cifar-10-batches-py``; returns ``folder``, the builder's manual_dir."""
    rng = np.random.default_rng(seed)
    batches = os.path.join(folder, cifar10_files.FOLDER)
    os.makedirs(batches, exist_ok=True)
    for name in CIFAR10_BATCHES:
        with open(os.path.join(batches, name), 'wb') as file:
            pickle.dump({b'data': rng.integers(0, 256, (images_per_file, 3072), dtype=np.uint8),
                         b'labels': rng.integers(0, 10, images_per_file).tolist()}, file)
    return folder


def prepare_cifar10(data_dir: str, images_per_file: int = 1000) -> str:
    """``cifar10_files`` prepared in ``data_dir`` from random files (once: a prepared one is kept);
    returns ``data_dir`` for ``data.data_dir``."""
    import tensorflow_datasets as tfds
    builder = cifar10_files.Cifar10Files(data_dir=data_dir)
    if not builder.is_prepared():
        manual = write_cifar10(os.path.join(data_dir, 'manual_cifar10'), images_per_file)
        builder.download_and_prepare(file_format='array_record',
                                     download_config=tfds.download.DownloadConfig(manual_dir=manual))
    return data_dir
