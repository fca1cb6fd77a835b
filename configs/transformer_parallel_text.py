"""A Transformer translating your own sentence pairs: aligned files (train.en + train.fr, ...) or a TSV.

    python scripts/prepare_data.py --dataset=parallel_text --manual_dir=~/en_fr --name=enfr \
        --source_lang=en --target_lang=fr
    python scripts/train.py --config=configs/transformer_parallel_text.py:name=enfr,source=en,target=fr \
        --workdir=workdirs/enfr

Variants: ``name=NAME`` (the dataset prepared with --name=NAME, default ``default``; the same as
``--config.data.name=parallel_text/NAME``), ``source=LANG`` and ``target=LANG`` (the languages given to
prepare_data, default ``source`` and ``target``), ``tiny``, ``steps=N``, ``layers=N``. The model is the
one of configs/transformer_bible_enes.py: a shared sentencepiece vocabulary of 4000 trained on the
training pairs, 2 + 2 pre-LN layers of d_model 128, greedy BLEU and NLL on the validation pairs.
"""

from configs.common import COMMON_VARIANTS, apply_common_variants, shrink_to_tiny
from transformer_lab.config import base_config, parse_arg


def get_config(arg=None):
    arg = parse_arg(arg, name='default', source='source', target='target', **COMMON_VARIANTS)
    config = base_config()
    config.data.name = f'parallel_text/{arg.name}'
    config.data.inputs_feature, config.data.targets_feature = arg.source, arg.target
    config.data.vocab_size, config.data.max_length, config.data.batch_size = 4000, 96, 32

    model = config.model
    model.num_encoder_layers = model.num_decoder_layers = 2
    model.d_model, model.num_heads, model.d_ff, model.max_length = 128, 4, 512, 128
    model.norm, model.dropout_rate = 'pre', 0.0

    config.train.num_steps, config.train.warmup_steps = 1200, 300
    config.eval.every_steps = config.sample.every_steps = 600
    config.eval.evaluators = ('nll', 'bleu')
    config.checkpoint.every_steps = 200
    if arg.tiny:
        shrink_to_tiny(config)
        config.data.vocab_size = 200
    return apply_common_variants(config, arg)
