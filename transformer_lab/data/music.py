"""The grain pipeline for symbolic music: pieces -> token windows for a decoder-only model.

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
time-stretched by a factor drawn from ``data.time_stretches``, drawn by grain from a seed so the stream
and its checkpointed position are reproducible; evaluation pieces are not augmented.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import grain
import grain.experimental
import numpy as np

from transformer_lab.data import midi
from transformer_lab.data.source import Dataset, TfdsPipeline, pad_to, padded_batches
from transformer_lab.data.tokenizers import EOS_ID, until_eos


class ChoraleTokenizer:
    """Chorale grids as tokens: the S, A, T, B pitches of each 16th note in turn, MIDI pitch p -> p + 2
    and a rest -> 2 (0 and 1 stay padding and EOS). ``voice_ids`` tells each token's voice (1..4)."""

    OFFSET = 2
    vocab_size = 128 + OFFSET
    voices = 4
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

    def encode(self, notes) -> list[int]:
        """float [n, 4] notes (pitch, velocity, start s, end s) -> tokens."""
        return [int(e) + self.OFFSET for e in midi.notes_to_events(np.asarray(notes))]

    def decode(self, ids: Iterable[int]) -> np.ndarray:
        """Tokens (up to EOS) -> the events' notes, float32 [n, 4]."""
        events = [int(i) - self.OFFSET for i in until_eos(ids) if int(i) >= self.OFFSET]
        return midi.events_to_notes(np.asarray(events, np.int32))

    to_notes = decode

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

    transpose = staticmethod(midi.transpose_notes)
    stretch = staticmethod(midi.stretch_notes)


class MusicPipeline(TfdsPipeline):
    """Token windows of one music dataset as configured by the ``data`` section (``targets_feature``
    names the piece feature, ``tokenizer`` how it becomes tokens)."""

    TOKENIZERS = {'chorale': ChoraleTokenizer, 'performance': PerformanceTokenizer}

    def __init__(self, data_config, dataset: Dataset, *, tokenizer=None):
        super().__init__(data_config, dataset)
        self.tokenizer = tokenizer or self.TOKENIZERS[data_config.tokenizer]()
        self.features = ('targets', 'targets_voices') if self.tokenizer.voices else ('targets',)

    def tokens(self, piece: np.ndarray) -> dict[str, np.ndarray]:
        """A piece -> its tokens ending with EOS (and each token's voice, EOS having none)."""
        tokens = {'targets': np.asarray(self.tokenizer.encode(piece) + [EOS_ID], np.int32)}
        if self.tokenizer.voices:
            tokens['targets_voices'] = np.asarray(self.tokenizer.voice_ids(piece) + [0], np.int32)
        return tokens

    def augmented(self, piece: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        limit, stretches = self.config.transpose, tuple(self.config.time_stretches)
        if limit:
            piece = self.tokenizer.transpose(piece, int(rng.integers(-limit, limit + 1)))
        if stretches:
            piece = self.tokenizer.stretch(piece, float(rng.choice(stretches)))
        return piece

    def piece(self, record) -> np.ndarray:
        return np.asarray(record[self.config.targets_feature])

    def _crop(self, record, rng: np.random.Generator) -> dict[str, np.ndarray]:
        return random_crop(self.tokens(self.augmented(self.piece(record), rng)), self.config.max_length, rng)

    def _windows(self, dataset: grain.IterDataset, rows: int) -> grain.IterDataset:
        length = self.config.max_length
        windows = grain.experimental.ConcatThenSplitIterDataset(
            dataset, length_struct={name: length for name in self.features})
        return windows.map(lambda w: {name: pad_to(w[name], length) for name in self.features}).batch(
            rows, drop_remainder=False)

    def train_batches(self, rows: int, *, seed: int, shard_index: int = 0,
                      shard_count: int = 1) -> grain.IterDataset:
        """An endless stream of batches of ``rows`` random crops (this host's share), one piece each:
        every epoch the pieces are reshuffled, augmented anew and cropped at new offsets; host
        ``shard_index`` reads every ``shard_count``-th piece."""
        return (self.training_records(seed=seed, shard_index=shard_index, shard_count=shard_count)
                .random_map(self._crop, seed=seed).to_iter_dataset().batch(rows, drop_remainder=True))

    def eval_batches(self, split: str, rows: int, *, max_examples: int = -1, shard_index: int = 0,
                     shard_count: int = 1) -> Iterator[dict]:
        """Every piece of ``split`` (or its first ``max_examples``) once, in windows; the last batch is
        padded with empty rows."""
        dataset = self.evaluation_records(split, max_examples=max_examples, shard_index=shard_index,
                                          shard_count=shard_count)
        dataset = dataset.map(lambda record: self.tokens(self.piece(record)))
        yield from padded_batches(self._windows(dataset.to_iter_dataset(), rows), rows)

    def primers(self, split: str, count: int, length: int) -> np.ndarray:
        """int32 [count, length]: the opening ``length`` tokens of the first ``count`` pieces of
        ``split`` that are that long, to continue by sampling (pieces start where decoding does)."""
        source, openings = self.source(split), []
        for index in range(len(source)):
            tokens = self.tokens(self.piece(source[index]))['targets']
            if len(tokens) > length:
                openings.append(tokens[:length])
            if len(openings) == count:
                return np.stack(openings)
        raise ValueError(f'{split!r} has {len(openings)} pieces longer than {length} tokens, {count} asked for; '
                         f'ask for fewer samples or a shorter primer')


def random_crop(tokens: dict[str, np.ndarray], length: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """A training row: the same window of ``length`` positions of every feature of one piece's tokens,
    starting at an offset drawn uniformly from [0, n - length] (n tokens; Huang et al. 2018, Sec. 5.2,
    random crops of a piece); a piece of n < length tokens is kept whole and zero-padded. Returns each
    feature int32 [length]."""
    size = len(tokens['targets'])
    start = int(rng.integers(0, max(size - length, 0) + 1))
    return {name: pad_to(value[start:start + length], length) for name, value in tokens.items()}
