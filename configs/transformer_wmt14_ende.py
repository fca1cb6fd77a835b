"""WMT14 English -> German, the paper's Transformer base and big (Vaswani et al. 2017, Table 3).

    # once, on a connected machine (files listed in transformer_lab/data/builders/wmt14.py):
    python scripts/prepare_data.py --dataset=wmt14_ende --manual_dir=~/wmt14
    python scripts/train.py --config=configs/transformer_wmt14_ende.py:base --workdir=workdirs/wmt_base
    python scripts/train.py --config=configs/transformer_wmt14_ende.py:big --workdir=workdirs/wmt_big

base: N=6, d_model=512, d_ff=2048, h=8, d_k=d_v=64, P_drop=0.1, eps_ls=0.1, 100K steps.
big:  N=6, d_model=1024, d_ff=4096, h=16, d_k=d_v=64, P_drop=0.3, eps_ls=0.1, 300K steps.
Both: Adam(0.9, 0.98, 1e-9), lrate = d_model^-0.5 min(step^-0.5, step 4000^-1.5), a shared ~37K
vocabulary (sentencepiece here, BPE in the paper), tied embeddings, ~25K source + 25K target tokens per
batch (96 packed rows of 256 tokens; on fewer or smaller devices the same batch in M micro-batches:
--config.train.grad_accum_steps=M). Evaluation as the paper's: beam 4, length penalty 0.6, at most
source length + 50 tokens, the last 5 (base) or 20 (big) checkpoints averaged (kept 1000 steps apart),
BLEU both detokenised (sacreBLEU) and tokenised as the paper's 27.3 / 28.4:

    python scripts/evaluate.py --workdir=workdirs/wmt_base --split=test --average_last=5

`tiny` runs the same code in CI on small generated files in the same layout (tests/conftest.py).
Also `steps=N`, `layers=N`.
"""

from configs.common import COMMON_VARIANTS, apply_common_variants, for_accelerators, shrink_to_tiny
from transformer_lab.config import ConfigDict, base_config, parse_arg


def get_config(arg=None):
    arg = parse_arg(arg, base=False, big=False, **COMMON_VARIANTS)
    config = for_accelerators(base_config())   # the Transformer base of Table 3
    config.data.name = 'wmt14_ende'
    config.data.inputs_feature, config.data.targets_feature = 'en', 'de'
    config.data.vocab_size = 37000
    config.data.max_length = 256
    config.data.batch_size = 96
    config.model.max_length = 256
    config.eval.evaluators = ('nll', 'bleu')
    config.eval.every_steps = 1000
    config.eval.evaluator_every_steps = ConfigDict({'bleu': 5000})   # beam search over newstest2013: slow
    config.sample.every_steps = 5000
    config.eval.beam_size, config.eval.length_penalty = 4, 0.6     # Sec. 6.1
    # Checkpoints to average (Sec. 6.1: the last 5 for base, 20 for big, written 10 minutes apart).
    config.checkpoint.every_steps, config.checkpoint.max_to_keep = 1000, 5

    if arg.big:
        config.model.d_model, config.model.d_ff, config.model.num_heads = 1024, 4096, 16
        config.model.dropout_rate = 0.3
        config.train.num_steps = 300_000
        config.checkpoint.max_to_keep = 20
    if arg.tiny:
        shrink_to_tiny(config, num_steps=10, max_examples=8)
        config.data.vocab_size = 300
    return apply_common_variants(config, arg)
