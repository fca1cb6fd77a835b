"""Your own images: any folder of PNG / JPEG / GIF / WebP files (at any depth), as square images.

    python scripts/prepare_data.py --dataset=image_folder --manual_dir=MY_IMAGES [--name=mine]
        [--image_size=32] [--channels=3] [--background=white]
    python scripts/train.py --config=configs/image_transformer_folder.py:name=mine --workdir=...

Each image (a GIF's first frame) is composited over ``background`` where it is transparent (RGBA,
palette images with a transparent colour, greyscale with alpha), made RGB or greyscale (``channels``
3 or 1), then scaled so that its shorter side is ``image_size`` and centre-cropped to a square
(pillow's ``ImageOps.fit``, Lanczos): the whole height or width is kept and nothing is padded, so a
wide picture loses its left and right edges.

Classes: the name of the first folder of an image's path below the source (split folders aside,
``cats/x.png`` and ``train/cats/x.png`` are both ``cats``), for class-conditional models
(``model.num_classes``); images directly in the source (or a split folder) have the class ``none``.
Splits by folder or hash (folders.py). Features: ``image`` uint8 [size, size, channels], ``label`` and
``file`` (the path below the source). Files pillow cannot decode are skipped and listed.
"""

from __future__ import annotations

import pathlib

import numpy as np
import tensorflow_datasets as tfds

from transformer_lab.data.builders.folders import SPLIT_FOLDERS, DataSourceError, FolderBuilder

SUFFIXES = ('.png', '.jpg', '.jpeg', '.gif', '.webp')
NO_CLASS = 'none'


def class_of(path: pathlib.Path, source: pathlib.Path) -> str:
    """The first folder of ``path`` below ``source`` that is not a split folder, else ``NO_CLASS``."""
    folders = [part for part in path.relative_to(source).parts[:-1] if part.lower() not in SPLIT_FOLDERS] \
        if path != source else []
    return folders[0] if folders else NO_CLASS


def square_image(path: pathlib.Path, size: int, channels: int, background: tuple[int, int, int]) -> np.ndarray:
    """An image file -> uint8 [size, size, channels]: transparency over ``background``, RGB or greyscale,
    shorter side scaled to ``size``, centre-cropped (see the module docstring)."""
    from PIL import Image, ImageOps  # pillow: only preparing images needs it
    with Image.open(path) as picture:
        picture.seek(0)
        rgba = picture.convert('RGBA')
    canvas = Image.new('RGBA', rgba.size, (*background, 255))
    flat = Image.alpha_composite(canvas, rgba).convert('RGB' if channels == 3 else 'L')
    square = np.asarray(ImageOps.fit(flat, (size, size), Image.Resampling.LANCZOS), np.uint8)
    return square.reshape(size, size, channels)


def parse_colour(name: str) -> tuple[int, int, int]:
    from PIL import ImageColor
    try:
        return ImageColor.getrgb(name)[:3]
    except ValueError as error:
        raise DataSourceError(f'--background={name!r} is not a colour; valid: a name (white, black) '
                              f'or #rrggbb') from error


class ImageFolder(FolderBuilder):
    """Square images from a folder of image files."""

    SUFFIXES = SUFFIXES
    KIND = 'images'
    OPTIONS = ('image_size', 'channels', 'background')

    def _info(self) -> tfds.core.DatasetInfo:
        config = self.builder_config
        if config.channels not in (1, 3):
            raise DataSourceError(f'--channels={config.channels}: valid: 1 (greyscale) or 3 (RGB)')
        if config.image_size < 1:
            raise DataSourceError(f'--image_size={config.image_size}: valid: a positive number of pixels')
        names = (self.class_names() if config.source else []) or [NO_CLASS]
        return tfds.core.DatasetInfo(
            builder=self, description=__doc__,
            features=tfds.features.FeaturesDict({
                'image': tfds.features.Tensor(shape=(config.image_size, config.image_size, config.channels),
                                              dtype=np.uint8),
                'label': tfds.features.ClassLabel(names=names),
                'file': tfds.features.Text(),
            }),
            disable_shuffling=True)

    def class_names(self) -> list[str]:
        """The classes (``class_of``) that have a readable image, sorted: a folder of only unreadable
        files is no class. Decodes one image per class (until one reads)."""
        by_class: dict[str, list[pathlib.Path]] = {}
        for path in self.files():
            by_class.setdefault(class_of(path, self.root), []).append(path)
        return sorted(name for name, paths in by_class.items() if any(map(self.usable, paths)))

    def usable(self, path: pathlib.Path) -> bool:
        from PIL import Image
        try:
            with Image.open(path) as picture:
                picture.load()
        except (OSError, ValueError, SyntaxError):   # what pillow raises on a file it cannot decode
            return False
        return True

    def _split_generators(self, dl_manager):
        del dl_manager  # the files are the user's, under the config's source
        background = parse_colour(self.builder_config.background)
        return {split: self._generate_examples(files, background) for split, files in self.files_by_split().items()}

    def _generate_examples(self, files: list[pathlib.Path], background: tuple[int, int, int]):
        config, root = self.builder_config, self.root
        for path in files:
            try:
                image = square_image(path, config.image_size, config.channels, background)
            except (OSError, ValueError, SyntaxError) as error:   # what pillow raises on a file it cannot decode
                self.skip(path, f'not a readable image ({type(error).__name__}: {error})')
                continue
            name = path.relative_to(root).as_posix()
            yield name, {'image': image, 'label': class_of(path, root), 'file': name}
