"""The melody-conditioned Music Transformer (Huang et al. 2018, Sec. 5.3 and Table 4) at CPU scale: an
encoder-decoder whose encoder reads a melody as performance events and whose decoder writes the whole
performance, on scores of music21's corpus (the melody: each score's top part, data/builders/
music21_performances.py) or your MIDI files (``name=NAME``: a midi_folder dataset, whose melody is
the skyline of its notes, data/midi.py ``skyline``).

    python scripts/prepare_data.py --dataset=music21_performances
    python scripts/train.py --config=configs/music_transformer_melody.py:relative --workdir=workdirs/melody
    python scripts/sample.py --workdir=workdirs/melody --melody=tune.mid      # an accompaniment, MIDI + WAV

Variants: ``baseline`` (the default: absolute sinusoids), ``relative`` (relative attention in the
decoder's self-attention, max distance 512), ``local``, ``tiny``, ``steps=N``, ``layers=N``, as for the other
music configs. The encoder's self-attention is full attention with sinusoids in every variant: the
relative cores are causal (distances to earlier positions only), and an encoder looks both ways. Rows
are random crops of 512 events of the augmented performances (the melody augmented alike); 3 encoder
and 3 decoder layers of d_model 128.
"""

from configs.common import COMMON_VARIANTS, MUSIC_VARIANTS, apply_music_variants, cpu_music_config
from transformer_lab.config import ConfigDict, parse_arg


def get_config(arg=None):
    arg = parse_arg(arg, name='', **MUSIC_VARIANTS, **COMMON_VARIANTS)
    dataset = f'midi_folder/{arg.name}' if arg.name else 'music21_performances'
    config = cpu_music_config(dataset, targets_feature='notes', tokenizer='performance', window=512)
    config.data.inputs_feature = 'melody'
    model = config.model
    model.name, model.num_encoder_layers, model.share_embeddings = 'encoder_decoder', 3, True
    model.encoder_attention = ConfigDict({'type': 'dot_product'})
    return apply_music_variants(config, arg, max_relative_position=512, block_length=256)
