"""Metrics to ``WORKDIR/metrics.jsonl`` and TensorBoard (tensorboardX): scalars, text, the run's
hyperparameters and its samples (text, images, audio); progress to the console (tqdm)."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import sys
import time
import warnings
import wave

import jax
import numpy as np
import tqdm
from tensorboardX import SummaryWriter
from tensorboardX.proto.summary_pb2 import Summary
from tensorboardX.summary import hparams


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
            if resume_step == 0 and (logged := last_logged_step(workdir)):
                # A fresh start over a run's record (its checkpoints lost, or killed before the first):
                # the record is kept beside the new one.
                kept = f'{self.path}.to_step_{logged}'
                os.replace(self.path, kept)
                warnings.warn(f'{self.path} held a record up to step {logged} and no checkpoint was there to '
                              f'resume: this run starts at step 0; the old record is kept as {kept}')
            _drop_records_after(self.path, resume_step)
            self.jsonl = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            self.tensorboard = SummaryWriter(self.tensorboard_dir, purge_step=resume_step + 1)

    def write(self, step: int, metrics: dict[str, float | str]):
        """One record of ``metrics``: numbers as scalars, text (e.g. BLEU's signature) as TensorBoard text."""
        if not self.active:
            return
        metrics = {name: value if isinstance(value, str) else float(value) for name, value in metrics.items()}
        line = (json.dumps({'step': step, 'time': time.time(), **metrics}) + '\n').encode()
        size = os.fstat(self.jsonl).st_size
        try:
            if os.write(self.jsonl, line) != len(line):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), self.path)
        except OSError as error:
            os.ftruncate(self.jsonl, size)
            raise MetricsWriteError(f'writing the metrics of step {step} to {self.path} failed: '
                                    f'{error.strerror or error}') from error
        def add_all():
            for name, value in metrics.items():
                if isinstance(value, str):
                    self.tensorboard.add_text(name, value, step)
                else:
                    self.tensorboard.add_scalar(name, value, step)
        self._guarded(step, add_all)

    def write_hparams(self, config, metrics: list[str]) -> None:
        """The run's config as one TensorBoard HParams session (every field, dotted; lists and mappings as
        text) whose metrics are the scalars ``metrics`` of this run: the HParams tab lists runs side by side."""
        if not self.active:
            return
        values = {name: value if isinstance(value, (bool, int, float, str)) else repr(value)
                  for name, value in flat_config(config.to_dict()).items()}
        experiment, session_start, _ = hparams(values, dict.fromkeys(metrics, 0.0))
        self._guarded(0, lambda: [self.tensorboard.file_writer.add_summary(summary)
                                  for summary in (experiment, session_start)])

    def write_files(self, step: int, files: dict[str, str]) -> None:
        """Files shown in TensorBoard in their natural form, {tag: path}: ``.txt`` text (as written: a
        code block), ``.png`` images, ``.wav`` audio (as written); other files (MIDI) stay files only."""
        if not self.active:
            return

        def add_all():
            for tag, path in files.items():
                extension = os.path.splitext(path)[1]
                if extension == '.txt':
                    with open(path) as f:
                        self.tensorboard.add_text(tag, ''.join('    ' + line for line in f), step)
                elif extension == '.png':
                    from PIL import Image   # pillow: only pictures need it
                    image = np.asarray(Image.open(path).convert('RGB'))
                    self.tensorboard.add_image(tag, image, step, dataformats='HWC')
                elif extension == '.wav':
                    self.tensorboard.file_writer.add_summary(wav_summary(tag, path), step)
        self._guarded(step, add_all)

    def _guarded(self, step: int, write) -> None:
        try:
            write()
            self.tensorboard.flush()
        except OSError as error:
            raise MetricsWriteError(f'writing the TensorBoard events of step {step} to {self.tensorboard_dir} '
                                    f'failed: {error.strerror or error}') from error

    def close(self):
        if self.active:
            os.close(self.jsonl)
            self.tensorboard.close()


def flat_config(tree: dict, prefix: str = '') -> dict:
    """A nested config dict as {dotted.path: value}."""
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(flat_config(value, f'{prefix}{key}.'))
        else:
            flat[f'{prefix}{key}'] = value
    return flat


def wav_summary(tag: str, path: str) -> Summary:
    """A WAV file (data/rendering.save_wav) as TensorBoard's audio summary, its bytes as they are (what
    tensorboardX's add_audio would encode again, through the soundfile package)."""
    with wave.open(path) as audio:
        channels, rate, frames = audio.getnchannels(), audio.getframerate(), audio.getnframes()
    with open(path, 'rb') as f:
        encoded = f.read()
    return Summary(value=[Summary.Value(tag=tag, audio=Summary.Audio(
        sample_rate=rate, num_channels=channels, length_frames=frames, encoded_audio_string=encoded,
        content_type='audio/wav'))])


class StepProfile:
    """A ``jax.profiler`` trace of the steps ``train.profile_steps`` = (START, COUNT) names, into the run's
    TensorBoard folder (its profile tab, ``plugins/profile``); host 0 only. The loop calls ``before``
    and ``after`` every step; the trace stops once step START + COUNT - 1 has finished on the device."""

    def __init__(self, steps: tuple, directory: str, report):
        self.first, count = tuple(steps) or (0, 0)
        self.last, self.directory, self.report = self.first + count - 1, directory, report
        self.active = bool(steps) and jax.process_index() == 0
        self.tracing = False

    def before(self, step: int) -> None:
        if self.active and step == self.first:
            jax.profiler.start_trace(self.directory)
            self.tracing = True

    def after(self, step: int, outputs) -> None:
        if self.tracing and step >= self.last:
            jax.block_until_ready(outputs)
            self.stop()
            self.report(f'profile of steps {self.first}-{self.last} written to {self.directory} '
                        f'(TensorBoard, profile tab)')

    def stop(self) -> None:
        if self.tracing:
            jax.profiler.stop_trace()
            self.tracing = False


def format_metrics(metrics: dict[str, float | str]) -> str:
    """``name=value, ...`` for the console: numbers to 4 significant digits, text as it is."""
    return ', '.join(f'{name}={value}' if isinstance(value, str) else f'{name}={value:.4g}'
                     for name, value in metrics.items())


class MetricsWriteError(OSError):
    """metrics.jsonl or the TensorBoard events could not be written (a full disk, a lost mount)."""


def _record_step(line: str) -> float | None:
    """A record's step; None for a line that is not a record (torn by a crash mid-write, or damaged)."""
    try:
        return float(json.loads(line)['step'])
    except (ValueError, KeyError, TypeError):
        return None


def _drop_records_after(path: str, step: int) -> None:
    """Keeps the records up to ``step``. Lines that are not records are dropped too: one torn last line
    silently (a crash mid-write), any more with a warning naming the file (it was damaged)."""
    if not os.path.exists(path):
        return
    with open(path, encoding='utf-8', errors='replace') as f:
        lines = f.readlines()
    steps = [_record_step(line) for line in lines]
    kept = [line for line, record_step in zip(lines, steps) if record_step is not None and record_step <= step]
    damaged = sum(record_step is None for record_step in steps[:-1])
    if damaged:
        warnings.warn(f'{path}: {damaged} of its {len(lines)} lines are not metrics records (the file was damaged); '
                      f'dropped, the records that could be read are kept')
    if len(kept) < len(lines):
        with open(path + '.tmp', 'w') as f:
            f.writelines(kept)
        os.replace(path + '.tmp', path)


def last_logged_step(workdir: str) -> int:
    """The last step ``WORKDIR/metrics.jsonl`` holds a record of (0: none, or no file)."""
    path = os.path.join(workdir, 'metrics.jsonl')
    if not os.path.exists(path):
        return 0
    with open(path, encoding='utf-8', errors='replace') as f:
        return int(max(filter(None, map(_record_step, f)), default=0))


def read_metrics(workdir: str) -> list[dict]:
    """All records of ``WORKDIR/metrics.jsonl`` (for tests and notebooks); a last line torn by a run
    killed in the middle of writing it (of a version before whole-line writes) is left out."""
    with open(os.path.join(workdir, 'metrics.jsonl')) as f:
        lines = f.readlines()
    if lines and not lines[-1].endswith('\n'):
        lines.pop()
    return [json.loads(line) for line in lines]


class Progress:
    """The console bar of training (host 0), true from the first minute.

    Steps are dispatched asynchronously, so counting dispatched steps runs ahead of the work and the
    rate swings: the loop reports a step only once its results are back (``done``). The rate is
    timed from the end of the first step (which compiles) and without the evaluation pauses
    (``paused``); the ETA is the remaining steps at that rate plus the remaining evaluations at the
    last one's duration. Until an evaluation has been timed the bar says how many are left out
    (``eta=04:16 + 2 evals``) rather than guess their length (their share of a full ``make run``:
    docs/benchmarks.md).

    Where the console is not a terminal (a batch job's log, a sweep run's console.log, ``make run > log``)
    there is no bar, whose ``\r`` redraws would fill the log: one plain line per logged step instead
    (``plain``; default: whether stderr is not a terminal).
    """

    def __init__(self, first_step: int, num_steps: int, eval_every: int, *, plain: bool | None = None):
        self.num_steps, self.eval_every = num_steps, eval_every
        self.plain = not sys.stderr.isatty() if plain is None else plain
        self.bar = tqdm.tqdm(total=num_steps, initial=first_step, unit='step', dynamic_ncols=True,
                             disable=jax.process_index() != 0 or self.plain, mininterval=1.0,
                             bar_format='{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}{postfix}]')
        self.timed_from_step, self.timed_seconds, self.started = None, 0.0, None
        self.evaluation_seconds, self.fields = 0.0, {}

    def done(self, step: int) -> None:
        """Step ``step``'s results are back."""
        now = time.perf_counter()
        if self.timed_from_step is None:         # the compiling step: time from its end
            self.timed_from_step = step
        else:
            self.timed_seconds += now - self.started
        self.started = now
        self.bar.update(step - self.bar.n)
        self._show(step)

    @contextlib.contextmanager
    def paused(self):
        """A context for an evaluation: its time counts towards the ETA, not the rate."""
        start = time.perf_counter()
        yield
        self.evaluation_seconds = time.perf_counter() - start
        if self.started is not None:
            self.started += self.evaluation_seconds

    def rate(self, step: int) -> float | None:
        """Steps per second since the first step ended (None until two steps are back)."""
        timed_steps = step - (self.timed_from_step or step)
        return timed_steps / self.timed_seconds if timed_steps and self.timed_seconds > 0 else None

    def eta_seconds(self, step: int) -> float | None:
        rate = self.rate(step)
        if rate is None:
            return None
        return (self.num_steps - step) / rate + self.evaluations_after(step) * self.evaluation_seconds

    def eta_text(self, step: int) -> str | None:
        """The ETA as shown: h:mm:ss, plus the evaluations still to come while none has been timed."""
        eta = self.eta_seconds(step)
        if eta is None:
            return None
        untimed = self.evaluations_after(step) if self.evaluation_seconds == 0 else 0
        return tqdm.tqdm.format_interval(eta) + (f' + {untimed} eval{"s" * (untimed > 1)}' if untimed else '')

    def evaluations_after(self, step: int) -> int:
        """The evaluations still to come after ``step``: every ``eval_every`` steps and at the end."""
        if step >= self.num_steps:
            return 0
        every = self.eval_every or self.num_steps
        return self.num_steps // every - step // every + (1 if self.num_steps % every else 0)

    def set(self, step: int, **fields) -> None:
        """Fields shown after the rate (the loop's loss and tokens/s), logged at ``step``: on the bar, or
        as one plain line."""
        self.fields.update(fields)
        if self.plain and jax.process_index() == 0:
            shown = {**self.fields, **self._timing(step)}
            print(f'step {step}/{self.num_steps}: ' + ', '.join(f'{name}={value}' for name, value in shown.items()),
                  file=sys.stderr, flush=True)

    def _timing(self, step: int) -> dict[str, str]:
        """The rate and ETA as shown (none until two steps are back)."""
        rate = self.rate(step)
        if rate is None:
            return {}
        return {'rate': f'{rate:.2f} step/s' if rate >= 1 else f'{1 / rate:.2f} s/step', 'eta': self.eta_text(step)}

    def _show(self, step: int) -> None:
        self.bar.set_postfix({**self.fields, **self._timing(step)}, refresh=False)

    def write(self, message: str) -> None:
        """A line of the run (an evaluation's results) on stdout, at once: a batch job's log keeps it in
        order with the progress lines and keeps it if the job is killed."""
        self.bar.write(message)
        sys.stdout.flush()

    def close(self) -> None:
        self.bar.close()
