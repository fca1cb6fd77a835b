"""Text tokenizers, and the ids every tokenizer shares.

A tokenizer has ``encode(x) -> ids``, ``decode(ids) -> x`` and ``vocab_size``; the text ones here
(bytes, sentencepiece), the image and music ones beside their pipelines (data/images.py,
data/music.py). Id 0 is padding (and the decoder's start token), id 1 ends a sequence, in every
tokenizer, so the models and the decoding core never ask which tokenizer they run with.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterable

import numpy as np
import sentencepiece as spm


PAD_ID = 0
EOS_ID = 1


class ByteTokenizer:
    """UTF-8 bytes as tokens (character level for ASCII text such as the KJV): byte b -> id b + 2."""

    OFFSET = 2
    vocab_size = 256 + OFFSET
    fingerprint = 'bytes'   # names the token ids kept for a dataset (data/token_store.py)

    def encode(self, text: str) -> list[int]:
        return [b + self.OFFSET for b in text.encode('utf-8')]

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return [self.encode(text) for text in texts]

    def piece(self, token: int) -> str:
        """The text of one token, for labels."""
        return bytes([int(token) - self.OFFSET]).decode('utf-8', errors='replace') if token >= self.OFFSET else ''

    def decode(self, ids: Iterable[int]) -> str:
        data = bytes(int(i) - self.OFFSET for i in until_eos(ids) if int(i) >= self.OFFSET)
        return data.decode('utf-8', errors='replace')


class SentencePieceTokenizer:
    """A sentencepiece model (Kudo & Richardson 2018) with pad=0, eos=1, unk=2 and no bos."""

    def __init__(self, model_path: str):
        self.model_path = model_path
        self.processor = spm.SentencePieceProcessor(model_file=model_path)
        self.vocab_size = self.processor.get_piece_size()
        # Names the token ids kept for a dataset (data/token_store.py): the model itself, not its path.
        self.fingerprint = 'sentencepiece-' + hashlib.sha256(self.processor.serialized_model_proto()).hexdigest()[:16]

    def encode(self, text: str) -> list[int]:
        return self.processor.encode(text)

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        """Many texts at once, on every core (sentencepiece's threads)."""
        return self.processor.encode(texts, num_threads=os.cpu_count() or 1)

    def piece(self, token: int) -> str:
        """The text of one token, for labels (sentencepiece's word-start mark shown as a space)."""
        return self.processor.id_to_piece(int(token)).replace('\u2581', ' ')

    def decode(self, ids: Iterable[int]) -> str:
        return self.processor.decode([int(i) for i in until_eos(ids) if int(i) != PAD_ID])


def encode_padded(tokenizer, texts: list[str], length: int, rows: int | None = None) -> np.ndarray:
    """Texts -> int32 [rows, length]: EOS-terminated ids, truncated to ``length``, zero-padded rows."""
    batch = np.zeros((len(texts) if rows is None else rows, length), np.int32)
    for row, text in enumerate(texts):
        ids = (tokenizer.encode(text) + [EOS_ID])[:length]
        batch[row, :len(ids)] = ids
    return batch


def until_eos(ids: Iterable[int]) -> list[int]:
    """The ids before the first EOS (all of them without one)."""
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
