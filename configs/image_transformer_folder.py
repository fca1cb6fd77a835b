"""The Image Transformer on your own images: any folder of PNG / JPEG / GIF / WebP files, at CPU scale.

    python scripts/prepare_data.py --dataset=image_folder --manual_dir=~/pictures --name=icons --image_size=32
    python scripts/train.py --config=configs/image_transformer_folder.py:name=icons,size=32 --workdir=workdirs/icons
    python scripts/sample.py --workdir=workdirs/icons                    # PNG grids of samples

Variants (the dataset's, as prepared, must match ``size`` and ``channels``):
  name=NAME     the dataset prepared with --name=NAME (default: default); same as
                --config.data.name=image_folder/NAME
  size=S        images of S x S (prepare_data --image_size; default 32)
  channels=C    3 for RGB (default) or 1 for greyscale (prepare_data --channels)
  classes=N     class-conditional on the N class folders that prepare_data lists (0 = unconditional)
  dmol          a pixel per position and a mixture of 10 logistics per pixel, instead of 256-way softmax
  tiny, steps=N, layers=N as everywhere.
The model is the Fashion-MNIST one (configs/image_transformer_fashion_mnist.py): 4 layers, d_model 128,
masked local 1D attention over query blocks of 4 image rows with the previous block as memory.
"""

from configs.common import COMMON_VARIANTS, apply_common_variants, image_config, shrink_image_to_tiny
from transformer_lab.config import ConfigDict, parse_arg


def get_config(arg=None):
    arg = parse_arg(arg, name='default', size=32, channels=3, classes=0, dmol=False, **COMMON_VARIANTS)
    config = image_config(f'image_folder/{arg.name}', (arg.size, arg.size, arg.channels))
    config.data.batch_size = 16

    model = config.model
    model.num_classes = arg.classes
    model.head = 'dmol' if arg.dmol else 'categorical'
    model.num_decoder_layers, model.d_model, model.num_heads, model.d_ff = 4, 128, 4, 256
    model.norm, model.dropout_rate = 'pre', 0.0
    positions_per_row = arg.size * (1 if arg.dmol else arg.channels)
    model.attention = ConfigDict({'type': 'local_1d', 'block_length': 4 * positions_per_row})

    config.train.num_steps, config.train.warmup_steps = 3000, 500
    config.eval.every_steps, config.eval.batch_size, config.eval.max_examples = 1000, 50, 1000
    config.checkpoint.every_steps = 1000
    config.sample.num_samples = 16
    if arg.tiny:
        shrink_image_to_tiny(config, max_examples=8, batch_size=4)
    return apply_common_variants(config, arg)
