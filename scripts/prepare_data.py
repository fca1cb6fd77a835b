"""Prepares TFDS datasets as array_record (no TensorFlow), once; training reads them with grain.

    python scripts/prepare_data.py --dataset=bible_translation --dataset=kjv_text [--data_dir=DIR]
    python scripts/prepare_data.py --dataset=wmt14_ende --manual_dir=~/wmt14
"""

import importlib
import os

import tensorflow_datasets as tfds
from absl import flags

from transformer_lab import cli
from transformer_lab.data.pipeline import resolve_data_dir
from transformer_lab.registry import DATASETS

FLAGS = flags.FLAGS
flags.DEFINE_multi_enum('dataset', None, sorted(DATASETS), 'Datasets to prepare.')
flags.DEFINE_string('data_dir', '', 'TFDS data dir (default: $TFDS_DATA_DIR or ~/tensorflow_datasets).')
flags.DEFINE_string('manual_dir', None, 'Directory with manually downloaded files (wmt14_ende).')
flags.mark_flag_as_required('dataset')


def main(argv):
    del argv
    data_dir = resolve_data_dir(FLAGS.data_dir)
    for name in FLAGS.dataset:
        dataset = DATASETS[name]
        importlib.import_module(dataset.builder_module)
        builder = tfds.builder(dataset.tfds_name, data_dir=data_dir)
        if builder.is_prepared():
            print(f'{name}: already prepared in {builder.data_dir}')
            continue
        manual_dir = os.path.expanduser(FLAGS.manual_dir) if FLAGS.manual_dir else None
        builder.download_and_prepare(file_format='array_record', download_config=tfds.download.DownloadConfig(
            manual_dir=manual_dir))
        print(f'{name}: prepared in {builder.data_dir}: ' +
              ', '.join(f'{split} {info.num_examples}' for split, info in builder.info.splits.items()))


if __name__ == '__main__':
    cli.run(main)
