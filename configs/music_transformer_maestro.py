"""The Music Transformer's Piano-e-Competition setup (Huang et al. 2018, Sec. 5.2 and Table 3) on MAESTRO
performances: MIDI events (388 of them), crops of 2048, NLL per token.

    python scripts/prepare_data.py --dataset=maestro --manual_dir=DIR   # DIR: maestro-v3.0.0.csv + the MIDI files
    python scripts/train.py --config=configs/music_transformer_maestro.py:relative --workdir=/mnt/shared/maestro_rel
    python scripts/evaluate.py --workdir=/mnt/shared/maestro_rel --split=test
    python scripts/sample.py --workdir=/mnt/shared/maestro_rel --primer_tokens=512 --top_k=40

Variants, the paper's Table 3 models (validation NLL per token on the Piano-e-Competition data: baseline
1.861, relative local 1.840, relative global 1.835): ``relative`` (the default; relative global
attention, max relative distance 1024, d_ff 2048), ``local`` (relative local attention in blocks of 512,
max relative distance 2048, d_ff 1024), ``baseline`` (absolute sinusoids, d_ff 2048). All have 6 layers,
hidden size 256, attention 512 wide in 8 heads. Training pieces are transposed by up to +-3 semitones and
stretched in time by a factor of {0.95, 0.975, 1.0, 1.025, 1.05}. Also ``tiny``, ``steps=N``, ``layers=N``.
The paper does not give its batch size and schedule; these are the defaults here.
"""

from configs.common import COMMON_VARIANTS, MUSIC_VARIANTS, apply_music_variants, for_accelerators, music_config
from transformer_lab.config import parse_arg


def get_config(arg=None):
    arg = parse_arg(arg, **MUSIC_VARIANTS, **COMMON_VARIANTS)
    if not (arg.baseline or arg.local):
        arg.relative = True
    config = for_accelerators(music_config('maestro', targets_feature='notes', tokenizer='performance'))
    config.data.max_length, config.data.batch_size = 2048, 16

    model = config.model
    model.num_decoder_layers, model.d_model, model.attention_dims, model.num_heads = 6, 256, 512, 8
    model.d_ff = 1024 if arg.local else 2048
    model.max_length, model.dropout_rate = 2048, 0.1

    config.train.num_steps, config.train.warmup_steps = 200_000, 8000
    config.eval.every_steps, config.eval.batch_size = 5000, 16
    config.checkpoint.every_steps = 5000
    config.checkpoint.best_metric = 'validation/nll'
    config.sample.max_length, config.sample.every_steps = 2048, 5000
    return apply_music_variants(config, arg, max_relative_position=2048 if arg.local else 1024, block_length=512)
