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


def test_chorale_tokens_round_trip_and_transposition_keeps_rests():
    from transformer_lab.data.music import transpose
    from transformer_lab.data.tokenizers import EOS_ID, ChoraleTokenizer
    grid = np.array([[72, 64, 0, 48], [71, 0, 55, 47]], np.uint8)
    tokenizer = ChoraleTokenizer()
    tokens = tokenizer.encode(grid)
    assert tokens[:4] == [74, 66, 2, 50] and min(tokens) >= 2
    np.testing.assert_array_equal(tokenizer.decode(tokens + [EOS_ID, 80]), grid)
    np.testing.assert_array_equal(transpose(grid, -3), [[69, 61, 0, 45], [68, 0, 52, 44]])


def test_chorale_evaluation_windows_hold_every_token_once():
    from conftest import load_config
    from transformer_lab import registry
    config = load_config('configs/music_transformer_bach_chorales.py:tiny')
    pipeline = registry.build_pipeline(config.data)
    batches = list(pipeline.eval_batches('validation', 4, max_examples=5))
    source = pipeline.source('validation')
    expected = sum(4 * len(source[i]['voices']) + 1 for i in range(5))     # S, A, T, B per step, then EOS
    assert sum(int((b['targets'] > 0).sum()) for b in batches) == expected
    first = next(iter(pipeline.train_batches(4, seed=0)))['targets']
    np.testing.assert_array_equal(first, next(iter(pipeline.train_batches(4, seed=0)))['targets'])


def test_baseline_and_relative_chorale_models_train_at_tiny_scale(tmp_path):
    from conftest import load_config, train_losses
    from transformer_lab.training.loop import train_and_evaluate
    for variant in ('baseline', 'relative'):
        config = load_config(f'configs/music_transformer_bach_chorales.py:{variant},tiny')
        metrics = train_and_evaluate(config, str(tmp_path / variant))
        losses = train_losses(str(tmp_path / variant))
        assert losses[-1] < losses[0] - 0.5, (variant, losses)
        assert np.isfinite(metrics['validation/nll'])
