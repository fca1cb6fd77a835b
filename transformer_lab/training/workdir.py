"""One run owns its workdir: ``WORKDIR/lock``, held with a POSIX record lock while the run trains.

``fcntl.lockf`` locks work on local disks and on NFS (through its lock manager), and the kernel
releases them when the process ends in any way, ``kill -9`` included: a crashed run never leaves a
stale lock. The file keeps the holder's host, pid and start time, so a second run on the same
workdir stops before writing anything with ``--workdir=DIR is in use by pid P on host H since T``.
On many hosts, process 0 holds the lock for all of them.

The file stays when the run ends (removing it would race with a run opening it); its content then
names the last holder. Note that a process's POSIX lock is dropped when it closes *any* descriptor
of the file, so nothing else in the holding process may open it.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import time

import jax
import numpy as np
from jax.experimental import multihost_utils

from transformer_lab.config import UserError, base_config
from transformer_lab.training.logging import flat_config

LOCK_FILE = 'lock'
CONFIG_FILE = 'config.json'


class WorkdirError(OSError):
    """The workdir cannot be used: not a directory, not writable, or in use by another run."""


class DamagedRunError(UserError):
    """A file of a run directory cannot be read; the message names it and what would mend it."""


def saved_config(workdir: str) -> dict | None:
    """The config a run saved (WORKDIR/config.json); None where there is none. A file that is not the JSON
    mapping train.py wrote is a DamagedRunError naming it, and so is one written before a field of today's
    configs existed (runs of earlier versions are not read: there has been no release)."""
    path = os.path.join(workdir, CONFIG_FILE)
    if not os.path.exists(path):
        return None
    try:
        with open(path) as f:
            saved = json.load(f)
        missing = sorted(set(flat_config(base_config().to_dict())) - set(flat_config(saved)))
    except (ValueError, TypeError, AttributeError) as error:   # not JSON, not UTF-8, or not a mapping
        raise DamagedRunError(f'{path} is damaged ({type(error).__name__}: {str(error)[:100]}): it is not the config '
                              f'scripts/train.py wrote; restore it from a copy of the run') from None
    if missing:
        raise DamagedRunError(f'{path} was written by an earlier version of transformer_lab (it has no '
                              f'{", ".join(missing[:3])}{", ..." if len(missing) > 3 else ""}); runs of earlier '
                              f'versions are not read: train it again with this one')
    return saved


def check_usable(workdir: str) -> None:
    """Refuses, before anything is written, a workdir that is a file or lies under one, or an object
    store's URL: config.json, metrics, TensorBoard events and this lock are written with the local
    filesystem's calls, so a ``gs://`` workdir would be split between the bucket and the machine."""
    if '://' in os.fspath(workdir):
        raise WorkdirError(f'--workdir={workdir}: object-store workdirs are not supported yet; use a directory '
                           f'on a filesystem that every host mounts (NFS), e.g. --workdir=/mnt/shared/run')
    path = os.path.abspath(workdir)
    while path and not os.path.exists(path):
        path = os.path.dirname(path)
    if not os.path.isdir(path):
        raise WorkdirError(f'--workdir={workdir}: {path} is a file, not a directory; name a directory '
                           f'(it is created if it does not exist)')


class WorkdirLock:
    """Context manager: creates the workdir if needed and holds ``WORKDIR/lock`` (process 0 only)."""

    def __init__(self, workdir: str):
        self.workdir = workdir
        self.path = os.path.join(workdir, LOCK_FILE)
        self._descriptor: int | None = None

    def __enter__(self):
        failure = None
        if jax.process_index() == 0:
            try:
                self._acquire()
            except WorkdirError as error:
                failure = error
        if jax.process_count() > 1:
            ok = multihost_utils.process_allgather(np.int32(failure is None))
            if failure is None and not ok.all():
                failure = WorkdirError(f'--workdir={self.workdir}: process 0 could not lock it (see its output)')
        if failure is not None:
            raise failure
        return self

    def __exit__(self, *exc):
        if self._descriptor is not None:
            os.close(self._descriptor)   # releases the lock
            self._descriptor = None

    def _acquire(self) -> None:
        check_usable(self.workdir)
        try:
            os.makedirs(self.workdir, exist_ok=True)
            descriptor = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as error:
            raise WorkdirError(f'--workdir={self.workdir} cannot be written ({error.strerror}); choose a '
                               f'directory you can write, or fix its permissions / mount') from error
        try:
            fcntl.lockf(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            holder = _read_holder(descriptor)
            os.close(descriptor)
            if error.errno not in (errno.EACCES, errno.EAGAIN):
                raise WorkdirError(f'--workdir={self.workdir}: cannot lock {self.path} ({error.strerror})') \
                    from error
            raise WorkdirError(f'--workdir={self.workdir} is in use by {holder}; wait for that run to end, '
                               f'stop it, or train in another --workdir') from None
        holder = {'host': socket.gethostname(), 'pid': os.getpid(),
                  'since': time.strftime('%Y-%m-%d %H:%M:%S %Z')}
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, (json.dumps(holder) + '\n').encode(), 0)
        self._descriptor = descriptor


def _read_holder(descriptor: int) -> str:
    try:
        holder = json.loads(os.pread(descriptor, 4096, 0))
        return f'pid {holder["pid"]} on host {holder["host"]} since {holder["since"]}'
    except (OSError, ValueError, KeyError, TypeError):
        return 'another run (its lock file names no holder yet)'
