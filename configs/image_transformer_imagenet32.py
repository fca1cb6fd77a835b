"""The Image Transformer on ImageNet 32x32 (Parmar et al. 2018, Table 2: 3.77 bits/dim with 1D local
attention and checkpoint averaging), from the official downsampled files in a manual_dir.

    python scripts/prepare_data.py --dataset=imagenet32_files --manual_dir=~/imagenet32
    python scripts/train.py --config=configs/image_transformer_imagenet32.py --workdir=/mnt/shared/imagenet32

Model: 12 layers, d 512, 8 heads, d_ff 2048, categorical over 3072 sub-pixels, masked local 1D attention
(query blocks of 256, memory the previous block). Variants: ``classes`` (1000-way class-conditional),
``tiny``, ``steps=N``, ``layers=N``.
"""

from configs.common import COMMON_VARIANTS, apply_common_variants, for_accelerators, image_config, shrink_image_to_tiny
from transformer_lab.config import ConfigDict, parse_arg


def get_config(arg=None):
    arg = parse_arg(arg, classes=False, **COMMON_VARIANTS)
    config = for_accelerators(image_config('imagenet32_files', (32, 32, 3)))
    config.data.batch_size = 32
    config.data.eval_split = 'validation'
    model = config.model
    model.num_classes = 1000 if arg.classes else 0
    model.num_decoder_layers, model.d_model, model.num_heads, model.d_ff = 12, 512, 8, 2048
    model.dropout_rate = 0.1
    model.attention = ConfigDict({'type': 'local_1d', 'block_length': 256})

    config.train.num_steps = 1_000_000
    config.train.learning_rate, config.train.warmup_steps = 0.5, 4000
    config.eval.every_steps = 20_000
    config.eval.batch_size = 64
    config.eval.max_examples = 2000
    config.checkpoint.every_steps = 20_000
    config.checkpoint.max_to_keep = 20          # the last checkpoints, for averaging
    config.sample.num_samples, config.sample.every_steps = 16, 20_000

    if arg.tiny:
        shrink_image_to_tiny(config, max_examples=8, batch_size=2, eval_batch_size=4)
    return apply_common_variants(config, arg)
