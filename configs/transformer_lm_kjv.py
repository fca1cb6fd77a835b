"""A character-level (byte) decoder-only language model of the King James Bible, reporting bits/char.

    python scripts/train.py --config=configs/transformer_lm_kjv.py --workdir=workdirs/lm_kjv
    python scripts/train.py --config=configs/transformer_lm_kjv.py:tiny --workdir=/tmp/tiny_lm

Held-out protocol: the last 10% of verses (data.md's n-gram baselines on this split: 3-gram 2.68,
5-gram 2.00 bits/char). Variants: `tiny`, `steps=N`, `layers=N`.
"""

from configs.common import COMMON_VARIANTS, apply_common_variants, shrink_to_tiny
from transformer_lab.config import base_config, parse_arg


def get_config(arg=None):
    arg = parse_arg(arg, **COMMON_VARIANTS)
    config = base_config()
    config.data.name = 'kjv_text'
    config.data.inputs_feature, config.data.targets_feature = '', 'text'
    config.data.tokenizer = 'bytes'
    config.data.max_length = 256
    config.data.batch_size = 32

    config.model.name = 'decoder_only'
    config.model.num_decoder_layers = 4
    config.model.d_model, config.model.num_heads, config.model.d_ff = 256, 4, 1024
    config.model.max_length = 256
    config.model.norm = 'pre'
    config.model.dropout_rate = 0.0

    config.train.num_steps = 5000
    config.train.warmup_steps = 500
    config.train.label_smoothing = 0.0
    config.eval.every_steps = 1000
    config.eval.evaluators = ('bits_per_char',)
    config.checkpoint.every_steps = 1000
    config.sample.prompt = 'In the beginning '
    config.sample.max_length = 256
    config.sample.temperature = 0.8

    if arg.tiny:
        shrink_to_tiny(config, max_examples=50)
    return apply_common_variants(config, arg)
