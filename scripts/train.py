"""Trains a config in a workdir, resuming from the workdir's latest checkpoint.

    python scripts/train.py --config=configs/transformer_bible_enes.py[:variant] --workdir=DIR \
        [--config.train.num_steps=500 ...] [--verbose]

Exit status: 0 when the run reached train.num_steps; 1 with one ``error:`` line on a bad config or
flag, a workdir that cannot be used (a file, unwritable, in use by another run, a run that this config
cannot resume), a non-finite loss or a failed write; 128 + signal number after SIGTERM / SIGINT, which
save a checkpoint first (running the same command again resumes). The libraries' detail goes to
DIR/train.log (``--verbose``: to stderr).
"""

import sys

from absl import flags

from transformer_lab import cli
from transformer_lab.training.logging import format_metrics
from transformer_lab.training.loop import train_and_evaluate
from transformer_lab.training.preemption import TrainingInterrupted

FLAGS = flags.FLAGS
cli.define_config_flag()
flags.DEFINE_string('workdir', None, 'Directory for checkpoints, metrics and the resolved config.')
flags.mark_flags_as_required(['config', 'workdir'])


def main(argv):
    del argv
    try:
        metrics = train_and_evaluate(FLAGS.config, FLAGS.workdir)
    except TrainingInterrupted as interrupted:
        print(f'stopped: {interrupted}', file=sys.stderr)
        sys.exit(128 + interrupted.signal_number)
    print('final: ' + format_metrics(dict(sorted(metrics.items()))))


if __name__ == '__main__':
    cli.run(main)
