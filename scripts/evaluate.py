"""Runs a trained run's evaluators (config.eval.evaluators) on a split of its dataset.

    python scripts/evaluate.py --workdir=DIR [--split=test] [--evaluators=nll,bleu] [--step=N]
"""

import json
import sys

from absl import app, flags, logging

from transformer_lab import registry
from transformer_lab.config import ConfigError
from transformer_lab.data.pipeline import DatasetNotPreparedError
from transformer_lab.runs import load
from transformer_lab.training.checkpoints import CheckpointError
from transformer_lab.training import evaluators, parallel
from transformer_lab.training.loop import evaluate

FLAGS = flags.FLAGS
flags.DEFINE_string('workdir', None, 'A run directory written by scripts/train.py.')
flags.DEFINE_string('split', None, 'Split to evaluate (default: the config\'s data.eval_split).')
flags.DEFINE_list('evaluators', None, 'Evaluators to run (default: the config\'s eval.evaluators).')
flags.DEFINE_integer('step', None, 'Checkpoint step (default: the latest).')
flags.mark_flag_as_required('workdir')


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)
    try:
        run = load(FLAGS.workdir, FLAGS.step)
        config = run.config
        if FLAGS.evaluators:
            config.eval.evaluators = tuple(FLAGS.evaluators)
        registry.validate(config)
        pipeline = registry.build_pipeline(config.data, tokenizer=run.tokenizer)
        context = evaluators.make_context(config, pipeline, run.graphdef, parallel.make_mesh())
        metrics = evaluate(context, run.params, FLAGS.split or config.data.eval_split)
    except (ConfigError, DatasetNotPreparedError, FileNotFoundError, CheckpointError) as error:
        sys.exit(f'error: {error}')
    print(json.dumps({'step': run.step, **metrics}, indent=2))


if __name__ == '__main__':
    app.run(main)
