"""Huang et al. 2018 (Music Transformer), Table 3: piano performances (Piano-e-Competition), validation
NLL per event of the baseline Transformer, local attention, relative global and relative local attention.

    python scripts/reproduce.py --table=music_transformer_piano --scale=cpu     # docs/results/music_transformer_piano_cpu.md
    python scripts/reproduce.py --table=music_transformer_piano --scale=paper   # an accelerator; MAESTRO prepared

cpu: performance events of music21's scores (configs/music_transformer_music21_performances.py: 3
layers, d_model 128, random crops of 512 events) for 250 steps; paper: MAESTRO, the paper's models
(configs/music_transformer_maestro.py: 6 layers, hidden 256, attention 512, crops of 2048).
"""

TITLE = 'Music Transformer on piano performances (Huang et al. 2018, Table 3)'
METRIC = 'validation/nll'
MODE = 'min'
PAPER_METRIC = 'validation NLL per event on the Piano-e-Competition performances (the unit is not stated)'
SEEDS = {'cpu': 3, 'paper': 1}

CPU_STEPS = {'train.num_steps': 250, 'eval.every_steps': 125, 'checkpoint.every_steps': 125}
LOCAL = {'type': 'local_1d', 'block_length': 256}        # masked local attention, absolute positions

ROWS = {
    'cpu': [
        {'label': 'baseline', 'config': 'configs/music_transformer_music21_performances.py:baseline',
         'overrides': CPU_STEPS, 'paper': 1.861, 'reference': 'TF baseline'},
        {'label': 'local', 'config': 'configs/music_transformer_music21_performances.py:baseline',
         'overrides': {**CPU_STEPS, 'model.attention': LOCAL}, 'paper': 1.863, 'reference': 'TF with local attention'},
        {'label': 'relative global', 'config': 'configs/music_transformer_music21_performances.py:relative',
         'overrides': CPU_STEPS, 'paper': 1.835, 'reference': 'TF relative global'},
        {'label': 'relative local', 'config': 'configs/music_transformer_music21_performances.py:local',
         'overrides': CPU_STEPS, 'paper': 1.840, 'reference': 'TF relative local'},
    ],
    'paper': [
        {'label': 'baseline', 'config': 'configs/music_transformer_maestro.py:baseline', 'paper': 1.861,
         'reference': 'TF baseline'},
        {'label': 'local', 'config': 'configs/music_transformer_maestro.py:baseline',
         'overrides': {'model.attention': {'type': 'local_1d', 'block_length': 512}, 'model.num_decoder_layers': 8,
                       'model.d_ff': 1024},
         'paper': 1.863, 'reference': 'TF with local attention (8 layers, d_ff 1024, blocks of 512)'},
        {'label': 'relative global', 'config': 'configs/music_transformer_maestro.py:relative', 'paper': 1.835,
         'reference': 'TF relative global'},
        {'label': 'relative local', 'config': 'configs/music_transformer_maestro.py:local', 'paper': 1.840,
         'reference': 'TF relative local'},
    ],
}

NOTES = {
    'cpu': ('At CPU scale the performances are made from music21\'s scores (368 / 58 / 54 pieces), not '
            'recorded playing; the model is 3 layers of d_model 128 and training '
            'stops after 250 steps: the values are not comparable with the paper\'s, only the ordering is. The '
            'paper\'s four rows lie within 0.03 of each other; at this budget the seeds\' spread may be larger. '
            'At 250 steps the two relative rows lead the two rows with absolute positions by about 0.35 nats, '
            'more than ten times the paper\'s gaps and the seeds\' spread: we think relative distances are '
            'what performance events need first (a note-off or a time shift refers to an event a few '
            'positions back), so relative attention learns faster early, while the paper\'s gaps are '
            'those of fully trained models, which this scale does not reach. The baseline and local '
            'attention (blocks of 256 in crops of 512) are even, as in the paper (1.861 against 1.863).'),
    'paper': ('MAESTRO stands in for the Piano-e-Competition data the paper used (MAESTRO is drawn from the '
              'same competition). The paper gives no batch size or schedule; the config\'s are this project\'s.'),
}
