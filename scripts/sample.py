"""Samples from a trained run and writes them in the dataset's natural form: text or a PNG grid.

    python scripts/sample.py --workdir=DIR                     # config.sample settings
    python scripts/sample.py --workdir=DIR --temperature=0 --prompt='And God said'
    python scripts/sample.py --workdir=DIR --inputs=sources.txt  # translation: one source per line

Translation runs translate ``--inputs`` (default: the first examples of the eval split); language
models continue ``--prompt``; output goes to stdout and to WORKDIR/samples/step_<N>.txt. Image
models write WORKDIR/samples/step_<N>.png, a grid of ``num_samples`` images (class-conditional
models: one row per class; super-resolution: validation inputs, samples and originals side by side).
Music models write WORKDIR/samples/step_<N>_<k>.mid and a piano roll step_<N>_<k>.png per sample,
unconditioned or continuing the first ``--primer_tokens`` tokens of the first validation pieces:

    python scripts/sample.py --workdir=DIR --primer_tokens=64 --temperature=0.9 --top_k=20
"""

import os

import numpy as np
from absl import flags

from transformer_lab import cli, decoding, registry
from transformer_lab.data import midi
from transformer_lab.data.rendering import image_grid, save_piano_roll_png, save_png
from transformer_lab.runs import load
from transformer_lab.training.evaluators import translate

FLAGS = flags.FLAGS
flags.DEFINE_string('workdir', None, 'A run directory written by scripts/train.py.')
flags.DEFINE_integer('num_samples', None, 'Rows to sample (default: config.sample.num_samples).')
flags.DEFINE_float('temperature', None, '0 = greedy (default: config.sample.temperature).')
flags.DEFINE_integer('top_k', None, '0 = whole vocabulary (default: config.sample.top_k).')
flags.DEFINE_integer('max_length', None, 'Tokens to generate (default: config.sample.max_length).')
flags.DEFINE_string('prompt', None, 'Language models: text to continue (default: config.sample.prompt).')
flags.DEFINE_string('inputs', None, 'Translation: a file of source sentences, one per line.')
flags.DEFINE_integer('primer_tokens', None, 'Music: continue this many opening tokens of validation pieces; '
                     '0 = unconditioned (default: config.sample.primer_tokens).')
flags.DEFINE_integer('seed', 0, 'Sampling seed.')
flags.mark_flag_as_required('workdir')


def pick(flag_value, config_value):
    return config_value if flag_value is None else flag_value


def translation_sources(run, count: int) -> list[str]:
    if FLAGS.inputs:
        with open(FLAGS.inputs) as f:
            return [line.strip() for line in f if line.strip()]
    pipeline = registry.build_pipeline(run.config.data, tokenizer=run.tokenizer)
    return [source for source, _ in pipeline.translation_pairs(run.config.data.eval_split, count)]


def super_resolve(run, rows: int, options: dict) -> np.ndarray:
    """Rows of (low-resolution input enlarged, sample, original) for the first validation images."""
    pipeline = registry.build_pipeline(run.config.data, tokenizer=run.tokenizer)
    batch = next(iter(pipeline.eval_batches(run.config.data.eval_split, rows, max_examples=rows)))
    sequence = decoding.generate(run.graphdef, run.params, batch_size=rows, inputs=batch['inputs'], **options)
    factor = run.config.data.downsample
    low = batch['inputs'].reshape(rows, *run.model.input_shape)
    enlarged = np.repeat(np.repeat(low, factor, axis=1), factor, axis=2).astype(np.uint8)
    originals = batch['targets'].reshape(rows, *run.model.image_shape).astype(np.uint8)
    return np.stack([enlarged, run.model.to_raster(np.asarray(sequence)), originals], axis=1).reshape(
        -1, *run.model.image_shape)


def sample_images(run, rows: int, options: dict) -> str:
    """A PNG grid of sampled images: unconditional, ``rows`` per class (a row each) for class-conditional
    models, or super-resolved validation images between their inputs and the originals."""
    num_classes = run.config.model.get('num_classes', 0)
    if run.model.input_shape is not None:
        grid = image_grid(super_resolve(run, rows, options), columns=3)
    else:
        labels = np.repeat(np.arange(num_classes), rows) if num_classes else None
        count = len(labels) if num_classes else rows
        sequence = decoding.generate(run.graphdef, run.params, batch_size=count, inputs=labels, **options)
        grid = image_grid(run.model.to_raster(np.asarray(sequence)), columns=rows if num_classes else min(rows, 8))
    path = os.path.join(FLAGS.workdir, 'samples', f'step_{run.step}.png')
    save_png(grid, path, scale=2)
    return path


def sample_music(run, rows: int, options: dict) -> list[str]:
    """A MIDI file and a piano-roll PNG per sample; with a primer, each sample holds the primer's tokens
    and then the model's continuation."""
    primer_tokens = pick(FLAGS.primer_tokens, run.config.sample.get('primer_tokens', 0))  # 0 in older runs
    prompt = None
    if primer_tokens:
        pipeline = registry.build_pipeline(run.config.data, tokenizer=run.tokenizer)
        prompt = pipeline.primers(run.config.data.eval_split, rows, primer_tokens)
    tokens = decoding.generate(run.graphdef, run.params, batch_size=rows, prompt=prompt, **options)
    paths = []
    for index, row in enumerate(np.asarray(tokens)):
        notes = run.tokenizer.to_notes(row)
        stem = os.path.join(FLAGS.workdir, 'samples', f'step_{run.step}_{index}')
        midi.notes_to_midi(notes).write(stem + '.mid')
        save_piano_roll_png(notes, stem + '.png')
        paths.append(f'{stem}.mid ({len(notes)} notes, {notes[:, 3].max(initial=0):.1f} s)')
    return paths


def main(argv):
    del argv
    try:
        run = load(FLAGS.workdir)
        sample = run.config.sample
        rows = pick(FLAGS.num_samples, sample.num_samples)
        max_length = min(pick(FLAGS.max_length, sample.max_length), run.config.model.max_length)
        options = dict(temperature=pick(FLAGS.temperature, sample.temperature),
                       top_k=pick(FLAGS.top_k, sample.top_k), seed=FLAGS.seed, max_length=max_length)
        os.makedirs(os.path.join(FLAGS.workdir, 'samples'), exist_ok=True)
        modality = registry.dataset_named(run.config.data.name).modality
        if modality == 'image':
            print(f'(written to {sample_images(run, rows, options)})')
            return
        if modality == 'music':
            print('written:\n' + '\n'.join(sample_music(run, rows, options)))
            return
        if run.config.data.inputs_feature:
            sources = translation_sources(run, rows)
            translations = translate(run.graphdef, run.params, run.tokenizer, sources, rows=len(sources),
                                     source_length=run.config.data.max_length, **options)
            lines = [f'{source}\n  -> {translation}' for source, translation in zip(sources, translations)]
        else:
            prompt_text = pick(FLAGS.prompt, sample.prompt)
            prompt = np.tile(np.asarray(run.tokenizer.encode(prompt_text), np.int32), (rows, 1))
            tokens = decoding.generate(run.graphdef, run.params, batch_size=rows, prompt=prompt, **options)
            lines = [run.tokenizer.decode(row) for row in np.asarray(tokens)]
    except ValueError as error:   # a prompt or primer the run's tokenizer or data cannot serve
        cli.fail(str(error))
    text = '\n\n'.join(lines) + '\n'
    path = os.path.join(FLAGS.workdir, 'samples', f'step_{run.step}.txt')
    with open(path, 'w') as f:
        f.write(text)
    print(text + f'(written to {path})')


if __name__ == '__main__':
    cli.run(main)
