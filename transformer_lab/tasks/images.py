"""Images: unconditional, class-conditional and super-resolution Image Transformers."""

from __future__ import annotations

import pathlib

import numpy as np

from transformer_lab import decoding
from transformer_lab.config import ConfigError
from transformer_lab.data.builders.image_folder import parse_colour, square_image
from transformer_lab.data.images import ImagePipeline, downsample
from transformer_lab.data.rendering import image_grid, save_png
from transformer_lab.tasks.base import Task

PRIMER_BACKGROUND = 'white'   # under a primer's transparent parts, as image_folder's default
HIDDEN = 128                  # the value shown for the rows a completion samples


class ImageTask(Task):
    modality = 'image'
    pipeline = ImagePipeline
    drawer = 'draw_image'
    reads_primer_rows = True

    def conditioning(self, config) -> str:
        if config.data.downsample > 1:
            return 'low_resolution'
        return 'classes' if config.model.get('num_classes', 0) else 'none'

    def evaluators(self, config) -> tuple[str, ...]:
        return ('bits_per_dim', 'nll')

    def describe(self, config) -> str:
        return 'an image model'

    def check_prepared(self, config, pipeline) -> None:
        classes = config.model.get('num_classes', 0)
        if classes and classes != pipeline.num_classes:
            raise ConfigError('model.num_classes', f'{classes} but {config.data.name} has {pipeline.num_classes} '
                                                   f'classes; valid: {pipeline.num_classes}, or 0 for an '
                                                   f'unconditional model')

    def read_primer(self, run, request) -> np.ndarray:
        """``request.primer_file`` prepared as image_folder prepares images (squared to the model's size,
        its channels): uint8 [H, W, C]. A file pillow cannot read is a ValueError that says so."""
        height, width, channels = run.config.model.image_shape
        try:
            return square_image(pathlib.Path(request.primer_file), height, channels, parse_colour(PRIMER_BACKGROUND))
        except OSError as error:
            raise ValueError(f'--primer={request.primer_file}: not an image pillow can read ({error})') from None

    def sample(self, run, request) -> str:
        """STEM.png: a grid of sampled images, or with ``request.primer_file`` a grid of completions."""
        grid = self._completions(run, request) if request.primer_file else self._samples(run, request)
        save_png(grid, request.stem + '.png', scale=2)
        return f'(written to {request.stem}.png)'

    def _labels(self, run, rows: int) -> np.ndarray | None:
        """Class-conditional models: ``rows`` samples of each class, classes in order; else None."""
        classes = run.config.model.get('num_classes', 0)
        return np.repeat(np.arange(classes), rows) if classes else None

    def _samples(self, run, request) -> np.ndarray:
        """Unconditional (up to 8 a row), ``rows`` per class (a row each), or super-resolved validation
        images between their inputs and the originals."""
        rows = request.rows
        if self.conditioning(run.config) == 'low_resolution':
            return image_grid(super_resolve(run, rows, request.options), columns=3)
        labels = self._labels(run, rows)
        count = rows if labels is None else len(labels)
        sequence = decoding.generate(run.graphdef, run.params, batch_size=count, inputs=labels, **request.options)
        return image_grid(run.model.to_raster(np.asarray(sequence)), columns=rows if labels is not None else
                          min(rows, 8))

    def _completions(self, run, request) -> np.ndarray:
        """The primer's first ``request.primer_rows`` rows kept (``primer_length``) and the rest sampled,
        ``rows`` times (per class for class-conditional models; super-resolution models also read the
        primer, reduced, as their input). Each grid row: the primer, its kept rows, the completions."""
        image = self.read_primer(run, request)
        rows_kept, length = primer_length(run.model, request.primer_rows)
        prompt = run.model.from_raster(image[None])[:, :length]
        labels = self._labels(run, request.rows)
        inputs = labels
        if self.conditioning(run.config) == 'low_resolution':
            low = downsample(image[None], run.config.data.downsample).reshape(1, -1)
            inputs = np.repeat(low, request.rows, axis=0)
        count = request.rows if labels is None else len(labels)
        sequence = decoding.generate(run.graphdef, run.params, batch_size=count, inputs=inputs,
                                     prompt=np.repeat(prompt, count, axis=0), **request.options)
        kept = image.copy()
        kept[rows_kept:] = HIDDEN
        completions = run.model.to_raster(np.asarray(sequence)).reshape(-1, request.rows, *image.shape)
        grid_rows = [np.concatenate([image[None], kept[None], group]) for group in completions]
        return image_grid(np.concatenate(grid_rows), columns=request.rows + 2)


def primer_length(model, rows: int | None) -> tuple[int, int]:
    """(rows, steps): the generation steps that hold an image's first ``rows`` rows (None: half of them,
    or the nearest fewer that will do). Those steps must come first in the model's generation order
    (raster order: any rows; block-raster order for local 2D attention: whole rows of query blocks);
    other ``rows`` are a ValueError naming the rows that would do."""
    order = np.asarray(model.order)      # the raster index generated at each step
    height = model.image_shape[0]
    per_row = len(order) // height

    def leading(count: int) -> int | None:
        inside = order // per_row < count
        length = int(inside.sum())
        return length if inside[:length].all() else None

    valid = [count for count in range(1, height) if leading(count) is not None]
    if not valid:
        raise ValueError(f'--primer: this model generates its {height} rows in blocks as high as the image: it cannot '
                         f'be primed with some of its rows')
    if rows is None:
        rows = max([count for count in valid if count <= height // 2] or valid[:1])
    if rows not in valid:
        raise ValueError(f'--primer_rows={rows}: this model generates its {height} rows so that it can be primed '
                         f'with its first {", ".join(map(str, valid))} rows')
    return rows, leading(rows)


def super_resolve(run, rows: int, options: dict) -> np.ndarray:
    """Rows of (low-resolution input enlarged, sample, original) for the first validation images:
    uint8 [3 rows, H, W, C]."""
    pipeline = run.pipeline()
    batch = next(iter(pipeline.eval_batches(run.config.data.eval_split, rows, max_examples=rows)))
    sequence = decoding.generate(run.graphdef, run.params, batch_size=rows, inputs=batch['inputs'], **options)
    factor, image_shape = run.config.data.downsample, tuple(run.config.model.image_shape)
    low = batch['inputs'].reshape(rows, *run.model.input_shape)
    enlarged = np.repeat(np.repeat(low, factor, axis=1), factor, axis=2).astype(np.uint8)
    originals = batch['targets'].reshape(rows, *image_shape).astype(np.uint8)
    return np.stack([enlarged, run.model.to_raster(np.asarray(sequence)), originals], axis=1).reshape(
        -1, *image_shape)
