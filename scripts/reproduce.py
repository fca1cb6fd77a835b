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

import optuna
from absl import flags

from transformer_lab import cli
from transformer_lab.sweeps import launch as launch_lib
from transformer_lab.sweeps import lengths
from transformer_lab.sweeps import spec as spec_lib
from transformer_lab.sweeps import study as study_lib
from transformer_lab.sweeps import tables
from transformer_lab.sweeps import worker as worker_lib
from transformer_lab.training import workdir as workdir_lib

PROJECT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TABLES = os.path.join(PROJECT, 'configs', 'tables')
ENVIRONMENT_FILE = 'environment.txt'   # in the workdir: the machine and stack that trained the runs
COMPILED_MEMORY_FILE = 'compiled_memory.json'   # in the workdir: each row's compiled train step, in MB

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
    path = os.path.abspath(FLAGS.table) if FLAGS.table.endswith('.py') else os.path.join(TABLES, f'{FLAGS.table}.py')
    smoke = '_smoke' if FLAGS.smoke else ''
    workdir = os.path.abspath(FLAGS.workdir or os.path.join(PROJECT, 'workdirs', 'tables', f'{os.path.basename(path)[:-3]}_'
                                                             f'{FLAGS.scale}{smoke}'))
    output = os.path.abspath(FLAGS.output) if FLAGS.output else None
    os.chdir(PROJECT)   # the rows' configs are paths in the project
    if path.startswith(PROJECT + os.sep):   # the study names it so on every machine, wherever the checkout is
        path = os.path.relpath(path, PROJECT)
    if FLAGS.output and not FLAGS.output.endswith('.md'):
        cli.fail(f'--output={FLAGS.output}: the document is Markdown; give a file name ending in .md')
    try:
        table = tables.load(path)
        rows = tables.scale_named(table, FLAGS.scale)
        metric = table.metrics[FLAGS.scale]
        sweep = spec_lib.Sweep(path, FLAGS.scale, tables.grid_function(table, FLAGS.scale))   # as spec.load makes it
        if FLAGS.smoke:
            rows, said = tables.smoke(rows, os.path.join(workdir, 'standin_data'),
                                      lambda row: sweep.build_config(tables.runs([row], 1)[0][1], row.label))
            print('smoke run:\n  ' + '\n  '.join(said), flush=True)
    except spec_lib.SweepError as error:
        cli.fail(str(error))
    name = f'{table.name}_{FLAGS.scale}{smoke}'
    output = output or (os.path.join(workdir, f'{name}.md') if FLAGS.smoke
                        else os.path.join(PROJECT, 'docs', 'results', f'{name}.md'))
    workdir_lib.check_usable(workdir)
    # The document shows the command that trains the runs (--collect_only only rewrites it).
    command = shlex.join(['python', 'scripts/reproduce.py', *(launch_lib.without_password(argument)
                                                              for argument in sys.argv[1:]
                                                              if argument not in ('--collect_only', '--nocollect_only'))])
    options = worker_lib.Options(
        config=path, sweep=FLAGS.scale, base_arguments=(), workdir=workdir,
        storage_url=study_lib.storage_url(FLAGS.storage, workdir), study_name=name, metric=metric,
        prune='none', prune_startup_runs=0, sampler='random', seed=0, heartbeat_interval=10, grace_period=60,
        train_script=os.path.join(PROJECT, 'scripts', 'train.py'))
    launch = launch_lib.Launch(options=options, workers=FLAGS.workers, join=False, mode=table.mode, trials=0,
                               retry_failed=FLAGS.retry_failed, command=command)
    existing = existing_runs(launch, sweep)
    seeds = FLAGS.seeds or (1 if FLAGS.smoke else max(table.seeds[FLAGS.scale], seeds_held(rows, existing or [])))
    runs = tables.runs(rows, seeds)
    try:
        spec_lib.check(sweep, runs, metric)
    except spec_lib.SweepError as error:
        cli.fail(str(error))
    refuse_changed_runs(runs, existing or [], workdir)
    environment_file = os.path.join(workdir, ENVIRONMENT_FILE)
    if FLAGS.collect_only:
        if existing is None:
            cli.fail(f'--collect_only: {study_lib.printable(options.storage_url)} holds no runs of {name}; run '
                     f'without --collect_only first, or give the --workdir / --storage they were trained with')
        status = 0
    else:
        complete = {run.name for run in existing or [] if run.status == 'complete'}
        if any(run not in complete for run, _ in runs):   # the stack that trains them, for the document
            os.makedirs(workdir, exist_ok=True)
            with open(environment_file, 'w') as file:
                file.write(tables.environment(PROJECT))
        status = launch_lib.launch(launch, sweep, runs)
    study = launch_lib.open_study(launch, sweep, join=True)
    results = tables.collect(rows, seeds, study_lib.runs(study), workdir, metric, table.extra_metrics)
    if table.compiled_memory:
        tables.add_compiled_memory(results, lambda row: sweep.build_config(tables.runs([row], 1)[0][1], row.label),
                                   os.path.join(workdir, COMPILED_MEMORY_FILE))
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
                           environment_line=environment_line, plots=plots, output=output, smoke=FLAGS.smoke)
    if table.longer:
        by_row, tokens = lengths.evaluate_runs(results, workdir, table.longer,
                                               os.path.join(PROJECT, 'scripts', 'evaluate.py'))
        text += '\n'.join(lengths.section(by_row, tokens, table.longer, os.path.join(folder, 'positions.png'), output))
    with open(output, 'w') as file:
        file.write(text)
    unfinished = sum(len(result.unfinished) for result in results)
    print(f'{name}: {len(runs) - unfinished} of {len(runs)} runs complete; {output}')
    sys.exit(status or (1 if FLAGS.collect_only and unfinished else 0))


def existing_runs(launch: launch_lib.Launch, sweep: spec_lib.Sweep) -> list[study_lib.Run] | None:
    """The runs the table's study holds already; None when there is no such study yet."""
    options = launch.options
    if not FLAGS.storage and not os.path.exists(os.path.join(options.workdir, study_lib.STORAGE_FILE)):
        return None
    storage = study_lib.open_storage(options.storage_url, heartbeat_interval=options.heartbeat_interval,
                                     grace_period=options.grace_period)
    studies = optuna.get_all_study_names(storage)
    if options.study_name not in studies:
        if not FLAGS.storage and studies:   # their runs are in WORKDIR/runs, under the same names
            cli.fail(f'--workdir={options.workdir} holds the runs of another table ({", ".join(studies)}); give '
                     f'{options.study_name} a --workdir of its own')
        return None
    return study_lib.runs(launch_lib.open_study(launch, sweep, join=True))


def seeds_held(rows: list[tables.Row], existing: list[study_lib.Run]) -> int:
    """How many seeds of these rows the study holds runs of (0 without any)."""
    labels = {tables.run_name(row, 0).rpartition(',seed=')[0] for row in rows}
    held = [int(seed) for label, _, seed in (run.name.rpartition(',seed=') for run in existing)
            if label in labels and seed.isdigit()]
    return max(held, default=-1) + 1


def refuse_changed_runs(runs: list[tuple[str, dict]], existing: list[study_lib.Run], workdir: str) -> None:
    """A run the study holds under the same name but with other flags (the table was edited) is an
    error: its result would be reported beside flags it was not trained with."""
    held = {run.name: run.overrides for run in existing}
    for name, overrides in runs:
        if name in held and held[name] != overrides:
            fields = sorted(field for field in {*held[name], *overrides} if held[name].get(field) != overrides.get(field))
            changes = ', '.join(f'{field}: {held[name].get(field)!r} then, {overrides.get(field)!r} now' for field in fields)
            cli.fail(f'run {name} in {workdir} was trained with other flags than the table now gives ({changes}); '
                     f'reproduce the edited table in a new --workdir')


if __name__ == '__main__':
    cli.run(main)
