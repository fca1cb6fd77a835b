"""Image super-resolution with the Image Transformer (Parmar et al. 2018, Sec. 4.3): an encoder reads the
low-resolution image, a decoder with masked local 2D attention generates the high-resolution one.

    python scripts/train.py --config=configs/image_transformer_superres.py --workdir=workdirs/superres
    python scripts/sample.py --workdir=workdirs/superres     # inputs, samples and originals side by side

Default (CPU scale, offline): Fashion-MNIST 7x7 -> 28x28 (data.downsample = 4: each input pixel is the
mean of a 4x4 block). ``cifar10``: the paper's setting on a connected machine, 8x8x3 -> 32x32x3 (the
paper's CelebA 8x8 -> 32x32 needs CelebA), decoder local 2D with query blocks 8x32 and memory blocks
16x64 (flanges (8, 16)), the paper's 2D configuration (NLL 2.61 on CelebA). ``tiny`` for tests.
"""

from configs.common import COMMON_VARIANTS, apply_common_variants, image_config, shrink_image_to_tiny
from transformer_lab.config import ConfigDict, parse_arg


def get_config(arg=None):
    arg = parse_arg(arg, cifar10=False, **COMMON_VARIANTS)
    if arg.cifar10:
        config = image_config('cifar10_files', (32, 32, 3))
        config.data.downsample = 4      # 8x8x3 inputs
        model = config.model
        model.num_encoder_layers, model.num_decoder_layers = 4, 8
        model.d_model, model.num_heads, model.d_ff, model.dropout_rate = 512, 8, 2048, 0.1
        model.attention = ConfigDict({'type': 'local_2d', 'query_shape': (8, 32), 'memory_flange': (8, 16)})
        config.data.batch_size = 32
        config.train.num_steps, config.train.learning_rate, config.train.warmup_steps = 200_000, 0.5, 4000
        config.eval.every_steps = config.checkpoint.every_steps = config.sample.every_steps = 10_000
    else:
        config = image_config('fashion_mnist_offline', (28, 28, 1))
        config.data.downsample = 4      # 7x7 inputs
        model = config.model
        model.num_encoder_layers, model.num_decoder_layers = 2, 4
        model.d_model, model.num_heads, model.d_ff, model.dropout_rate = 128, 4, 256, 0.0
        model.attention = ConfigDict({'type': 'local_2d', 'query_shape': (7, 7), 'memory_flange': (7, 7)})
        config.data.batch_size = 16
        config.train.num_steps, config.train.learning_rate, config.train.warmup_steps = 3000, 1.0, 500
        config.eval.every_steps = config.checkpoint.every_steps = 1000
    model.encoder_attention = ConfigDict({'type': 'dot_product'})   # or unmasked local_2d for larger inputs
    model.norm = 'pre'
    config.eval.batch_size, config.eval.max_examples = 50, 1000
    config.sample.num_samples = 8

    if arg.tiny:
        shrink_image_to_tiny(config, max_examples=16, batch_size=4)
    return apply_common_variants(config, arg)
