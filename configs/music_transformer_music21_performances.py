"""The Music Transformer's performance-event model (Huang et al. 2018, Sec. 5.2) at CPU scale, on scores
of music21's corpus rendered as performances (installs with pip, no download): what the MAESTRO setup
(configs/music_transformer_maestro.py) runs on a connected machine, small enough to train here.

    python scripts/prepare_data.py --dataset=music21_performances
    python scripts/train.py --config=configs/music_transformer_music21_performances.py:relative \
        --workdir=workdirs/perf_rel
    python scripts/sample.py --workdir=workdirs/perf_rel --primer_tokens=128 --top_k=40   # MIDI + piano rolls

Variants: ``baseline`` (the default: absolute sinusoids), ``relative`` (relative attention, max distance
512), ``local`` (relative local attention in blocks of 256), ``tiny``, ``steps=N``, ``layers=N``. Windows of
512 events; training pieces transposed by up to +-3 semitones and stretched by {0.95, ..., 1.05}.
"""

from configs.common import COMMON_VARIANTS, MUSIC_VARIANTS, apply_music_variants, cpu_music_config
from transformer_lab.config import parse_arg


def get_config(arg=None):
    arg = parse_arg(arg, **MUSIC_VARIANTS, **COMMON_VARIANTS)
    config = cpu_music_config('music21_performances', targets_feature='notes', tokenizer='performance',
                              window=512)
    return apply_music_variants(config, arg, max_relative_position=512, block_length=256)
