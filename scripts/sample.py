"""Samples from a trained run and writes them in the dataset's natural form: text or a PNG grid.

    python scripts/sample.py --workdir=DIR                     # config.sample settings
    python scripts/sample.py --workdir=DIR --temperature=0 --prompt='And God said'
    python scripts/sample.py --workdir=DIR --inputs=sources.txt  # translation: one source per line

Translation runs translate ``--inputs`` (default: the first examples of the eval split); language
models continue ``--prompt``; output goes to stdout and to WORKDIR/samples/step_<N>.txt. Image
models write WORKDIR/samples/step_<N>.png, a grid of ``num_samples`` images (class-conditional
models: one row per class; super-resolution: validation inputs, samples and originals side by side).
Music models write WORKDIR/samples/step_<N>_<k>.mid and a piano roll step_<N>_<k>.png per sample,
and its audio step_<N>_<k>.wav, unconditioned, continuing the first ``--primer_tokens`` tokens of the first
validation pieces, or continuing a MIDI file of yours (chorale models: MIDI or MusicXML, four parts):

    python scripts/sample.py --workdir=DIR --primer_tokens=64 --temperature=0.9 --top_k=20
    python scripts/sample.py --workdir=DIR --primer=mine.mid --primer_seconds=10 --max_length=1024
    python scripts/sample.py --workdir=DIR --primer=opening.txt     # a language model continues the file

Image models given ``--primer=PICTURE.png`` (PNG, JPEG, GIF, WebP; squared and coloured as image_folder
prepares images) keep its first ``--primer_rows`` rows (local 2D models: whole rows of query blocks) and
sample the rest: STEM.png holds the picture, its kept rows and the completions (one grid row per class
for class-conditional models; super-resolution models read the picture, reduced, as their input too):

    python scripts/sample.py --workdir=DIR --primer=shoe.png --primer_rows=14 --num_samples=6

A melody-conditioned music model (configs/music_transformer_melody.py) accompanies ``--melody=FILE.mid``
(its skyline: at each onset the highest note starting there) and writes the melody beside each sample (STEM_K_melody.mid):

    python scripts/sample.py --workdir=DIR --melody=tune.mid --max_length=1024

``--max_length`` past the model's trained ``model.max_length``: relative models go on, attending to a
sliding window of the last model.max_length positions (``--window=N`` another, ``--window=0`` all of
them); absolute sinusoids too, after a notice; learned positions refuse.
"""

from absl import flags

from transformer_lab import cli, sampling, tasks
from transformer_lab.runs import load

FLAGS = flags.FLAGS
flags.DEFINE_string('workdir', None, 'A run directory written by scripts/train.py.')
flags.DEFINE_bool('ema', False, 'Use the moving average of the parameters (a run trained with '
                  'train.ema_decay > 0).')
flags.DEFINE_integer('num_samples', None, 'Rows to sample (default: config.sample.num_samples).')
flags.DEFINE_float('temperature', None, '0 = greedy (default: config.sample.temperature).')
flags.DEFINE_integer('top_k', None, '0 = whole vocabulary (default: config.sample.top_k).')
flags.DEFINE_integer('max_length', None, 'Tokens to generate (default: config.sample.max_length); past '
                     'model.max_length, see --window.')
flags.DEFINE_integer('window', None, 'Past model.max_length: attend to the last N positions (default: '
                     'model.max_length, a sliding window), or 0: to all of them.', lower_bound=0)
flags.DEFINE_string('prompt', None, 'Language models: text to continue (default: config.sample.prompt).')
flags.DEFINE_string('inputs', None, 'Translation: a file of source sentences, one per line.')
flags.DEFINE_integer('primer_tokens', None, 'Music: continue this many opening tokens of validation pieces; '
                     '0 = unconditioned (default: config.sample.primer_tokens).')
flags.DEFINE_string('primer', None, 'A file to continue: a MIDI file (performance models), a MIDI or MusicXML '
                    'file (chorale models), its first --primer_seconds, at most --primer_tokens tokens; a text '
                    'file (language models); an image (image models), its first --primer_rows rows.')
flags.DEFINE_float('primer_seconds', 0.0, '--primer MIDI: continue its first seconds (0: all of it).')
flags.DEFINE_integer('primer_rows', None, '--primer image: keep its first rows and sample the rest (default: half '
                     'the rows, or the nearest fewer that the model\'s generation order allows).')
flags.DEFINE_string('melody', None, 'Melody-conditioned music models: a MIDI file to accompany (its skyline; '
                    'default: the melodies of the first validation pieces).')
flags.DEFINE_integer('seed', 0, 'Sampling seed.')
flags.mark_flag_as_required('workdir')


def read_sources(path: str | None) -> list[str] | None:
    if path is None:
        return None
    with open(path) as f:
        return [line.strip() for line in f if line.strip()]


def main(argv):
    del argv
    try:
        run = load(FLAGS.workdir, ema=FLAGS.ema)
        request = sampling.configured_request(
            run.config, sampling.samples_stem(FLAGS.workdir, run.step), seed=FLAGS.seed, window=FLAGS.window,
            rows=FLAGS.num_samples, temperature=FLAGS.temperature, top_k=FLAGS.top_k, max_length=FLAGS.max_length,
            prompt=FLAGS.prompt, sources=read_sources(FLAGS.inputs), primer_tokens=FLAGS.primer_tokens,
            primer_file=FLAGS.primer, primer_seconds=FLAGS.primer_seconds, primer_rows=FLAGS.primer_rows,
            melody_file=FLAGS.melody)
        task = tasks.task_for(run.config.data.name)
        task.check_request(run.config, request)
        print(task.sample(run, request))
    except ValueError as error:   # a prompt or primer the run's tokenizer or data cannot serve
        cli.fail(str(error))


if __name__ == '__main__':
    cli.run(main)
