"""Pre-emption: SIGTERM or SIGINT asks the loop to checkpoint and stop; a second signal exits at once
(the same signal again within a second is taken for a copy of the first: ``Deliveries``).

Cloud schedulers (TPU / GPU spot VMs, SLURM, Kubernetes) send SIGTERM some seconds before killing a
job, and Ctrl-C sends SIGINT. The handler only records the request; the loop sees it between steps,
saves a checkpoint at the step it reached and raises ``TrainingInterrupted``. On many hosts the
request is shared (any host's signal stops all of them at the same step), because every host must
take part in the save: the hosts agree every ``parallel.stop_check_every_steps`` steps (``StopSignals``).
"""

from __future__ import annotations

import os
import signal
import sys
import time

import jax
import numpy as np
from jax.experimental import multihost_utils

SIGNALS = (signal.SIGTERM, signal.SIGINT)
DUPLICATE_SECONDS = 1.0


class Deliveries:
    """Tells a new stop request from a copy of the last one: the same signal again within
    DUPLICATE_SECONDS. A batch system (SLURM's scancel) signals every process of a job, and a parent
    (a sweep's worker) passes the signal on too, so one request can arrive twice at once."""

    def __init__(self):
        self.count = 0
        self._last: tuple[int, float] | None = None

    def new(self, number: int) -> bool:
        now = time.monotonic()
        if self._last is not None and self._last[0] == number and now - self._last[1] < DUPLICATE_SECONDS:
            return False
        self._last = (number, now)
        self.count += 1
        return True


class TrainingInterrupted(Exception):
    """The run stopped on a signal after checkpointing ``step``; running it again resumes there."""

    def __init__(self, signal_number: int, step: int, workdir: str):
        self.signal_number, self.step = signal_number, step
        super().__init__(f'{signal.Signals(signal_number).name} received: stopped at step {step} and saved '
                         f'a checkpoint in {os.path.join(workdir, "checkpoints", str(step))}. Run the same command '
                         f'again (same --config and --workdir={workdir}) to resume from step {step}.')


class StopSignals:
    """Context manager turning SIGTERM / SIGINT into ``requested(step)``; restores the old handlers on exit.

    With one process the check reads a flag, at every step. With several, the hosts must stop at the
    same step (each takes part in the save), so they agree by an all-gather of their flags, and only
    on every ``check_every_steps``-th step and on ``last_step``: an all-gather is a collective that
    runs on the devices behind every step queued before it, so reading its result back waits for them
    all and stops the host from dispatching steps ahead. Every host asks at the same steps (the step
    numbers are the same everywhere), so all of them all-gather together and stop at the same step.
    The price is latency: a signal is seen up to ``check_every_steps`` steps late, plus the save,
    which must fit in the scheduler's grace period between SIGTERM and SIGKILL (30 s on Google Cloud
    spot VMs and by default on Kubernetes): keep ``check_every_steps`` x the step time well under it.
    ``last_step`` is checked too, so that a signal in the last steps stops the run before its final
    evaluation, which can take longer than the grace period.

    (JAX's own ``multihost_utils.reached_preemption_sync_point`` needs no collective, but it sees only
    the SIGTERM that its runtime's C handler catches, which the Python handler here replaces, not SIGINT.)
    """

    def __init__(self, check_every_steps: int = 1, last_step: int | None = None):
        self.check_every_steps, self.last_step = check_every_steps, last_step
        self.received: int | None = None
        self._deliveries = Deliveries()
        self._previous = {}

    def __enter__(self):
        self._when = ('at the end of this step' if jax.process_count() == 1 or self.check_every_steps == 1 else
                      f'within {self.check_every_steps} steps, where the hosts agree to stop')
        for number in SIGNALS:
            self._previous[number] = signal.signal(number, self._handle)
        return self

    def __exit__(self, *exc):
        for number, handler in self._previous.items():
            signal.signal(number, handler)

    def _handle(self, number, frame):
        del frame
        if not self._deliveries.new(number):
            return
        if self.received is not None:
            sys.stderr.write(f'\n{signal.Signals(number).name} received again: exiting now, without a checkpoint\n')
            sys.stderr.flush()
            os._exit(128 + number)
        self.received = number
        sys.stderr.write(f'\n{signal.Signals(number).name} received: saving a checkpoint {self._when} '
                         f'(send it again to exit at once)\n')
        sys.stderr.flush()

    def requested(self, step: int) -> int | None:
        """The signal that asks to stop at ``step`` (received on any host), or None. Every host calls it
        at every step; with several hosts, only the check steps all-gather and may say stop."""
        if jax.process_count() == 1:
            return self.received
        if step % self.check_every_steps and step != self.last_step:
            return None
        signals = multihost_utils.process_allgather(np.int32(self.received or 0))
        return int(signals.max()) or None
