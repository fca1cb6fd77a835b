"""Samples from a trained run in its dataset's natural form, one sampler per modality (``SAMPLERS``,
chosen by the dataset's modality): text (translations or continued prompts), PNG grids of images,
MIDI files and piano rolls of music. ``scripts/sample.py`` is its command line.
"""

from __future__ import annotations

import dataclasses
import os
import sys

import numpy as np

from transformer_lab import decoding, registry
from transformer_lab.data import midi
from transformer_lab.data.rendering import image_grid, save_piano_roll_png, save_png, save_wav


@dataclasses.dataclass
class Request:
    """What to sample: ``rows`` samples decoded with ``options`` (temperature, top_k, seed, max_length),
    written next to ``stem`` (e.g. WORKDIR/samples/step_N). Modality-specific: ``prompt`` text for a
    language model to continue, ``sources`` for a translation model (None: the first sentences of the
    eval split), ``primer_tokens`` of validation pieces for a music model to continue (0: none), or
    ``primer_file`` to continue (a language model: text; a music model: a score its tokenizer reads,
    its first ``primer_seconds``, then at most ``primer_tokens`` of its tokens where that is set)."""
    rows: int
    options: dict
    stem: str
    prompt: str = ''
    sources: list[str] | None = None
    primer_tokens: int = 0
    primer_file: str | None = None
    primer_seconds: float = 0.0


def decoding_window(model_config, max_length: int, window: int | None) -> int:
    """The ``generate`` window for ``max_length`` tokens of a model trained on ``model.max_length``. Within
    that length: every position (0). Past it: ``window`` (None: model.max_length, the trained context, a
    sliding window; 0: every position, relative distances past max_relative_position treated as in
    training). Learned positions have no embedding past model.max_length: a ValueError; absolute sinusoids
    go on (computed for any position) after a notice that the model never saw those positions."""
    trained = model_config.max_length
    if max_length <= trained:
        return 0
    if model_config.positional == 'learned':
        raise ValueError(f'--max_length={max_length} is past model.max_length={trained}, and learned positions have '
                         f'no embedding there; sample at most {trained} tokens')
    if not model_config.attention.type.startswith('relative'):
        print(f'notice: past model.max_length={trained} the sinusoids give positions the model never trained on; '
              f'relative attention (Huang et al. 2018) is what is meant to carry on', file=sys.stderr)
    return trained if window is None else window


def sample(run, request: Request) -> str:
    """Samples from ``run`` (runs.load) as ``request`` says; returns what to show the user."""
    return SAMPLERS[registry.dataset_named(run.config.data.name).modality](run, request)


def sample_text(run, request: Request) -> str:
    """Translations of ``request.sources``, or continuations of ``request.prompt``, in STEM.txt."""
    if run.config.data.inputs_feature:
        if request.primer_file:
            raise ValueError(f'--primer={request.primer_file}: a translation model translates --inputs=FILE, '
                             f'one source sentence per line')
        sources = request.sources
        if sources is None:
            pipeline = registry.build_pipeline(run.config.data, tokenizer=run.tokenizer)
            sources = [source for source, _ in pipeline.translation_pairs(run.config.data.eval_split, request.rows)]
        translations = decoding.translate(run.graphdef, run.params, run.tokenizer, sources, rows=len(sources),
                                          source_length=run.config.data.max_length, **request.options)
        lines = [f'{source}\n  -> {translation}' for source, translation in zip(sources, translations)]
    else:
        text = request.prompt
        if request.primer_file:
            with open(request.primer_file) as file:
                text = file.read().rstrip('\n')
        prompt = np.tile(np.asarray(run.tokenizer.encode(text), np.int32), (request.rows, 1))
        tokens = decoding.generate(run.graphdef, run.params, batch_size=request.rows, prompt=prompt,
                                   **request.options)
        lines = [run.tokenizer.decode(row) for row in np.asarray(tokens)]
    text = '\n\n'.join(lines) + '\n'
    with open(request.stem + '.txt', 'w') as file:
        file.write(text)
    return text + f'(written to {request.stem}.txt)'


def super_resolve(run, rows: int, options: dict) -> np.ndarray:
    """Rows of (low-resolution input enlarged, sample, original) for the first validation images:
    uint8 [3 rows, H, W, C]."""
    pipeline = registry.build_pipeline(run.config.data, tokenizer=run.tokenizer)
    batch = next(iter(pipeline.eval_batches(run.config.data.eval_split, rows, max_examples=rows)))
    sequence = decoding.generate(run.graphdef, run.params, batch_size=rows, inputs=batch['inputs'], **options)
    factor, image_shape = run.config.data.downsample, tuple(run.config.model.image_shape)
    low = batch['inputs'].reshape(rows, *run.config.model.input_shape)
    enlarged = np.repeat(np.repeat(low, factor, axis=1), factor, axis=2).astype(np.uint8)
    originals = batch['targets'].reshape(rows, *image_shape).astype(np.uint8)
    return np.stack([enlarged, run.model.to_raster(np.asarray(sequence)), originals], axis=1).reshape(
        -1, *image_shape)


def sample_images(run, request: Request) -> str:
    """STEM.png, a grid of sampled images: unconditional, ``rows`` per class (a row each) for
    class-conditional models, or super-resolved validation images between their inputs and the originals."""
    if request.primer_file:
        raise ValueError(f'--primer={request.primer_file}: image models cannot read a primer file yet')
    rows, num_classes = request.rows, run.config.model.get('num_classes', 0)
    if run.config.model.get('input_shape'):
        grid = image_grid(super_resolve(run, rows, request.options), columns=3)
    else:
        labels = np.repeat(np.arange(num_classes), rows) if num_classes else None
        count = len(labels) if num_classes else rows
        sequence = decoding.generate(run.graphdef, run.params, batch_size=count, inputs=labels, **request.options)
        grid = image_grid(run.model.to_raster(np.asarray(sequence)), columns=rows if num_classes else min(rows, 8))
    save_png(grid, request.stem + '.png', scale=2)
    return f'(written to {request.stem}.png)'


def sample_music(run, request: Request) -> str:
    """STEM_K.mid, its audio STEM_K.wav (where FluidSynth is installed) and a piano roll STEM_K.png per
    sample; with a primer, each sample holds the primer's tokens and then the model's continuation."""
    prompt = None
    if request.primer_file:
        primer = run.tokenizer.read_primer(request.primer_file, request.primer_seconds)
        primer = primer[:request.primer_tokens or None]
        if len(primer) >= request.options['max_length']:
            raise ValueError(f'--primer={request.primer_file} is {len(primer)} tokens, and --max_length='
                             f'{request.options["max_length"]} leaves none to continue: shorten it with '
                             f'--primer_seconds or --primer_tokens')
        prompt = np.tile(primer, (request.rows, 1))
    elif request.primer_tokens:
        pipeline = registry.build_pipeline(run.config.data, tokenizer=run.tokenizer)
        prompt = pipeline.primers(run.config.data.eval_split, request.rows, request.primer_tokens)
    tokens = decoding.generate(run.graphdef, run.params, batch_size=request.rows, prompt=prompt, **request.options)
    paths = []
    for index, row in enumerate(np.asarray(tokens)):
        notes = run.tokenizer.to_notes(row)
        stem = f'{request.stem}_{index}'
        midi.notes_to_midi(notes).write(stem + '.mid')
        save_piano_roll_png(notes, stem + '.png')
        heard = ' and .wav' if save_wav(stem + '.mid', stem + '.wav') else ''
        paths.append(f'{stem}.mid{heard} ({len(notes)} notes, {notes[:, 3].max(initial=0):.1f} s)')
    return 'written:\n' + '\n'.join(paths)


SAMPLERS = {'text': sample_text, 'image': sample_images, 'music': sample_music}


def samples_stem(workdir: str, step: int) -> str:
    """WORKDIR/samples/step_N (the folder created), where a run's samples at step N are written."""
    os.makedirs(os.path.join(workdir, 'samples'), exist_ok=True)
    return os.path.join(workdir, 'samples', f'step_{step}')
