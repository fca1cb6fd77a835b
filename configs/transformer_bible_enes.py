"""English -> Spanish translation on the KJV / Reina-Valera 1909 verse pairs (the default of `make run`).

    python scripts/train.py --config=configs/transformer_bible_enes.py --workdir=workdirs/bible_enes
    python scripts/train.py --config=configs/transformer_bible_enes.py:tiny --workdir=/tmp/tiny

A Transformer sized for ten minutes of training on 2 CPU cores: shared sentencepiece vocabulary and
tied embeddings, packed rows, a short warm-up; pre-LN and no dropout, which learn fastest in such a
short run (the paper's post-LN: `--config.model.norm=post --config.model.dropout_rate=0.1`).
Variants: `tiny` (seconds, for tests), `steps=N`, `layers=N`. Evaluated the paper's way afterwards:

    python scripts/evaluate.py --workdir=workdirs/bible_enes --beam_size=4 --average_last=5

Sweeps (docs/sweeps.md): the grids `lr` (learning rate x warm-up) and `heads` (1, 4, 8, 16 heads at
d_model 128), and the search `schedule` (learning rate and warm-up drawn by Optuna, `--trials=N`):

    python scripts/sweep.py --config=configs/transformer_bible_enes.py --sweep=lr --workdir=sweeps/bible_lr \
        --workers=2 --config.train.num_steps=400 --config.eval.evaluators="('nll',)"
"""

from configs.common import COMMON_VARIANTS, apply_common_variants, shrink_to_tiny
from transformer_lab.config import ConfigDict, base_config, parse_arg


def get_config(arg=None):
    arg = parse_arg(arg, **COMMON_VARIANTS)
    config = base_config()
    config.data.name = 'bible_translation'
    config.data.inputs_feature, config.data.targets_feature = 'en', 'es'
    config.data.vocab_size = 4000
    config.data.max_length = 96
    config.data.batch_size = 32

    config.model.num_encoder_layers = config.model.num_decoder_layers = 2
    config.model.d_model, config.model.num_heads, config.model.d_ff = 128, 4, 512
    config.model.max_length = 128
    # Measured at 400 steps (validation NLL, nats/token): post-LN + dropout 0.1 + lr 2.0: 4.21;
    # lr 0.5: 4.07; + dropout 0: 3.83; pre-LN + dropout 0 + lr 1.0: 3.52. Three epochs do not overfit.
    config.model.norm = 'pre'
    config.model.dropout_rate = 0.0

    config.train.num_steps = 1200
    config.train.warmup_steps = 300
    config.train.learning_rate = 1.0
    config.eval.evaluators = ('nll', 'bleu')     # greedy while training; evaluate.py --beam_size=4 after
    config.eval.every_steps = 300
    config.eval.evaluator_every_steps = ConfigDict({'bleu': 600})   # decoding: slower than the NLL
    config.sample.every_steps = 600
    # The last 5 checkpoints, 100 steps apart, to average (evaluate.py --average_last=5).
    config.checkpoint.every_steps, config.checkpoint.max_to_keep = 100, 5

    if arg.tiny:
        shrink_to_tiny(config)
        config.data.vocab_size = 500
    return apply_common_variants(config, arg)


def sweep_lr(add):
    """The learning rate (the scale of the inverse-square-root schedule, Vaswani et al. 2017, eq. 3)
    against the warm-up: 3 x 2 runs."""
    for learning_rate in (0.5, 1.0, 2.0):
        for warmup_steps in (100, 300):
            add(**{'train.learning_rate': learning_rate, 'train.warmup_steps': warmup_steps})


def sweep_heads(add):
    """Attention heads at a fixed width (d_model 128: 128, 32, 16 and 8 dimensions per head), as in
    Vaswani et al. 2017, Table 3 (A)."""
    for num_heads in (1, 4, 8, 16):
        add(**{'model.num_heads': num_heads})


def search_schedule(trial):
    """The learning rate and warm-up of ``sweep_lr``, searched: ``--trials=N --sampler=tpe``."""
    trial.suggest_float('train.learning_rate', 0.25, 4.0, log=True)
    trial.suggest_int('train.warmup_steps', 50, 400, log=True)
