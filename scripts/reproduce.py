"""Reproduces a paper's table: every row with several seeds, on the sweep engine, then a document of
ours beside the paper's numbers.

    python scripts/reproduce.py --table=music_transformer_jsb --scale=cpu [--seeds=3] [--workers=2] \
        [--storage=postgresql://...] [--workdir=workdirs/tables/music_transformer_jsb_cpu] [--output=FILE.md]
    python scripts/reproduce.py --table=music_transformer_jsb --scale=cpu --collect_only   # no training
    python scripts/reproduce.py --table=transformer_variations --scale=paper --smoke   # every row runs, 2 steps

``--table`` is a file of configs/tables/ (its name, or a path); its rows and seeds are checked before
anything runs. Runs train in WORKDIR/runs/LABEL,seed=S (ordinary workdirs; the sweep's results.md and
plots are in WORKDIR too); running the same command again trains only what is missing, and resumes
interrupted runs from their checkpoints (``--retry_failed`` trains failed ones again); a run that the
table now gives other flags is an error, not silently reused. ``--storage`` shares the runs between
machines as for scripts/sweep.py. The document goes to docs/results/TABLE_SCALE.md (``--output``), its
plots beside it in docs/results/TABLE_SCALE/; its header names the machine and stack that trained the
runs (WORKDIR/environment.txt, written when runs are trained). On a CPU, ``--workers`` above 1 share
the cores: wall times and speeds are then not those of one run alone.

``--smoke`` proves that every row runs end to end, here, before accelerator time is spent on it: each
row's own model trains 2 steps on batches of 2 rows and evaluates once, the papers' datasets this machine
cannot fetch replaced by random stand-ins in their layouts (data/standins.py); one seed, in
WORKDIR=workdirs/tables/TABLE_SCALE_smoke, the document written there too.

Exit status: 0 when every run is complete; 1 with one ``error:`` line on a bad flag or table, or when
a run failed or (``--collect_only``) is unfinished; 128 + signal number after SIGTERM / SIGINT (the same
command resumes).
"""

import os
import shlex
import sys

from absl import flags

from transformer_lab import cli
from transformer_lab.sweeps import launch as launch_lib
from transformer_lab.sweeps import reproduce as reproduce_lib
from transformer_lab.sweeps import tables

PROJECT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

FLAGS = flags.FLAGS
flags.DEFINE_string('table', None, 'A table of configs/tables/ by name (e.g. music_transformer_jsb), or a path.')
flags.DEFINE_enum('scale', 'cpu', list(tables.SCALES), 'cpu: small configs on offline data; paper: the papers\'.')
flags.DEFINE_integer('seeds', None, "Seeds per row (default: the table's SEEDS for the scale, or as many as the "
                     'workdir already holds).', lower_bound=1)
flags.DEFINE_integer('workers', 1, 'Worker processes on this machine, each training one run at a time.', lower_bound=1)
flags.DEFINE_string('storage', '', 'Optuna storage URL (postgresql://); default: SQLite in --workdir.')
flags.DEFINE_string('workdir', None, 'Directory of the runs (default: workdirs/tables/TABLE_SCALE in the project).')
flags.DEFINE_string('output', None, 'The results document (default: docs/results/TABLE_SCALE.md).')
flags.DEFINE_bool('collect_only', False, 'Write the document from the finished runs; train nothing.')
flags.DEFINE_bool('retry_failed', False, 'Train the failed runs again (e.g. after fixing their cause).')
flags.DEFINE_bool('smoke', False, 'Every row for 2 steps on batches of 2 rows, evaluated once, on stand-in data where '
                  'the paper\'s is not here; one seed, in a workdir and document of its own.')
flags.mark_flag_as_required('table')


def main(argv):
    del argv
    # The document shows the command that trains the runs (--collect_only only rewrites it).
    command = shlex.join(['python', 'scripts/reproduce.py', *(launch_lib.without_password(argument)
                                                              for argument in sys.argv[1:]
                                                              if argument not in ('--collect_only', '--nocollect_only'))])
    sys.exit(reproduce_lib.reproduce(
        FLAGS.table, FLAGS.scale, project=PROJECT, command=command, seeds=FLAGS.seeds, workers=FLAGS.workers,
        storage=FLAGS.storage, workdir=FLAGS.workdir, output=FLAGS.output, collect_only=FLAGS.collect_only,
        retry_failed=FLAGS.retry_failed, smoke=FLAGS.smoke))


if __name__ == '__main__':
    cli.run(main)
