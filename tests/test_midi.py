"""Performance events (data/midi.py) on hand-checked examples and random notes, MIDI files, the sustain
pedal, augmentation, piano rolls, and the two performance datasets (maestro, music21_performances)."""

import json

import numpy as np
import pretty_midi
import pytest
import tensorflow_datasets as tfds
from PIL import Image

from transformer_lab.data import midi, rendering
from transformer_lab.data.builders.folders import DataSourceError
from transformer_lab.data.midi import NOTE_OFF, NOTE_ON, SET_VELOCITY, TIME_SHIFT
from transformer_lab.data.standins import MAESTRO_COLUMNS, write_maestro


def shift(steps: int) -> int:
    """The TIME_SHIFT event of ``steps`` 10 ms steps."""
    return TIME_SHIFT + steps - 1


def test_the_vocabulary_has_388_events_and_32_velocity_bins():
    assert (NOTE_ON, NOTE_OFF, TIME_SHIFT, SET_VELOCITY, midi.NUM_EVENTS) == (0, 128, 256, 356, 388)
    bins = midi.velocity_bin(np.arange(1, 128))
    assert bins[0] == 0 and bins[-1] == 31 and len(np.unique(bins)) == 32 and (np.diff(bins) >= 0).all()
    assert (midi.velocity_bin(midi.bin_velocity(np.arange(32))) == np.arange(32)).all()


def test_two_notes_become_the_exact_events():
    # C4 at velocity 80 for 0.5 s, then E4 at velocity 100 for 2.5 s, struck as C4 is released.
    notes = np.array([[60, 80, 0.0, 0.5], [64, 100, 0.5, 3.0]], np.float32)
    events = midi.notes_to_events(notes)
    assert events.dtype == np.int32
    assert events.tolist() == [SET_VELOCITY + 19, NOTE_ON + 60, shift(50), NOTE_OFF + 60,   # 80 is in bin 77-80
                               SET_VELOCITY + 24, NOTE_ON + 64, shift(100), shift(100), shift(50), NOTE_OFF + 64]
    np.testing.assert_allclose(midi.events_to_notes(events), [[60, 78, 0.0, 0.5], [64, 98, 0.5, 3.0]], atol=1e-6)


def test_a_long_gap_is_several_time_shifts_and_an_unchanged_velocity_bin_is_not_repeated():
    notes = np.array([[60, 62, 0.0, 0.1], [62, 64, 2.6, 2.7]], np.float32)   # velocities 62 and 64: one bin
    assert midi.notes_to_events(notes).tolist() == [
        SET_VELOCITY + 15, NOTE_ON + 60, shift(10), NOTE_OFF + 60, shift(100), shift(100), shift(50),
        NOTE_ON + 62, shift(10), NOTE_OFF + 62]


def random_notes(rng: np.random.Generator, pitches: int = 40, per_pitch: int = 6) -> np.ndarray:
    """Chains of notes on distinct pitches, at least 20 ms long and 20 ms apart on each pitch, with gaps
    up to 3 s (so several TIME_SHIFTs) and every velocity."""
    notes = []
    for pitch in rng.choice(128, pitches, replace=False):
        time = rng.uniform(0, 3)
        for _ in range(per_pitch):
            length = rng.uniform(0.02, 1.5)
            notes.append((pitch, rng.integers(1, 128), time, time + length))
            time += length + rng.uniform(0.02, 3)
    return np.asarray(notes, np.float32)


def test_random_notes_survive_the_round_trip_up_to_10_ms_and_the_velocity_bin():
    notes = random_notes(np.random.default_rng(0))
    events = midi.notes_to_events(notes)
    assert events.min() >= 0 and events.max() < midi.NUM_EVENTS
    decoded = midi.events_to_notes(events)
    expected = notes[np.lexsort((notes[:, 0], np.round(notes[:, 2] * 100)))]
    assert decoded.dtype == np.float32 and decoded.shape == expected.shape
    np.testing.assert_array_equal(decoded[:, 0], expected[:, 0])
    np.testing.assert_allclose(decoded[:, 2:], expected[:, 2:], atol=0.005 + 1e-5)
    np.testing.assert_array_equal(midi.velocity_bin(decoded[:, 1]), midi.velocity_bin(expected[:, 1]))
    np.testing.assert_array_equal(midi.notes_to_events(decoded), events)


def test_a_pitch_struck_while_sounding_is_released_first_and_a_same_step_duplicate_is_dropped():
    notes = np.array([[60, 80, 0.0, 1.0], [60, 80, 0.5, 1.5], [67, 80, 2.0, 2.1], [67, 80, 2.0, 2.3]])
    assert midi.notes_to_events(notes).tolist() == [
        SET_VELOCITY + 19, NOTE_ON + 60, shift(50), NOTE_OFF + 60, NOTE_ON + 60, shift(100), NOTE_OFF + 60,
        shift(50), NOTE_ON + 67, shift(30), NOTE_OFF + 67]


def test_decoding_rules_for_events_no_encoder_writes():
    on, off = NOTE_ON + 60, NOTE_OFF + 60
    np.testing.assert_allclose(midi.events_to_notes([on]), [[60, 62, 0, 0.01]])     # default velocity bin, 10 ms
    np.testing.assert_allclose(midi.events_to_notes([on, off]), [[60, 62, 0, 0.01]])
    np.testing.assert_allclose(midi.events_to_notes([on, on, shift(10)]), [[60, 62, 0, 0.1]])   # restruck at once
    np.testing.assert_allclose(midi.events_to_notes([NOTE_OFF + 61, on, shift(5), SET_VELOCITY + 31, NOTE_ON + 64]),
                               [[60, 62, 0, 0.05], [64, 126, 0.05, 0.06]])
    with pytest.raises(ValueError, match='0..387'):
        midi.events_to_notes([midi.NUM_EVENTS])


def test_a_midi_file_written_by_pretty_midi_reads_back_without_its_drums(tmp_path):
    performance = pretty_midi.PrettyMIDI()   # 440 ticks per second: the times below are whole ticks
    piano, strings, drums = (pretty_midi.Instrument(program=0), pretty_midi.Instrument(program=48),
                             pretty_midi.Instrument(program=0, is_drum=True))
    piano.notes = [pretty_midi.Note(velocity=90, pitch=60, start=0.5, end=1.0),
                   pretty_midi.Note(velocity=40, pitch=72, start=0.0, end=0.25)]
    strings.notes = [pretty_midi.Note(velocity=70, pitch=48, start=0.5, end=2.0)]
    drums.notes = [pretty_midi.Note(velocity=100, pitch=36, start=0.0, end=0.1)]
    performance.instruments = [piano, strings, drums]
    performance.write(str(tmp_path / 'three.mid'))
    notes = midi.notes_from_midi(pretty_midi.PrettyMIDI(str(tmp_path / 'three.mid')))
    assert notes.dtype == np.float32
    np.testing.assert_allclose(notes, [[72, 40, 0.0, 0.25], [48, 70, 0.5, 2.0], [60, 90, 0.5, 1.0]], atol=1e-4)


def test_notes_to_midi_round_trips_through_a_file_to_a_millisecond(tmp_path):
    notes = random_notes(np.random.default_rng(1), pitches=10, per_pitch=3)
    midi.notes_to_midi(notes).write(str(tmp_path / 'random.mid'))
    read = midi.notes_from_midi(pretty_midi.PrettyMIDI(str(tmp_path / 'random.mid')), sustain=False)
    expected = notes[np.lexsort((notes[:, 0], notes[:, 2]))]
    np.testing.assert_array_equal(read[:, :2], expected[:, :2])
    np.testing.assert_allclose(read[:, 2:], expected[:, 2:], atol=1.1e-3)


def test_notes_of_no_length_are_dropped():
    performance = pretty_midi.PrettyMIDI()
    piano = pretty_midi.Instrument(program=0)
    piano.notes = [pretty_midi.Note(velocity=90, pitch=pitch, start=1.0, end=end) for pitch, end in
                   [(60, 1.0), (62, 1.5), (64, 1.5)]]
    piano.notes[1].end = 0.5    # pretty_midi refuses a negative length only when a note is made
    performance.instruments = [piano]
    np.testing.assert_allclose(midi.notes_from_midi(performance), [[64, 90, 1.0, 1.5]])


def test_the_sustain_pedal_holds_released_notes_until_lifted_or_restruck():
    performance = pretty_midi.PrettyMIDI()
    piano = pretty_midi.Instrument(program=0)
    piano.notes = [pretty_midi.Note(velocity=80, pitch=pitch, start=start, end=end) for pitch, start, end in [
        (60, 0.0, 0.5),    # released before the pedal: unchanged
        (62, 0.5, 1.5),    # released under the pedal: held until it lifts at 3.0
        (64, 1.2, 1.4),    # released under the pedal, struck again at 2.0: held until then
        (64, 2.0, 2.5),
        (65, 2.5, 4.0),    # released after the lift: unchanged
        (67, 5.0, 5.5),    # under a pedal never lifted: held until the last release, 6.0
        (69, 5.0, 6.0)]]
    piano.control_changes = [pretty_midi.ControlChange(number, value, time) for number, value, time in [
        (67, 127, 0.0),    # the soft pedal changes nothing
        (64, 64, 1.0), (64, 100, 2.2), (64, 63, 3.0), (64, 127, 5.2)]]
    performance.instruments = [piano]
    sustained = midi.notes_from_midi(performance)
    np.testing.assert_allclose(sustained[:, 2:], [[0.0, 0.5], [0.5, 3.0], [1.2, 2.0], [2.0, 3.0], [2.5, 4.0],
                                                  [5.0, 6.0], [5.0, 6.0]])
    np.testing.assert_allclose(midi.notes_from_midi(performance, sustain=False)[:, 3], [0.5, 1.5, 1.4, 2.5, 4.0, 5.5, 6.0])


def test_transposition_drops_notes_leaving_the_midi_range_and_stretch_scales_times():
    notes = np.array([[1, 50, 0.0, 1.0], [60, 60, 1.0, 2.0], [126, 70, 2.0, 4.0]], np.float32)
    np.testing.assert_array_equal(midi.transpose_notes(notes, 2), [[3, 50, 0, 1], [62, 60, 1, 2]])
    np.testing.assert_array_equal(midi.transpose_notes(notes, -2), [[58, 60, 1, 2], [124, 70, 2, 4]])
    np.testing.assert_allclose(midi.stretch_notes(notes, 1.05), [[1, 50, 0, 1.05], [60, 60, 1.05, 2.1],
                                                                 [126, 70, 2.1, 4.2]], rtol=1e-6)
    assert notes[0, 0] == 1 and notes[2, 3] == 4.0    # the input is left alone


def test_the_piano_roll_puts_high_pitches_on_top_and_velocity_as_brightness(tmp_path):
    notes = np.array([[60, 127, 0.0, 0.02], [62, 64, 0.01, 0.03]], np.float32)
    roll = midi.piano_roll(notes)
    assert roll.dtype == np.uint8
    np.testing.assert_array_equal(roll, [[0, 129, 129], [0, 0, 0], [255, 255, 0]])   # rows: pitches 62, 61, 60
    full = midi.piano_roll(notes, full_range=True)
    assert full.shape == (128, 3) and (full[127 - 60] == roll[2]).all() and full.sum() == roll.sum()
    rendering.save_piano_roll_png(notes, str(tmp_path / 'roll.png'), columns_per_second=100, rows_per_pitch=2)
    picture = np.asarray(Image.open(tmp_path / 'roll.png'))
    np.testing.assert_array_equal(picture, np.repeat(roll, 2, axis=0))
    rendering.save_piano_roll_png(np.zeros((0, 4)), str(tmp_path / 'silence.png'))
    assert Image.open(tmp_path / 'silence.png').size == (1, 1)


# --- maestro, over a tiny manual_dir as the zip extracts ---------------------------------------------

MAESTRO_ROWS = [   # (split, midi_filename, notes (pitch, velocity, start, end) on whole ticks, pedal)
    ('train', '2004/one.midi', [(60, 80, 0.5, 1.0), (64, 90, 1.0, 1.5)], [(127, 0.75), (0, 2.0)]),
    ('validation', '2006/two.midi', [(72, 100, 0.0, 0.25)], []),
    ('test', '2008/three.midi', [(48, 50, 0.1, 3.0)], []),
]


def prepare_maestro(tmp_path):
    from transformer_lab.data.builders import maestro
    builder = maestro.Maestro(data_dir=tmp_path / 'data')
    builder.download_and_prepare(file_format='array_record',
                                 download_config=tfds.download.DownloadConfig(manual_dir=tmp_path / 'manual'))
    return builder


def test_maestro_reads_the_metadata_splits_and_sustained_notes(tmp_path):
    write_maestro(tmp_path / 'manual' / 'maestro-v3.0.0', MAESTRO_ROWS)    # one folder down, as the zip extracts
    builder = prepare_maestro(tmp_path)
    assert {split: info.num_examples for split, info in builder.info.splits.items()} == {
        'train': 1, 'validation': 1, 'test': 1}
    expected = {'train': [[60, 80, 0.5, 2.0], [64, 90, 1.0, 2.0]],   # the pedal holds both until 2.0
                'validation': [[72, 100, 0.0, 0.25]], 'test': [[48, 50, 0.1, 3.0]]}
    for (split, midi_filename, _, _), source in zip(MAESTRO_ROWS, map(builder.as_data_source, expected)):
        example = source[0]
        assert example['piece'].decode() == midi_filename and example['notes'].dtype == np.float32
        np.testing.assert_allclose(example['notes'], expected[split], atol=1e-4)


def test_maestro_without_its_metadata_or_midi_files_says_what_is_missing(tmp_path):
    from transformer_lab.data.builders import maestro
    (tmp_path / 'manual').mkdir()
    (tmp_path / 'manual' / 'README').write_text('not the metadata')
    with pytest.raises(DataSourceError, match=str(tmp_path / 'manual') + r'.*\.mid.*maestro-v\*\.csv'):
        prepare_maestro(tmp_path)
    write_maestro(tmp_path / 'manual' / 'maestro-v2.0.0', MAESTRO_ROWS)
    (tmp_path / 'manual' / 'maestro-v2.0.0' / '2006' / 'two.midi').unlink()
    with pytest.raises(DataSourceError, match='2006/two.midi'):
        prepare_maestro(tmp_path)
    assert not maestro.Maestro(data_dir=tmp_path / 'data').is_prepared()


def test_maestro_metadata_reads_from_csv_and_both_json_layouts(tmp_path):
    from transformer_lab.data.builders.maestro import read_metadata
    write_maestro(tmp_path / 'v3', MAESTRO_ROWS)
    rows = read_metadata(tmp_path / 'v3' / 'maestro-v3.0.0.csv')
    assert [(row['split'], row['midi_filename']) for row in rows] == [r[:2] for r in MAESTRO_ROWS]
    columns = {column: {str(i): row[column] for i, row in enumerate(rows)} for column in MAESTRO_COLUMNS}
    columns = {column: dict(reversed(values.items())) for column, values in columns.items()}  # order by index
    (tmp_path / 'v3' / 'maestro-v3.0.0.json').write_text(json.dumps(columns))
    (tmp_path / 'v3' / 'maestro-v2.0.0.json').write_text(json.dumps(rows))
    assert read_metadata(tmp_path / 'v3' / 'maestro-v3.0.0.json') == rows
    assert read_metadata(tmp_path / 'v3' / 'maestro-v2.0.0.json') == rows


# --- music21_performances: the rendering of one score --------------------------------------------------

def test_the_skyline_keeps_the_highest_note_of_each_onset_cut_where_the_next_starts():
    notes = np.array([[60, 80, 0.0, 2.0], [67, 80, 0.0, 1.0],      # onset 0: 67 over 60
                      [64, 80, 1.004, 1.5], [62, 80, 1.0, 3.0],     # one 10 ms step apart: one onset, 64
                      [55, 80, 1.5, 2.5],                           # the only note of its onset, low as it is
                      [72, 90, 2.0, 4.0]], np.float32)              # cuts nothing after it: the last
    np.testing.assert_allclose(midi.skyline(notes), [[67, 80, 0.0, 1.0], [64, 80, 1.004, 1.5],
                                                     [55, 80, 1.5, 2.0], [72, 90, 2.0, 4.0]], atol=1e-6)
    assert midi.skyline(np.zeros((0, 4))).shape == (0, 4)


def test_a_scores_melody_is_its_top_part_one_note_at_a_time():
    from music21 import chord, corpus, note, stream
    from transformer_lab.data.builders.music21_performances import score_notes, top_part_melody
    chorale = corpus.parse('bach/bwv66.6')
    melody, notes = top_part_melody(chorale), score_notes(chorale)
    soprano = score_notes(stream.Score([chorale.parts[0]]))   # the soprano alone, at the chorale's default tempo
    np.testing.assert_allclose(melody[:3], [[73, 70, 0.0, 0.3125], [71, 70, 0.3125, 0.625], [69, 70, 0.625, 1.25]])
    assert len(melody) == len(soprano) and {tuple(row) for row in melody[:, [0, 2, 3]]} <= {
        tuple(row) for row in notes[:, [0, 2, 3]]}
    upper = stream.Part([chord.Chord(['C4', 'E4', 'G4']), note.Note('A4')])
    score = stream.Score([upper, stream.Part([note.Note('C5', quarterLength=2)])])   # a higher lower part
    np.testing.assert_array_equal(top_part_melody(score)[:, 0], [67, 69])   # chords' top notes; part 2 unheard


def test_a_chorale_renders_at_its_tempo_mark_with_every_voice():
    from music21 import corpus
    from transformer_lab.data.builders.music21_performances import score_notes
    notes = score_notes(corpus.parse('bach/bwv66.6'))      # its mark: quarter = 96, so 0.625 s a quarter
    assert notes.dtype == np.float32 and len(notes) == 163
    # The opening beats (see tests/test_music_data.py): soprano C#5 B4 A4, alto E4 F#4, tenor A3 B3 C#4,
    # bass A3 G#3 F#3; no dynamics, so mf (velocity 70) throughout.
    np.testing.assert_allclose(notes[:11], [
        [57, 70, 0.0, 0.3125], [57, 70, 0.0, 0.3125], [64, 70, 0.0, 0.625], [73, 70, 0.0, 0.3125],
        [56, 70, 0.3125, 0.625], [59, 70, 0.3125, 0.625], [71, 70, 0.3125, 0.625],
        [54, 70, 0.625, 1.25], [61, 70, 0.625, 1.25], [66, 70, 0.625, 1.25], [69, 70, 0.625, 1.25]])
    assert (notes[:, 1] == 70).all() and np.isclose(notes[:, 3].max(), 36 * 0.625)


def test_tempo_changes_dynamics_ties_chords_and_grace_notes_are_rendered():
    from music21 import chord, dynamics, note, stream, tempo, tie
    from transformer_lab.data.builders.music21_performances import DEFAULT_BPM, score_notes
    upper, lower = stream.Part(), stream.Part()
    held, released = note.Note('D4', quarterLength=2), note.Note('D4', quarterLength=1)
    held.tie, released.tie = tie.Tie('start'), tie.Tie('stop')
    for offset, element in [(0, tempo.MetronomeMark(number=120)), (0, note.Note('C4')),
                            (1, note.Note('B3').getGrace()), (1, dynamics.Dynamic('f')),
                            (1, chord.Chord(['E4', 'G4'])), (2, dynamics.Dynamic('sf')), (2, held),
                            (4, tempo.MetronomeMark(number=60)), (4, released)]:
        upper.insert(offset, element)
    lower.insert(0, note.Note('C3', quarterLength=5))
    score = stream.Score()
    score.insert(0, upper)
    score.insert(0, lower)
    # Quarters 0-4 at 120 bpm (0.5 s each), 4-5 at 60 (1 s); f = 0.7 -> 89, mf (the lower part) 0.55 -> 70.
    np.testing.assert_allclose(score_notes(score), [[48, 70, 0.0, 3.0], [60, 70, 0.0, 0.5], [64, 89, 0.5, 1.0],
                                                    [67, 89, 0.5, 1.0], [62, 89, 1.0, 3.0]])
    unmarked = stream.Score([stream.Part([note.Note('C4', quarterLength=2)])])
    np.testing.assert_allclose(score_notes(unmarked), [[60, 70, 0.0, 2 * 60 / DEFAULT_BPM]])


def test_a_midi_file_renders_as_audio_of_its_length_that_is_not_silent(tmp_path):
    """Two seconds of notes (C4 then E4 + G4) through FluidSynth and the General MIDI soundfont: a WAV of the
    two seconds plus the synthesizer's release and reverb tail (~3 s), sound where the notes are, near silence
    at its end."""
    import wave
    notes = np.array([[60, 90, 0.0, 1.0], [64, 90, 1.0, 2.0], [67, 90, 1.0, 2.0]])
    midi.notes_to_midi(notes).write(str(tmp_path / 'chord.mid'))
    assert rendering.save_wav(str(tmp_path / 'chord.mid'), str(tmp_path / 'chord.wav'))
    with wave.open(str(tmp_path / 'chord.wav')) as audio:
        rate, channels = audio.getframerate(), audio.getnchannels()
        samples = np.frombuffer(audio.readframes(audio.getnframes()), np.int16).reshape(-1, channels)
    seconds = len(samples) / rate
    assert rate == rendering.AUDIO_SAMPLE_RATE and 2.0 <= seconds <= 6.0

    def loudness(start, end):   # root mean square, of int16's 32767
        return np.sqrt(np.mean(samples[int(start * rate):int(end * rate)].astype(float) ** 2))

    assert loudness(0.0, 2.0) > 100 and loudness(0.0, 2.0) > 50 * loudness(seconds - 0.5, seconds)


def test_without_fluidsynth_a_sample_is_midi_only_after_one_notice(tmp_path, monkeypatch, capsys):
    midi.notes_to_midi(np.array([[60, 90, 0.0, 0.5]])).write(str(tmp_path / 'note.mid'))
    monkeypatch.setenv('SOUNDFONT', str(tmp_path / 'missing.sf2'))
    assert not rendering.save_wav(str(tmp_path / 'note.mid'), str(tmp_path / 'note.wav'))
    assert not (tmp_path / 'note.wav').exists()
    assert capsys.readouterr().err.strip() == (
        f'notice: MIDI only, no WAV: the soundfont {tmp_path / "missing.sf2"} not found (Debian: sudo apt-get '
        f'install fluidsynth fluid-soundfont-gm; or $SOUNDFONT=FILE.sf2)')
