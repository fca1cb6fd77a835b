"""The input pipeline for symbolic music: pieces -> token windows for a decoder-only model.

A piece is a chorale grid (``voices`` uint8 [steps, 4], tokenizer ``chorale``) or a performance
(``notes`` float32 [n, 4], tokenizer ``performance``: MIDI events). Every batch is a dict of int32
numpy arrays: ``targets`` [rows, max_length] of tokens, each piece ending with EOS; chorales add
``targets_voices`` (1..4 = S, A, T, B; 0 at EOS and padding).

Training rows are random crops (``random_crop``): each row a window of ``max_length`` tokens at a
random offset of its own randomly drawn piece, so a batch spans as many pieces as it has rows (Huang et
al. 2018, Sec. 5.2, train on random crops). A piece shorter than a row is padded, not joined to the
next: every row is one piece's music, and padding carries no loss. Evaluation rows are the windows of
the concatenated token stream of a split, every token once (the usual protocol for NLL per token,
attention running across the EOS between pieces).

Training pieces are augmented as in the Music Transformer (Huang et al. 2018, Sec. 5.1-5.2):
transposed by a random number of semitones in [-data.transpose, data.transpose] and (performances)
time-stretched by a factor drawn from ``data.time_stretches``, drawn from the seed and the piece's place
in the stream, so the stream and its checkpointed position are reproducible; evaluation pieces are not
augmented. The tokens of every piece are computed once per time stretch and kept (data/token_store.py);
a transposition moves the kept tokens (``transpose_tokens``) instead of encoding the piece again.

Melody-conditioned performances (``data.inputs_feature='melody'``, Huang et al. 2018, Sec. 5.3: an
encoder-decoder model): each row adds ``inputs`` [rows, max_length], the events of the piece's
``melody`` that start within the time its ``targets`` window spans (``melody_window``), ending with EOS.
Training windows are random crops of the augmented piece, melody augmented alike; evaluation rows are
each piece's consecutive windows, every token once.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Iterator

import grain
import numpy as np

from transformer_lab.data import midi, token_store
from transformer_lab.data.batching import Batches, Order
from transformer_lab.data.packing import Windows
from transformer_lab.config import ConfigError, require
from transformer_lab.data.source import Dataset, TfdsPipeline, pad_to
from transformer_lab.data.token_store import Ragged
from transformer_lab.data.tokenizers import EOS_ID, until_eos


class ChoraleTokenizer:
    """Chorale grids as tokens: the S, A, T, B pitches of each 16th note in turn, MIDI pitch p -> p + 2
    and a rest -> 2 (0 and 1 stay padding and EOS). ``voice_ids`` tells each token's voice (1..4)."""

    OFFSET = 2
    vocab_size = 128 + OFFSET
    voices = 4
    fingerprint = 'chorale-1'   # names kept token ids (data/token_store.py): change it when encode changes
    seconds_per_step = 0.125     # a 16th note at 120 quarter notes per minute, for listening
    velocity = 80

    def encode(self, grid) -> list[int]:
        """uint8 [steps, 4] pitches (0 = rest) -> tokens, time-major."""
        return [int(p) + self.OFFSET for p in np.asarray(grid).reshape(-1)]

    def voice_ids(self, grid) -> list[int]:
        """The voice (1 = S, ..., 4 = B) of each token of ``encode(grid)``."""
        return list(np.tile(np.arange(1, self.voices + 1), len(grid)))

    def decode(self, ids: Iterable[int]) -> np.ndarray:
        """Tokens (up to EOS; an unfinished last step is dropped) -> uint8 [steps, 4] pitches."""
        pitches = [max(int(i) - self.OFFSET, 0) for i in until_eos(ids)]
        steps = len(pitches) // 4
        return np.asarray(pitches[:steps * 4], np.uint8).reshape(steps, 4)

    @staticmethod
    def transpose(grid: np.ndarray, semitones: int) -> np.ndarray:
        """Moves every sounding pitch by ``semitones`` (clipped to MIDI 1..127), keeping the rests."""
        shifted = np.clip(grid.astype(np.int32) + semitones, 1, 127)
        return np.where(grid > 0, shifted, 0).astype(grid.dtype)

    def transpose_tokens(self, tokens: np.ndarray, semitones: int) -> np.ndarray:
        """``encode(transpose(grid, semitones))`` from ``encode(grid)``'s tokens (EOS and padding kept)."""
        sounding = tokens > self.OFFSET
        return np.where(sounding, np.clip(tokens - self.OFFSET + semitones, 1, 127) + self.OFFSET, tokens)

    def to_notes(self, ids: Iterable[int]) -> np.ndarray:
        """Tokens -> float32 [n, 4] notes (pitch, velocity, start s, end s): a voice holding one pitch
        over consecutive steps is one note (the grid cannot tell a repeated note from a held one)."""
        grid = self.decode(ids)
        notes = []
        for voice in grid.T:
            changes = np.flatnonzero(np.diff(voice.astype(np.int32), prepend=-1, append=-1))
            for start, end in zip(changes[:-1], changes[1:]):
                if voice[start]:
                    notes.append((voice[start], self.velocity, start * self.seconds_per_step,
                                  end * self.seconds_per_step))
        notes = np.asarray(notes, np.float32).reshape(-1, 4)
        return notes[np.lexsort((notes[:, 0], notes[:, 2]))]

    def read_primer(self, path: str, seconds: float = 0.0) -> np.ndarray:
        """A MIDI or MusicXML file read with music21 onto the grid (``chorale_grid``), its first ``seconds``
        at ``seconds_per_step`` (0: all) as tokens, int32 (no EOS). The voices: four parts named soprano,
        alto, tenor and bass, or else any four parts, top to bottom in the file's order. A file music21
        cannot read, or one of another number of parts, is a ValueError that says so."""
        from music21 import converter

        from transformer_lab.data.builders.bach_chorales import VOICES, chorale_grid
        try:
            score = converter.parse(path)
        except Exception as error:   # music21's parsers raise all kinds of errors on a file they cannot read
            raise ValueError(f'--primer={path}: not a MIDI or MusicXML file music21 can read ({type(error).__name__})')
        parts = list(score.parts)
        if {(part.partName or '').strip().lower() for part in parts} != set(VOICES):
            if len(parts) != len(VOICES):
                raise ValueError(f'--primer={path}: a chorale primer needs four parts (soprano, alto, tenor, '
                                 f'bass, top to bottom); the file has {len(parts)}')
            for part, voice in zip(parts, VOICES):
                part.partName = voice
        grid = chorale_grid(score)
        if seconds:
            grid = grid[:int(round(seconds / self.seconds_per_step))]
        if not len(grid):
            raise ValueError(f'--primer={path}: no notes' + (f' in its first {seconds:g} s' if seconds else ''))
        return np.asarray(self.encode(grid), np.int32)

    def token_onsets(self, ids: Iterable[int]) -> np.ndarray:
        """float [len(ids), 2]: the (time in seconds, pitch) each token sounds, for pictures of attention
        over a piano roll; NaN for rests, EOS and padding."""
        ids = np.asarray(ids).reshape(-1)
        times = np.arange(len(ids)) // 4 * self.seconds_per_step
        pitches = np.where(ids > self.OFFSET, ids - self.OFFSET, np.nan)
        return np.stack([np.where(np.isnan(pitches), np.nan, times), pitches], axis=-1)


class PerformanceTokenizer:
    """Performance events as tokens (Oore et al. 2018; Huang et al. 2018, Sec. 5.2): the 388 events of
    data/midi.py (NOTE_ON, NOTE_OFF, TIME_SHIFT, SET_VELOCITY) as ids 2..389, after padding and EOS."""

    OFFSET = 2
    vocab_size = midi.NUM_EVENTS + OFFSET
    voices = 0
    fingerprint = 'performance-1'   # names kept token ids (data/token_store.py): change it when the events change

    def encode(self, notes) -> list[int]:
        """float [n, 4] notes (pitch, velocity, start s, end s) -> tokens."""
        return [int(e) + self.OFFSET for e in midi.notes_to_events(np.asarray(notes))]

    def decode(self, ids: Iterable[int]) -> np.ndarray:
        """Tokens (up to EOS) -> the events' notes, float32 [n, 4]."""
        events = [int(i) - self.OFFSET for i in until_eos(ids) if int(i) >= self.OFFSET]
        return midi.events_to_notes(np.asarray(events, np.int32))

    to_notes = decode

    def read_primer(self, path: str, seconds: float = 0.0) -> np.ndarray:
        """A MIDI file's opening as tokens to continue, int32 (no EOS): its notes (sustain applied, every
        non-drum instrument) that start within the first ``seconds`` (0: all), those still sounding then
        released there. A file that is not MIDI, or holds no notes there, is a ValueError that says so."""
        notes = midi.read_named_notes(path, '--primer')
        if seconds:
            notes = notes[notes[:, 2] < seconds]
            notes[:, 3] = np.minimum(notes[:, 3], seconds)
        if not len(notes):
            raise ValueError(f'--primer={path}: no notes' + (f' in its first {seconds:g} s' if seconds else ''))
        return np.asarray(self.encode(notes), np.int32)

    def token_onsets(self, ids: Iterable[int]) -> np.ndarray:
        """float [len(ids), 2]: (time in seconds, pitch) of each NOTE_ON token, the time the shifts before
        it add up to; NaN for the other events, EOS and padding."""
        onsets, time = np.full((len(ids), 2), np.nan), 0.0
        for position, token in enumerate(np.asarray(ids).reshape(-1)):
            event = int(token) - self.OFFSET
            if midi.TIME_SHIFT <= event < midi.SET_VELOCITY:
                time += (event - midi.TIME_SHIFT + 1) / midi.STEPS_PER_SECOND
            elif midi.NOTE_ON <= event < midi.NOTE_OFF:
                onsets[position] = time, event - midi.NOTE_ON
        return onsets

    def token_times(self, ids: np.ndarray) -> np.ndarray:
        """float64 [n]: the time in seconds at each token, that of the TIME_SHIFTs before it."""
        events = np.asarray(ids).reshape(-1) - self.OFFSET
        shifts = np.where((events >= midi.TIME_SHIFT) & (events < midi.SET_VELOCITY),
                          events - midi.TIME_SHIFT + 1, 0) / midi.STEPS_PER_SECOND
        return np.concatenate([[0.0], np.cumsum(shifts)[:-1]])

    def transpose_tokens(self, tokens: np.ndarray, semitones: int) -> np.ndarray | None:
        """``encode(transpose(notes, semitones))`` from ``encode(notes)``'s tokens: every NOTE_ON and
        NOTE_OFF moved by ``semitones`` (event order depends on pitches only through their order and
        equality, which a shift keeps); None when a note would leave MIDI 0..127, which ``transpose``
        drops, changing the events around it: encode the transposed notes then."""
        notes = (tokens >= self.OFFSET + midi.NOTE_ON) & (tokens < self.OFFSET + midi.TIME_SHIFT)
        pitches = (tokens[notes] - self.OFFSET) % midi.NUM_PITCHES
        if len(pitches) and (pitches.min() + semitones < 0 or pitches.max() + semitones >= midi.NUM_PITCHES):
            return None
        return np.where(notes, tokens + semitones, tokens)

    transpose = staticmethod(midi.transpose_notes)
    stretch = staticmethod(midi.stretch_notes)


class MusicPipeline(TfdsPipeline):
    """Token windows of one music dataset as configured by the ``data`` section (``targets_feature``
    names the piece feature, ``tokenizer`` how it becomes tokens)."""

    TOKENIZERS = {'chorale': ChoraleTokenizer, 'performance': PerformanceTokenizer}

    @classmethod
    def check_config(cls, data, model) -> None:
        super().check_config(data, model)
        require(bool(data.inputs_feature) == (model.name == 'encoder_decoder'), 'data.inputs_feature',
                f'{data.inputs_feature!r} with model.name={model.name!r}: an encoder-decoder music model reads a melody '
                f"(data.inputs_feature='melody'), a decoder-only one none ('')")
        if data.inputs_feature:
            require(data.tokenizer == 'performance', 'data.inputs_feature',
                    f"a melody ({data.inputs_feature!r}) conditions performances, not data.tokenizer={data.tokenizer!r}")

    def __init__(self, data_config, dataset: Dataset, *, tokenizer=None):
        super().__init__(data_config, dataset)
        self.tokenizer = tokenizer or self.TOKENIZERS[data_config.tokenizer]()
        self.features = ('targets', 'targets_voices') if self.tokenizer.voices else ('targets',)
        melody = data_config.get('inputs_feature', '')
        if melody and melody not in self.builder.info.features.keys():
            raise ConfigError('data.inputs_feature', f'{melody!r}: {dataset.name} was prepared without it; prepare it '
                                                     f'again: {dataset.prepare_command(self.data_dir, overwrite=True)}')

    def tokens(self, piece: np.ndarray) -> dict[str, np.ndarray]:
        """A piece -> its tokens ending with EOS (and each token's voice, EOS having none)."""
        return piece_tokens(self.tokenizer, piece)

    def piece(self, record) -> np.ndarray:
        return np.asarray(record[self.config.targets_feature])

    # --- token ids, once per tokenizer and time stretch -----------------------------------------------
    def token_ids(self, split: str, stretch: float | None = None) -> dict[str, Ragged]:
        """The tokens of every piece of ``split`` (stretched in time by ``stretch``), computed once and
        kept beside the prepared data (data/token_store.py)."""
        tag = 'plain' if stretch is None else f'stretch{stretch!r}'
        folder = os.path.join(os.fspath(self.builder.data_dir), 'token_ids',
                              f'{split}-{self.config.targets_feature}-{self.tokenizer.fingerprint}-{tag}')

        def build():
            source = self.source(split)
            pieces = [self.tokens(augmented(self.tokenizer, self.piece(source[i]), 0, stretch))
                      for i in range(len(source))]
            return {name: Ragged.from_sequences([p[name] for p in pieces]) for name in self.features}
        return token_store.kept(folder, build)

    # --- batches ---------------------------------------------------------------------------------
    def train_batches(self, rows: int, *, seed: int, shard_index: int = 0,
                      shard_count: int = 1) -> grain.IterDataset:
        """An endless stream of batches of ``rows`` random crops (this host's share), one piece each:
        every epoch the pieces are reshuffled, augmented anew and cropped at new offsets; host
        ``shard_index`` reads every ``shard_count``-th piece."""
        stretches = tuple(float(s) for s in self.config.get('time_stretches', ()))
        split, source = self.config.train_split, self.source(self.config.train_split)
        stores = {stretch: self.token_ids(split, stretch) for stretch in (stretches or (None,))}
        crops = dict(rows=rows, length=self.config.max_length, transpose=self.config.transpose, stretches=stretches,
                     tokenizer=self.tokenizer, stores=stores,
                     augment=Augmenter(self.tokenizer, source, self.config.targets_feature))
        crops = (MelodyCrops(**crops, source=source, melody_feature=self.config.inputs_feature)
                 if self.config.inputs_feature else Crops(**crops))
        return Batches(Order.shuffled(np.arange(len(source)), seed=seed, shard_index=shard_index,
                                      shard_count=shard_count), crops)

    def eval_batches(self, split: str, rows: int, *, max_examples: int = -1, shard_index: int = 0,
                     shard_count: int = 1) -> Iterator[dict]:
        """Every piece of ``split`` (or its first ``max_examples``) once, in windows; the last batch is
        padded with empty rows."""
        ids = self.token_ids(split)
        order = Order.evaluation(len(ids['targets']), max_examples=max_examples, shard_index=shard_index,
                                 shard_count=shard_count)
        if self.config.inputs_feature:
            yield from self._piece_batches(split, order, rows, openings_only=False)
            return
        yield from Batches(order, Windows(ids, rows, self.config.max_length))

    def openings(self, split: str, rows: int, *, max_examples: int = -1) -> Iterator[dict]:
        """The first ``data.max_length`` tokens of every piece of ``split`` (or of its first
        ``max_examples``) that is that long, a row each (with its melody for a melody-conditioned model):
        window position p holds a piece's token p, predicted from the p before it of the same piece, and
        every position holds the same pieces. A ValueError where no piece is that long."""
        length, source = self.config.max_length, self.source(split)
        count = len(source) if max_examples < 0 else min(max_examples, len(source))
        long_enough = [index for index in range(count) if len(self.tokens(self.piece(source[index]))['targets']) >= length]
        if not long_enough:
            raise ValueError(f'no piece of {split!r} is {length} tokens long; evaluate a shorter --length')
        return self._piece_batches(split, Order.in_order(long_enough), rows, openings_only=True)

    def _piece_batches(self, split: str, order: Order, rows: int, *, openings_only: bool) -> Iterator[dict]:
        """Each piece's consecutive windows of ``data.max_length`` tokens (its first only with
        ``openings_only``), with their melodies when the model reads one; ``rows`` a batch, the last padded."""
        source, length, batch = self.source(split), self.config.max_length, []
        for index in order.take(0, len(order.examples)):
            record = source[int(index)]
            tokens = self.tokens(self.piece(record))
            for start in range(0, len(tokens['targets']), length):
                batch.append(melody_window(self.tokenizer, tokens['targets'], np.asarray(record[self.config.inputs_feature]),
                                           start, length) if self.config.inputs_feature else
                             {name: pad_to(value[start:start + length], length) for name, value in tokens.items()})
                if len(batch) == rows:
                    yield stacked(batch, rows)
                    batch = []
                if openings_only:
                    break
        if batch:
            yield stacked(batch, rows)

    def opening_pieces(self, split: str, count: int, length: int) -> list[int]:
        """The indices of the first ``count`` pieces of ``split`` longer than ``length`` tokens (a
        ValueError where there are fewer): the pieces whose openings samples continue."""
        source, found = self.source(split), []
        for index in range(len(source)):
            if len(self.tokens(self.piece(source[index]))['targets']) > length:
                found.append(index)
            if len(found) == count:
                return found
        raise ValueError(f'{split!r} has {len(found)} pieces longer than {length} tokens, {count} asked for; '
                         f'ask for fewer samples or a shorter primer')

    def primers(self, split: str, count: int, length: int) -> np.ndarray:
        """int32 [count, length]: the opening ``length`` tokens of the first ``count`` pieces of
        ``split`` that are longer (``opening_pieces``), to continue by sampling (pieces start where
        decoding does)."""
        source = self.source(split)
        return np.stack([self.tokens(self.piece(source[index]))['targets'][:length]
                         for index in self.opening_pieces(split, count, length)])


@dataclasses.dataclass
class Augmenter:
    """The tokens of a training piece augmented from its notes or grid: the reference way, and the way
    when kept tokens cannot be transposed (a performance's note pushed out of MIDI 0..127)."""
    tokenizer: object
    source: object          # the split's random-access TFDS source
    feature: str

    def __call__(self, index: int, semitones: int, stretch: float | None) -> dict[str, np.ndarray]:
        piece = np.asarray(self.source[int(index)][self.feature])
        return piece_tokens(self.tokenizer, augmented(self.tokenizer, piece, semitones, stretch))


@dataclasses.dataclass
class Crops:
    """Training rows of music (an ``assemble`` of data/batching.py): each row one piece of the order,
    augmented and cropped by ``crop``, its random draws seeded by the example's place in the whole stream
    (so hosts and workers draw the same as one process would). Augmentation (Huang et al. 2018, Sec.
    5.1-5.2): transposed by a number of semitones drawn from [-transpose, transpose] and stretched in
    time by a factor drawn from ``stretches``. ``stores``: the kept tokens of the training pieces per
    time stretch (None: no stretches)."""
    rows: int
    length: int
    transpose: int
    stretches: tuple
    tokenizer: object
    stores: dict
    augment: Augmenter

    def __call__(self, order: Order, cursor):
        position, _ = cursor
        indices = order.take(position, self.rows)
        places = order.start + order.step * np.arange(position, position + self.rows)
        crops = [self.crop(int(index), np.random.default_rng([order.seed, int(place)]))
                 for index, place in zip(indices, places)]
        return {name: np.stack([crop[name] for crop in crops]) for name in crops[0]}, (position + self.rows, 0)

    def augmentation(self, rng: np.random.Generator) -> tuple[int, float | None]:
        """(semitones, stretch or None) drawn for one row."""
        semitones = int(rng.integers(-self.transpose, self.transpose + 1)) if self.transpose else 0
        return semitones, float(rng.choice(self.stretches)) if self.stretches else None

    def tokens(self, index: int, semitones: int, stretch: float | None) -> dict[str, np.ndarray]:
        """Piece ``index``'s tokens augmented so: the kept ones moved by the transposition where the
        tokenizer can (``transpose_tokens``), else the augmented notes encoded anew: the same either way."""
        kept = {name: store[index] for name, store in self.stores[stretch].items()}
        moved = self.tokenizer.transpose_tokens(kept['targets'], semitones) if semitones else kept['targets']
        return {**kept, 'targets': moved} if moved is not None else self.augment(index, semitones, stretch)

    def crop(self, index: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """One training row of piece ``index``: augmented (``augmentation``, ``tokens``), then ``random_crop``-ped."""
        return random_crop(self.tokens(index, *self.augmentation(rng)), self.length, rng)


@dataclasses.dataclass
class MelodyCrops(Crops):
    """Rows of a melody-conditioned model: a random crop of the augmented performance (as ``Crops``) and
    the melody of ``source``'s ``melody_feature``, augmented alike, under it (``melody_window``)."""
    source: object          # the split's random-access TFDS source
    melody_feature: str

    def crop(self, index: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        semitones, stretch = self.augmentation(rng)
        targets = self.tokens(index, semitones, stretch)['targets']
        melody = augmented(self.tokenizer, np.asarray(self.source[index][self.melody_feature]), semitones, stretch)
        return melody_window(self.tokenizer, targets, melody, crop_start(len(targets), self.length, rng), self.length)


def melody_window(tokenizer, targets: np.ndarray, melody: np.ndarray, start: int, length: int) -> dict[str, np.ndarray]:
    """A row of a melody-conditioned model: ``targets[start:start + length]`` (a piece's tokens) and as
    ``inputs`` the events of the ``melody`` notes that start in the time that window spans (from its
    first token to the next window's, on the 10 ms grid of the events, where each note's NOTE_ON falls),
    timed from the window's start, ending with EOS; int32 [length] each, cut or zero-padded."""
    steps = np.round(tokenizer.token_times(targets) * midi.STEPS_PER_SECOND).astype(np.int64)   # on the event grid
    begin = steps[min(start, len(steps) - 1)]
    end = steps[start + length] if start + length < len(steps) else np.iinfo(np.int64).max
    onsets = np.round(melody[:, midi.START] * midi.STEPS_PER_SECOND).astype(np.int64)   # as the events place them
    inside = melody[(onsets >= begin) & (onsets < end)].copy()
    inside[:, midi.START:] -= begin / midi.STEPS_PER_SECOND
    inside[:, midi.END] = np.minimum(inside[:, midi.END], (end - begin) / midi.STEPS_PER_SECOND)
    inputs = np.asarray(tokenizer.encode(inside) + [EOS_ID], np.int32)
    return {'inputs': pad_to(inputs[:length], length), 'targets': pad_to(targets[start:start + length], length)}


def stacked(rows: list[dict[str, np.ndarray]], count: int) -> dict[str, np.ndarray]:
    """Rows of equal features -> a batch of ``count`` rows, zero rows after the given ones."""
    return {name: pad_to(np.stack([row[name] for row in rows]), count, axis=0) for name in rows[0]}


def augmented(tokenizer, piece: np.ndarray, semitones: int, stretch: float | None) -> np.ndarray:
    """The piece transposed by ``semitones`` and (a performance) stretched in time by ``stretch``."""
    if semitones:
        piece = tokenizer.transpose(piece, semitones)
    if stretch is not None:
        piece = tokenizer.stretch(piece, stretch)
    return piece


def piece_tokens(tokenizer, piece: np.ndarray) -> dict[str, np.ndarray]:
    """A piece -> its tokens ending with EOS (and, for a tokenizer with voices, each token's voice, EOS
    having none)."""
    tokens = {'targets': np.asarray(tokenizer.encode(piece) + [EOS_ID], np.int32)}
    if tokenizer.voices:
        tokens['targets_voices'] = np.asarray(tokenizer.voice_ids(piece) + [0], np.int32)
    return tokens


def random_crop(tokens: dict[str, np.ndarray], length: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """A training row: the same window of ``length`` positions of every feature of one piece's tokens,
    starting at an offset drawn uniformly from [0, n - length] (n tokens; Huang et al. 2018, Sec. 5.2,
    random crops of a piece); a piece of n < length tokens is kept whole and zero-padded. Returns each
    feature int32 [length]."""
    start = crop_start(len(tokens['targets']), length, rng)
    return {name: pad_to(value[start:start + length], length) for name, value in tokens.items()}


def crop_start(size: int, length: int, rng: np.random.Generator) -> int:
    """Where a random crop of ``length`` of ``size`` tokens starts: uniform over [0, size - length]."""
    return int(rng.integers(0, max(size - length, 0) + 1))
