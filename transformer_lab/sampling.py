"""What every modality's sampler (``Task.sample``, transformer_lab/tasks/) is given: the ``Run`` to sample
(a model, its parameters, config and tokenizer) and a ``Request`` (the
config's ``sample`` section, ``configured_request``), the decoding window past the trained length, and
where samples go. ``scripts/sample.py`` is its command line; the training loop samples through it too
(training/samples.py).
"""

from __future__ import annotations

import dataclasses
import os
import sys

import ml_collections
from flax import nnx

from transformer_lab import tasks
from transformer_lab.config import require


@dataclasses.dataclass
class Run:
    config: ml_collections.ConfigDict
    tokenizer: object
    model: nnx.Module          # holds the restored parameters
    graphdef: nnx.GraphDef
    params: object
    step: int

    def pipeline(self):
        """The input pipeline of the run's data, read with the run's tokenizer (the dataset prepared)."""
        return tasks.build_pipeline(self.config.data, tokenizer=self.tokenizer)


@dataclasses.dataclass
class Request:
    """What to sample: ``rows`` samples decoded with ``options`` (temperature, top_k, seed, max_length),
    written next to ``stem`` (e.g. WORKDIR/samples/step_N). Modality-specific: ``prompt`` text for a
    language model to continue, ``sources`` for a translation model (None: the first sentences of the
    eval split), ``primer_tokens`` of validation pieces for a music model to continue (0: none), or
    ``primer_file`` to continue (a language model: text; a music model: a score its tokenizer reads,
    its first ``primer_seconds``, then at most ``primer_tokens`` of its tokens where that is set; an
    image model: an image whose first ``primer_rows`` rows are kept); ``melody_file``, a MIDI file for
    a melody-conditioned model to accompany (None: the melodies of the first validation pieces)."""
    rows: int
    options: dict
    stem: str
    prompt: str = ''
    sources: list[str] | None = None
    primer_tokens: int = 0
    primer_file: str | None = None
    primer_seconds: float = 0.0
    primer_rows: int | None = None
    melody_file: str | None = None


def configured_request(config, stem: str, *, seed: int = 0, window: int | None = None, **given) -> Request:
    """The Request that ``config.sample`` describes (num_samples rows, its temperature, top_k,
    max_length, prompt, primer_tokens), written next to ``stem``; ``given`` fields (``rows``, ``temperature``,
    ..., and Request's other fields) that are not None take the place of the config's values. ``window``:
    as ``decoding_window``."""
    sample, given = config.sample, {name: value for name, value in given.items() if value is not None}
    options = {'temperature': sample.temperature, 'top_k': sample.top_k, 'max_length': sample.max_length}
    options.update({name: given.pop(name) for name in list(given) if name in options})
    options.update(seed=seed, window=decoding_window(config.model, options['max_length'], window))
    fields = {'rows': sample.num_samples, 'prompt': sample.prompt, 'primer_tokens': sample.get('primer_tokens', 0),
              **given}
    return Request(options=options, stem=stem, **fields)


def check_sample(sample) -> None:
    """The ``sample`` section: how many rows, how long, and how often the training loop samples."""
    require(sample.num_samples > 0, 'sample.num_samples', f'must be positive, got {sample.num_samples}')
    require(sample.max_length > 0, 'sample.max_length', f'must be positive, got {sample.max_length}')
    require(sample.temperature >= 0, 'sample.temperature', f'must be 0 (greedy) or more, got {sample.temperature}')
    require(sample.top_k >= 0, 'sample.top_k', f'must be 0 (the whole vocabulary) or more, got {sample.top_k}')
    require(isinstance(sample.every_steps, int) and sample.every_steps >= 0, 'sample.every_steps',
            f'must be a number of steps, 0 for none, got {sample.every_steps!r}')


def past_trained_length(model_config, length: int, flag: str) -> bool:
    """Whether ``length`` positions (asked for by ``flag``) go past the model's trained ``model.max_length``.
    Learned positions have no embedding there: a ValueError; absolute sinusoids go on (computed for any
    position) after a notice that the model never saw those positions; relative attention goes on."""
    trained = model_config.max_length
    if length <= trained:
        return False
    if model_config.positional == 'learned':
        raise ValueError(f'{flag}={length} is past model.max_length={trained}, and learned positions have no '
                         f'embedding there; valid: at most {trained}')
    if model_config.positional != 'none' and not model_config.attention.type.startswith('relative'):
        print(f'notice: past model.max_length={trained} the sinusoids give positions the model never trained on; '
              f'relative attention (Huang et al. 2018) is what is meant to carry on', file=sys.stderr)
    return True


def decoding_window(model_config, max_length: int, window: int | None) -> int:
    """The ``generate`` window for ``max_length`` tokens of a model trained on ``model.max_length``. Within
    that length: every position (0). Past it (``past_trained_length``): ``window`` (None: model.max_length,
    the trained context, a sliding window; 0: every position, relative distances past
    max_relative_position treated as in training)."""
    if not past_trained_length(model_config, max_length, '--max_length'):
        return 0
    return model_config.max_length if window is None else window


def samples_stem(workdir: str, step: int) -> str:
    """WORKDIR/samples/step_N (the folder created), where a run's samples at step N are written."""
    os.makedirs(os.path.join(workdir, 'samples'), exist_ok=True)
    return os.path.join(workdir, 'samples', f'step_{step}')
