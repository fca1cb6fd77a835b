"""The training loop's samples: every ``sample.every_steps`` steps the run's Task samples from the current
parameters as ``scripts/sample.py`` would from that step's checkpoint (``config.sample``: rows,
temperature, top_k, length; the step as the seed) into ``WORKDIR/samples/step_N*``, and TensorBoard
shows what was written in its natural form (``logging.MetricsWriter.write_files``): translations and
continuations as text, sampled images and piano rolls as images, music as audio.

One-host runs only: decoding's host-side loop is not sharded over hosts (as the ``bleu`` evaluator).
"""

from __future__ import annotations

import glob
import os
import time

import jax
from flax import nnx

from transformer_lab import sampling, tasks
from transformer_lab.sampling import Run


class LoopSamples:
    """``due(step)`` and ``write(step, params)`` for the loop; off (with a notice) on many hosts."""

    def __init__(self, config, workdir: str, tokenizer, graphdef, report):
        self.config, self.workdir, self.tokenizer, self.graphdef = config, workdir, tokenizer, graphdef
        self.task = tasks.task_for(config.data.name)
        self.every = config.sample.every_steps if jax.process_count() == 1 else 0
        if config.sample.every_steps and not self.every:
            report(f'notice: no samples every sample.every_steps={config.sample.every_steps} steps in a run of '
                   f'{jax.process_count()} hosts; sample a checkpoint with scripts/sample.py on one host')

    def due(self, step: int) -> bool:
        return bool(self.every) and step % self.every == 0

    def write(self, step: int, params) -> dict[str, str]:
        """Samples ``params`` at ``step``; returns {TensorBoard tag: path} of the files written
        (``samples/K.EXT`` for the K-th sample's file, ``samples/EXT`` for one file of them all)."""
        run = Run(self.config, self.tokenizer, nnx.merge(self.graphdef, params), self.graphdef, params, step)
        stem = sampling.samples_stem(self.workdir, step)
        started = time.time()
        self.task.sample(run, sampling.configured_request(self.config, stem, seed=step))
        written = [path for pattern in ('.*', '_*') for path in glob.glob(glob.escape(stem) + pattern)
                   if os.path.getmtime(path) >= started - 1]
        return {sample_tag(path, stem): path for path in sorted(written)}


def sample_tag(path: str, stem: str) -> str:
    """``STEM_0.wav`` -> ``samples/0.wav``, ``STEM.png`` -> ``samples/png``: the same tag at every step."""
    rest = path[len(stem):]
    return 'samples/' + (rest[1:] if rest.startswith('_') else rest.lstrip('.'))
