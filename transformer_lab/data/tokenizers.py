"""Tokenizers with one face: ``encode(text) -> ids``, ``decode(ids) -> text``, ``vocab_size``.

Id 0 is padding (and the decoder's start token), id 1 ends a sequence, in every tokenizer, so the
models and the decoding core never ask which tokenizer they run with.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable

import numpy as np
import sentencepiece as spm

from transformer_lab.config import require
from transformer_lab.data import midi

PAD_ID = 0
EOS_ID = 1


class ByteTokenizer:
    """UTF-8 bytes as tokens (character level for ASCII text such as the KJV): byte b -> id b + 2."""

    OFFSET = 2
    vocab_size = 256 + OFFSET

    def encode(self, text: str) -> list[int]:
        return [b + self.OFFSET for b in text.encode('utf-8')]

    def decode(self, ids: Iterable[int]) -> str:
        data = bytes(int(i) - self.OFFSET for i in _until_eos(ids) if int(i) >= self.OFFSET)
        return data.decode('utf-8', errors='replace')


class SentencePieceTokenizer:
    """A sentencepiece model (Kudo & Richardson 2018) with pad=0, eos=1, unk=2 and no bos."""

    def __init__(self, model_path: str):
        self.model_path = model_path
        self.processor = spm.SentencePieceProcessor(model_file=model_path)
        self.vocab_size = self.processor.get_piece_size()

    def encode(self, text: str) -> list[int]:
        return self.processor.encode(text)

    def decode(self, ids: Iterable[int]) -> str:
        return self.processor.decode([int(i) for i in _until_eos(ids) if int(i) != PAD_ID])


def encode_padded(tokenizer, texts: list[str], length: int, rows: int | None = None) -> np.ndarray:
    """Texts -> int32 [rows, length]: EOS-terminated ids, truncated to ``length``, zero-padded rows."""
    batch = np.zeros((len(texts) if rows is None else rows, length), np.int32)
    for row, text in enumerate(texts):
        ids = (tokenizer.encode(text) + [EOS_ID])[:length]
        batch[row, :len(ids)] = ids
    return batch


def _until_eos(ids: Iterable[int]) -> list[int]:
    ids = [int(i) for i in np.asarray(ids).reshape(-1)]
    return ids[:ids.index(EOS_ID)] if EOS_ID in ids else ids


def train_sentencepiece(texts: Iterable[str], model_path: str, vocab_size: int,
                        max_sentences: int = 1_000_000) -> SentencePieceTokenizer:
    """Trains a unigram sentencepiece model on ``texts`` and writes it atomically to ``model_path``.

    ``vocab_size`` is an upper bound (a tiny corpus yields fewer pieces instead of failing).
    """
    directory = os.path.dirname(os.path.abspath(model_path))
    os.makedirs(directory, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=directory) as scratch:
        prefix = os.path.join(scratch, 'spm')
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(texts), model_prefix=prefix, vocab_size=vocab_size,
            model_type='unigram', character_coverage=1.0, input_sentence_size=max_sentences,
            shuffle_input_sentence=True, hard_vocab_limit=False, pad_id=PAD_ID, eos_id=EOS_ID, unk_id=2, bos_id=-1,
            num_threads=os.cpu_count() or 1, minloglevel=2)
        os.replace(prefix + '.model', model_path)
    return SentencePieceTokenizer(model_path)


class PixelTokenizer:
    """Images: a token is an intensity 0..255 of one colour channel of one pixel (no text to encode)."""

    vocab_size = 256


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
        pitches = [max(int(i) - self.OFFSET, 0) for i in _until_eos(ids)]
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
        events = [int(i) - self.OFFSET for i in _until_eos(ids) if int(i) >= self.OFFSET]
        return midi.events_to_notes(np.asarray(events, np.int32))

    to_notes = decode
    transpose = staticmethod(midi.transpose_notes)
    stretch = staticmethod(midi.stretch_notes)


FIXED_TOKENIZERS = {'bytes': ByteTokenizer, 'pixels': PixelTokenizer, 'chorale': ChoraleTokenizer,
                    'performance': PerformanceTokenizer}

TOKENIZER_NAMES = ('sentencepiece', *FIXED_TOKENIZERS)


def check_tokenizer(data, model) -> None:
    """``data.tokenizer`` by name; voices only as many as the tokenizer tells (chorales: S, A, T, B);
    time stretches only for a tokenizer of timed events."""
    require(data.tokenizer in TOKENIZER_NAMES, 'data.tokenizer',
            f'{data.tokenizer!r} is not one of {sorted(TOKENIZER_NAMES)}')
    tokenizer = FIXED_TOKENIZERS.get(data.tokenizer)
    voices = getattr(tokenizer, 'voices', 0)
    require(model.num_voices in (0, voices), 'model.num_voices',
            f'{model.num_voices} voices, but data.tokenizer={data.tokenizer!r} has {voices}; valid: {sorted({0, voices})}')
    require(not data.get('time_stretches') or hasattr(tokenizer, 'stretch'), 'data.time_stretches',
            f"stretches performances only (data.tokenizer='performance'), not {data.tokenizer!r}; valid: ()")
