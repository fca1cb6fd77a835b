"""Pictures of data for people: grids of images and piano rolls as PNG files (pillow). Nothing below
the scripts and the training loop's samples imports this module.
"""

from __future__ import annotations

import numpy as np

from transformer_lab.data import midi


def image_grid(images: np.ndarray, columns: int, border: int = 2) -> np.ndarray:
    """uint8 images [count, height, width, channels] -> one uint8 grid image, ``columns`` per row,
    separated by ``border`` pixels of mid grey."""
    count, height, width, channels = images.shape
    rows = -(-count // columns)
    grid = np.full((rows * (height + border) + border, columns * (width + border) + border, channels), 128, np.uint8)
    for index, image in enumerate(images):
        top = border + (index // columns) * (height + border)
        left = border + (index % columns) * (width + border)
        grid[top:top + height, left:left + width] = image
    return grid


def save_png(image: np.ndarray, path: str, scale: int = 1) -> None:
    """Writes a uint8 [height, width, 1 or 3] image as PNG (pillow), enlarged ``scale`` times."""
    from PIL import Image  # pillow: only pictures need it
    picture = Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)
    if scale > 1:
        picture = picture.resize((picture.width * scale, picture.height * scale), Image.NEAREST)
    picture.save(path)


def save_piano_roll_png(notes: np.ndarray, path: str, *, columns_per_second: float = 25,
                        rows_per_pitch: int = 3) -> None:
    """Writes ``midi.piano_roll(notes)`` as a grey PNG at ``path``: ``columns_per_second`` pixels per second
    across, ``rows_per_pitch`` pixels per pitch down (one black pixel if there are no notes)."""
    roll = np.repeat(midi.piano_roll(notes, steps_per_second=columns_per_second), rows_per_pitch, axis=0)
    save_png((roll if roll.size else np.zeros((1, 1), np.uint8))[..., None], path)
