"""What every modality's sampler (``Task.sample``, transformer_lab/tasks/) is asked: a ``Request``, the
decoding window past the trained length, and where samples go. ``scripts/sample.py`` is its command line.
"""

from __future__ import annotations

import dataclasses
import os
import sys


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
