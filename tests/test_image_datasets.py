"""CIFAR-10 and ImageNet 32x32 builders on small files in the official formats, and the paper configs'
tiny variants training on them (connected users get the real files; these tests need none)."""

import numpy as np
import pytest
import tensorflow_datasets as tfds

from helpers import load_config, train_losses
from transformer_lab.data.builders import cifar10_files, imagenet32_files
from transformer_lab.data.standins import write_image_batch
from transformer_lab.training.loop import train_and_evaluate

RNG = np.random.default_rng(0)


def write_batch(path, count, first_label=0, classes=10):
    return write_image_batch(str(path), count, RNG, first_label=first_label, classes=classes)


@pytest.fixture(scope='module')
def cifar_data_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp('cifar')
    folder = root / 'manual' / 'cifar-10-batches-py'
    folder.mkdir(parents=True)
    batches = [write_batch(folder / f'data_batch_{i}', 4) for i in range(1, 6)]
    write_batch(folder / 'test_batch', 3)
    builder = cifar10_files.Cifar10Files(data_dir=root / 'data')
    builder.download_and_prepare(file_format='array_record',
                                 download_config=tfds.download.DownloadConfig(manual_dir=root / 'manual'))
    return root / 'data', builder, batches


def test_cifar10_builder_reads_the_python_batches_into_height_width_channel_images(cifar_data_dir):
    _, builder, batches = cifar_data_dir
    assert {s: i.num_examples for s, i in builder.info.splits.items()} == {'train': 18, 'validation': 2, 'test': 3}
    rows, labels = batches[4]                                      # data_batch_5: its last 2 are validation
    example = builder.as_data_source(split='validation')[1]
    image = np.asarray(example['image'])
    assert image.shape == (32, 32, 3) and example['label'] == labels[3]
    # Row layout: 1024 red values, then green, then blue, each plane row-major.
    assert image[0, 1, 0] == rows[3][1] and image[1, 0, 1] == rows[3][1024 + 32] and image[31, 31, 2] == rows[3][3071]


def test_imagenet32_builder_reads_the_official_files_with_labels_from_zero(tmp_path):
    manual = tmp_path / 'manual' / 'Imagenet32_train'
    manual.mkdir(parents=True)
    for i in range(1, 11):
        write_batch(manual / f'train_data_batch_{i}', 2, first_label=1, classes=1000)
    rows, labels = write_batch(tmp_path / 'manual' / 'val_data', 3, first_label=1, classes=1000)
    builder = imagenet32_files.Imagenet32Files(data_dir=tmp_path / 'data')
    builder.download_and_prepare(file_format='array_record',
                                 download_config=tfds.download.DownloadConfig(manual_dir=tmp_path / 'manual'))
    assert {s: i.num_examples for s, i in builder.info.splits.items()} == {'train': 20, 'validation': 3}
    example = builder.as_data_source(split='validation')[2]
    assert example['label'] == labels[2] - 1
    np.testing.assert_array_equal(np.asarray(example['image']), cifar10_files.rows_to_images(rows[2:3])[0])


@pytest.mark.slow
@pytest.mark.parametrize('variant', ['1d,tiny', 'dmol,2d,tiny'])
def test_cifar10_paper_configs_train_at_tiny_scale(cifar_data_dir, tmp_path, variant):
    config = load_config(f'configs/image_transformer_cifar10.py:{variant}')
    config.data.data_dir = str(cifar_data_dir[0])
    config.train.num_steps, config.train.log_every_steps = 10, 5
    metrics = train_and_evaluate(config, str(tmp_path))
    losses = train_losses(str(tmp_path))
    assert losses[-1] < losses[0], losses
    assert 4.0 < metrics['validation/bits_per_dim'] < 8.5


@pytest.mark.parametrize('config_name', [
    'image_transformer_cifar10.py:1d', 'image_transformer_cifar10.py:dmol', 'image_transformer_cifar10.py:2d',
    'image_transformer_cifar10.py:dmol,2d', 'image_transformer_cifar10.py:classes',
    'image_transformer_imagenet32.py', 'image_transformer_imagenet32.py:classes',
    'image_transformer_fashion_mnist.py:full', 'image_transformer_fashion_mnist.py:2d,dmol'])
def test_every_image_config_validates_and_builds(config_name):
    import jax
    from flax import nnx

    from transformer_lab.models.catalog import build_model
    from transformer_lab.training.validation import validate
    config = load_config(f'configs/{config_name}')
    validate(config)
    model = nnx.eval_shape(lambda: build_model(config.model, 256, seed=0))
    parameters = sum(leaf.size for leaf in jax.tree.leaves(nnx.state(model, nnx.Param)))
    if config_name == 'image_transformer_cifar10.py:1d':
        # 12 layers of 4 d^2 attention + 2 d d_ff feed-forward weights (d 512, d_ff 2048): ~37.8M.
        assert 37e6 < parameters < 39.5e6, parameters
