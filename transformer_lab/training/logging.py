"""Metrics to ``WORKDIR/metrics.jsonl`` and TensorBoard (tensorboardX), progress to the console (tqdm)."""

from __future__ import annotations

import json
import os
import time

import jax
import tqdm
from tensorboardX import SummaryWriter


class MetricsWriter:
    """Appends one JSON line per (step, metrics) and mirrors scalars to TensorBoard; host 0 only."""

    def __init__(self, workdir: str):
        self.active = jax.process_index() == 0
        if self.active:
            self.jsonl = open(os.path.join(workdir, 'metrics.jsonl'), 'a')
            self.tensorboard = SummaryWriter(os.path.join(workdir, 'tensorboard'))

    def write(self, step: int, metrics: dict[str, float]):
        if not self.active:
            return
        metrics = {name: float(value) for name, value in metrics.items()}
        self.jsonl.write(json.dumps({'step': step, 'time': time.time(), **metrics}) + '\n')
        self.jsonl.flush()
        for name, value in metrics.items():
            self.tensorboard.add_scalar(name, value, step)
        self.tensorboard.flush()

    def close(self):
        if self.active:
            self.jsonl.close()
            self.tensorboard.close()


def read_metrics(workdir: str) -> list[dict]:
    """All records of ``WORKDIR/metrics.jsonl`` (for tests and notebooks)."""
    with open(os.path.join(workdir, 'metrics.jsonl')) as f:
        return [json.loads(line) for line in f]


def progress_bar(first_step: int, num_steps: int) -> tqdm.tqdm:
    """A bar over the remaining steps; the loop sets loss and tokens/s as its postfix, tqdm the ETA."""
    return tqdm.tqdm(total=num_steps, initial=first_step, unit='step', dynamic_ncols=True,
                     disable=jax.process_index() != 0, mininterval=1.0)
