"""What every command in scripts/ shares: the ``--config`` flag and ``run(main)``, which turns a user's
mistake into one ``error:`` line and exit status 1, never a traceback.

    FLAGS = flags.FLAGS
    cli.define_config_flag()
    ...
    if __name__ == '__main__':
        cli.run(main)

Flag errors (a missing config file, an unknown variant, a bad override) are reported the same way as
errors raised by ``main``: the expected ones (``USER_ERRORS``, any ``OSError`` among them, e.g. a full
disk or an unwritable directory) print ``error: MESSAGE``; their tracebacks and the libraries' own output go to
the log (``library_log``), or to stderr with ``--verbose``.
"""

from __future__ import annotations

import ast
import importlib.util
import os
import sys
import traceback

from absl import app, flags
from ml_collections import config_flags
from ml_collections.config_flags import config_flags as config_flags_lib

from transformer_lab import library_log
from transformer_lab.config import ConfigError, UserError

FLAGS = flags.FLAGS
flags.DEFINE_bool('verbose', False, "Show the libraries' logs, warnings and tracebacks on stderr.")

# UserError: ours (a config, a workdir another run holds, an unreadable checkpoint, a loss gone non-finite);
# OSError: ours that are about files (DatasetNotPreparedError, WorkdirError, MetricsWriteError, a missing
# run) and the system's own (a full disk, a path that cannot be written).
USER_ERRORS = (UserError, OSError)


class ConfigFileParser(config_flags_lib.ConfigFileFlagParser):
    """Loads ``--config=FILE[:ARG]`` like ml_collections' parser, but with one-line errors: a missing
    file, a ConfigError of ``get_config`` (whose message ml_collections' re-raise would lose) and any
    other exception in the file (reported at its line in the file)."""

    def parse(self, path: str):
        file_name, has_arg, arg = path.partition(':')
        if not os.path.isfile(file_name):
            raise ValueError(f'{file_name} is not a file; name a config file such as '
                             f'configs/transformer_bible_enes.py (the configs are in configs/)')
        try:
            spec = importlib.util.spec_from_file_location(f'{self.name}_config', file_name)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            config = module.get_config(*([arg] if has_arg else []))
        except ConfigError as error:
            raise ValueError(str(error)) from None
        except Exception as error:  # a bug in the user's own config file: where, and what
            raise ValueError(f'{where_in(file_name, error)}: {type(error).__name__}: {error}') from None
        if self._lock_config:
            config.lock()
        return config


def where_in(file_name: str, error: BaseException) -> str:
    """``FILE:LINE`` of the innermost frame of ``error`` in the user's file ``file_name`` (else FILE)."""
    if isinstance(error, SyntaxError):
        return f'{file_name}:{error.lineno}'
    frames = [frame for frame in traceback.extract_tb(error.__traceback__)
              if os.path.abspath(frame.filename) == os.path.abspath(file_name)]
    return f'{file_name}:{frames[-1].lineno}' if frames else file_name


def define_config_flag(name: str = 'config') -> None:
    config_flags.DEFINE_config_file(name, None, 'Config file, optionally with :variant.', lock_config=True)
    FLAGS[name].parser = ConfigFileParser(name=name, lock_config=True)


def fail(message: str) -> None:
    """Exits with status 1 after one ``error:`` line (and the indented lines of a message that lists
    several things), naming the run's log when there is one."""
    log = library_log.location()
    print(f'error: {message}' + (f' (details in {log})' if log else ''), file=sys.stderr, flush=True)
    sys.exit(1)


def _parse_flags(argv):
    try:
        return FLAGS(argv)
    except flags.Error as error:
        fail(str(error))
    except (AttributeError, KeyError) as error:  # ml_collections: an override of a field that does not exist
        fail(_no_such_field(error, argv))


def _no_such_field(error: Exception, argv: list[str]) -> str:
    overrides = [arg.split('=')[0] for arg in argv[1:] if arg.startswith('--config.')]
    # ml_collections' KeyError holds "'field'", or for a near miss the repr of "'field'\nDid you mean ...?"
    field = str(error.args[0] if error.args else error).strip('"')
    if '\\n' in field:
        try:
            field = ast.literal_eval(field)
        except (ValueError, SyntaxError):
            pass
    field = '; '.join(line.strip() for line in field.splitlines())
    return (f'no such config field: {field} (overrides given: {", ".join(overrides)}); '
            f'the fields are those of the config file, e.g. --config.train.num_steps')


def config_from_arguments(arguments: list[str]):
    """The ConfigDict that ``arguments`` (``--config=FILE[:ARG]`` and ``--config.a.b=V`` flags) give a
    script, parsed exactly as ``scripts/train.py`` parses them; raises ValueError with a one-line message.
    Sweeps build and check every run's config this way before any run starts."""
    argv = ['config', *arguments]
    values = flags.FlagValues()
    config_flags.DEFINE_config_file('config', None, '', flag_values=values, lock_config=True, sys_argv=argv)
    values['config'].parser = ConfigFileParser(name='config', lock_config=True)
    try:
        values(argv)
    except flags.Error as error:
        raise ValueError(str(error)) from None
    except (AttributeError, KeyError) as error:
        raise ValueError(_no_such_field(error, argv)) from None
    return values.config


def use_compilation_cache() -> None:
    """Keeps compiled programs between commands in JAX's persistent compilation cache, in
    ``$XDG_CACHE_HOME/transformer_lab/jax`` (default ``~/.cache/transformer_lab/jax``): a command that
    compiles what an earlier one compiled (a resumed or repeated run, a second evaluation) loads it
    instead (what the first step saves: docs/benchmarks.md). ``$JAX_COMPILATION_CACHE_DIR``, JAX's own setting, names another folder, or,
    set empty, turns the cache off. Programs compiled in under a second are not kept (JAX's default)."""
    if 'JAX_COMPILATION_CACHE_DIR' in os.environ:
        return
    import jax
    cache_home = os.environ.get('XDG_CACHE_HOME') or os.path.join(os.path.expanduser('~'), '.cache')
    jax.config.update('jax_compilation_cache_dir', os.path.join(cache_home, 'transformer_lab', 'jax'))


def run(main) -> None:
    """``app.run(main)`` with one-line errors for flags and for ``USER_ERRORS`` raised by ``main``, and
    the persistent compilation cache (``use_compilation_cache``)."""
    def guarded(argv):
        if FLAGS.log_dir and not os.path.isdir(FLAGS.log_dir):
            fail(f'--log_dir={FLAGS.log_dir}: no such directory; create it, or leave absl\'s log files out')
        library_log.install(FLAGS.verbose, verbosity_given=FLAGS['verbosity'].present,
                            absl_to_stderr=FLAGS.alsologtostderr or FLAGS.logtostderr, log_dir=FLAGS.log_dir)
        use_compilation_cache()
        try:
            main(argv)
        except USER_ERRORS as error:
            if FLAGS.verbose:
                raise
            library_log.write_exception(error)
            fail(describe(error))
    app.run(guarded, flags_parser=_parse_flags)


def describe(error: BaseException) -> str:
    """The message of an expected error; for an OSError, what failed on which path."""
    if isinstance(error, OSError) and error.strerror:  # an OS call's own error, not one of ours
        path = f': {error.filename}' if error.filename else ''
        return f'{error.strerror}{path} (errno {error.errno}); check the path, its permissions and free space'
    return str(error)
