"""Reproduces a paper's table: every row with several seeds, on the sweep engine, then a document of
ours beside the paper's numbers.

    python scripts/reproduce.py --table=music_transformer_jsb --scale=cpu [--seeds=3] [--workers=2] \
        [--storage=postgresql://...] [--workdir=workdirs/tables/music_transformer_jsb_cpu] [--output=FILE.md]
    python scripts/reproduce.py --table=music_transformer_jsb --scale=cpu --collect_only   # no training

``--table`` is a file of configs/tables/ (its name, or a path); its rows and seeds are checked before
anything runs. Runs train in WORKDIR/runs/LABEL,seed=S (ordinary workdirs; the sweep's results.md and
plots are in WORKDIR too); running the same command again trains only what is missing, and resumes
interrupted runs from their checkpoints; ``--storage`` shares the runs between machines as for
scripts/sweep.py. The document goes to docs/results/TABLE_SCALE.md (``--output``), its plots beside it
in docs/results/TABLE_SCALE/.

Exit status: 0 when every run is complete; 1 with one ``error:`` line on a bad flag or table, or when
a run failed; 128 + signal number after SIGTERM / SIGINT (the same command resumes).
"""

import os
import shlex
import sys

from absl import flags

from transformer_lab import cli
from transformer_lab.sweeps import launch as launch_lib
from transformer_lab.sweeps import spec as spec_lib
from transformer_lab.sweeps import study as study_lib
from transformer_lab.sweeps import tables
from transformer_lab.sweeps import worker as worker_lib
from transformer_lab.training import workdir as workdir_lib

PROJECT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TABLES = os.path.join(PROJECT, 'configs', 'tables')
ENVIRONMENT_FILE = 'environment.txt'   # in the workdir: the machine and stack that trained the runs

FLAGS = flags.FLAGS
flags.DEFINE_string('table', None, 'A table of configs/tables/ by name (e.g. music_transformer_jsb), or a path.')
flags.DEFINE_enum('scale', 'cpu', list(tables.SCALES), 'cpu: small configs on offline data; paper: the papers\'.')
flags.DEFINE_integer('seeds', None, "Seeds per row (default: the table's SEEDS for the scale).", lower_bound=1)
flags.DEFINE_integer('workers', 1, 'Worker processes on this machine, each training one run at a time.', lower_bound=1)
flags.DEFINE_string('storage', '', 'Optuna storage URL (postgresql://); default: SQLite in --workdir.')
flags.DEFINE_string('workdir', None, 'Directory of the runs (default: workdirs/tables/TABLE_SCALE).')
flags.DEFINE_string('output', None, 'The results document (default: docs/results/TABLE_SCALE.md).')
flags.DEFINE_bool('collect_only', False, 'Write the document from the finished runs; train nothing.')
flags.mark_flag_as_required('table')


def main(argv):
    del argv
    path = FLAGS.table if FLAGS.table.endswith('.py') else os.path.join(TABLES, f'{FLAGS.table}.py')
    try:
        table = tables.load(path)
        rows = tables.scale_named(table, FLAGS.scale)
        metric, seeds = table.metrics[FLAGS.scale], FLAGS.seeds or table.seeds[FLAGS.scale]
        runs = tables.runs(rows, seeds)
        sweep = spec_lib.load(path, FLAGS.scale)
        spec_lib.check(sweep, runs, metric)
    except spec_lib.SweepError as error:
        cli.fail(str(error))
    name = f'{table.name}_{FLAGS.scale}'
    workdir = os.path.abspath(FLAGS.workdir or os.path.join('workdirs', 'tables', name))
    output = FLAGS.output or os.path.join(PROJECT, 'docs', 'results', f'{name}.md')
    workdir_lib.check_usable(workdir)
    # The document shows the command that trains the runs (--collect_only only rewrites it).
    command = shlex.join(['python', 'scripts/reproduce.py', *(launch_lib.without_password(argument)
                                                              for argument in sys.argv[1:]
                                                              if argument not in ('--collect_only', '--nocollect_only'))])
    launch = launch_lib.Launch(
        options=worker_lib.Options(
            config=path, sweep=FLAGS.scale, base_arguments=(), workdir=workdir,
            storage_url=study_lib.storage_url(FLAGS.storage, workdir), study_name=name, metric=metric,
            prune='none', prune_startup_runs=0, sampler='random', seed=0, heartbeat_interval=10, grace_period=60,
            train_script=os.path.join(PROJECT, 'scripts', 'train.py')),
        workers=FLAGS.workers, join=False, mode=table.mode, trials=0, retry_failed=False, command=command)
    environment_file = os.path.join(workdir, ENVIRONMENT_FILE)
    if FLAGS.collect_only:
        if not FLAGS.storage and not os.path.exists(os.path.join(workdir, study_lib.STORAGE_FILE)):
            cli.fail(f'--collect_only: {workdir} holds no runs of {name} ({study_lib.STORAGE_FILE} is missing); '
                     f'run without --collect_only first, or give --workdir / --storage')
        status = 0
    else:
        os.makedirs(workdir, exist_ok=True)
        with open(environment_file, 'w') as file:   # the stack that trains the runs, for the document
            file.write(tables.environment(PROJECT))
        status = launch_lib.launch(launch, sweep, runs)
    study = launch_lib.open_study(launch, sweep, join=True)
    results = tables.collect(rows, seeds, study_lib.runs(study), workdir, metric, table.extra_metrics)
    if table.compiled_memory:
        tables.add_compiled_memory(results, lambda row: sweep.build_config(tables.runs([row], 1)[0][1], row.label))
    folder = os.path.splitext(output)[0]
    os.makedirs(folder, exist_ok=True)
    rows_plot, curves_plot = os.path.join(folder, 'rows.png'), os.path.join(folder, 'curves.png')
    tables.plot_rows(table, FLAGS.scale, results, rows_plot)
    tables.plot_curves(table, FLAGS.scale, results, seeds, workdir, curves_plot)
    plots = {f'{metric} per row, every seed, and the paper': rows_plot, f'{metric} during training': curves_plot}
    if os.path.exists(environment_file):
        with open(environment_file) as file:
            environment_line = file.read()
    else:   # runs on a --storage that another machine trained
        environment_line = tables.environment(PROJECT) + ' (this machine; the runs were trained elsewhere)'
    text = tables.document(table, FLAGS.scale, results, seeds=seeds, command=command,
                           environment_line=environment_line, plots=plots, output=output)
    with open(output, 'w') as file:
        file.write(text)
    print(f'{name}: {sum(len(result.seeds) for result in results)} of {len(runs)} runs complete; {output}')
    sys.exit(status)


if __name__ == '__main__':
    cli.run(main)
