"""Trains a config in a workdir, resuming from the workdir's latest checkpoint.

    python scripts/train.py --config=configs/transformer_bible_enes.py[:variant] --workdir=DIR \
        [--config.train.num_steps=500 ...]

Exit status: 0 when the run reached train.num_steps; 1 with a message on a bad config, a workdir that
cannot be resumed, a non-finite loss or a failed save; 128 + signal number after SIGTERM / SIGINT,
which save a checkpoint first (running the same command again resumes).
"""

import sys

from absl import app, flags, logging
from ml_collections import config_flags

from transformer_lab.config import ConfigError
from transformer_lab.data.pipeline import DatasetNotPreparedError
from transformer_lab.training.checkpoints import CheckpointError
from transformer_lab.training.loop import NonFiniteLossError, WorkdirConflictError, train_and_evaluate
from transformer_lab.training.preemption import TrainingInterrupted

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file('config', None, 'Config file, optionally with :variant.', lock_config=True)
flags.DEFINE_string('workdir', None, 'Directory for checkpoints, metrics and the resolved config.')
flags.mark_flags_as_required(['config', 'workdir'])


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)  # orbax logs every save at INFO
    try:
        metrics = train_and_evaluate(FLAGS.config, FLAGS.workdir)
    except TrainingInterrupted as interrupted:
        print(f'stopped: {interrupted}', file=sys.stderr)
        sys.exit(128 + interrupted.signal_number)
    except (ConfigError, DatasetNotPreparedError, WorkdirConflictError, CheckpointError,
            NonFiniteLossError) as error:
        sys.exit(f'error: {error}')
    print('final: ' + ', '.join(f'{k}={v:.4g}' for k, v in sorted(metrics.items())))


if __name__ == '__main__':
    app.run(main)
