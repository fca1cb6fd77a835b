"""Data for people: grids of images and piano rolls as PNG files (pillow), and music as WAV audio
(FluidSynth). Nothing below the scripts and the training loop's samples imports this module.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

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


# Debian's fluid-soundfont-gm (FluidR3, General MIDI) through its alternatives link; $SOUNDFONT names another.
DEFAULT_SOUNDFONT = '/usr/share/sounds/sf2/default-GM.sf2'
AUDIO_SAMPLE_RATE = 44_100


def save_wav(midi_path: str, wav_path: str) -> bool:
    """Renders a MIDI file as WAV audio (16-bit stereo, ``AUDIO_SAMPLE_RATE``) with FluidSynth's command line
    (Debian ``fluidsynth``) and a General MIDI soundfont (``$SOUNDFONT``, else Debian ``fluid-soundfont-gm``).
    Where either is missing: one notice on stderr, no file, False. By hand: a call of the maintained
    synthesizer's command line (pretty_midi's own route needs the pyfluidsynth binding besides)."""
    program, soundfont = shutil.which('fluidsynth'), os.environ.get('SOUNDFONT', DEFAULT_SOUNDFONT)
    missing = [what for what, present in (('the fluidsynth program', program), (f'the soundfont {soundfont}',
                                                                                os.path.exists(soundfont))) if not present]
    if missing:
        print(f'notice: MIDI only, no WAV: {" and ".join(missing)} not found (Debian: sudo apt-get install '
              f'fluidsynth fluid-soundfont-gm; or $SOUNDFONT=FILE.sf2)', file=sys.stderr)
        return False
    subprocess.run([program, '-n', '-i', '-q', '-F', wav_path, '-r', str(AUDIO_SAMPLE_RATE), '-T', 'wav',
                    soundfont, midi_path], check=True, capture_output=True)
    return True
