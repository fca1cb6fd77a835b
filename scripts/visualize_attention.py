"""Pictures of a trained run's attention, per layer and head (transformer_lab/attention_pictures.py).

    python scripts/visualize_attention.py --workdir=DIR [--step=N] [--split=validation] [--example=K] \
        [--layer=L] [--head=H ...] [--input=TEXT] [--position=P ...] [--out=DIR/attention]

Text runs: token x token heatmaps per head (encoder self, decoder self, encoder-decoder attention) and a
page of all layers x heads, for the K-th example of the split or ``--input`` (a translation model
translates it greedily and shows its own output). Image runs: for each ``--position`` (raster index of
a position: a sub-pixel, a pixel for DMOL; default four spread over the image), its attention over the
image, with the query block and memory outlined. Music runs: arcs from chosen notes (``--position``:
token positions; default six spread over the example) to the notes each head attends to most.
"""

import os

import numpy as np
from absl import flags

from transformer_lab import cli, tasks
from transformer_lab.attention_maps import attention_weights
from transformer_lab.attention_pictures import Choice
from transformer_lab.runs import load

FLAGS = flags.FLAGS
flags.DEFINE_string('workdir', None, 'A run directory written by scripts/train.py.')
flags.DEFINE_integer('step', None, 'The checkpoint to load (default: the latest).')
flags.DEFINE_string('split', 'validation', 'The split the example comes from.')
flags.DEFINE_integer('example', 0, 'Which example of the split (its order in the split, windows for music).')
flags.DEFINE_integer('layer', None, 'The layer to draw (default: the last).')
flags.DEFINE_multi_integer('head', None, 'Heads to draw (default: all).')
flags.DEFINE_string('input', None, 'Text runs: a sentence to look at instead of an example of the split.')
flags.DEFINE_multi_integer('position', None, 'Query positions (images: raster index; music: token position).')
flags.DEFINE_string('out', None, 'The folder of the PNGs (default: WORKDIR/attention).')
flags.mark_flag_as_required('workdir')


def example_batch(run, task) -> dict:
    """One row: ``--input`` (text runs) or the ``--example``-th of ``--split``."""
    if FLAGS.input is not None:
        return task.example_from_text(run, FLAGS.input)
    for index, batch in enumerate(run.pipeline().eval_batches(FLAGS.split, 1, max_examples=FLAGS.example + 1)):
        if index == FLAGS.example:
            return {name: np.asarray(value) for name, value in batch.items()}
    raise ValueError(f'--example={FLAGS.example}: {FLAGS.split!r} has fewer examples')


def main(argv):
    del argv
    try:
        run = load(FLAGS.workdir, FLAGS.step)
        task = tasks.task_for(run.config.data.name)
        batch = example_batch(run, task)
        maps = attention_weights(run, batch)
        if FLAGS.layer is not None and not 0 <= FLAGS.layer < next(iter(maps.values())).shape[0]:
            raise ValueError(f'--layer={FLAGS.layer}: the model has {next(iter(maps.values())).shape[0]} layers')
        folder = FLAGS.out or os.path.join(FLAGS.workdir, 'attention')
        os.makedirs(folder, exist_ok=True)
        choice = Choice(layer=FLAGS.layer, heads=FLAGS.head, positions=FLAGS.position)
        paths = task.draw_attention(run, batch, maps, choice, folder)
    except ValueError as error:
        cli.fail(str(error))
    print('written:\n' + '\n'.join(paths))


if __name__ == '__main__':
    cli.run(main)
