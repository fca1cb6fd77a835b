"""Runs a config file's sweep: every run a ``scripts/train.py`` run, on an Optuna study.

    python scripts/sweep.py --config=configs/transformer_bible_enes.py --sweep=lr --workdir=sweeps/bible_lr \
        [--workers=2] [--config.train.num_steps=400 ...] [--metric=validation/nll --mode=min] \
        [--prune=median] [--trials=20 --sampler=tpe] [--storage=postgresql://...] [--join]
    python scripts/sweep.py ... --storage=postgresql://... --launcher=slurm --workers=8 \
        --slurm_partition=gpu --slurm_gpus_per_worker=1 --slurm_time_minutes=720   # 8 SLURM jobs (submitit)
    python scripts/sweep.py ... --list       # the runs and their flags; nothing is written or run
    python scripts/sweep.py ... --status     # the results table as it stands

``--sweep=NAME`` is the config file's ``sweep_NAME(add)`` (a grid) or ``search_NAME(trial)`` (an Optuna
search of ``--trials`` runs). ``--config.a.b=V`` flags apply to every run. Every run's config is built
and checked before anything is written. Runs train in WORKDIR/runs/NAME; results in WORKDIR/results.md,
results.csv and plots/. Running the same command again resumes the sweep: finished runs are kept,
interrupted ones resume from their checkpoints. ``--join`` adds this machine's workers to a sweep that
another machine started on the same ``--storage``; ``--launcher=slurm`` starts the workers as SLURM jobs
(submitit), ``--launcher=local`` the same jobs on this machine.

Exit status: 0 when every run is complete (or pruned); 1 with one ``error:`` line on a bad flag or
sweep, or when a run failed (each failure is listed); 128 + signal number after SIGTERM / SIGINT, which
stop the runs with a checkpoint.
"""

import os
import shlex
import sys

from absl import flags
from ml_collections import config_flags

from transformer_lab import cli
from transformer_lab.sweeps import launch as launch_lib
from transformer_lab.sweeps import spec as spec_lib
from transformer_lab.sweeps import study as study_lib
from transformer_lab.sweeps import worker as worker_lib
from transformer_lab.training import workdir as workdir_lib

FLAGS = flags.FLAGS
cli.define_config_flag()
flags.DEFINE_string('sweep', None, "NAME of the config file's sweep_NAME or search_NAME function.")
flags.DEFINE_string('workdir', None, 'Directory of the sweep: its runs, results and (by default) storage.')
flags.DEFINE_integer('workers', 1, 'Worker processes on this machine, each training one run at a time.', lower_bound=1)
flags.DEFINE_string('storage', '', 'Optuna storage URL (postgresql://, mysql://); default: SQLite in --workdir.')
flags.DEFINE_string('study_name', None, 'Name of the study in the storage; default: the workdir\'s name and --sweep.')
flags.DEFINE_bool('join', False, 'Join a sweep started elsewhere on --storage: enqueue nothing, add workers.')
flags.DEFINE_string('metric', 'validation/nll', 'The evaluation metric that ranks runs (and prunes them).')
flags.DEFINE_enum('mode', 'min', ['min', 'max'], 'Whether a lower or higher --metric is better.')
flags.DEFINE_enum('prune', 'none', ['none', 'median'], 'Stop runs whose metric is worse than the median of '
                  'earlier runs at the same step (Optuna MedianPruner).')
flags.DEFINE_integer('prune_startup_runs', 5, 'Runs that finish before any run is pruned.', lower_bound=0)
flags.DEFINE_integer('trials', 10, 'Runs of a search_ function.', lower_bound=1)
flags.DEFINE_enum('sampler', 'tpe', ['tpe', 'random'], 'Optuna sampler of a search_ function.')
flags.DEFINE_integer('seed', 0, "The sampler's seed.")
flags.DEFINE_bool('retry_failed', False, 'Enqueue the failed runs again (e.g. after fixing their cause).')
flags.DEFINE_bool('list', False, 'Print the runs and their flags, and exit; nothing is written.')
flags.DEFINE_bool('status', False, "Print the sweep's results table as it stands, and exit.")
flags.DEFINE_enum('launcher', 'processes', list(launch_lib.LAUNCHERS), "How the workers start: 'processes' of "
                  "this machine; 'slurm': SLURM jobs through submitit, each a --join worker (needs --storage on a "
                  "database server); 'local': the same jobs on this machine (submitit's local executor).")
flags.DEFINE_string('slurm_partition', '', '--launcher=slurm: the partition of the jobs (default: the cluster\'s).')
flags.DEFINE_integer('slurm_gpus_per_worker', 0, '--launcher=slurm: GPUs of each worker\'s job (its runs see them).',
                     lower_bound=0)
flags.DEFINE_integer('slurm_cpus_per_worker', 0, '--launcher=slurm: CPUs of each worker\'s job (0: the cluster\'s '
                     'default).', lower_bound=0)
flags.DEFINE_integer('slurm_time_minutes', 24 * 60, '--launcher=slurm: the time limit of each worker\'s job; runs it '
                     'cuts off resume when the same command runs again.', lower_bound=1)
flags.DEFINE_integer('heartbeat_interval', 10, 'Seconds between the heartbeats of a running run.', lower_bound=1)
flags.DEFINE_integer('grace_period', 60, "Seconds without a heartbeat before a run's worker is taken for lost "
                     'and the run is handed to another worker.', lower_bound=1)
flags.mark_flags_as_required(['config', 'sweep', 'workdir'])


def main(argv):
    del argv
    if FLAGS.grace_period <= FLAGS.heartbeat_interval:
        cli.fail(f'--grace_period={FLAGS.grace_period} must be longer than --heartbeat_interval='
                 f'{FLAGS.heartbeat_interval}, or every run would be taken for lost')
    workdir_lib.check_usable(FLAGS.workdir)
    overrides = config_flags.get_override_values(FLAGS['config'])
    base_arguments = tuple(f'--config.{field}={spec_lib.format_value(value)}' for field, value in overrides.items())
    sweep = spec_lib.load(config_flags.get_config_filename(FLAGS['config']), FLAGS.sweep, base_arguments)
    runs = launch_lib.planned_runs(sweep, FLAGS.metric)   # a SweepError is one error: line (cli.run)
    workdir = os.path.abspath(FLAGS.workdir)
    options = worker_lib.Options(
        config=sweep.config, sweep=sweep.name, base_arguments=base_arguments, workdir=workdir,
        storage_url=study_lib.storage_url(FLAGS.storage, workdir),
        study_name=FLAGS.study_name or f'{os.path.basename(workdir)}/{FLAGS.sweep}', metric=FLAGS.metric,
        prune=FLAGS.prune, prune_startup_runs=FLAGS.prune_startup_runs, sampler=FLAGS.sampler, seed=FLAGS.seed,
        heartbeat_interval=FLAGS.heartbeat_interval, grace_period=FLAGS.grace_period,
        train_script=os.path.join(os.path.dirname(os.path.abspath(__file__)), 'train.py'))
    launch = launch_lib.Launch(options=options, workers=FLAGS.workers, join=FLAGS.join, mode=FLAGS.mode,
                               trials=FLAGS.trials, retry_failed=FLAGS.retry_failed, launcher=FLAGS.launcher,
                               slurm=launch_lib.SlurmRequest(FLAGS.slurm_partition, FLAGS.slurm_gpus_per_worker,
                                                             FLAGS.slurm_cpus_per_worker, FLAGS.slurm_time_minutes),
                               command=shlex.join(['python', 'scripts/sweep.py', *map(launch_lib.without_password, sys.argv[1:])]))
    if FLAGS.list:
        print(launch_lib.describe_runs(sweep, runs, workdir, FLAGS.trials, FLAGS.sampler))
        return
    if (FLAGS.status or FLAGS.join) and not FLAGS.storage and not os.path.exists(
            os.path.join(workdir, study_lib.STORAGE_FILE)):
        cli.fail(f'--workdir={FLAGS.workdir} holds no sweep ({study_lib.STORAGE_FILE} is missing); start it '
                 f'without --status / --join, or give the --storage it was started on')
    if FLAGS.status:
        print(launch_lib.status(launch, sweep), end='')
        return
    try:
        launch_lib.check_launcher(launch, storage_given=bool(FLAGS.storage))
    except ValueError as error:
        cli.fail(str(error))
    sys.exit(launch_lib.launch(launch, sweep, runs))


if __name__ == '__main__':
    cli.run(main)
