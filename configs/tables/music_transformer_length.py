"""Huang et al. 2018 (Music Transformer), Sec. 3 and 5.2: relative attention lets a model go on past the
length it was trained on. Baseline (absolute sinusoids), relative global attention (beside the sinusoids,
as this project's relative configs have it) and relative attention alone, trained on crops of L = 256
events, evaluated on the first 4L tokens of the pieces that long: NLL per token by position, [0, L),
[L, 2L), [2L, 4L).

    python scripts/reproduce.py --table=music_transformer_length --scale=cpu   # docs/results/music_transformer_length_cpu.md

cpu: performance events of music21's scores (configs/music_transformer_music21_performances.py: 3 layers,
d_model 128) for 250 steps on crops of 256; relative distances clipped at L / 2, so that every distance
the longer windows meet has an embedding that trained. The paper shows this as samples (Fig. 3, and its
listening test) rather than as a table: there is no paper column.
"""

TITLE = 'Music Transformer past its trained length (Huang et al. 2018, Sec. 5.2)'
METRIC = 'validation/nll'
MODE = 'min'
PAPER_METRIC = 'no number: the paper shows samples past the trained length (Sec. 5.2, Fig. 3)'
SEEDS = {'cpu': 3}
LONGER = 4

TRAINED_LENGTH = 256
CPU = {'train.num_steps': 250, 'eval.every_steps': 125, 'checkpoint.every_steps': 125,
       'data.max_length': TRAINED_LENGTH, 'model.max_length': TRAINED_LENGTH}

ROWS = {
    'cpu': [
        {'label': 'baseline', 'config': 'configs/music_transformer_music21_performances.py:baseline',
         'overrides': CPU, 'reference': 'absolute sinusoids, full attention'},
        {'label': 'relative', 'config': 'configs/music_transformer_music21_performances.py:relative',
         'overrides': {**CPU, 'model.attention': {'type': 'relative', 'max_relative_position': TRAINED_LENGTH // 2}},
         'reference': 'relative global attention, distances clipped at L / 2'},
        {'label': 'relative, no sinusoids', 'config': 'configs/music_transformer_music21_performances.py:relative',
         'overrides': {**CPU, 'model.attention': {'type': 'relative', 'max_relative_position': TRAINED_LENGTH // 2},
                       'model.positional': 'none'},
         'reference': 'relative attention the only positions: none past L is new to the model'},
    ],
}

NOTES = {
    'cpu': 'Validation NLL above is in windows of the trained length L = 256.',
}
