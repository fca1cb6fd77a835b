"""The Music Transformer's JSB Chorales setup (Huang et al. 2018, Sec. 5.1 and Table 1) on the standard
16th-note file, Coconet's Jsb16thSeparated.npz (the 229 / 76 / 77 split), NLL per token.

    python scripts/prepare_data.py --dataset=jsb_chorales --manual_dir=DIR   # DIR holds Jsb16thSeparated.npz
    python scripts/train.py --config=configs/music_transformer_jsb.py:relative --workdir=workdirs/jsb_rel
    python scripts/evaluate.py --workdir=workdirs/jsb_rel --split=test

The paper's JSB relative model: 5 layers, hidden and attention 512, d_ff 512, 8 heads, max relative
distance 256, on crops of 1024 tokens (256 sixteenth notes, S, A, T, B at each). Its Table 1 (validation
NLL per note): baseline 0.417, + concatenated sinusoids 0.398, + instrument labels 0.370, relative
attention 0.357, + concat + instrument 0.347. Variants: ``baseline`` (the default), ``relative``,
``local``, ``concat``, ``voices`` (e.g. ``relative,concat,voices``), ``tiny``, ``steps=N``, ``layers=N``.
"""

from configs.common import COMMON_VARIANTS, MUSIC_VARIANTS, apply_music_variants, for_accelerators, music_config
from transformer_lab.config import parse_arg


def get_config(arg=None):
    arg = parse_arg(arg, **MUSIC_VARIANTS, **COMMON_VARIANTS)
    config = for_accelerators(music_config('jsb_chorales', targets_feature='voices', tokenizer='chorale'))
    config.data.max_length, config.data.batch_size = 1024, 16

    model = config.model
    model.num_decoder_layers, model.d_model, model.num_heads, model.d_ff = 5, 512, 8, 512
    model.max_length, model.dropout_rate = 1024, 0.1

    config.train.num_steps, config.train.warmup_steps = 10_000, 1000
    config.eval.every_steps, config.eval.batch_size = 500, 16
    config.checkpoint.every_steps = 500
    config.checkpoint.best_metric = 'validation/nll'
    config.sample.max_length, config.sample.every_steps = 1024, 500
    return apply_music_variants(config, arg, max_relative_position=256, block_length=256)
