"""The Bach chorale grid on a known chorale, checked by hand against its score, and the split rule; music models
trained, sampled (from nothing, validation openings or a MIDI file of the user's) and evaluated."""

import numpy as np
import pytest
from music21 import corpus

from transformer_lab.data import midi
from transformer_lab.data.builders.bach_chorales import chorale_grid
from transformer_lab.data.builders.pieces import split_of
from transformer_lab.data.music import ChoraleTokenizer, PerformanceTokenizer
from transformer_lab.data.tokenizers import EOS_ID


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
    grid = np.array([[72, 64, 0, 48], [71, 0, 55, 47]], np.uint8)
    tokenizer = ChoraleTokenizer()
    tokens = tokenizer.encode(grid)
    assert tokens[:4] == [74, 66, 2, 50] and min(tokens) >= 2
    np.testing.assert_array_equal(tokenizer.decode(tokens + [EOS_ID, 80]), grid)
    np.testing.assert_array_equal(tokenizer.transpose(grid, -3), [[69, 61, 0, 45], [68, 0, 52, 44]])


def test_chorale_evaluation_windows_hold_every_token_once():
    from helpers import load_config
    from transformer_lab import tasks
    config = load_config('configs/music_transformer_bach_chorales.py:tiny')
    pipeline = tasks.build_pipeline(config.data)
    batches = list(pipeline.eval_batches('validation', 4, max_examples=5))
    source = pipeline.source('validation')
    expected = sum(4 * len(source[i]['voices']) + 1 for i in range(5))     # S, A, T, B per step, then EOS
    assert sum(int((b['targets'] > 0).sum()) for b in batches) == expected
    first = next(iter(pipeline.train_batches(4, seed=0)))['targets']
    np.testing.assert_array_equal(first, next(iter(pipeline.train_batches(4, seed=0)))['targets'])


def test_voices_follow_the_tokens_through_the_windows():
    from helpers import load_config
    from transformer_lab import tasks
    config = load_config('configs/music_transformer_bach_chorales.py:voices,tiny')
    pipeline = tasks.build_pipeline(config.data)
    batches = [next(iter(pipeline.train_batches(4, seed=0)))] + list(pipeline.eval_batches('validation', 4,
                                                                                          max_examples=3))
    for batch in batches:
        tokens, voices = batch['targets'], batch['targets_voices']
        np.testing.assert_array_equal(voices == 0, (tokens == EOS_ID) | (tokens == 0))
        for row_tokens, row_voices in zip(tokens, voices):
            # Between two EOS the voices run S, A, T, B, S, ... from wherever the window starts.
            for piece in np.split(row_voices, np.flatnonzero(row_tokens == EOS_ID)):
                sounding = piece[piece > 0]
                np.testing.assert_array_equal(np.diff(sounding) % 4, np.ones(len(sounding) - 1) if len(sounding)
                                              else [])


def test_a_chorale_becomes_notes_with_held_pitches_merged():
    tokenizer = ChoraleTokenizer()
    grid = np.array([[72, 64, 0, 48], [72, 65, 0, 48], [71, 65, 55, 0]], np.uint8)
    notes = tokenizer.to_notes(tokenizer.encode(grid))
    step = tokenizer.seconds_per_step
    expected = [(48, 0, 2), (64, 0, 1), (72, 0, 2), (65, 1, 3), (55, 2, 3), (71, 2, 3)]
    np.testing.assert_allclose(notes[:, [0, 2, 3]], [(p, a * step, b * step) for p, a, b in expected])
    assert (notes[:, 1] == tokenizer.velocity).all()


@pytest.mark.slow
def test_music_variants_train_sample_midi_and_evaluate(tmp_path):
    """Each Music Transformer variant trains at tiny scale; sampling writes MIDI files that pretty_midi
    reads back, holding the primer's notes first, and their audio; evaluation reports NLL per token on the test split."""
    import json

    import pretty_midi
    from PIL import Image

    from helpers import load_config, run_script, tensorboard_events, train_losses
    from transformer_lab import tasks
    from transformer_lab.training.loop import train_and_evaluate
    for variant in ('baseline', 'relative', 'local,concat,voices'):
        config = load_config(f'configs/music_transformer_bach_chorales.py:{variant},tiny')
        if variant == 'local,concat,voices':   # the loop's samples at the end
            config.sample.every_steps, config.sample.num_samples = 20, 2
        workdir = str(tmp_path / variant)
        metrics = train_and_evaluate(config, workdir)
        losses = train_losses(workdir)
        assert losses[-1] < losses[0] - 0.5, (variant, losses)
        assert np.isfinite(metrics['validation/nll'])
    workdir = tmp_path / 'local,concat,voices'
    # The loop's samples in TensorBoard: each one's piano roll as an image and its audio as written.
    events = tensorboard_events(str(workdir))
    assert sorted(events.Tags()['audio']) == ['samples/0.wav', 'samples/1.wav']
    for index in range(2):
        with open(workdir / 'samples' / f'step_20_{index}.wav', 'rb') as f:
            assert events.Audio(f'samples/{index}.wav')[0].encoded_audio_string == f.read()
        image = events.Images(f'samples/{index}.png')[0]
        with Image.open(workdir / 'samples' / f'step_20_{index}.png') as roll:
            assert (image.step, image.width, image.height) == (20, *roll.size)
    sample = run_script('sample.py', f'--workdir={workdir}', '--num_samples=2', '--primer_tokens=8',
                        '--max_length=40', '--top_k=8')
    assert sample.returncode == 0, sample.stderr[-3000:]
    primer = tasks.build_pipeline(config.data).primers('validation', 2, 8)
    tokenizer = ChoraleTokenizer()
    for index in range(2):
        midi = pretty_midi.PrettyMIDI(str(workdir / 'samples' / f'step_20_{index}.mid'))
        notes = midi.instruments[0].notes
        assert (workdir / 'samples' / f'step_20_{index}.png').exists()
        assert (workdir / 'samples' / f'step_20_{index}.wav').stat().st_size > 44   # audio past the WAV header
        # The primer's two 16th notes come first: their onsets and pitches survive the MIDI file.
        onsets = lambda pairs: sorted((round(start / tokenizer.seconds_per_step), int(pitch)) for start, pitch in pairs
                                      if start < 2 * tokenizer.seconds_per_step - 1e-6)
        assert onsets((n.start, n.pitch) for n in notes) == onsets(tokenizer.to_notes(primer[index])[:, [2, 0]])
        assert max(n.end for n in notes) > 2 * tokenizer.seconds_per_step   # the model went on past the primer
    evaluation = run_script('evaluate.py', f'--workdir={workdir}', '--split=test')
    assert evaluation.returncode == 0, evaluation.stderr[-3000:]
    reported = json.loads(evaluation.stdout[evaluation.stdout.index('{'):])
    assert reported['step'] == 20 and 0 < reported['test/nll'] < 6

    # Past the trained length: the first 4L tokens of each validation piece that long, NLL by position
    # in [0, L), [L, 2L), [2L, 4L), the same pieces in every bin; sinusoids past it: a notice.
    trained = config.data.max_length
    longer = run_script('evaluate.py', f'--workdir={tmp_path / "relative"}', f'--length={4 * trained}')
    assert longer.returncode == 0 and 'notice' not in longer.stderr, longer.stderr[-3000:]
    reported = json.loads(longer.stdout[longer.stdout.index('{'):])
    edges = [0, trained, 2 * trained, 4 * trained]
    names = [f'{begin}-{end}' for begin, end in zip(edges, edges[1:])]
    pipeline = tasks.build_pipeline(config.data)
    lengths = [len(pipeline.tokens(pipeline.piece(record))['targets'])
               for record in list(pipeline.source('validation'))[:config.eval.max_examples]]
    long_enough = sum(length >= 4 * trained for length in lengths)      # the pieces that fill the window
    assert long_enough and reported['tokens_by_position'] == {
        name: long_enough * (end - begin) for name, begin, end in zip(names, edges, edges[1:])}
    assert all(0 < value < 6 for value in reported['nll_by_position'].values() if value is not None)
    assert list(reported['nll_by_position']) == names
    past = run_script('evaluate.py', f'--workdir={tmp_path / "baseline"}', f'--length={2 * config.model.max_length}')
    assert past.returncode == 0 and 'sinusoids give positions the model never trained on' in past.stderr


def test_performance_windows_are_events_of_augmented_training_pieces():
    """Evaluation windows are the events of the pieces as stored; training pieces are transposed and
    stretched, the same way for the same seed."""
    from helpers import load_config
    from transformer_lab import tasks
    from transformer_lab.data.music import PerformanceTokenizer
    config = load_config('configs/music_transformer_music21_performances.py:tiny')
    pipeline = tasks.build_pipeline(config.data)
    tokenizer = PerformanceTokenizer()
    first = pipeline.source('validation')[0]['notes']
    stream = np.concatenate([b['targets'] for b in pipeline.eval_batches('validation', 4, max_examples=1)]).reshape(-1)
    expected = tokenizer.encode(first) + [EOS_ID]
    np.testing.assert_array_equal(stream[:len(expected)], expected)
    assert stream[len(expected):].sum() == 0 and 2 <= min(expected[:-1]) and max(expected) < tokenizer.vocab_size

    def pipeline_with(transpose, time_stretches):
        data = config.data.copy_and_resolve_references()
        data.transpose, data.time_stretches = transpose, time_stretches
        return tasks.build_pipeline(data)

    plain, augmented = pipeline_with(0, ()), pipeline_with(3, (0.5, 2.0))   # stretches that always change times
    plain_tokens, augmented_tokens = (next(iter(p.train_batches(8, seed=0)))['targets'] for p in (plain, augmented))
    assert not np.array_equal(plain_tokens, augmented_tokens)
    np.testing.assert_array_equal(augmented_tokens, next(iter(augmented.train_batches(8, seed=0)))['targets'])


@pytest.mark.slow
def test_performance_model_samples_midi_files_pretty_midi_reads(tmp_path):
    import pretty_midi
    from helpers import load_config, run_script
    from transformer_lab.training.loop import train_and_evaluate
    config = load_config('configs/music_transformer_music21_performances.py:tiny,relative')
    metrics = train_and_evaluate(config, str(tmp_path))
    assert np.isfinite(metrics['validation/nll'])
    sample = run_script('sample.py', f'--workdir={tmp_path}', '--num_samples=2', '--max_length=48',
                        '--temperature=1.0')
    assert sample.returncode == 0, sample.stderr[-3000:]
    for index in range(2):
        notes = pretty_midi.PrettyMIDI(str(tmp_path / 'samples' / f'step_20_{index}.mid')).instruments[0].notes
        assert all(0 <= n.pitch < 128 and n.end > n.start for n in notes)
        assert (tmp_path / 'samples' / f'step_20_{index}.png').exists()
    # A MIDI file of the user's as the primer: its first second comes first in the sample, then the model's.
    primer = tmp_path / 'mine.mid'
    midi.notes_to_midi(np.array([[60, 80, 0.0, 0.5], [64, 80, 0.5, 1.5], [67, 80, 1.2, 2.0]])).write(str(primer))
    sample = run_script('sample.py', f'--workdir={tmp_path}', '--num_samples=1', '--max_length=48',
                        f'--primer={primer}', '--primer_seconds=1', '--temperature=1.0')
    assert sample.returncode == 0, sample.stderr[-3000:]
    notes = pretty_midi.PrettyMIDI(str(tmp_path / 'samples' / 'step_20_0.mid')).instruments[0].notes
    assert [(round(n.start, 2), n.pitch) for n in notes if n.start < 1.0][:2] == [(0.0, 60), (0.5, 64)]
    # Past the 64 positions it trained on, a relative model slides its window of 64 and goes on.
    longer = run_script('sample.py', f'--workdir={tmp_path}', '--num_samples=1', '--max_length=100',
                        f'--primer={primer}', '--temperature=1.0')
    assert longer.returncode == 0 and 'notice' not in longer.stderr, longer.stderr[-3000:]
    for arguments, message in ((['--primer_seconds=0', '--max_length=8'], 'leaves none to continue'),
                               ([f'--primer={tmp_path / "config.json"}'], 'not a MIDI file that can be read')):
        failed = run_script('sample.py', f'--workdir={tmp_path}', f'--primer={primer}', *arguments)
        assert failed.returncode == 1 and message in failed.stderr.strip().splitlines()[-1], failed.stderr[-2000:]


def test_a_midi_primer_is_the_encoded_notes_of_its_opening_seconds(tmp_path):
    notes = np.array([[60, 80, 0.0, 0.5], [64, 80, 0.5, 1.5], [67, 80, 1.2, 2.0]], np.float32)
    midi.notes_to_midi(notes).write(str(tmp_path / 'mine.mid'))
    tokenizer = PerformanceTokenizer()
    opening = notes[:2].copy()
    opening[1, 3] = 1.0                                     # sounding at 1 s: released there
    np.testing.assert_array_equal(tokenizer.read_primer(str(tmp_path / 'mine.mid'), 1.0), tokenizer.encode(opening))
    np.testing.assert_array_equal(tokenizer.read_primer(str(tmp_path / 'mine.mid')), tokenizer.encode(notes))
    midi.notes_to_midi(np.array([[60, 80, 1.0, 2.0]])).write(str(tmp_path / 'late.mid'))
    with pytest.raises(ValueError, match='no notes in its first 0.5 s'):
        tokenizer.read_primer(str(tmp_path / 'late.mid'), 0.5)


def test_training_rows_are_random_crops_of_distinct_pieces_and_resume_exactly():
    """A training batch spans as many pieces as it has rows, each row one piece's tokens from a varied
    offset (a stream of consecutive windows would put one or two pieces in a batch, at offsets a
    multiple of the row length); a restored iterator goes on with the same batches."""
    from helpers import load_config
    from transformer_lab import tasks
    config = load_config('configs/music_transformer_bach_chorales.py:tiny')
    config.data.transpose = 0   # untransposed, every row is found verbatim in its piece
    pipeline = tasks.build_pipeline(config.data)
    train = pipeline.source('train')
    pieces = [pipeline.tokens(pipeline.piece(train[i]))['targets'] for i in range(len(train))]
    length = config.data.max_length

    def where(row):
        """(piece, offset) of the one piece holding ``row`` verbatim."""
        found = [(index, start) for index, piece in enumerate(pieces)
                 for start in np.flatnonzero(np.all(np.lib.stride_tricks.sliding_window_view(piece, length) == row,
                                                    axis=1))]
        assert len(found) >= 1, 'a training row is not a crop of one piece'
        return found[0]

    iterator = iter(pipeline.train_batches(8, seed=3))
    batches = [next(iterator) for _ in range(4)]
    origins = [[where(row) for row in batch['targets']] for batch in batches]
    for batch_origins in origins:
        assert len({index for index, _ in batch_origins}) == 8
    offsets = [start for batch_origins in origins for _, start in batch_origins]
    assert len(set(offsets)) >= 24 and np.mean(np.asarray(offsets) % length == 0) < 0.3, offsets

    state = iterator.get_state()
    expected = [next(iterator)['targets'] for _ in range(2)]
    resumed = iter(pipeline.train_batches(8, seed=3))
    resumed.set_state(state)
    for batch in expected:
        np.testing.assert_array_equal(next(resumed)['targets'], batch)


def test_kept_tokens_moved_by_a_transposition_are_the_transposed_piece_encoded():
    """Performances: NOTE_ON / NOTE_OFF shifted, or None exactly where a note would leave MIDI 0..127
    (the notes are then encoded anew); chorales: sounding pitches shifted and clipped, rests kept."""
    from transformer_lab.data.music import ChoraleTokenizer, PerformanceTokenizer
    rng = np.random.default_rng(0)
    performance, chorale = PerformanceTokenizer(), ChoraleTokenizer()
    moved_some = refused_some = False
    for _ in range(20):
        count = 40
        pitches = rng.integers(0, 128, count)
        pitches[:3] = (0, 127, 64)[rng.integers(0, 3)]        # notes at the edges, struck twice at once
        starts = np.round(rng.uniform(0, 3, count), 2)
        notes = np.stack([pitches, rng.integers(1, 128, count), starts, starts + rng.uniform(0, 0.5, count)], 1)
        tokens = np.asarray(performance.encode(notes) + [EOS_ID])
        for semitones in (-3, -1, 2, 3):
            moved = performance.transpose_tokens(tokens, semitones)
            leaves = bool(((pitches + semitones < 0) | (pitches + semitones > 127)).any())
            assert (moved is None) == leaves
            if moved is not None:
                np.testing.assert_array_equal(moved, performance.encode(performance.transpose(notes, semitones)) + [EOS_ID])
            moved_some, refused_some = moved_some or not leaves, refused_some or leaves
        grid = np.where(rng.random((30, 4)) < 0.2, 0, rng.integers(1, 128, (30, 4))).astype(np.uint8)
        for semitones in (-5, 4):
            np.testing.assert_array_equal(chorale.transpose_tokens(np.asarray(chorale.encode(grid) + [EOS_ID]), semitones),
                                          chorale.encode(chorale.transpose(grid, semitones)) + [EOS_ID])
    assert moved_some and refused_some


def test_training_crops_from_kept_tokens_equal_the_augmented_pieces_encoded_for_the_same_draws():
    """The same (transposition, stretch, offset) drawn both ways gives the same row: kept tokens moved
    by the transposition, or (a note pushed out of range) the augmented notes encoded anew, against the
    piece augmented and encoded from its notes."""
    from helpers import load_config
    from transformer_lab import tasks
    from transformer_lab.data.music import augmented, piece_tokens, random_crop
    config = load_config('configs/music_transformer_music21_performances.py:tiny')
    config.data.transpose = 80     # wide enough that some transpositions push notes out of 0..127
    config.data.time_stretches = (0.95, 1.0, 1.05)
    pipeline = tasks.build_pipeline(config.data)
    crops = pipeline.train_batches(4, seed=0).assemble
    train, tokenizer, length = pipeline.source('train'), pipeline.tokenizer, config.data.max_length
    paths = set()
    for index in range(min(len(train), 12)):
        for seed in range(6):
            rng = np.random.default_rng(seed)
            semitones, stretch = int(rng.integers(-80, 81)), float(rng.choice(config.data.time_stretches))
            piece = augmented(tokenizer, pipeline.piece(train[index]), semitones, stretch)
            expected = random_crop(piece_tokens(tokenizer, piece), length, rng)
            row = crops.crop(index, np.random.default_rng(seed))
            np.testing.assert_array_equal(row['targets'], expected['targets'])
            kept = crops.stores[stretch]['targets'][index]
            paths.add(tokenizer.transpose_tokens(kept, semitones) is None)
    assert paths == {True, False}   # both ways were taken


def test_a_chorale_primer_is_the_grid_of_a_score_file_and_needs_four_parts(tmp_path):
    """BWV 66.6 written as MusicXML reads back onto the same grid as the corpus score (its first 2 s: 16 steps
    of 16th notes); written as MIDI, its four unnamed tracks take the voices top to bottom; two parts are one
    error."""
    chorale = corpus.parse('bach/bwv66.6')
    expected = ChoraleTokenizer().encode(chorale_grid(chorale)[:16])
    chorale.write('musicxml', fp=str(tmp_path / 'bwv66.musicxml'))
    chorale.write('midi', fp=str(tmp_path / 'bwv66.mid'))
    tokenizer = ChoraleTokenizer()
    np.testing.assert_array_equal(tokenizer.read_primer(str(tmp_path / 'bwv66.musicxml'), 2.0), expected)
    np.testing.assert_array_equal(tokenizer.read_primer(str(tmp_path / 'bwv66.mid'), 2.0), expected)
    from music21 import stream
    duet = stream.Score([stream.Part(chorale.parts[0].flatten().notes), stream.Part(chorale.parts[3].flatten().notes)])
    duet.write('musicxml', fp=str(tmp_path / 'duet.musicxml'))
    with pytest.raises(ValueError, match='needs four parts .* the file has 2'):
        tokenizer.read_primer(str(tmp_path / 'duet.musicxml'))


def test_a_melody_models_encoder_reads_the_melody_under_its_window_and_nothing_else():
    from transformer_lab.data.music import melody_window, piece_tokens
    tokenizer, rng = PerformanceTokenizer(), np.random.default_rng(0)
    onsets = np.cumsum(rng.uniform(0.1, 0.4, 60))    # off the 10 ms grid: some fall a few ms before a boundary
    tune = np.stack([rng.integers(72, 84, 60), np.full(60, 80), onsets, onsets + 0.3], 1)      # high
    chords = np.stack([rng.integers(40, 60, 60), np.full(60, 60), onsets, onsets + 0.6], 1)    # low, longer
    notes = np.concatenate([tune, chords]).astype(np.float32)
    melody = midi.skyline(notes)
    targets = piece_tokens(tokenizer, notes)['targets']
    times, length = tokenizer.token_times(targets), 64
    np.testing.assert_allclose(times[np.isfinite(tokenizer.token_onsets(targets)[:, 0])],
                               tokenizer.token_onsets(targets)[:, 0][np.isfinite(tokenizer.token_onsets(targets)[:, 0])])
    for start in (0, 100, len(targets) - 10):
        row = melody_window(tokenizer, targets, melody, start, length)
        np.testing.assert_array_equal(row['targets'][:min(length, len(targets) - start)], targets[start:start + length])
        begin = round(times[start] * 100)                     # in 10 ms steps, where the events put notes
        end = round(times[start + length] * 100) if start + length < len(targets) else np.inf
        onsets = np.round(melody[:, 2] * 100)
        expected = melody[(onsets >= begin) & (onsets < end)]
        read = tokenizer.decode(row['inputs'])
        assert len(read) == len(expected) and (len(expected) or start == len(targets) - 10)
        np.testing.assert_array_equal(read[:, 0], expected[:, 0])                  # the tune's pitches only
        np.testing.assert_allclose(read[:, 2], expected[:, 2] - begin / 100, atol=0.006)  # timed from the window
        assert row['inputs'][np.flatnonzero(row['inputs'])[-1]] == EOS_ID   # then padding


@pytest.mark.slow
def test_the_melody_model_trains_evaluates_and_accompanies_a_midi_file(tmp_path):
    import json

    import pretty_midi
    from helpers import load_config, run_script, train_losses
    from transformer_lab.training.loop import train_and_evaluate
    config = load_config('configs/music_transformer_melody.py:relative,tiny')
    metrics = train_and_evaluate(config, str(tmp_path))
    losses = train_losses(str(tmp_path))
    assert losses[-1] < losses[0] - 0.3, losses
    assert np.isfinite(metrics['validation/nll'])
    tune = tmp_path / 'tune.mid'
    midi.notes_to_midi(np.array([[72, 80, 0.0, 0.5], [60, 70, 0.0, 1.0], [74, 80, 0.5, 1.0], [76, 80, 1.0, 2.0]],
                                np.float32)).write(str(tune))
    sample = run_script('sample.py', f'--workdir={tmp_path}', f'--melody={tune}', '--num_samples=2', '--max_length=48')
    assert sample.returncode == 0, sample.stderr[-3000:]
    heard = pretty_midi.PrettyMIDI(str(tmp_path / 'samples' / 'step_20_1_melody.mid')).instruments[0].notes
    assert [(n.pitch, round(n.start, 2)) for n in heard] == [(72, 0.0), (74, 0.5), (76, 1.0)]   # the skyline
    assert (tmp_path / 'samples' / 'step_20_1.mid').exists() and (tmp_path / 'samples' / 'step_20_1.wav').exists()
    longer = run_script('evaluate.py', f'--workdir={tmp_path}', '--split=test')
    assert longer.returncode == 0 and np.isfinite(json.loads(longer.stdout[longer.stdout.index('{'):])['test/nll'])
