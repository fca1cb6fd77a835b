"""Performances as notes and as the 388 events of the Music Transformer.

The event vocabulary is that of Performance RNN (Oore et al. 2018, "This time with feeling: learning
expressive musical performance", Sec. 3.3), used by the Music Transformer (Huang et al. 2018, Sec. 5.2):

    NOTE_ON + p        0..127    pitch p starts sounding
    NOTE_OFF + p     128..255    pitch p stops
    TIME_SHIFT + k-1 256..355    time moves on by k steps of 10 ms (k = 1..100: 10 ms .. 1 s)
    SET_VELOCITY + b 356..387    later NOTE_ONs have velocity bin b (MIDI velocity 1..127 in 32 bins)

No maintained library implements this encoding, so it is written here. A performance is held as notes,
a float32 array [n, 4] with columns (pitch, velocity, start seconds, end seconds), the form the music
datasets store; ``notes_to_events`` and ``events_to_notes`` convert, and the round trip keeps every note
up to the 10 ms grid and its velocity bin. pretty_midi (imported where MIDI files are read or written)
converts notes from and to MIDI.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pretty_midi

PITCH, VELOCITY, START, END = range(4)    # the columns of a notes array

NUM_PITCHES = 128
MAX_SHIFT_STEPS = 100
VELOCITY_BINS = 32
NOTE_ON = 0
NOTE_OFF = NOTE_ON + NUM_PITCHES
TIME_SHIFT = NOTE_OFF + NUM_PITCHES
SET_VELOCITY = TIME_SHIFT + MAX_SHIFT_STEPS
NUM_EVENTS = SET_VELOCITY + VELOCITY_BINS     # 388
STEPS_PER_SECOND = 100

# Bins of 4 MIDI velocities: 1-4, 5-8, ..., 121-124, and 125-127 for the last.
VELOCITIES_PER_BIN = 4
# The velocity of a NOTE_ON before any SET_VELOCITY (notes_to_events never writes one; a sampled
# sequence may): the bin of MIDI velocity 64, mezzo-forte.
DEFAULT_VELOCITY_BIN = (64 - 1) // VELOCITIES_PER_BIN

SUSTAIN_PEDAL = 64    # the MIDI control change of the sustain (damper) pedal; value >= 64 is down


def velocity_bin(velocity) -> np.ndarray:
    """MIDI velocities (clipped to 1..127) -> their bins 0..31 (int64, same shape)."""
    velocity = np.clip(np.round(np.asarray(velocity, np.float64)), 1, 127).astype(np.int64)
    return (velocity - 1) // VELOCITIES_PER_BIN


def bin_velocity(bin_index) -> np.ndarray:
    """Velocity bins 0..31 -> the velocity each stands for, the middle of the bin rounded down (2, 6,
    ..., 122, and 126 for 125-127)."""
    return np.asarray(bin_index, np.int64) * VELOCITIES_PER_BIN + 2


def notes_from_midi(midi: pretty_midi.PrettyMIDI, *, sustain: bool = True) -> np.ndarray:
    """The notes of every non-drum instrument of ``midi``, merged -> float32 [n, 4] (pitch, velocity,
    start s, end s), sorted by start, then pitch.

    Notes of zero or negative length (as written in the file) are dropped. With ``sustain``, each
    instrument's sustain pedal lengthens its notes as Performance RNN does for MAESTRO: a note released
    while the pedal is down sounds on until the pedal is lifted, or until its pitch is struck again if
    that comes first. A pedal never lifted is lifted at the instrument's last note release or pedal change.
    """
    parts = []
    for instrument in midi.instruments:
        if instrument.is_drum:
            continue
        notes = np.array([(n.pitch, n.velocity, n.start, n.end) for n in instrument.notes],
                         np.float64).reshape(-1, 4)
        notes = notes[notes[:, END] > notes[:, START]]
        if sustain:
            pedal = sorted((change.time, change.value >= 64) for change in instrument.control_changes
                           if change.number == SUSTAIN_PEDAL)
            notes = _sustained(notes, pedal)
        parts.append(notes)
    return _sorted(np.concatenate(parts) if parts else np.zeros((0, 4)))


def _sustained(notes: np.ndarray, pedal: list[tuple[float, bool]]) -> np.ndarray:
    """float64 notes [n, 4] with their releases under the pedal moved on; ``pedal`` is (time, is_down)
    per sustain change, in time order."""
    presses, lifts, down_since = [], [], None
    last_time = max([notes[:, END].max(initial=0.0)] + [time for time, _ in pedal])
    for time, is_down in pedal + [(last_time, False)]:
        if is_down and down_since is None:
            down_since = time
        elif not is_down and down_since is not None:
            presses.append(down_since)
            lifts.append(time)
            down_since = None
    if not presses:
        return notes
    presses, lifts = np.asarray(presses), np.asarray(lifts)
    ends = notes[:, END]
    press = np.searchsorted(presses, ends, side='right') - 1    # the last press at or before the release
    held = (press >= 0) & (ends < lifts[np.maximum(press, 0)])
    # The next strike of the same pitch, strictly after this note's start (inf if none).
    next_strike = np.full(len(notes), np.inf)
    for pitch in np.unique(notes[:, PITCH]):
        same = np.flatnonzero(notes[:, PITCH] == pitch)
        starts = np.sort(notes[same, START])
        following = np.searchsorted(starts, notes[same, START], side='right')
        next_strike[same] = np.append(starts, np.inf)[following]
    sustained = notes.copy()
    sustained[held, END] = np.maximum(ends[held], np.minimum(lifts[press[held]], next_strike[held]))
    return sustained


def read_notes(path) -> np.ndarray:
    """A MIDI file -> float32 [n, 4] notes, sustain applied (``notes_from_midi``)."""
    import pretty_midi  # only MIDI reading and writing needs it, not the events
    with open(path, 'rb') as file:
        return notes_from_midi(pretty_midi.PrettyMIDI(file), sustain=True)


def read_named_notes(path: str, flag: str) -> np.ndarray:
    """The notes of a MIDI file a user named with ``flag`` (``read_notes``), or a ValueError that says
    why they cannot be read: no such file, or not MIDI (parsers raise all kinds of errors on such a file)."""
    if not os.path.isfile(path):
        raise ValueError(f'{flag}={path}: no such file')
    try:
        return read_notes(path)
    except Exception as error:  # noqa: BLE001 - any parser failure means: not a MIDI file we can read
        reason = str(error).strip().splitlines()[0] if str(error).strip() else ''
        raise ValueError(f'{flag}={path}: not a MIDI file that can be read ({type(error).__name__}: {reason})') from None


def notes_to_midi(notes: np.ndarray, *, program: int = 0) -> pretty_midi.PrettyMIDI:
    """Notes [n, 4] (pitch, velocity, start s, end s) -> a PrettyMIDI with one instrument of General MIDI
    ``program`` (0 = acoustic grand piano). 480 ticks per quarter note at 120 bpm time the notes to
    about 1 ms; velocities are rounded and clipped to 1..127."""
    import pretty_midi  # only MIDI reading and writing needs it, not the events
    performance = pretty_midi.PrettyMIDI(resolution=480, initial_tempo=120.0)
    instrument = pretty_midi.Instrument(program=program)
    for pitch, velocity, start, end in np.asarray(notes, np.float64).reshape(-1, 4):
        instrument.notes.append(pretty_midi.Note(velocity=int(np.clip(round(velocity), 1, 127)), pitch=int(pitch),
                                                 start=float(start), end=float(end)))
    performance.instruments.append(instrument)
    return performance


def notes_to_events(notes: np.ndarray) -> np.ndarray:
    """Notes [n, 4] (pitch, velocity, start s, end s) -> int32 [m] events 0..387.

    Times are rounded to the 10 ms grid; a note that would last less than one step lasts one. At equal
    times NOTE_OFFs come before NOTE_ONs, and each kind goes up in pitch. A pitch struck while it still
    sounds is released first (the earlier note ends there, its own release is dropped); of notes of one
    pitch starting on the same step only the longest is kept. A SET_VELOCITY precedes the first NOTE_ON
    and every NOTE_ON whose velocity bin differs from the one before; a wait of more than 1 s is
    several TIME_SHIFTs (1 s each, then the rest).
    """
    notes = np.asarray(notes, np.float64).reshape(-1, 4)
    pitches = notes[:, PITCH].astype(np.int64)
    bins = velocity_bin(notes[:, VELOCITY])
    starts = np.round(notes[:, START] * STEPS_PER_SECOND).astype(np.int64)
    ends = np.maximum(np.round(notes[:, END] * STEPS_PER_SECOND).astype(np.int64), starts + 1)
    # (step, 0 = release / 1 = strike, pitch, longest first, note): sorted, this is the event order.
    marks = sorted([(int(ends[i]), 0, int(pitches[i]), 0, i) for i in range(len(notes))]
                   + [(int(starts[i]), 1, int(pitches[i]), -int(ends[i]), i) for i in range(len(notes))])
    events, now, current_bin = [], 0, None
    sounding = {}    # pitch -> (note, its start step)

    def emit(event: int, step: int) -> None:
        nonlocal now
        while step > now:
            shift = min(step - now, MAX_SHIFT_STEPS)
            events.append(TIME_SHIFT + shift - 1)
            now += shift
        events.append(event)

    for step, is_strike, pitch, _, note in marks:
        if not is_strike:
            if sounding.get(pitch, (None,))[0] == note:
                emit(NOTE_OFF + pitch, step)
                del sounding[pitch]
            continue
        if pitch in sounding:
            if sounding[pitch][1] == step:
                continue    # a shorter duplicate of the note just struck
            emit(NOTE_OFF + pitch, step)
        if bins[note] != current_bin:
            current_bin = bins[note]
            emit(SET_VELOCITY + int(current_bin), step)
        emit(NOTE_ON + pitch, step)
        sounding[pitch] = (note, step)
    return np.asarray(events, np.int32)


def events_to_notes(events: np.ndarray) -> np.ndarray:
    """int [m] events 0..387 -> float32 notes [n, 4] (pitch, velocity, start s, end s), sorted by start,
    then pitch; each velocity is its bin's (``bin_velocity``), the default bin's before any SET_VELOCITY.

    A NOTE_ON of a sounding pitch ends the earlier note there; a NOTE_OFF of a silent pitch is ignored;
    notes still sounding after the last event end at the final time. A note that would end at the instant
    it starts lasts one step (10 ms, the shortest the events express), except one cut off by a NOTE_ON
    of its own pitch at that instant, which is dropped (the new strike replaces it).
    """
    events = np.asarray(events, np.int64).reshape(-1)
    if events.size and (events.min() < 0 or events.max() >= NUM_EVENTS):
        raise ValueError(f'events must lie in 0..{NUM_EVENTS - 1}, got {events.min()}..{events.max()}')
    notes, sounding = [], {}    # sounding: pitch -> (start step, velocity)
    now, velocity = 0, int(bin_velocity(DEFAULT_VELOCITY_BIN))

    def close(pitch: int, *, restruck: bool = False) -> None:
        start, note_velocity = sounding.pop(pitch)
        if now > start or not restruck:
            notes.append((pitch, note_velocity, start, max(now, start + 1)))

    for event in events.tolist():
        if event < NOTE_OFF:
            if event in sounding:
                close(event, restruck=True)
            sounding[event] = (now, velocity)
        elif event < TIME_SHIFT:
            if event - NOTE_OFF in sounding:
                close(event - NOTE_OFF)
        elif event < SET_VELOCITY:
            now += event - TIME_SHIFT + 1
        else:
            velocity = int(bin_velocity(event - SET_VELOCITY))
    for pitch in list(sounding):
        close(pitch)
    notes = np.asarray(notes, np.float64).reshape(-1, 4)
    notes[:, START:] /= STEPS_PER_SECOND
    return _sorted(notes)


def transpose_notes(notes: np.ndarray, semitones: int) -> np.ndarray:
    """Notes [n, 4] moved by ``semitones`` (the Music Transformer's augmentation, Huang et al. 2018, Sec.
    5.2: within +-3, ``data.transpose``); notes leaving MIDI pitches 0..127 are dropped."""
    moved = np.array(notes, np.float32).reshape(-1, 4)
    moved[:, PITCH] += semitones
    return moved[(moved[:, PITCH] >= 0) & (moved[:, PITCH] < NUM_PITCHES)]


def stretch_notes(notes: np.ndarray, factor: float) -> np.ndarray:
    """Notes [n, 4] with start and end times multiplied by ``factor`` (> 1 is slower; the paper's factors
    0.95 .. 1.05 are ``data.time_stretches``)."""
    stretched = np.array(notes, np.float32).reshape(-1, 4)
    stretched[:, START:] *= factor
    return stretched


def skyline(notes: np.ndarray) -> np.ndarray:
    """The melody of notes [n, 4] by the skyline rule (Uitdenbogerd & Zobel 1999, "all-mono"): at each
    onset (starts on the same 10 ms step are one onset) the highest note starting there, each cut where
    the next one starts; a melody of float32 [m, 4], one note sounding at a time. Written here: no
    maintained library extracts a melody from notes this way."""
    notes = np.asarray(notes, np.float32).reshape(-1, 4)
    if not len(notes):
        return notes
    onsets = np.round(notes[:, START] * STEPS_PER_SECOND).astype(np.int64)
    by_onset = np.lexsort((-notes[:, PITCH], onsets))       # each onset's highest note first
    first = np.concatenate([[True], np.diff(onsets[by_onset]) > 0])
    melody = notes[by_onset[first]].copy()
    melody[:-1, END] = np.minimum(melody[:-1, END], melody[1:, START])
    return melody


def piano_roll(notes: np.ndarray, *, steps_per_second: float = STEPS_PER_SECOND,
               full_range: bool = False) -> np.ndarray:
    """Notes [n, 4] -> uint8 [pitches, steps] image: the highest pitch in the top row, one column per
    1 / ``steps_per_second`` s from time 0 to the last release, a sounding note as bright as its velocity
    (127 -> 255, silence 0; overlapping notes show the louder). Rows span MIDI 127..0 with
    ``full_range``, else the highest..lowest pitch played (no rows without notes)."""
    notes = np.asarray(notes, np.float64).reshape(-1, 4)
    if not len(notes):
        return np.zeros((NUM_PITCHES if full_range else 0, 0), np.uint8)
    pitches = notes[:, PITCH].astype(np.int64)
    top, bottom = (NUM_PITCHES - 1, 0) if full_range else (pitches.max(), pitches.min())
    starts = np.round(notes[:, START] * steps_per_second).astype(np.int64)
    ends = np.maximum(np.round(notes[:, END] * steps_per_second).astype(np.int64), starts + 1)
    roll = np.zeros((top - bottom + 1, ends.max()), np.uint8)
    brightness = np.round(np.clip(notes[:, VELOCITY], 0, 127) * 255 / 127).astype(np.uint8)
    for pitch, start, end, value in zip(pitches, starts, ends, brightness):
        row = roll[top - pitch, start:end]
        np.maximum(row, value, out=row)
    return roll


def _sorted(notes: np.ndarray) -> np.ndarray:
    """float32 notes sorted by start, then pitch, then end."""
    return notes[np.lexsort((notes[:, END], notes[:, PITCH], notes[:, START]))].astype(np.float32)
