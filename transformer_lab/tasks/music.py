"""Music: chorale grids and performance events; decoder-only models, and encoder-decoders that
accompany a melody (Huang et al. 2018, Sec. 5.3)."""

from __future__ import annotations

import numpy as np

from transformer_lab import decoding
from transformer_lab.data import midi
from transformer_lab.data.music import MusicPipeline, melody_window
from transformer_lab.data.rendering import save_piano_roll_png, save_wav
from transformer_lab.data.tokenizers import EOS_ID
from transformer_lab.tasks.base import Task


class MusicTask(Task):
    modality = 'music'
    pipeline = MusicPipeline
    drawer = 'draw_music'

    def conditioning(self, config) -> str:
        return 'melody' if config.data.inputs_feature else 'none'

    def describe(self, config) -> str:
        return 'a melody-conditioned music model' if self.conditioning(config) == 'melody' else 'a music model'

    def read_primer(self, run, request) -> np.ndarray:
        """The tokens to continue, int32 [n]: the score ``request.primer_file`` as the run's tokenizer
        reads it (performances: MIDI; chorales: MIDI or MusicXML onto the S/A/T/B grid), its first
        ``request.primer_seconds``, then at most ``request.primer_tokens`` tokens where that is set."""
        primer = run.tokenizer.read_primer(request.primer_file, request.primer_seconds)
        primer = primer[:request.primer_tokens or None]
        if len(primer) >= request.options['max_length']:
            raise ValueError(f'--primer={request.primer_file} is {len(primer)} tokens, and --max_length='
                             f'{request.options["max_length"]} leaves none to continue: shorten it with '
                             f'--primer_seconds or --primer_tokens')
        return primer

    def _conditions(self, run, request) -> tuple[np.ndarray | None, np.ndarray | None]:
        """(prompt [rows, n] or None, melodies [rows, data.max_length] or None): the primer file, or the
        openings of the first validation pieces longer than ``request.primer_tokens``; for a
        melody-conditioned model the melody of ``request.melody_file`` (its skyline), or else the melody
        under the opening of those same pieces, so that each sample continues the piece it hears."""
        rows, melody_model = request.rows, self.conditioning(run.config) == 'melody'
        pieces = []
        if (request.primer_tokens and not request.primer_file) or (melody_model and not request.melody_file):
            pipeline, split = run.pipeline(), run.config.data.eval_split
            source = pipeline.source(split)
            for index in pipeline.opening_pieces(split, rows, 0 if request.primer_file else request.primer_tokens):
                pieces.append((pipeline.tokens(pipeline.piece(source[index]))['targets'], source[index]))
        prompt = (np.tile(self.read_primer(run, request), (rows, 1)) if request.primer_file else
                  np.stack([tokens[:request.primer_tokens] for tokens, _ in pieces]) if request.primer_tokens else None)
        if not melody_model:
            return prompt, None
        length, feature = run.config.data.max_length, run.config.data.inputs_feature
        if request.melody_file:
            notes = midi.read_named_notes(request.melody_file, '--melody')
            if not len(notes):
                raise ValueError(f'--melody={request.melody_file}: no notes')
            melody = midi.skyline(notes)
            return prompt, np.tile(melody_window(run.tokenizer, np.asarray([EOS_ID]), melody, 0, length)['inputs'],
                                   (rows, 1))
        return prompt, np.stack([melody_window(run.tokenizer, tokens, np.asarray(record[feature]), 0, length)['inputs']
                                 for tokens, record in pieces])

    def sample(self, run, request) -> str:
        """STEM_K.mid, its audio STEM_K.wav (where FluidSynth is installed) and a piano roll STEM_K.png per
        sample; with a primer, each sample holds the primer's tokens and then the model's continuation; a
        melody-conditioned model's sample accompanies its melody (``_conditions``), written beside it
        (STEM_K_melody.mid)."""
        prompt, melodies = self._conditions(run, request)
        tokens = decoding.generate(run.graphdef, run.params, batch_size=request.rows, inputs=melodies, prompt=prompt,
                                   **request.options)
        paths = []
        for index, row in enumerate(np.asarray(tokens)):
            notes = run.tokenizer.to_notes(row)
            stem = f'{request.stem}_{index}'
            midi.notes_to_midi(notes).write(stem + '.mid')
            save_piano_roll_png(notes, stem + '.png')
            heard = ' and .wav' if save_wav(stem + '.mid', stem + '.wav') else ''
            paths.append(f'{stem}.mid{heard} ({len(notes)} notes, {notes[:, 3].max(initial=0):.1f} s)')
            if melodies is not None:   # what the encoder read, to hear beside it
                midi.notes_to_midi(run.tokenizer.to_notes(melodies[index])).write(stem + '_melody.mid')
                paths.append(f'{stem}_melody.mid (its melody)')
        return 'written:\n' + '\n'.join(paths)

    def openings(self, config, pipeline, split: str, rows: int):
        return pipeline.openings(split, rows, max_examples=config.eval.max_examples)
