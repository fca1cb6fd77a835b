"""Translates sentences with a trained translation run: one source per line from stdin (or --input) to
one translation per line on stdout, ``--batch_size`` at a time.

    echo 'In the beginning God created the heaven and the earth.' | python scripts/translate.py --workdir=DIR
    python scripts/translate.py --workdir=DIR --input=sources.txt --beam_size=4 --average_last=5 > out.txt

Decoding follows the run's config (``eval.beam_size``, ``eval.length_penalty``, ``eval.extra_length``)
unless flags say otherwise; ``--average_last=N`` translates with the mean parameters of the last N
checkpoints.
"""

import sys

from absl import flags

from transformer_lab import cli, tasks
from transformer_lab.decoding import translate
from transformer_lab.runs import load

FLAGS = flags.FLAGS
flags.DEFINE_string('workdir', None, 'A translation run directory written by scripts/train.py.')
flags.DEFINE_bool('ema', False, 'Use the moving average of the parameters (a run trained with '
                  'train.ema_decay > 0).')
flags.DEFINE_string('input', None, 'A file of source sentences, one per line (default: stdin).')
flags.DEFINE_integer('batch_size', 32, 'Sentences translated at once.')
flags.DEFINE_integer('beam_size', None, 'Beam size, 1 = greedy (default: config.eval.beam_size).')
flags.DEFINE_float('alpha', None, 'Length penalty of beam search (default: config.eval.length_penalty).')
flags.DEFINE_integer('average_last', 0, 'Average the parameters of the last N checkpoints.')
flags.DEFINE_integer('step', None, 'Checkpoint step (default: the latest).')
flags.mark_flag_as_required('workdir')


def main(argv):
    del argv
    run = load(FLAGS.workdir, FLAGS.step, average_last=FLAGS.average_last, ema=FLAGS.ema)
    task = tasks.task_for(run.config.data.name)
    if task.conditioning(run.config) != 'sources':
        cli.fail(f'{FLAGS.workdir} holds {task.describe(run.config)}, which reads no source text; translate.py '
                 f'needs a translation run')
    evaluation = run.config.eval
    options = dict(rows=FLAGS.batch_size, source_length=run.config.data.max_length,
                   max_length=run.config.data.max_length,
                   beam_size=evaluation.beam_size if FLAGS.beam_size is None else FLAGS.beam_size,
                   alpha=evaluation.length_penalty if FLAGS.alpha is None else FLAGS.alpha,
                   extra_length=evaluation.extra_length)

    def flush(batch: list[str]) -> None:
        if batch:
            print('\n'.join(translate(run.graphdef, run.params, run.tokenizer, batch, **options)), flush=True)

    with (open(FLAGS.input) if FLAGS.input else sys.stdin) as lines:
        batch = []
        for line in lines:   # a batch at a time, so typed sentences come back without waiting for the end
            batch.append(line.strip())
            if len(batch) == FLAGS.batch_size:
                flush(batch)
                batch = []
        flush(batch)


if __name__ == '__main__':
    cli.run(main)
