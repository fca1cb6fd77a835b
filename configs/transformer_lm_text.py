"""A character-level (byte) language model of your own text: one text file, or a folder of .txt files.

    python scripts/prepare_data.py --dataset=text_file --manual_dir=~/novel.txt --name=novel
    python scripts/train.py --config=configs/transformer_lm_text.py:name=novel --workdir=workdirs/novel

Variants: ``name=NAME`` (the dataset prepared with --name=NAME, default ``default``; the same as
``--config.data.name=text_file/NAME``), ``tiny``, ``steps=N``, ``layers=N``. Paragraphs are the examples
(split by a hash of each unless the files are named train/validation/test), read as one running text
cut into windows of 256 bytes; the model is that of configs/transformer_lm_kjv.py, reporting bits/char.
"""

from configs.common import COMMON_VARIANTS, apply_common_variants, shrink_to_tiny
from transformer_lab.config import base_config, parse_arg


def get_config(arg=None):
    arg = parse_arg(arg, name='default', **COMMON_VARIANTS)
    config = base_config()
    config.data.name = f'text_file/{arg.name}'
    config.data.inputs_feature, config.data.targets_feature = '', 'text'
    config.data.tokenizer, config.data.max_length, config.data.batch_size = 'bytes', 256, 32

    model = config.model
    model.name, model.num_decoder_layers = 'decoder_only', 4
    model.d_model, model.num_heads, model.d_ff, model.max_length = 256, 4, 1024, 256
    model.norm, model.dropout_rate = 'pre', 0.0

    config.train.num_steps, config.train.warmup_steps, config.train.label_smoothing = 5000, 500, 0.0
    config.eval.every_steps, config.eval.evaluators = 1000, ('bits_per_char',)
    config.checkpoint.every_steps = 1000
    config.sample.max_length, config.sample.temperature = 256, 0.8
    if arg.tiny:
        shrink_to_tiny(config, max_examples=50)
    return apply_common_variants(config, arg)
