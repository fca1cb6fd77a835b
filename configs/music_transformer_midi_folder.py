"""The Music Transformer on your own MIDI files: any folder of .mid/.midi files, as performance events
(Huang et al. 2018, Sec. 5.2), at CPU scale like configs/music_transformer_music21_performances.py.

    python scripts/prepare_data.py --dataset=midi_folder --manual_dir=~/my_midi --name=piano
    python scripts/train.py --config=configs/music_transformer_midi_folder.py:name=piano,relative \
        --workdir=workdirs/piano
    python scripts/sample.py --workdir=workdirs/piano --primer_tokens=128 --top_k=40   # MIDI + piano rolls

``name=NAME`` reads the dataset prepared with ``--name=NAME`` (the same as
``--config.data.name=midi_folder/NAME``; default ``default``). The folder's split: sub-folders train/
validation/ test/ if it has them, else a hash of each file's path (about 80 / 10 / 10); files that do not
parse are skipped and listed by prepare_data. Training rows are random crops of 512 events of the
pieces, transposed by up to +-3 semitones and stretched by {0.95, ..., 1.05}. Variants as for the
other music configs: ``baseline`` (default), ``relative``, ``local``, ``tiny``, ``steps=N``, ``layers=N``.
"""

from configs.common import COMMON_VARIANTS, MUSIC_VARIANTS, apply_music_variants, cpu_music_config
from transformer_lab.config import parse_arg


def get_config(arg=None):
    arg = parse_arg(arg, name='default', **MUSIC_VARIANTS, **COMMON_VARIANTS)
    config = cpu_music_config(f'midi_folder/{arg.name}', targets_feature='notes', tokenizer='performance',
                              window=512)
    return apply_music_variants(config, arg, max_relative_position=512, block_length=256)
