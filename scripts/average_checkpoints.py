"""Averages the parameters of a run's last N checkpoints into a new run directory (Vaswani et al. 2017,
Sec. 6.1: the last 5 checkpoints for base models, the last 20 for big), to evaluate or translate with.

    python scripts/average_checkpoints.py --workdir=DIR --last=5 --output=DIR_avg5
    python scripts/evaluate.py --workdir=DIR_avg5 --split=test --beam_size=4

``--output`` gets the run's config and tokenizer and one checkpoint at the newest averaged step (its
optimizer state with the mean parameters). The run itself is only read. ``evaluate.py --average_last=N``
averages on the fly instead.
"""

from absl import flags

from transformer_lab import cli
from transformer_lab.runs import save_averaged

FLAGS = flags.FLAGS
flags.DEFINE_string('workdir', None, 'A run directory written by scripts/train.py.')
flags.DEFINE_integer('last', 5, 'How many of its latest checkpoints to average.')
flags.DEFINE_string('output', None, 'A new directory for the averaged run.')
flags.mark_flags_as_required(['workdir', 'output'])


def main(argv):
    del argv
    step = save_averaged(FLAGS.workdir, FLAGS.output, FLAGS.last)
    print(f'{FLAGS.output}: the mean parameters of the last {FLAGS.last} checkpoints of {FLAGS.workdir}, '
          f'at step {step}')


if __name__ == '__main__':
    cli.run(main)
