"""The Image Transformer: causality in its generation order for every attention variant, cached
sampling against the full pass, bits/dim, class conditioning, and the Fashion-MNIST data."""

import gzip

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import tensorflow_datasets as tfds
from flax import nnx

from helpers import load_config
from transformer_lab import decoding, tasks
from transformer_lab.config import ConfigDict, base_config
from transformer_lab.data.builders import fashion_mnist_offline
from transformer_lab.data.builders.image_folder import square_image
from transformer_lab.models.catalog import build_model
from transformer_lab.models.image_transformer import ImageTransformer, generation_order
from transformer_lab.tasks.images import HIDDEN, primer_length
from transformer_lab.training import evaluators

IMAGE_SHAPE = (5, 4, 3)   # 60 sub-pixels; 2D blocks do not divide it
ATTENTION = {
    'full': {'type': 'dot_product'},
    '1d': {'type': 'local_1d', 'block_length': 8},
    '2d': {'type': 'local_2d', 'query_shape': (2, 4), 'memory_flange': (1, 4)},
    # DMOL: a pixel per position, so local 2D runs over the (5, 4) grid of pixels.
    '2d_pixels': {'type': 'local_2d', 'query_shape': (2, 2), 'memory_flange': (1, 1)},
}
VARIANTS = [('categorical', 'full'), ('categorical', '1d'), ('categorical', '2d'), ('dmol', 'full'),
            ('dmol', '2d_pixels')]


def image_model_config(attention='full', num_classes=0, image_shape=IMAGE_SHAPE, head='categorical'):
    config = base_config().model
    config.name = 'image_transformer'
    config.image_shape, config.num_classes, config.head, config.mixtures = image_shape, num_classes, head, 4
    config.downsample = 1
    config.num_decoder_layers, config.d_model, config.num_heads, config.d_ff = 2, 24, 2, 48
    config.max_length = int(np.prod(image_shape))
    config.norm, config.dropout_rate = 'pre', 0.0
    config.attention = ConfigDict(ATTENTION[attention])
    return config


def random_images(count, shape=IMAGE_SHAPE, seed=0):
    return jnp.asarray(np.random.default_rng(seed).integers(0, 256, (count, int(np.prod(shape)))), jnp.int32)


@pytest.mark.parametrize('head,attention', VARIANTS)
def test_no_output_depends_on_a_later_position_in_the_generation_order(head, attention):
    config = image_model_config(attention, head=head)
    model = ImageTransformer(config, 256, rngs=nnx.Rngs(0))
    order = generation_order(config)
    images = random_images(1)
    values_per_position = 3 if head == 'dmol' else 1
    base = np.asarray(model({'targets': images}))[0, order]          # outputs in generation order
    for step in range(0, len(order), 7):
        sub_pixel = order[step] * values_per_position + values_per_position - 1   # its last channel
        changed = images.at[0, sub_pixel].set((images[0, sub_pixel] + 128) % 256)
        logits = np.asarray(model({'targets': changed}))[0, order]
        np.testing.assert_allclose(logits[:step + 1], base[:step + 1], atol=1e-5, err_msg=f'step {step}')
        assert not np.allclose(logits[step + 1:], base[step + 1:])


def test_local_2d_generates_in_block_raster_order_and_the_others_in_raster_order():
    assert generation_order(image_model_config('full')).tolist() == list(range(60))
    order = generation_order(image_model_config('2d'))
    # (5, 12) image of sub-pixels, (2, 4) blocks: the first block is rows 0-1, columns 0-3.
    assert order[:8].tolist() == [0, 1, 2, 3, 12, 13, 14, 15]
    assert sorted(order.tolist()) == list(range(60))


@pytest.mark.parametrize('head,attention', VARIANTS)
def test_cached_greedy_sampling_equals_the_prediction_of_the_full_pass(head, attention):
    config = image_model_config(attention, head=head)
    model = ImageTransformer(config, 256, rngs=nnx.Rngs(1))
    graphdef, params = nnx.split(model)
    positions = len(generation_order(config))
    sequence = np.asarray(decoding.generate(graphdef, params, batch_size=2, max_length=positions, temperature=0.0))
    images = model.to_raster(sequence)                                # [2, 5, 4, 3] uint8
    outputs = model({'targets': jnp.asarray(images.reshape(2, -1), jnp.int32)})
    np.testing.assert_array_equal(np.asarray(model.head.predict(outputs)), images.reshape(2, -1))


def test_dmol_losses_spread_each_pixel_nll_over_its_channels():
    from transformer_lab.models.heads import dmol_log_likelihood
    model = ImageTransformer(image_model_config('full', head='dmol'), 256, rngs=nnx.Rngs(0))
    images = random_images(2)
    outputs = model({'targets': images})
    assert outputs.shape == (2, 20, 40)                               # 4 mixtures x (1 + 3 + 3 + 3)
    _, nll = model.head.losses(outputs, images, 0.0)
    pixel_ll = dmol_log_likelihood(outputs, images.reshape(2, 20, 3), 4)
    np.testing.assert_allclose(float(nll.sum()), -float(pixel_ll.sum()), rtol=1e-5)
    np.testing.assert_allclose(nll[:, 0::3], nll[:, 2::3])


def test_class_conditioning_changes_the_prediction_and_samples_need_labels():
    model = ImageTransformer(image_model_config(num_classes=3), 256, rngs=nnx.Rngs(0))
    images = random_images(2)
    first = model({'targets': images, 'label': jnp.array([0, 0])})
    other = model({'targets': images, 'label': jnp.array([0, 2])})
    np.testing.assert_allclose(first[0], other[0])
    assert not np.allclose(first[1], other[1])
    with pytest.raises(ValueError, match='samples given labels'):
        model.init_decode_state(2, 60)


@pytest.fixture(scope='module')
def fashion_pipeline():
    config = load_config('configs/image_transformer_fashion_mnist.py:tiny')
    return config, tasks.build_pipeline(config.data)


def test_uniform_logits_score_exactly_8_bits_per_dim(fashion_pipeline):
    config, pipeline = fashion_pipeline
    model = build_model(config.model, 256, seed=0)
    projection = model.head.projection
    projection.kernel[...] = jnp.zeros_like(projection.kernel[...])
    projection.bias[...] = jnp.zeros_like(projection.bias[...])
    graphdef, params = nnx.split(model)
    config.eval.max_examples, config.eval.batch_size = 10, 4              # 3 batches, the last padded
    mesh = jax.sharding.Mesh(np.asarray(jax.devices()), ('data',))
    context = evaluators.make_context(config, pipeline, graphdef, mesh)
    metrics = evaluators.bits_per_dimension(context, params, 'validation')
    assert metrics['bits_per_dim'] == pytest.approx(8.0, rel=1e-5)   # ln 256 per sub-pixel, to float32 sums


def test_image_batches_hold_raster_images_and_cover_the_split_once(fashion_pipeline):
    config, pipeline = fashion_pipeline
    batches = list(pipeline.eval_batches('validation', 4, max_examples=10))
    assert [b['targets'].shape for b in batches] == [(4, 784)] * 3
    assert [int(b['target_weights'][:, 0].sum()) for b in batches] == [4, 4, 2]
    source = pipeline.source('validation')
    np.testing.assert_array_equal(batches[1]['targets'][2], np.asarray(source[6]['image']).reshape(-1))
    assert batches[1]['label'][2] == source[6]['label']
    train = next(iter(pipeline.train_batches(4, seed=0)))
    assert train['targets'].shape == (4, 784) and train['targets'].max() <= 255


def write_idx(path, array):
    header = bytes([0, 0, 8, array.ndim]) + b''.join(int(n).to_bytes(4, 'big') for n in array.shape)
    with gzip.open(path, 'wb') as f:
        f.write(header + array.astype(np.uint8).tobytes())


def test_fashion_mnist_builder_reads_idx_files_from_a_manual_dir(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {'train-images-idx3': rng.integers(0, 256, (24, 28, 28)), 'train-labels-idx1': rng.integers(0, 10, 24),
              't10k-images-idx3': rng.integers(0, 256, (6, 28, 28)), 't10k-labels-idx1': rng.integers(0, 10, 6)}
    for name, array in arrays.items():
        write_idx(tmp_path / f'{name}-ubyte.gz', array)
    builder = fashion_mnist_offline.FashionMnistOffline(data_dir=tmp_path / 'data')
    builder.download_and_prepare(file_format='array_record',
                                 download_config=tfds.download.DownloadConfig(manual_dir=tmp_path))
    assert {split: info.num_examples for split, info in builder.info.splits.items()} == {
        'train': 22, 'validation': 2, 'test': 6}
    validation = builder.as_data_source(split='validation')
    np.testing.assert_array_equal(validation[1]['image'][..., 0], arrays['train-images-idx3'][23])
    assert validation[1]['label'] == arrays['train-labels-idx1'][23]


@pytest.mark.slow
def test_the_tiny_config_trains_and_samples_a_png_grid(tmp_path):
    from PIL import Image

    from helpers import run_script, train_losses
    from transformer_lab.training.loop import train_and_evaluate
    config = load_config('configs/image_transformer_fashion_mnist.py:2d,tiny')
    metrics = train_and_evaluate(config, str(tmp_path))
    losses = train_losses(str(tmp_path))
    assert losses[-1] < losses[0] - 1.0, losses
    assert 3.0 < metrics['validation/bits_per_dim'] < 7.0
    result = run_script('sample.py', f'--workdir={tmp_path}', '--num_samples=3')
    assert result.returncode == 0, result.stderr[-3000:]
    with Image.open(tmp_path / 'samples' / 'step_20.png') as grid:
        # 3 columns x 1 row of 28x28 images with 2-pixel borders, doubled.
        assert grid.size == (2 * (3 * 30 + 2), 2 * 32)

    # A picture of the user's as the primer: squared to 28x28 grey as image_folder prepares images; its
    # first two rows of 7x7 query blocks are every completion's first 14 rows, the rest is sampled.
    colours = np.random.default_rng(0).integers(0, 256, (40, 30, 3), dtype=np.uint8)
    Image.fromarray(colours).save(tmp_path / 'mine.png')
    result = run_script('sample.py', f'--workdir={tmp_path}', f'--primer={tmp_path / "mine.png"}',
                        '--primer_rows=14', '--num_samples=2', '--temperature=1.0')
    assert result.returncode == 0, result.stderr[-3000:]
    with Image.open(tmp_path / 'samples' / 'step_20.png') as grid:
        cells = np.asarray(grid)[::2, ::2]       # undo the doubling
    assert cells.shape == (32, 4 * 30 + 2)   # the primer, its kept rows, 2 completions
    primer, kept, *completions = [cells[2:30, 2 + 30 * column:30 + 30 * column] for column in range(4)]
    expected = square_image(tmp_path / 'mine.png', 28, 1, (255, 255, 255))[..., 0]
    np.testing.assert_array_equal(primer, expected)
    np.testing.assert_array_equal(kept[:14], expected[:14])
    assert (kept[14:] == HIDDEN).all()
    for completion in completions:
        np.testing.assert_array_equal(completion[:14], expected[:14])
        assert not np.array_equal(completion[14:], expected[14:])
    assert not np.array_equal(completions[0][14:], completions[1][14:])
    for arguments, message in ((['--primer_rows=10'], 'primed with its first 7, 14, 21 rows'),
                               ([f'--primer={tmp_path / "config.json"}'], 'not an image pillow can read')):
        failed = run_script('sample.py', f'--workdir={tmp_path}', f'--primer={tmp_path / "mine.png"}', *arguments)
        assert failed.returncode == 1 and failed.stderr.strip().splitlines() == [failed.stderr.strip()], failed.stderr
        assert message in failed.stderr, failed.stderr


@pytest.mark.parametrize('head,attention', VARIANTS)
def test_images_become_tokens_in_generation_order_and_back(head, attention):
    model = ImageTransformer(image_model_config(attention, head=head), 256, rngs=nnx.Rngs(0))
    images = np.asarray(random_images(3)).reshape(3, *IMAGE_SHAPE).astype(np.uint8)
    tokens = model.from_raster(images)
    np.testing.assert_array_equal(model.to_raster(tokens), images)
    step = 5      # the token of step 5 holds the value(s) of the position generated fifth
    values = images.reshape(3, -1, model.head.values_per_position)[:, model.order[step]]
    np.testing.assert_array_equal(np.asarray(model.head.unpack(tokens[:, step])), values)


def test_a_primer_keeps_the_leading_rows_of_the_generation_order():
    # Raster order: any rows; local 2D (blocks of 2 rows): whole rows of blocks; None: half, or fewer.
    raster = ImageTransformer(image_model_config('1d'), 256, rngs=nnx.Rngs(0))
    assert [primer_length(raster, rows) for rows in (1, 3, None)] == [(1, 12), (3, 36), (2, 24)]
    blocks = ImageTransformer(image_model_config('2d'), 256, rngs=nnx.Rngs(0))
    assert primer_length(blocks, 2) == (2, 24) and primer_length(blocks, None) == (2, 24)
    assert primer_length(blocks, 4) == (4, 48)
    for rows in (1, 3, 5, 0):
        with pytest.raises(ValueError, match='primed with its first 2, 4 rows'):
            primer_length(blocks, rows)


def test_downsampling_averages_blocks():
    from transformer_lab.data.images import downsample
    image = np.arange(4 * 6 * 2).reshape(4, 6, 2)
    low = downsample(image, 2)
    assert low.shape == (2, 3, 2)
    assert low[1, 2, 1] == np.round(image[2:4, 4:6, 1].mean())


ENCODER_ATTENTION = {
    'full': {'type': 'dot_product'},
    # Unmasked local 2D over the (2, 6) sub-pixel image of the 2x2x3 input.
    'local_2d': {'type': 'local_2d', 'query_shape': (1, 3), 'memory_flange': (1, 3)},
}


@pytest.mark.parametrize('attention,encoder_attention', [('full', 'full'), ('2d', 'local_2d')])
def test_super_resolution_conditions_on_the_input_and_samples_from_the_cache(attention, encoder_attention):
    config = image_model_config(attention)
    config.downsample, config.num_encoder_layers = 2, 1     # (2, 2, 3) inputs
    config.encoder_attention = ConfigDict(ENCODER_ATTENTION[encoder_attention])
    model = ImageTransformer(config, 256, rngs=nnx.Rngs(0))
    images, inputs = random_images(2), random_images(2, shape=(2, 2, 3), seed=1)
    base = model({'targets': images, 'inputs': inputs})
    other = model({'targets': images, 'inputs': inputs.at[1].set(255 - inputs[1])})
    np.testing.assert_allclose(base[0], other[0], atol=1e-6)
    assert not np.allclose(base[1], other[1])
    graphdef, params = nnx.split(model)
    sequence = decoding.generate(graphdef, params, batch_size=2, max_length=60, inputs=inputs, temperature=0.0)
    sampled = model.to_raster(np.asarray(sequence)).reshape(2, -1)
    outputs = model({'targets': jnp.asarray(sampled, jnp.int32), 'inputs': inputs})
    np.testing.assert_array_equal(np.asarray(model.head.predict(outputs)), sampled)


@pytest.mark.slow
def test_the_super_resolution_config_trains_and_samples_inputs_beside_outputs(tmp_path):
    from PIL import Image

    from helpers import run_script, train_losses
    from transformer_lab.training.loop import train_and_evaluate
    config = load_config('configs/image_transformer_superres.py:tiny')
    train_and_evaluate(config, str(tmp_path))
    losses = train_losses(str(tmp_path))
    assert losses[-1] < losses[0] - 0.4, losses
    result = run_script('sample.py', f'--workdir={tmp_path}', '--num_samples=2')
    assert result.returncode == 0, result.stderr[-3000:]
    with Image.open(tmp_path / 'samples' / 'step_20.png') as grid:
        assert grid.size == (2 * (3 * 30 + 2), 2 * (2 * 30 + 2))   # input | sample | original, 2 rows


def test_learned_positions_have_a_table_per_coordinate_and_keep_causality():
    config = image_model_config('1d')
    config.positional = 'learned'
    model = ImageTransformer(config, 256, rngs=nnx.Rngs(0))
    assert [table[...].shape for table in model.embedder.positions.tables] == [(5, 24), (4, 24), (3, 24)]
    images = random_images(1)
    base = np.asarray(model({'targets': images}))
    changed = np.asarray(model({'targets': images.at[0, 30].set((images[0, 30] + 1) % 256)}))
    np.testing.assert_allclose(changed[0, :31], base[0, :31], atol=1e-5)
