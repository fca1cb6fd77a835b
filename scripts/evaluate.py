"""Runs a trained run's evaluators (config.eval.evaluators) on a split of its dataset.

    python scripts/evaluate.py --workdir=DIR [--split=test] [--evaluators=nll,bleu] [--step=N]
    python scripts/evaluate.py --workdir=DIR --split=test --average_last=5 --beam_size=4 --alpha=0.6
    python scripts/evaluate.py --workdir=DIR --ema     # the moving average of the parameters (train.ema_decay)

Translation reports NLL and BLEU both ways (``bleu``: sacreBLEU on detokenised output, comparable
across papers; ``tokenized_bleu``: the Transformer paper's, Moses-tokenised with compounds split);
the other models their likelihood (bits/dim, bits/char, NLL per token). ``--average_last=N`` evaluates
the mean parameters of the last N checkpoints, the paper's checkpoint averaging.

``--length=N`` (music models) evaluates in windows of N tokens, past the length the model trained on
(relative and sinusoidal models; learned positions refuse), and adds ``nll_by_position``: the NLL per
token of the first N tokens of every piece at least N long (the same pieces in every bin), in the bins
of positions [0, L), [L, 2L), [2L, 4L), ... up to N (L the trained length), with ``tokens_by_position``,
the tokens in each. Whether relative attention generalises past L (Huang et al. 2018, Sec. 5.2):
docs/results/music_transformer_length_cpu.md.

    python scripts/evaluate.py --workdir=DIR --length=2048     # a music run trained on 512
"""

import json

from absl import flags

from transformer_lab import cli, tasks
from transformer_lab.runs import lengthened, load
from transformer_lab.training import evaluators, parallel
from transformer_lab.training.loop import evaluate
from transformer_lab.training.validation import validate

FLAGS = flags.FLAGS
flags.DEFINE_string('workdir', None, 'A run directory written by scripts/train.py.')
flags.DEFINE_bool('ema', False, 'Use the moving average of the parameters (a run trained with '
                  'train.ema_decay > 0).')
flags.DEFINE_string('split', None, 'Split to evaluate (default: the config\'s data.eval_split).')
flags.DEFINE_list('evaluators', None, 'Evaluators to run (default: the config\'s eval.evaluators).')
flags.DEFINE_integer('step', None, 'Checkpoint step (default: the latest).')
flags.DEFINE_integer('average_last', 0, 'Average the parameters of the last N checkpoints (up to --step).')
flags.DEFINE_integer('beam_size', None, 'Translation: beam size, 1 = greedy (default: config.eval.beam_size).')
flags.DEFINE_integer('length', None, 'Evaluate in windows of N tokens (default: the trained data.max_length) and '
                     'report NLL by position.', lower_bound=1)
flags.DEFINE_float('alpha', None, 'Translation: length penalty of beam search (default: config.eval.length_penalty).')
flags.mark_flag_as_required('workdir')


def main(argv):
    del argv
    run = load(FLAGS.workdir, FLAGS.step, average_last=FLAGS.average_last, ema=FLAGS.ema)
    trained = run.config.data.max_length
    if FLAGS.length is not None:
        try:
            run = lengthened(run, FLAGS.length)
        except ValueError as error:
            cli.fail(str(error))
    config = run.config
    if FLAGS.evaluators:
        config.eval.evaluators = tuple(FLAGS.evaluators)
    if FLAGS.beam_size is not None:
        config.eval.beam_size = FLAGS.beam_size
    if FLAGS.alpha is not None:
        config.eval.length_penalty = FLAGS.alpha
    validate(config)
    pipeline = tasks.build_pipeline(config.data, tokenizer=run.tokenizer)
    split = FLAGS.split or config.data.eval_split
    openings = None
    if FLAGS.length is not None:
        try:
            openings = tasks.task_for(config.data.name).openings(config, pipeline, split, config.eval.batch_size)
        except ValueError as error:
            cli.fail(str(error))
    context = evaluators.make_context(config, pipeline, run.graphdef, parallel.make_mesh())
    metrics = evaluate(context, run.params, split)
    if openings is not None:
        metrics['nll_by_position'], metrics['tokens_by_position'] = evaluators.nll_by_position(
            context, run.params, openings, position_bins(trained, FLAGS.length))
    averaged = {'averaged_checkpoints': FLAGS.average_last} if FLAGS.average_last else {}
    print(json.dumps({'step': run.step, **averaged, **({'ema': True} if FLAGS.ema else {}), **metrics}, indent=2))


def position_bins(trained: int, length: int) -> list[int]:
    """Edges 0, L, 2L, 4L, ... up to ``length``, L = ``trained``."""
    edges = [0]
    while edges[-1] < length:
        edges.append(min(length, max(trained, 2 * edges[-1])))
    return edges


if __name__ == '__main__':
    cli.run(main)
