"""The held-out NLL of the simplest model of a config's data, for a trained model to beat.

    python scripts/baseline.py --config=configs/transformer_lm_text.py:name=novel [--split=validation]

A unigram model: every target token drawn independently from the training split's token frequencies
(add-one smoothed over the vocabulary), scored on every target token of ``--split`` as the evaluators
score a model (padding excluded). Prints nats per token and bits per token, the units of the nll and
bits_per_char / bits_per_dim evaluators.
"""

import math

import numpy as np
from absl import flags

from transformer_lab import cli, tasks
from transformer_lab.training.validation import validate

FLAGS = flags.FLAGS
cli.define_config_flag()
flags.DEFINE_string('split', '', 'The split to score (default: the config\'s data.eval_split).')
ROWS = 64


def token_counts(pipeline, split: str, vocab_size: int) -> np.ndarray:
    """How often each target token occurs in ``split``, every token once (the evaluation batches)."""
    counts = np.zeros(vocab_size, np.int64)
    for batch in pipeline.eval_batches(split, ROWS):
        weights = batch.get('target_weights', batch['targets'] != 0)   # 0 pads text and music rows
        counts += np.bincount(batch['targets'][weights > 0], minlength=vocab_size)
    return counts


def main(argv):
    del argv
    config = FLAGS.config
    validate(config)
    pipeline = tasks.build_pipeline(config.data)
    vocab_size = pipeline.tokenizer.vocab_size
    split = FLAGS.split or config.data.eval_split
    train = token_counts(pipeline, config.data.train_split, vocab_size) + 1
    held_out = token_counts(pipeline, split, vocab_size)
    nll = -(held_out * np.log(train / train.sum())).sum() / held_out.sum()
    print(f'{config.data.name} {split}: unigram {nll:.4f} nats/token = {nll / math.log(2):.4f} bits/token '
          f'({held_out.sum():,} tokens; trained on {train.sum() - vocab_size:,})')


if __name__ == '__main__':
    cli.run(main)
