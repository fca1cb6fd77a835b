"""Metrics to ``WORKDIR/metrics.jsonl`` and TensorBoard (tensorboardX), progress to the console (tqdm)."""

from __future__ import annotations

import json
import os
import time

import jax
import tqdm
from tensorboardX import SummaryWriter


class MetricsWriter:
    """Appends one JSON line per (step, metrics) and mirrors scalars to TensorBoard; host 0 only.

    A run resumed from the checkpoint at ``resume_step`` first drops what the interrupted run logged
    after that step (those steps are trained again), from metrics.jsonl and, through tensorboardX's
    ``purge_step``, from TensorBoard: no step is ever logged twice.
    """

    def __init__(self, workdir: str, resume_step: int = 0):
        self.active = jax.process_index() == 0
        if self.active:
            path = os.path.join(workdir, 'metrics.jsonl')
            _drop_records_after(path, resume_step)
            self.jsonl = open(path, 'a')
            self.tensorboard = SummaryWriter(os.path.join(workdir, 'tensorboard'), purge_step=resume_step + 1)

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


def _record_step(line: str) -> float:
    """A record's step; a line torn by a crash mid-write counts as after every step."""
    try:
        return json.loads(line)['step']
    except (ValueError, KeyError):
        return float('inf')


def _drop_records_after(path: str, step: int) -> None:
    if not os.path.exists(path):
        return
    with open(path) as f:
        lines = f.readlines()
    kept = [line for line in lines if _record_step(line) <= step]
    if len(kept) < len(lines):
        with open(path + '.tmp', 'w') as f:
            f.writelines(kept)
        os.replace(path + '.tmp', path)


def read_metrics(workdir: str) -> list[dict]:
    """All records of ``WORKDIR/metrics.jsonl`` (for tests and notebooks)."""
    with open(os.path.join(workdir, 'metrics.jsonl')) as f:
        return [json.loads(line) for line in f]


def progress_bar(first_step: int, num_steps: int) -> tqdm.tqdm:
    """A bar over the remaining steps; the loop sets loss and tokens/s as its postfix, tqdm the ETA."""
    return tqdm.tqdm(total=num_steps, initial=first_step, unit='step', dynamic_ncols=True,
                     disable=jax.process_index() != 0, mininterval=1.0)
