"""The libraries' detail, kept out of the terminal: absl logs (orbax, TFDS), other packages' Python
warnings, exceptions ignored in coroutines or raised in background threads, tracebacks of our errors.

The commands show the user one-line outcomes (``error: ...``, ``warning: ...``); what the libraries
print on the way is detail for a bug report, not for the terminal. ``install()`` routes it to an
in-memory buffer, and a training run that holds its workdir moves it to ``WORKDIR/train.log``
(``kept_in``), appending while it runs. ``install(verbose=True)`` shows everything on stderr instead.
"""

from __future__ import annotations

import contextlib
import io
import sys
import threading
import traceback
import warnings

from absl import logging

_stream: io.TextIOBase = io.StringIO()
_path: str | None = None
OUR_PACKAGE = 'transformer_lab'


def install(verbose: bool = False, *, verbosity_given: bool = False, absl_to_stderr: bool = False,
            log_dir: str = '') -> None:
    """Routes library output to the log (or, verbose, leaves it all on stderr at absl's INFO). absl's
    own flags keep their meaning for the libraries' absl logs: ``--verbosity`` (``verbosity_given``)
    their level, ``--alsologtostderr`` / ``--logtostderr`` (``absl_to_stderr``) them on stderr rather
    than in the log, ``--log_dir`` (``log_dir``) absl's log files there as well."""
    global _stream, _path
    _stream, _path = (sys.stderr if verbose else io.StringIO()), None
    if not verbosity_given:
        logging.set_verbosity(logging.INFO if verbose else logging.WARNING)
    if log_dir:
        logging.get_absl_handler().use_absl_log_file(log_dir=log_dir)
    if verbose:
        return
    if not absl_to_stderr and not log_dir:   # absl's own files (--log_dir) keep them otherwise
        logging.get_absl_handler().python_handler.stream = _Redirect()
    sys.unraisablehook = _unraisable
    threading.excepthook = _thread_exception
    warnings.showwarning = _show_warning


class _Redirect(io.TextIOBase):
    """A stream that writes to wherever the log is now (the buffer, then the file)."""

    def write(self, text):
        write(text)
        return len(text)

    def flush(self):
        pass


def write(text: str) -> None:
    """Appends ``text`` (a line or a traceback) to the log; on a full disk the detail is lost, never
    the error that the user is shown."""
    try:
        _stream.write(text if text.endswith('\n') else text + '\n')
        _stream.flush()
    except OSError:
        pass


def write_exception(error: BaseException) -> None:
    write(''.join(traceback.format_exception(error)))


@contextlib.contextmanager
def kept_in(path: str | None):
    """Moves what was logged so far to ``path`` and appends there until the block ends, then logs to
    a new buffer again. Enter it once the run holds its workdir, so that two runs never write one
    log; None (hosts other than 0, verbose mode) keeps the log where it is."""
    global _stream, _path
    if path is None or _stream is sys.stderr:
        yield
        return
    buffered = _stream.getvalue() if isinstance(_stream, io.StringIO) else ''
    log_file = open(path, 'a', buffering=1)
    _stream, _path = log_file, path
    write(buffered)
    try:
        yield
    finally:
        _stream = io.StringIO()   # _path stays: where this run's detail is
        with contextlib.suppress(OSError):  # a full disk: closing must not replace the run's own error
            log_file.close()


def location() -> str | None:
    """The log file of the last run that kept one, if any."""
    return _path


def _unraisable(unraisable) -> None:
    write(f'Exception ignored in: {unraisable.object!r}\n' + ''.join(traceback.format_exception(
        unraisable.exc_type, unraisable.exc_value, unraisable.exc_traceback)))


def _thread_exception(args) -> None:
    write(f'Exception in thread {args.thread.name if args.thread else "?"}:\n' + ''.join(
        traceback.format_exception(args.exc_type, args.exc_value, args.exc_traceback)))


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Our own warnings as one ``warning:`` line on stderr (they are for the user); others to the log."""
    del file, line
    if category is UserWarning and OUR_PACKAGE in filename:
        print(f'warning: {message}', file=sys.stderr, flush=True)
    else:
        write(warnings.formatwarning(message, category, filename, lineno))
