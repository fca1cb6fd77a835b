"""The Music Transformer on Bach chorales (S, A, T, B on a 16th-note grid), CPU scale, NLL per token.

    python scripts/prepare_data.py --dataset=bach_chorales          # from music21's corpus, ~1 minute
    python scripts/train.py --config=configs/music_transformer_bach_chorales.py:relative --workdir=workdirs/bach_rel

Variants: ``baseline`` (the default: absolute sinusoids, full causal attention), ``relative`` (relative
attention with skewing, Huang et al. 2018; max relative distance 256 as in their JSB model), ``tiny``,
``steps=N``, ``layers=N``. Windows of 256 tokens (64 sixteenth notes; the paper crops 1024), training
pieces transposed by up to +-3 semitones.
"""

from transformer_lab.config import (COMMON_VARIANTS, ConfigDict, apply_common_variants, base_config, parse_arg,
                                    shrink_to_tiny)


def get_config(arg=None):
    arg = parse_arg(arg, baseline=False, relative=False, **COMMON_VARIANTS)
    if arg.baseline and arg.relative:
        raise ValueError('pick one of baseline and relative')
    config = base_config()
    data = config.data
    data.name, data.inputs_feature, data.targets_feature = 'bach_chorales', '', 'voices'
    data.tokenizer, data.max_length, data.packing, data.batch_size = 'chorale', 256, False, 16
    data.transpose = 3                  # training pieces move by a random -3..+3 semitones

    model = config.model
    model.name = 'decoder_only'
    model.num_decoder_layers, model.d_model, model.num_heads, model.d_ff = 3, 128, 4, 512
    model.max_length, model.norm, model.dropout_rate = 1024, 'pre', 0.1
    model.attention = ConfigDict({'type': 'relative', 'max_relative_position': 256} if arg.relative
                                 else {'type': 'dot_product'})

    config.train.num_steps, config.train.warmup_steps, config.train.label_smoothing = 2000, 200, 0.0
    config.eval.evaluators, config.eval.every_steps, config.eval.batch_size = ('nll',), 500, 32
    config.checkpoint.every_steps = 500
    config.sample.max_length, config.sample.temperature = 256, 1.0
    if arg.tiny:
        shrink_to_tiny(config, max_examples=8)
        config.model.max_length = 64
        if arg.relative:
            config.model.attention.max_relative_position = 16
    return apply_common_variants(config, arg)
