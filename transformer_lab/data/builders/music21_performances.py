"""Performances rendered from scores of music21's corpus (pip ``music21``; no download), so that the
performance-event Music Transformer trains on real music without the web.

Pieces: every score in the corpus folders of COMPOSERS, each movement a piece: Bach's chorales (and a
few other Bach works), string quartets by Haydn, Mozart and Robert Schumann, piano music by Clara
Schumann, Chopin, Joplin, Mozart and C. P. E. Bach, songs, arias and chamber music by Schubert, Handel,
Verdi, Beach, Weber and Corelli, and three medieval or Renaissance works.

A score becomes notes, float32 [n, 4] (pitch, velocity, start s, end s) like MAESTRO's (``score_notes``):
- every note of every part, a chord as its notes, tied notes joined into one; grace notes (no
  duration) are dropped, repeats are played once as written and fermatas are not held;
- quarter-note offsets become seconds through the score's metronome marks (the first of several at one
  offset, e.g. one per part); before the first mark, and in a score without any, quarter = DEFAULT_BPM;
- a note's velocity is 127 x music21's volume of the latest dynamic level (pp, p, mp, mf, f, ...) of
  its part before it (p 0.35 -> 44, mf 0.55 -> 70, f 0.7 -> 89), mf before any; accents such as sf or
  fp are ignored.
Deterministic (scores are parsed from the files, not music21's pickle cache). Scores with the same
pitches at the same quarter-note times (a chorale under two catalogue numbers, even at another tempo)
are kept once, the first in corpus order; near copies (a note or two apart) are all kept.

A piece is named by its corpus path without the extension (``bach/bwv66.6``); it is split by that name
as the chorales are: md5 modulo 10 is 0 for ``test``, 1 for ``validation``, otherwise ``train``.
Features: ``notes`` and ``piece``, as in the ``maestro`` dataset, and ``melody``: the top part (the
score's first: soprano, first violin, the pianist's upper staff), one note at a time (``midi.skyline``
of its notes, so the top note of its chords).
"""

from __future__ import annotations

import hashlib
import os

import numpy as np
import tensorflow_datasets as tfds

from transformer_lab.data.builders.bach_chorales import INSTALL_HINT
from transformer_lab.data.builders.pieces import PiecesBuilder, by_split
from transformer_lab.data.midi import END, PITCH, START, skyline

# The corpus folders read; their parsing is most of the preparation's minute (the corpus's Beethoven
# quartets or Monteverdi madrigals would each add about as much again).
COMPOSERS = ('bach', 'haydn', 'mozart', 'schumann_robert', 'schumann_clara', 'chopin', 'joplin', 'schubert',
             'cpebach', 'handel', 'corelli', 'weber', 'verdi', 'beach', 'luca', 'lusitano', 'ciconia')
# Most of the chorales have no metronome mark; of the 72 that do, 39 have quarter = 96.
DEFAULT_BPM = 96.0
LEVELS = ('pppp', 'ppp', 'pp', 'p', 'mp', 'mf', 'f', 'ff', 'fff', 'ffff')
DEFAULT_LEVEL = 'mf'


def seconds_at(offsets: np.ndarray, marks: list[tuple[float, float]]) -> np.ndarray:
    """Quarter-note offsets -> seconds, given the tempo marks (offset, quarter notes per minute) in
    offset order, the first at offset 0."""
    mark_offsets, bpm = np.asarray(marks, np.float64).T
    mark_seconds = np.concatenate([[0.0], np.cumsum(np.diff(mark_offsets) * 60 / bpm[:-1])])
    mark = np.searchsorted(mark_offsets, offsets, side='right') - 1
    return mark_seconds[mark] + (offsets - mark_offsets[mark]) * 60 / bpm[mark]


def tempo_marks(score) -> list[tuple[float, float]]:
    """(offset, quarter notes per minute) of each offset's first metronome mark with a tempo, offset 0
    having one (DEFAULT_BPM if the score has none there)."""
    from music21 import tempo
    marks = {}
    for mark in score.flatten().getElementsByClass(tempo.MetronomeMark):
        bpm = mark.getQuarterBPM()
        if bpm:
            marks.setdefault(float(mark.offset), float(bpm))
    marks.setdefault(0.0, DEFAULT_BPM)
    return sorted(marks.items())


def part_notes(part) -> list[list[float]]:
    """One part -> [pitch, velocity, start, end] per note, times in quarter notes, ties joined."""
    from music21 import chord, dynamics, note
    flat = part.flatten()
    levels = [(float(d.offset), d.volumeScalar) for d in flat.getElementsByClass(dynamics.Dynamic)
              if d.value in LEVELS]
    level_offsets = np.asarray([offset for offset, _ in levels])
    default = dynamics.Dynamic(DEFAULT_LEVEL).volumeScalar
    notes, tied = [], {}    # tied: pitch -> index of the note a later tie continues
    for element in flat.getElementsByClass((note.Note, chord.Chord)):
        start, length = float(element.offset), float(element.quarterLength)
        if length <= 0:
            continue
        level = np.searchsorted(level_offsets, start, side='right') - 1
        velocity = round(127 * (levels[level][1] if level >= 0 else default))
        for pitched in (element.notes if isinstance(element, chord.Chord) else (element,)):
            pitch, tie = pitched.pitch.midi, pitched.tie.type if pitched.tie else None
            if tie in ('stop', 'continue') and pitch in tied:
                notes[tied[pitch]][END] = start + length
                if tie == 'stop':
                    del tied[pitch]
                continue
            notes.append([pitch, velocity, start, start + length])
            if tie in ('start', 'continue'):
                tied[pitch] = len(notes) - 1
    return notes


def quarter_notes(score, parts=None) -> np.ndarray:
    """A music21 score's ``parts`` (default: all) -> float64 [n, 4] notes (pitch, velocity, start, end in
    quarter notes), sorted by start, then pitch, then end."""
    notes = np.asarray([row for part in (score.parts if parts is None else parts) for row in part_notes(part)],
                       np.float64).reshape(-1, 4)
    return notes[np.lexsort((notes[:, END], notes[:, PITCH], notes[:, START]))]


def top_part_melody(score) -> np.ndarray:
    """The melody of a score: its first part's notes in seconds, one at a time (``skyline``)."""
    return skyline(in_seconds(quarter_notes(score, score.parts[:1]), score))


def score_notes(score) -> np.ndarray:
    """A music21 score -> float32 [n, 4] notes (pitch, velocity, start s, end s), sorted by start, then
    pitch (see the module docstring for the rendering)."""
    return in_seconds(quarter_notes(score), score)


def in_seconds(notes: np.ndarray, score) -> np.ndarray:
    """``quarter_notes(score)`` -> float32 notes timed in seconds by the score's tempo marks."""
    timed = notes.copy()
    timed[:, START:] = seconds_at(notes[:, START:], tempo_marks(score))
    return timed.astype(np.float32)


def read_performances() -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(piece name, notes, melody) of every score of COMPOSERS, duplicates removed, in corpus order."""
    try:
        from music21 import corpus
    except ModuleNotFoundError as error:
        raise FileNotFoundError(f'The scores come from music21: `{INSTALL_HINT}`.') from error
    root = os.path.dirname(corpus.__file__)
    performances, seen = [], set()
    for composer in COMPOSERS:
        for path in corpus.getComposer(composer):
            score = corpus.parse(path, forceSource=True)
            notes = quarter_notes(score)
            # Pitches and times in quarter notes: a copy under another tempo or dynamics is a duplicate.
            digest = hashlib.md5(notes[:, [PITCH, START, END]].tobytes()).hexdigest()
            if digest in seen:
                continue
            seen.add(digest)
            name = os.path.splitext(os.path.relpath(str(path), root))[0]
            performances.append((name, in_seconds(notes, score), top_part_melody(score)))
    return performances


class Music21Performances(PiecesBuilder):
    """Scores of music21's corpus rendered as performance notes."""

    VERSION = tfds.core.Version('1.1.0')
    RELEASE_NOTES = {'1.0.0': 'Initial release.', '1.1.0': 'Each performance with its melody.'}

    HOMEPAGE = 'https://www.music21.org/'

    def _split_generators(self, dl_manager):
        del dl_manager  # the scores ship inside the music21 package
        return {split: self._generate_examples(pieces) for split, pieces in by_split(read_performances()).items()}
