"""The Image Transformer on Fashion-MNIST (28x28 grey, 784 sub-pixels), at CPU scale, reporting bits/dim.

    python scripts/prepare_data.py --dataset=fashion_mnist_offline     # Debian dataset-fashion-mnist
    python scripts/train.py --config=configs/image_transformer_fashion_mnist.py:1d --workdir=workdirs/fmnist_1d

Variants (the attention of the decoder; same model, data and budget otherwise):
  full  full causal attention over all 784 positions
  1d    masked local 1D, query blocks of 112 positions (4 image rows), memory 224 (the paper's scheme)
  2d    masked local 2D, query blocks of 7x7 with 7x7 flanges (block-raster generation order)
  classes  class-conditional (a class embedding added to every position)
  dmol  a discretised mixture of 10 logistics per pixel instead of the 256-way softmax
  tiny  a one-layer model for tests; steps=N, layers=N as everywhere.
Default: 1d. data.md's baselines on this data: independent pixels 4.59 bits/dim, previous pixel 3.90.
"""

from configs.common import COMMON_VARIANTS, apply_common_variants, image_config, shrink_image_to_tiny
from transformer_lab.config import ConfigDict, parse_arg

IMAGE_SHAPE = (28, 28, 1)
ATTENTION = {
    'full': {'type': 'dot_product'},
    '1d': {'type': 'local_1d', 'block_length': 112},
    '2d': {'type': 'local_2d', 'query_shape': (7, 7), 'memory_flange': (7, 7)},
}


def get_config(arg=None):
    arg = parse_arg(arg, full=False, **{'1d': False, '2d': False}, classes=False, dmol=False, **COMMON_VARIANTS)
    chosen = [name for name in ATTENTION if arg[name]]
    if len(chosen) > 1:
        raise ValueError(f'pick one attention variant, got {chosen}')
    config = image_config('fashion_mnist_offline', IMAGE_SHAPE)
    config.data.batch_size = 16

    model = config.model
    model.num_classes = 10 if arg.classes else 0
    model.head = 'dmol' if arg.dmol else 'categorical'
    model.num_decoder_layers = 4
    model.d_model, model.num_heads, model.d_ff = 128, 4, 256
    model.norm = 'pre'
    model.dropout_rate = 0.0
    model.attention = ConfigDict(ATTENTION[chosen[0] if chosen else '1d'])

    config.train.num_steps = 3000
    config.train.learning_rate = 1.0
    config.train.warmup_steps = 500
    config.eval.every_steps = 1000
    config.eval.batch_size = 50
    config.eval.max_examples = 1000
    config.checkpoint.every_steps = 1000
    config.sample.num_samples = 16

    if arg.tiny:
        shrink_image_to_tiny(config, max_examples=16, batch_size=4)
    return apply_common_variants(config, arg)
