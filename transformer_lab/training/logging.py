"""Metrics to ``WORKDIR/metrics.jsonl`` and TensorBoard (tensorboardX), progress to the console (tqdm)."""

from __future__ import annotations

import errno
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
    ``purge_step``, from TensorBoard: no step is ever logged twice. A line is written with one
    ``write`` and cut off again if that fails (a full disk), so metrics.jsonl never keeps a torn line;
    a failed write raises MetricsWriteError.
    """

    def __init__(self, workdir: str, resume_step: int = 0):
        self.active = jax.process_index() == 0
        if self.active:
            self.path = os.path.join(workdir, 'metrics.jsonl')
            self.tensorboard_dir = os.path.join(workdir, 'tensorboard')
            _drop_records_after(self.path, resume_step)
            self.jsonl = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            self.tensorboard = SummaryWriter(self.tensorboard_dir, purge_step=resume_step + 1)

    def write(self, step: int, metrics: dict[str, float]):
        if not self.active:
            return
        metrics = {name: float(value) for name, value in metrics.items()}
        line = (json.dumps({'step': step, 'time': time.time(), **metrics}) + '\n').encode()
        size = os.fstat(self.jsonl).st_size
        try:
            if os.write(self.jsonl, line) != len(line):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), self.path)
        except OSError as error:
            os.ftruncate(self.jsonl, size)
            raise MetricsWriteError(f'writing the metrics of step {step} to {self.path} failed: '
                                    f'{error.strerror or error}') from error
        try:
            for name, value in metrics.items():
                self.tensorboard.add_scalar(name, value, step)
            self.tensorboard.flush()
        except OSError as error:
            raise MetricsWriteError(f'writing the metrics of step {step} to {self.tensorboard_dir} failed: '
                                    f'{error.strerror or error}') from error

    def close(self):
        if self.active:
            os.close(self.jsonl)
            self.tensorboard.close()


class MetricsWriteError(OSError):
    """metrics.jsonl or the TensorBoard events could not be written (a full disk, a lost mount)."""


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
    """All records of ``WORKDIR/metrics.jsonl`` (for tests and notebooks); a last line torn by a run
    killed in the middle of writing it (of a version before whole-line writes) is left out."""
    with open(os.path.join(workdir, 'metrics.jsonl')) as f:
        lines = f.readlines()
    if lines and not lines[-1].endswith('\n'):
        lines.pop()
    return [json.loads(line) for line in lines]


def progress_bar(first_step: int, num_steps: int) -> tqdm.tqdm:
    """A bar over the remaining steps; the loop sets loss and tokens/s as its postfix, tqdm the ETA."""
    return tqdm.tqdm(total=num_steps, initial=first_step, unit='step', dynamic_ncols=True,
                     disable=jax.process_index() != 0, mininterval=1.0)
