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
    'cpu': ('The validation NLL above is in windows of the trained length L = 256, over the whole split. Wall '
            'times: the first two rows shared the two cores with other training, the third did not. Past the '
            'trained length (below), on the 8 validation pieces of at least 4L = 1,024 events: the baseline\'s '
            'NLL rises by about 1 nat once positions pass L, where its sinusoids are new to it. Relative attention '
            'beside the same sinusoids (the relative configs of this project) rises by half as much. Relative '
            'attention alone, with no absolute positions, comes closest to holding on, +0.20 nats at L-2L and '
            '+0.13 at 2L-4L, but it does not hold flat: here relative attention generalises past its trained '
            'length only in part, and the absolute sinusoids beside it cost much of that. How much of the '
            'remaining rise is the later music of these 8 pieces being harder (rather than the length) would '
            'take a model trained on crops of 4L to tell; that row is not here. One scale, 250 steps, one '
            'split of few pieces: the paper makes its claim from samples (Sec. 5.2), not from such a table.'),
}
