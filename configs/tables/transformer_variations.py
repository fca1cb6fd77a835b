"""Vaswani et al. 2017, Table 3: variations on the Transformer base model, each row one change; the dev
set's perplexity and BLEU.

    python scripts/reproduce.py --table=transformer_variations --scale=cpu     # docs/results/transformer_variations_cpu.md
    python scripts/reproduce.py --table=transformer_variations --scale=paper   # accelerators; WMT14 prepared

cpu: the English -> Spanish Bible pairs with a base model scaled down by 4 in width and 3 in depth
(configs/transformer_bible_enes.py: 2 + 2 layers, d_model 128, 4 heads, d_ff 512; here with the paper's
dropout 0.1 and label smoothing 0.1), 200 steps after 100 of warm-up; each row changes what the paper's row
changes by the same factor against the base (the paper's h=16 is twice its base's 8 heads: h=8 here,
twice our 4), layers aside: N=1 and N=3 stand for the paper's fewer (N=2) and more (N=8) layers, and its
N=4 row is at paper scale only.
paper: WMT14 English -> German, the base model (configs/transformer_wmt14_ende.py:base), 100K steps.
"""

TITLE = 'Transformer variations (Vaswani et al. 2017, Table 3)'
METRIC = 'validation/perplexity'
MODE = 'min'
PAPER_METRIC = 'per-wordpiece perplexity on newstest2013 (BLEU beside it)'
SEEDS = {'cpu': 3, 'paper': 1}
EXTRA_METRICS = ('validation/bleu',)

BASE_CPU = {'train.num_steps': 200, 'train.warmup_steps': 100, 'eval.every_steps': 200,
            'checkpoint.every_steps': 100, 'model.dropout_rate': 0.1, 'train.label_smoothing': 0.1}

# (label, the row in the paper, its perplexity and BLEU, our change at CPU scale (None: none there), the change
# at paper scale)
VARIATIONS = [
    ('base', 'base', 4.92, 25.8, {}, {}),
    ('(A) h=1', '(A) h=1, d_k=d_v=512', 5.29, 24.9, {'model.num_heads': 1}, {'model.num_heads': 1}),
    ('(A) h=2', '(A) h=4, d_k=d_v=128', 5.00, 25.5, {'model.num_heads': 2}, {'model.num_heads': 4}),
    ('(A) h=8', '(A) h=16, d_k=d_v=32', 4.91, 25.8, {'model.num_heads': 8}, {'model.num_heads': 16}),
    ('(A) h=16', '(A) h=32, d_k=d_v=16', 5.01, 25.4, {'model.num_heads': 16}, {'model.num_heads': 32}),
    ('(B) d_k=8', '(B) d_k=16', 5.16, 25.1, {'model.attention_dims': 32}, {'model.attention_dims': 128}),
    ('(B) d_k=16', '(B) d_k=32', 5.01, 25.4, {'model.attention_dims': 64}, {'model.attention_dims': 256}),
    ('(C) N=1', '(C) N=2', 6.11, 23.7, {'model.num_encoder_layers': 1, 'model.num_decoder_layers': 1},
     {'model.num_encoder_layers': 2, 'model.num_decoder_layers': 2}),
    ('(C) N=4 (paper scale only)', '(C) N=4', 5.19, 25.3, None,
     {'model.num_encoder_layers': 4, 'model.num_decoder_layers': 4}),
    ('(C) N=3', '(C) N=8', 4.88, 25.5, {'model.num_encoder_layers': 3, 'model.num_decoder_layers': 3},
     {'model.num_encoder_layers': 8, 'model.num_decoder_layers': 8}),
    ('(C) d_model=64', '(C) d_model=256, d_k=d_v=32', 5.75, 24.5, {'model.d_model': 64}, {'model.d_model': 256}),
    ('(C) d_model=256', '(C) d_model=1024, d_k=d_v=128', 4.66, 26.0, {'model.d_model': 256},
     {'model.d_model': 1024}),
    ('(C) d_ff=256', '(C) d_ff=1024', 5.12, 25.4, {'model.d_ff': 256}, {'model.d_ff': 1024}),
    ('(C) d_ff=1024', '(C) d_ff=4096', 4.75, 26.2, {'model.d_ff': 1024}, {'model.d_ff': 4096}),
    ('(D) dropout=0', '(D) P_drop=0.0', 5.77, 24.6, {'model.dropout_rate': 0.0}, {'model.dropout_rate': 0.0}),
    ('(D) dropout=0.2', '(D) P_drop=0.2', 4.95, 25.5, {'model.dropout_rate': 0.2}, {'model.dropout_rate': 0.2}),
    ('(D) smoothing=0', '(D) eps_ls=0.0', 4.67, 25.3, {'train.label_smoothing': 0.0}, {'train.label_smoothing': 0.0}),
    ('(D) smoothing=0.2', '(D) eps_ls=0.2', 5.47, 25.7, {'train.label_smoothing': 0.2},
     {'train.label_smoothing': 0.2}),
    ('(E) learned positions', '(E) positional embedding instead of sinusoids', 4.92, 25.7,
     {'model.positional': 'learned'}, {'model.positional': 'learned'}),
]

ROWS = {
    'cpu': [{'label': label, 'config': 'configs/transformer_bible_enes.py', 'overrides': {**BASE_CPU, **cpu},
             'paper': {'validation/perplexity': perplexity, 'validation/bleu': bleu}, 'reference': f'Table 3 {row}'}
            for label, row, perplexity, bleu, cpu, _ in VARIATIONS if cpu is not None],
    'paper': [{'label': row, 'config': 'configs/transformer_wmt14_ende.py:base',
               'overrides': {'train.num_steps': 100_000, **paper},
               'paper': {'validation/perplexity': perplexity, 'validation/bleu': bleu}, 'reference': f'Table 3 {row}'}
              for _, row, perplexity, bleu, _, paper in VARIATIONS],
}

NOTES = {
    'cpu': ('Not comparable in value with the paper: perplexity per token of a 4,000-piece vocabulary on the '
            'Bible (the paper: per wordpiece of 37,000 on WMT), 200 steps of 32 pairs (the paper: 100,000 of '
            '25,000 tokens), pre-LN as this project\'s Bible config (the paper: post-LN). BLEU is sacreBLEU of '
            'greedy decoding. (B) narrows queries, keys and values together (the model has one attention '
            'width), where the paper narrows d_k alone.\n\n'
            'After 200 updates every model is far from converged (perplexities 66-91, the paper\'s ~5), so the '
            'rows measure how fast each variation learns in its first 200 updates under one schedule, not where '
            'it ends; most neighbouring rows lie within the seeds\' spread of each other. '
            '(A) One head is the worst head count (78.8 against the base\'s 75.1), as in the paper; 2, 8 and 16 '
            'heads lie within the spread of the base. '
            '(B) Narrower attention leads the base (74.1 and 72.3), the paper\'s opposite: our (B) narrows '
            'queries, keys and values together, fewer parameters to fit early, where the paper narrows d_k alone. '
            '(C) The shallower model leads (N=1: 72.1) and the deeper trails (N=3: 79.0); the wider model trails '
            'most (d_model=256: 90.7) and the narrower too (d_model=64: 84.4), while d_ff moves nothing beyond the '
            'spread. The paper\'s bigger models win after 100,000 steps; here the rsqrt schedule gives a wider '
            'model a smaller learning rate (d_model^-0.5) and a deeper one more to fit, which 200 updates do not '
            'repay, and 64 dimensions are too narrow for a 4,000-piece vocabulary. '
            '(D) Without dropout the model is best of all (65.7) and with dropout 0.2 among the worst (85.7): the '
            'paper\'s opposite (its P_drop=0 row overfits over 100,000 steps; 200 updates cannot overfit, and '
            'dropout only slows fitting). Label smoothing goes the paper\'s way: without it perplexity is better '
            '(71.8; the paper 4.67 against 4.92) and with 0.2 worse (81.1; the paper 5.47), since smoothing '
            'trains away from confident predictions, which perplexity rewards. '
            '(E) Learned positions equal sinusoids within the spread (75.5 against 75.1), as in the paper (4.92 '
            'both), though their greedy BLEU is lower at this point (0.87 against 1.91).'),
    'paper': ('The paper\'s BLEU here is beam search on newstest2013 without checkpoint averaging (Table 3); '
              'the column is greedy sacreBLEU while training: run `scripts/evaluate.py --beam_size=4` on a '
              'row\'s workdir, and read `tokenized_bleu`, for the paper\'s protocol.'),
}
