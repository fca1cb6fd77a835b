"""Bach chorales on a 16th-note grid, from music21's corpus (pip ``music21``; no download).

Every chorale of ``music21.corpus.getComposer('bach')`` with exactly one part named Soprano, Alto,
Tenor and Bass becomes ``voices``: uint8 [steps, 4], the sounding MIDI pitch of S, A, T, B at each
16th note (0 = rest); a note held over several steps repeats its pitch. Serialised in time order
(S, A, T, B at each step) this is the JSB-style sequence of the Music Transformer (Huang et al. 2018,
Sec. 5.1). Chords within one part keep their highest pitch; grace notes (no duration) are dropped.

Duplicates (the same grid under another catalogue number) are removed, keeping the first in corpus
order. Split by piece, deterministic: the md5 of the piece name (e.g. ``bwv66.6``) modulo 10 is 0 for
``test``, 1 for ``validation``, otherwise ``train``. Features: ``voices`` and ``piece``.
"""

from __future__ import annotations

import hashlib
import os

import numpy as np

from transformer_lab.data.builders.pieces import PiecesBuilder, by_split

VOICES = ('soprano', 'alto', 'tenor', 'bass')
STEPS_PER_QUARTER = 4
INSTALL_HINT = 'pip install music21'


def chorale_grid(score) -> np.ndarray | None:
    """A music21 score -> uint8 [steps, 4] pitches of S, A, T, B per 16th note, or None if the score
    does not have exactly the four voices."""
    parts = {}
    for part in score.parts:
        name = (part.partName or '').strip().lower()
        if name in VOICES:
            if name in parts:
                return None
            parts[name] = part
    if len(parts) != len(VOICES):
        return None
    steps = int(round(max(float(part.highestTime) for part in parts.values()) * STEPS_PER_QUARTER))
    grid = np.zeros((steps, len(VOICES)), np.uint8)
    for column, voice in enumerate(VOICES):
        for note in parts[voice].flatten().notes:
            start = int(round(float(note.offset) * STEPS_PER_QUARTER))
            length = int(round(float(note.quarterLength) * STEPS_PER_QUARTER))
            pitch = max(p.midi for p in note.pitches)
            grid[start:start + length, column] = pitch
    return grid


def read_chorales() -> list[tuple[str, np.ndarray]]:
    """(piece name, grid) of every usable chorale, duplicates removed, in corpus order."""
    try:
        from music21 import corpus
    except ModuleNotFoundError as error:
        raise FileNotFoundError(f'The chorales come from music21: `{INSTALL_HINT}`.') from error
    chorales, seen = [], set()
    for path in corpus.getComposer('bach'):
        grid = chorale_grid(corpus.parse(path))
        if grid is None or not len(grid):
            continue
        digest = hashlib.md5(grid.tobytes()).hexdigest()
        if digest in seen:
            continue
        seen.add(digest)
        chorales.append((os.path.splitext(os.path.basename(str(path)))[0], grid))
    return chorales


class BachChorales(PiecesBuilder):
    """Four-voice Bach chorales on a 16th-note grid (music21 corpus)."""

    FEATURE = 'voices'
    HOMEPAGE = 'https://www.music21.org/'

    def _split_generators(self, dl_manager):
        del dl_manager  # the scores ship inside the music21 package
        return {split: self._generate_examples(pieces) for split, pieces in by_split(read_chorales()).items()}
