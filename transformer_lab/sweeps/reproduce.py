"""Reproducing a paper's table (``scripts/reproduce.py``): its rows checked, trained on the sweep engine
with several seeds, collected (sweeps/tables.py) and written up beside the paper's (sweeps/report.py).

Runs train in WORKDIR/runs/LABEL,seed=S, the study in WORKDIR (or on ``storage``); the same call again
trains only what is missing and refuses a run that the table now gives other flags.
"""

from __future__ import annotations

import os

import optuna

from transformer_lab.sweeps import launch as launch_lib
from transformer_lab.sweeps import lengths
from transformer_lab.sweeps import report
from transformer_lab.sweeps import spec
from transformer_lab.sweeps import study as study_lib
from transformer_lab.sweeps import tables
from transformer_lab.sweeps import worker as worker_lib
from transformer_lab.sweeps.spec import SweepError
from transformer_lab.training import workdir as workdir_lib

ENVIRONMENT_FILE = 'environment.txt'   # in the workdir: the machine and stack that trained the runs
COMPILED_MEMORY_FILE = 'compiled_memory.json'   # in the workdir: each row's compiled train step, in MB


def reproduce(table: str, scale: str, *, project: str, command: str, seeds: int | None = None, workers: int = 1,
              storage: str = '', workdir: str | None = None, output: str | None = None, collect_only: bool = False,
              retry_failed: bool = False, smoke: bool = False) -> int:
    """Trains what is missing of ``scale`` of ``table`` (a file of PROJECT/configs/tables/ by name, or a
    path), then writes its document; returns the exit status (1: a run failed or, ``collect_only``, is
    unfinished). A bad table, flag or workdir is a SweepError (or the workdir's own error), raised
    before anything is written. ``command`` is the one the document shows."""
    if output and not output.endswith('.md'):
        raise SweepError(f'--output={output}: the document is Markdown; give a file name ending in .md')
    path = os.path.abspath(table) if table.endswith('.py') else os.path.join(project, 'configs', 'tables', f'{table}.py')
    suffix = '_smoke' if smoke else ''
    workdir = os.path.abspath(workdir or os.path.join(project, 'workdirs', 'tables',
                                                      f'{os.path.basename(path)[:-3]}_{scale}{suffix}'))
    output = os.path.abspath(output) if output else None
    os.chdir(project)   # the rows' configs are paths in the project
    if path.startswith(project + os.sep):   # the study names it so on every machine, wherever the checkout is
        path = os.path.relpath(path, project)
    loaded = tables.load(path)
    rows = tables.scale_named(loaded, scale)
    metric = loaded.metrics[scale]
    sweep = tables.sweep(loaded, scale)

    def config_of(row):
        return sweep.build_config(tables.runs([row], 1)[0][1], row.label)

    if smoke:
        rows, said = tables.smoke(rows, os.path.join(workdir, 'standin_data'), config_of)
        print('smoke run:\n  ' + '\n  '.join(said), flush=True)
    name = f'{loaded.name}_{scale}{suffix}'
    output = output or (os.path.join(workdir, f'{name}.md') if smoke
                        else os.path.join(project, 'docs', 'results', f'{name}.md'))
    workdir_lib.check_usable(workdir)
    options = worker_lib.Options(
        config=path, sweep=scale, base_arguments=(), workdir=workdir,
        storage_url=study_lib.storage_url(storage, workdir), study_name=name, metric=metric,
        prune='none', prune_startup_runs=0, sampler='random', seed=0, heartbeat_interval=10, grace_period=60,
        train_script=os.path.join(project, 'scripts', 'train.py'))
    launch = launch_lib.Launch(options=options, workers=workers, join=False, mode=loaded.mode, trials=0,
                               retry_failed=retry_failed, command=command)
    existing = existing_runs(launch, sweep, storage_given=bool(storage))
    seeds = seeds or (1 if smoke else max(loaded.seeds[scale], seeds_held(rows, existing or [])))
    runs = tables.runs(rows, seeds)
    spec.check(sweep, runs, metric)
    refuse_changed_runs(runs, existing or [], workdir)
    if collect_only and existing is None:
        raise SweepError(f'--collect_only: {study_lib.printable(options.storage_url)} holds no runs of {name}; run '
                         f'without --collect_only first, or give the --workdir / --storage they were trained with')
    status = 0 if collect_only else train(launch, sweep, runs, existing or [], project)
    results = tables.collect(rows, seeds, study_lib.runs(launch_lib.open_study(launch, sweep, join=True)), workdir,
                             metric, loaded.extra_metrics)
    if loaded.compiled_memory:
        tables.add_compiled_memory(results, config_of, os.path.join(workdir, COMPILED_MEMORY_FILE))
    write_document(loaded, scale, results, seeds=seeds, command=command, environment_line=environment(workdir, project),
                   workdir=workdir, output=output, smoke=smoke,
                   evaluate_script=os.path.join(project, 'scripts', 'evaluate.py'))
    unfinished = sum(len(result.unfinished) for result in results)
    print(f'{name}: {len(runs) - unfinished} of {len(runs)} runs complete; {output}')
    return status or (1 if collect_only and unfinished else 0)


def train(launch: launch_lib.Launch, sweep: spec.Sweep, runs: list[tuple[str, dict]], existing: list[study_lib.Run],
          project: str) -> int:
    """Trains the runs not complete yet (``launch_lib.launch``: its exit status), first writing down the
    machine and stack that train them for the document."""
    complete = {run.name for run in existing if run.status == 'complete'}
    if any(run not in complete for run, _ in runs):
        os.makedirs(launch.options.workdir, exist_ok=True)
        with open(os.path.join(launch.options.workdir, ENVIRONMENT_FILE), 'w') as file:
            file.write(report.environment(project))
    return launch_lib.launch(launch, sweep, runs)


def environment(workdir: str, project: str) -> str:
    """The document's line on the machine and stack: those that trained the runs, else this machine's."""
    path = os.path.join(workdir, ENVIRONMENT_FILE)
    if os.path.exists(path):
        with open(path) as file:
            return file.read()
    # Runs on a storage that another machine trained.
    return report.environment(project) + ' (this machine; the runs were trained elsewhere)'


def write_document(table: tables.Table, scale: str, results: list[tables.RowResult], *, seeds: int, command: str,
                   environment_line: str, workdir: str, output: str, smoke: bool, evaluate_script: str) -> None:
    """The document at ``output``, its plots in the folder of its name beside it; a table with LONGER
    has its runs evaluated past their trained length for a section of its own."""
    metric = table.metrics[scale]
    folder = os.path.splitext(output)[0]
    os.makedirs(folder, exist_ok=True)
    rows_plot, curves_plot = os.path.join(folder, 'rows.png'), os.path.join(folder, 'curves.png')
    report.plot_rows(table, scale, results, rows_plot)
    report.plot_curves(table, scale, results, seeds, workdir, curves_plot)
    plots = {f'{metric} per row, every seed, and the paper': rows_plot, f'{metric} during training': curves_plot}
    text = report.document(table, scale, results, seeds=seeds, command=command, environment_line=environment_line,
                           plots=plots, output=output, smoke=smoke)
    if table.longer:
        by_row, tokens = lengths.evaluate_runs(results, workdir, table.longer, evaluate_script)
        text += '\n'.join(lengths.section(by_row, tokens, table.longer, os.path.join(folder, 'positions.png'), output))
    with open(output, 'w') as file:
        file.write(text)


def existing_runs(launch: launch_lib.Launch, sweep: spec.Sweep, *, storage_given: bool) -> list[study_lib.Run] | None:
    """The runs the table's study holds already; None when there is no such study yet."""
    options = launch.options
    if not storage_given and not os.path.exists(os.path.join(options.workdir, study_lib.STORAGE_FILE)):
        return None
    storage = study_lib.open_storage(options.storage_url, heartbeat_interval=options.heartbeat_interval,
                                     grace_period=options.grace_period)
    studies = optuna.get_all_study_names(storage)
    if options.study_name not in studies:
        if not storage_given and studies:   # their runs are in WORKDIR/runs, under the same names
            raise SweepError(f'--workdir={options.workdir} holds the runs of another table ({", ".join(studies)}); '
                             f'give {options.study_name} a --workdir of its own')
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
            raise SweepError(f'run {name} in {workdir} was trained with other flags than the table now gives '
                             f'({changes}); reproduce the edited table in a new --workdir')
