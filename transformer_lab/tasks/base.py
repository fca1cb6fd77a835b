"""The face every modality's Task shows its callers (sample.py, visualize_attention.py, translate.py,
the loop and validation), and what the modalities share."""

from __future__ import annotations

from transformer_lab.config import ConfigError


class Task:
    """A modality: its ``pipeline`` class, the ``evaluators`` that apply to its runs, what its models are
    conditioned on, how it samples and reads a primer file, and how it draws attention. Subclasses set
    ``modality`` and ``pipeline`` and override what their modality does differently."""

    modality: str
    pipeline: type
    drawer: str                   # the function of attention_pictures.py that draws its attention
    reads_primer_rows = False     # whether --primer_rows means anything to it

    def conditioning(self, config) -> str:
        """What the run's model is conditioned on besides its own past: 'none', or a word naming it
        ('sources', 'classes', 'low_resolution', 'melody')."""
        return 'none'

    def evaluators(self, config) -> tuple[str, ...]:
        """The names of the evaluators (training/evaluators.py) that mean something for the run."""
        return ('nll',)

    def check_config(self, config) -> None:
        """The ``data`` section against the model, through the pipeline, and ``eval.evaluators``."""
        self.pipeline.check_config(config.data, config.model)
        applicable = self.evaluators(config)
        for name in config.eval.evaluators:
            if name not in applicable:
                raise ConfigError('eval.evaluators', f'{name!r} does not apply to {self.describe(config)}; '
                                                     f'valid: {", ".join(applicable)}')

    def check_prepared(self, config, pipeline) -> None:
        """The model against what only the prepared dataset knows (e.g. its classes)."""

    def describe(self, config) -> str:
        """A few words for messages: 'a music model', 'a translation model', ..."""
        return f'a {self.modality} model'

    def sample(self, run, request) -> str:
        """Writes samples as ``request`` (sampling.Request) says; returns what to show the user."""
        raise NotImplementedError

    def check_request(self, config, request) -> None:
        """Refuses what the run's model cannot be asked (a ValueError saying why)."""
        if request.primer_rows is not None and not self.reads_primer_rows:
            raise ValueError(f'--primer_rows={request.primer_rows} keeps the first rows of an image model\'s --primer; '
                             f'this run is {self.describe(config)}')
        if request.primer_rows is not None and not request.primer_file:
            raise ValueError(f'--primer_rows={request.primer_rows} keeps the first rows of --primer=PICTURE; give one')
        if request.melody_file and self.conditioning(config) != 'melody':
            raise ValueError(f'--melody={request.melody_file}: this run is {self.describe(config)}, which reads no '
                             f'melody; a melody-conditioned one does (configs/music_transformer_melody.py)')

    def openings(self, config, pipeline, split: str, rows: int):
        """Batches of the opening ``data.max_length`` tokens of each example of ``split`` (at most
        ``eval.max_examples``), a row each, so that a window position is the context within one example
        (scripts/evaluate.py --length)."""
        raise ValueError(f'--length measures NLL by position from the start of each piece, for music models; this '
                         f'run is {self.describe(config)}')

    def example_from_text(self, run, text: str) -> dict:
        """One batch row made from a user's ``text`` (visualize_attention.py --input)."""
        raise ValueError(f'--input is for text runs; this run is {self.describe(run.config)}: use --example')

    def draw_attention(self, run, batch: dict, maps: dict, choice, folder: str) -> list[str]:
        """PNGs of ``maps`` (attention_maps.attention_weights of ``batch``) into ``folder``; their paths."""
        from transformer_lab import attention_pictures   # matplotlib: only pictures need it
        return getattr(attention_pictures, self.drawer)(run, batch, maps, choice, folder)
