"""The Image Transformer on CIFAR-10 (32x32x3), the paper's models (Parmar et al. 2018; papers.md).

    python scripts/prepare_data.py --dataset=cifar10_files              # downloads, or a manual_dir
    python scripts/train.py --config=configs/image_transformer_cifar10.py:1d --workdir=/mnt/shared/cifar_1d
    python scripts/evaluate.py --workdir=/mnt/shared/cifar_1d --split=test      # bits/dim; the paper: 2.90

Variants:
  1d    (default) the paper's categorical model: 3072 sub-pixel positions, 12 layers, d 512, 4 heads,
        d_ff 2048, masked local 1D attention with query blocks of 256 and memory the previous block,
        dropout 0.3, rsqrt schedule with lr 0.5 and 4000 warm-up steps (tensor2tensor's
        imagetransformer_cifar10_base)
  dmol  a pixel per position (1024), a mixture of 10 logistics per pixel: 14 layers, d 256, 8 heads
  2d    masked local 2D over the (32, 96) sub-pixel image: 8 layers, d 512, 8 heads, query blocks (8, 32),
        flanges (8, 32) (imagetransformer2d_base)
  classes  class-conditional; tiny: a one-layer model on a small batch, for smoke tests.
The batch (data.batch_size = 32 images) is this project's choice; add train.grad_accum_steps on small machines.
"""

from configs.common import COMMON_VARIANTS, apply_common_variants, for_accelerators, image_config, shrink_image_to_tiny
from transformer_lab.config import ConfigDict, parse_arg


def get_config(arg=None):
    arg = parse_arg(arg, **{'1d': False, '2d': False}, dmol=False, classes=False, **COMMON_VARIANTS)
    config = for_accelerators(image_config('cifar10_files', (32, 32, 3)))
    config.data.batch_size = 32
    model = config.model
    model.num_classes = 10 if arg.classes else 0
    model.num_decoder_layers, model.d_model, model.num_heads, model.d_ff = 12, 512, 4, 2048
    model.dropout_rate = 0.3
    model.attention = ConfigDict({'type': 'local_1d', 'block_length': 256})
    if arg.dmol:
        model.head = 'dmol'
        model.num_decoder_layers, model.d_model, model.num_heads, model.d_ff = 14, 256, 8, 1024
    if arg['2d']:
        model.num_decoder_layers, model.num_heads = 8, 8
        model.attention = ConfigDict({'type': 'local_2d', 'query_shape': (8, 32), 'memory_flange': (8, 32)})

    config.train.num_steps = 500_000
    config.train.learning_rate, config.train.warmup_steps = 0.5, 4000
    config.eval.every_steps = 10_000
    config.eval.batch_size = 64
    config.eval.max_examples = 2000      # the full test split: scripts/evaluate.py --split=test
    config.checkpoint.every_steps = 10_000
    config.sample.num_samples, config.sample.every_steps = 16, 10_000

    if arg.tiny:
        shrink_image_to_tiny(config, max_examples=8, batch_size=2, eval_batch_size=4)
    return apply_common_variants(config, arg)
