"""The Music Transformer on Bach chorales (S, A, T, B on a 16th-note grid), CPU scale, NLL per token.

    python scripts/prepare_data.py --dataset=bach_chorales          # from music21's corpus, ~1 minute
    python scripts/train.py --config=configs/music_transformer_bach_chorales.py:relative --workdir=workdirs/bach_rel
    python scripts/evaluate.py --workdir=workdirs/bach_rel --split=test
    python scripts/sample.py --workdir=workdirs/bach_rel --primer_tokens=64     # MIDI + piano rolls

Variants (Huang et al. 2018, Table 1): ``baseline`` (the default: absolute sinusoids added, full causal
attention), ``relative`` (relative attention with skewing; max relative distance 256 as in their JSB
model), ``local`` (relative local attention, blocks of 128), ``concat`` (sinusoids concatenated),
``voices`` (S/A/T/B voice embeddings, the paper's instrument labels); e.g. ``relative,concat,voices``.
Also ``tiny``, ``steps=N``, ``layers=N``. Windows of 256 tokens (64 sixteenth notes; the paper crops
1024), training pieces transposed by up to +-3 semitones.
"""

from configs.common import COMMON_VARIANTS, MUSIC_VARIANTS, apply_music_variants, cpu_music_config
from transformer_lab.config import parse_arg


def get_config(arg=None):
    arg = parse_arg(arg, **MUSIC_VARIANTS, **COMMON_VARIANTS)
    config = cpu_music_config('bach_chorales', targets_feature='voices', tokenizer='chorale', window=256)
    config.sample.temperature = 1.0
    return apply_music_variants(config, arg, max_relative_position=256, block_length=128)


def sweep_attention(add):
    """The attention of Huang et al. 2018, Table 1, one run each (the whole ``model.attention`` section
    replaced): the baseline's full causal attention, relative attention with skewing, relative local."""
    add(**{'model.attention': {'type': 'dot_product'}})
    add(**{'model.attention': {'type': 'relative', 'max_relative_position': 256}})
    add(**{'model.attention': {'type': 'relative_local_1d', 'max_relative_position': 256, 'block_length': 128}})
