"""The Bach chorale grid on a known chorale, checked by hand against its score, and the split rule."""

import numpy as np
from music21 import corpus

from transformer_lab.data.builders.bach_chorales import chorale_grid, split_of


def test_bwv_66_6_on_the_sixteenth_note_grid():
    grid = chorale_grid(corpus.parse('bach/bwv66.6'))
    assert grid.shape == (144, 4) and grid.dtype == np.uint8
    # The score opens (quarter-note offsets): soprano C#5 (0-0.5), B4 (0.5-1), A4 (1-2);
    # alto E4 (0-1), F#4 (1-2); tenor A3, B3, C#4; bass A3, G#3, F#3 (MIDI: C#5 = 73, A3 = 57, ...).
    expected = [[73, 64, 57, 57]] * 2 + [[71, 64, 59, 56]] * 2 + [[69, 66, 61, 54]] * 4
    np.testing.assert_array_equal(grid[:8], expected)
    assert (grid > 0).all(axis=1).mean() > 0.9   # four voices sound almost everywhere


def test_a_score_without_the_four_voices_is_skipped():
    score = corpus.parse('bach/bwv66.6')
    score.remove(score.parts[3])
    assert chorale_grid(score) is None


def test_the_split_is_a_fixed_function_of_the_piece():
    pieces = [f'bwv{n}.{m}' for n in range(1, 200) for m in range(1, 4)]
    splits = [split_of(piece) for piece in pieces]
    assert splits == [split_of(piece) for piece in pieces]
    counts = {name: splits.count(name) / len(splits) for name in ('train', 'validation', 'test')}
    assert 0.7 < counts['train'] < 0.9 and 0.05 < counts['validation'] < 0.15 and 0.05 < counts['test'] < 0.15
