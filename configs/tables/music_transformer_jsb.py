"""Huang et al. 2018 (Music Transformer), Table 2: JSB Chorales, note-wise validation NLL, each addition
to the baseline Transformer in turn.

    python scripts/reproduce.py --table=music_transformer_jsb --scale=cpu     # docs/results/music_transformer_jsb_cpu.md
    python scripts/reproduce.py --table=music_transformer_jsb --scale=paper   # an accelerator; JSB prepared

cpu: the Bach chorales of music21 (configs/music_transformer_bach_chorales.py: 3 layers, d_model 128,
windows of 256 tokens) for 500 steps; paper: Coconet's JSB file at the paper's size
(configs/music_transformer_jsb.py: 5 layers of 512, crops of 1024 tokens), 10,000 steps.
"""

TITLE = 'Music Transformer on JSB Chorales (Huang et al. 2018, Table 2)'
METRIC = 'validation/nll'
MODE = 'min'
PAPER_METRIC = 'note-wise validation NLL on JSB Chorales (the base is not stated)'
SEEDS = {'cpu': 3, 'paper': 1}

VARIANTS = [   # (label, our variant, the paper's value, its row in Table 2)
    ('baseline', 'baseline', 0.417, 'TF baseline'),
    ('concat', 'concat', 0.398, '+ concatenated positional sinusoids'),
    ('concat+voices', 'concat,voices', 0.370, '+ concat + instrument labels'),
    ('relative', 'relative', 0.357, 'Relative TF'),
    ('relative+concat+voices', 'relative,concat,voices', 0.347, 'Relative TF + concat + instrument labels'),
]

ROWS = {
    'cpu': [{'label': label, 'config': f'configs/music_transformer_bach_chorales.py:{variant}',
             'overrides': {'train.num_steps': 500, 'eval.every_steps': 250, 'checkpoint.every_steps': 250},
             'paper': paper, 'reference': reference} for label, variant, paper, reference in VARIANTS],
    'paper': [{'label': label, 'config': f'configs/music_transformer_jsb.py:{variant}', 'paper': paper,
               'reference': reference} for label, variant, paper, reference in VARIANTS],
}

NOTES = {
    'cpu': ('At CPU scale the data are music21\'s Bach chorales (320 / 43 / 39, not JSB\'s 229 / 76 / 77), '
            'the model is 3 layers of d_model 128 and training stops after 500 steps, far from convergence: '
            'the values are not comparable with the paper\'s, only the ordering of the rows is. Wall times in '
            'docs/results/music_transformer_jsb_cpu.md are rough: the test suite shared the two cores during '
            'about half of the runs.'),
    'paper': ('The paper tuned each row (Sec. 4: L in 4-6, attention 256-512, ff 512-1024); these rows share '
              'the JSB config of its relative model (5 layers, 512, 8 heads), varying only the addition.'),
}
