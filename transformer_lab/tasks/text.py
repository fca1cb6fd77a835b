"""Text: translation models (conditioned on source sentences) and language models."""

from __future__ import annotations

import numpy as np

from transformer_lab import decoding
from transformer_lab.data.text import TextPipeline
from transformer_lab.data.tokenizers import encode_padded
from transformer_lab.tasks.base import Task


class TextTask(Task):
    modality = 'text'
    pipeline = TextPipeline
    drawer = 'draw_text'

    def conditioning(self, config) -> str:
        return 'sources' if config.data.inputs_feature else 'none'

    def evaluators(self, config) -> tuple[str, ...]:
        return ('nll', 'bleu') if self.conditioning(config) == 'sources' else ('nll', 'bits_per_char')

    def describe(self, config) -> str:
        return 'a translation model' if self.conditioning(config) == 'sources' else 'a language model'

    def read_primer(self, run, request) -> np.ndarray:
        """The tokens to continue: ``request.primer_file``'s text, else ``request.prompt``, int32 [n]."""
        if self.conditioning(run.config) == 'sources':
            raise ValueError(f'--primer={request.primer_file}: a translation model translates --inputs=FILE, '
                             f'one source sentence per line')
        text = request.prompt
        if request.primer_file:
            with open(request.primer_file) as file:
                text = file.read().rstrip('\n')
        return np.asarray(run.tokenizer.encode(text), np.int32)

    def sample(self, run, request) -> str:
        """Translations of ``request.sources`` (None: the first of the eval split), or continuations of
        the prompt or primer file, in STEM.txt."""
        if self.conditioning(run.config) == 'sources' and not request.primer_file:
            lines = self._translate(run, request)
        else:
            prompt = np.tile(self.read_primer(run, request), (request.rows, 1))
            tokens = decoding.generate(run.graphdef, run.params, batch_size=request.rows, prompt=prompt,
                                       **request.options)
            lines = [run.tokenizer.decode(row) for row in np.asarray(tokens)]
        text = '\n\n'.join(lines) + '\n'
        with open(request.stem + '.txt', 'w') as file:
            file.write(text)
        return text + f'(written to {request.stem}.txt)'

    @staticmethod
    def _translate(run, request) -> list[str]:
        sources = request.sources
        if sources is None:
            pipeline = run.pipeline()
            sources = [source for source, _ in pipeline.translation_pairs(run.config.data.eval_split, request.rows)]
        translations = decoding.translate(run.graphdef, run.params, run.tokenizer, sources, rows=len(sources),
                                          source_length=run.config.data.max_length, **request.options)
        return [f'{source}\n  -> {translation}' for source, translation in zip(sources, translations)]

    def example_from_text(self, run, text: str) -> dict:
        """A translation model's input is ``text`` and its target side its own greedy translation; a
        language model's target is ``text``."""
        length = run.config.data.max_length
        if self.conditioning(run.config) == 'sources':
            inputs = encode_padded(run.tokenizer, [text], length)
            targets = np.asarray(decoding.generate(run.graphdef, run.params, batch_size=1, inputs=inputs,
                                                   max_length=length))
            return {'inputs': inputs, 'targets': targets}
        tokens = run.tokenizer.encode(text)[:length]
        if not tokens:
            raise ValueError('--input is empty for this tokenizer')
        return {'targets': np.asarray([tokens], np.int32)}
