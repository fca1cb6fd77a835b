"""Starting, joining and watching a sweep: what ``scripts/sweep.py`` does.

``launch`` checks every run's config (nothing is written before they all pass), opens the study,
enqueues the runs it does not hold yet (unless ``join``), starts the workers and watches: a line per
finished run, a bar of runs done with an ETA, the results rewritten after every run and at the end.
SIGTERM / SIGINT are passed on to the workers once, which stop their runs with a checkpoint; the same
command then resumes them.

Workers start by ``launcher``: 'processes' of this machine (multiprocessing), or submitit jobs, each a
``--join`` worker on the study's storage: 'slurm' submits them to a SLURM cluster (a partition, GPUs
per worker, a time limit; logs in WORKDIR/jobs/), 'local' runs the same jobs as processes of this
machine through submitit's local executor. SLURM workers on other machines share the study through a
database server (``--storage=postgresql://...``), not the SQLite file of the workdir.

Devices: each worker's runs see their own GPUs (``CUDA_VISIBLE_DEVICES``, the machine's GPUs split
evenly) when there are at least as many GPUs as workers; with more workers than GPUs, workers share
GPUs and each gets an equal part of its memory (``XLA_PYTHON_CLIENT_MEM_FRACTION``). On CPU every run
uses all cores, so on a CPU machine more workers overlap start-up, compilation and evaluation rather
than multiply throughput (docs/sweeps.md measures it).
"""

from __future__ import annotations

import dataclasses
import math
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import time

import tqdm

from transformer_lab.sweeps import results as results_lib
from transformer_lab.sweeps import spec as spec_lib
from transformer_lab.sweeps import study as study_lib
from transformer_lab.sweeps import worker as worker_lib

WATCH_SECONDS = 2.0


LAUNCHERS = ('processes', 'local', 'slurm')


@dataclasses.dataclass(frozen=True)
class SlurmRequest:
    """What each SLURM job of a sweep asks for: one task on one node."""
    partition: str = ''          # '' = the cluster's default partition
    gpus_per_worker: int = 0
    cpus_per_worker: int = 0     # 0 = the cluster's default
    time_minutes: int = 24 * 60


@dataclasses.dataclass(frozen=True)
class Launch:
    options: worker_lib.Options
    workers: int
    join: bool
    mode: str
    trials: int
    retry_failed: bool
    command: str
    launcher: str = 'processes'
    slurm: SlurmRequest = SlurmRequest()


def check_launcher(launch: Launch, storage_given: bool) -> None:
    """Refuses (a ValueError naming the flag) a launcher this machine or storage cannot serve."""
    if launch.launcher != 'slurm':
        return
    if not storage_given:
        raise ValueError('--launcher=slurm: SLURM runs the workers on other machines, which cannot share the SQLite '
                         'file of --workdir; start a database server and give --storage=postgresql://... '
                         '(docs/sweeps.md, "On a SLURM cluster")')
    if shutil.which('sbatch') is None:
        raise ValueError('--launcher=slurm: sbatch is not on this machine\'s PATH; run the sweep on a login node '
                         'of the SLURM cluster (or --launcher=local to try the jobs on this machine)')


def planned_runs(sweep: spec_lib.Sweep, metric: str) -> list[tuple[str, dict]]:
    """A grid's runs (a search has none before it is drawn), every config checked."""
    runs = [] if sweep.is_search else spec_lib.grid(sweep)
    spec_lib.check(sweep, runs, metric)
    return runs


def without_password(argument: str) -> str:
    """A command-line argument as results show the command: a --storage URL's password starred out."""
    flag, equals, url = argument.partition('=')
    return f'{flag}={study_lib.printable(url)}' if flag == '--storage' and equals else argument


def describe_runs(sweep: spec_lib.Sweep, runs: list[tuple[str, dict]], workdir: str, trials: int,
                  sampler: str) -> str:
    """``--list``: each run, its workdir and its overrides, or what a search will draw."""
    if sweep.is_search:
        return f'{sweep.function.__name__}: {trials} runs drawn by the {sampler} sampler, in {workdir}/runs/'
    lines = [f'{sweep.function.__name__}: {len(runs)} runs']
    for name, overrides in runs:
        flags = ' '.join(f'--config.{field}={spec_lib.format_value(value)}' for field, value in overrides.items())
        lines.append(f'  {os.path.join(workdir, "runs", name)}  {flags}')
    return '\n'.join(lines)


def study_description(sweep: spec_lib.Sweep, metric: str, mode: str) -> dict:
    return {'config': sweep.config, 'sweep': sweep.name, 'arguments': list(sweep.base_arguments),
            'metric': metric, 'mode': mode}


def open_study(launch: Launch, sweep: spec_lib.Sweep, *, join: bool):
    options = launch.options
    storage = study_lib.open_storage(options.storage_url, heartbeat_interval=options.heartbeat_interval,
                                     grace_period=options.grace_period)
    return study_lib.load_or_create(storage, options.study_name, 'minimize' if launch.mode == 'min' else 'maximize',
                                    study_description(sweep, options.metric, launch.mode), join=join)


def launch(launch: Launch, sweep: spec_lib.Sweep, runs: list[tuple[str, dict]]) -> int:
    """Runs the sweep to its end; returns the exit status (0: every run complete or pruned)."""
    options = launch.options
    study = open_study(launch, sweep, join=launch.join)
    if not launch.join:
        with study_lib.claim_lock(options.storage_url):
            added = study_lib.enqueue(study, runs, search_slots=launch.trials if sweep.is_search else 0,
                                      retry_failed=launch.retry_failed)
        print(f'{options.study_name}: {added} runs enqueued, {len(study_lib.runs(study))} known; storage '
              f'{study_lib.printable(options.storage_url)}', flush=True)
    workers = []
    stopping = _SweepStops(workers)
    start_workers(launch, workers, stopping)
    total = len(runs) if not sweep.is_search else launch.trials
    watch(study, workers, launch, total)
    final = study_lib.runs(study)
    results_lib.write_all(final, metric=options.metric, mode=launch.mode, workdir=options.workdir,
                          command=launch.command)
    print(f'results: {os.path.join(options.workdir, "results.md")}')
    if stopping.count:
        print(f'stopped by {signal.Signals(stopping.first).name}: the runs in progress saved a checkpoint; run '
              f'the same command again to resume them', file=sys.stderr)
        return 128 + stopping.first
    failed = [run for run in final if run.status == 'failed']
    for run in failed:
        print(f'failed: {run.name}: {run.error}', file=sys.stderr)
    lost = [f'{worker.name} (exit {worker.exitcode})' for worker in workers if worker.exitcode != 0]
    unfinished = study_lib.unfinished(study)
    if lost:   # their runs were handed over; only runs left unfinished make the sweep fail
        print(f'{"error" if unfinished else "note"}: workers lost: {", ".join(lost)}; {unfinished} runs are not '
              f'finished' + (': run the same command again to go on' if unfinished else ''), file=sys.stderr)
    return 1 if failed or unfinished else 0


def start_workers(launch: Launch, workers: list, stopping: worker_lib.StopRequests) -> None:
    """Appends ``launch.workers`` started workers to ``workers`` (fewer once a stop is requested)."""
    if launch.launcher == 'processes':
        context = multiprocessing.get_context('spawn')
        for index, environment in enumerate(worker_environments(launch.workers)):
            if stopping.count:
                return
            process = context.Process(target=_worker_main, args=(launch.options, environment),
                                      name=f'sweep-worker-{index}')
            process.start()
            workers.append(ProcessWorker(process))
        return
    import submitit   # only sweeps that launch jobs need it
    executor = submitit.AutoExecutor(folder=os.path.join(launch.options.workdir, 'jobs'), cluster=launch.launcher)
    executor.update_parameters(**job_parameters(launch))
    # SLURM: each job's environment is the node's, with the GPUs SLURM gave it; local: this machine's shares.
    environments = [None] * launch.workers if launch.launcher == 'slurm' else worker_environments(launch.workers)
    for environment in environments:
        if stopping.count:
            return
        workers.append(JobWorker(executor.submit(_job_main, launch.options, environment)))
        print(f'submitted {workers[-1].name}: its log {workers[-1].job.paths.stdout}', flush=True)


def job_parameters(launch: Launch) -> dict:
    """submitit's parameters of each worker's job (AutoExecutor names; slurm_ ones only reach SLURM)."""
    request = launch.slurm
    parameters = {'name': f'sweep:{launch.options.study_name}', 'timeout_min': request.time_minutes,
                  'nodes': 1, 'tasks_per_node': 1, 'gpus_per_node': request.gpus_per_worker}
    if request.cpus_per_worker:
        parameters['cpus_per_task'] = request.cpus_per_worker
    if request.partition:
        parameters['slurm_partition'] = request.partition
    return parameters


def _worker_main(options: worker_lib.Options, environment: dict) -> None:
    os.setsid()   # the terminal's Ctrl-C reaches the sweep's process, which passes it on once
    worker_lib.work(options, environment)


def _job_main(options: worker_lib.Options, environment: dict | None) -> None:
    """A submitit job's function: a worker whose runs see the job's own environment (None: the node's)."""
    worker_lib.work(options, environment or {**os.environ, 'PYTHONUNBUFFERED': '1'})


class ProcessWorker:
    """A worker process of this machine, as ``watch`` and the stop signals see workers."""

    def __init__(self, process):
        self.process, self.name = process, process.name

    def is_alive(self) -> bool:
        return self.process.is_alive()

    def join(self) -> None:
        self.process.join()

    @property
    def exitcode(self) -> int | None:
        return self.process.exitcode

    def stop(self) -> None:
        os.kill(self.process.pid, signal.SIGTERM)


class JobWorker:
    """A worker's submitit job (SLURM or local), as ``watch`` and the stop signals see workers."""

    def __init__(self, job):
        self.job, self.name = job, f'job {job.job_id}'

    def is_alive(self) -> bool:
        return not self.job.done()

    def join(self) -> None:
        self.job.wait()

    @property
    def exitcode(self) -> int | None:
        return None if self.is_alive() else int(self.job.exception() is not None)

    def stop(self) -> None:
        self.job.cancel(check=False)   # SLURM: scancel (SIGTERM); local: SIGINT; either stops the run with a checkpoint


class _SweepStops(worker_lib.StopRequests):
    """The sweep's own SIGTERM / SIGINT, passed on to its workers, which pass them on to their runs."""

    def __init__(self, workers):
        self.workers = workers
        super().__init__()

    def pass_on(self) -> None:
        for worker in self.workers:
            if worker.is_alive():
                worker.stop()


def watch(study, workers, launch: Launch, total: int) -> None:
    """Until the workers end: a line per run that finishes, the bar, the results rewritten."""
    metric, workdir = launch.options.metric, launch.options.workdir
    finished = {run.name for run in study_lib.runs(study) if run.status in study_lib.FINISHED}
    bar = tqdm.tqdm(total=max(total, len(finished)), initial=len(finished), unit='run', dynamic_ncols=True)
    while True:
        alive = any(worker.is_alive() for worker in workers)
        runs = study_lib.runs(study)
        newly = [run for run in runs if run.status in study_lib.FINISHED and run.name not in finished]
        for run in newly:
            finished.add(run.name)
            bar.write(progress_line(run, metric))
            bar.update(1)
        if newly:
            results_lib.write_all(runs, metric=metric, mode=launch.mode, workdir=workdir, command=launch.command)
        if not alive:
            break
        time.sleep(WATCH_SECONDS)
    for worker in workers:
        worker.join()
    bar.close()


def progress_line(run: study_lib.Run, metric: str) -> str:
    final, best = run.attribute('final'), run.attribute('best')
    values = f', {metric} {final:.4g} (best {best:.4g})' if final is not None else ''
    error = f': {run.error}' if run.error else ''
    return (f'{run.status}: {run.name}{values}, {run.attribute("steps", 0)} steps, '
            f'{run.wall_s:.0f} s{error}')


def visible_gpus() -> list[str]:
    """The GPUs the sweep may give its workers: $CUDA_VISIBLE_DEVICES, else those nvidia-smi lists."""
    if os.environ.get('CUDA_VISIBLE_DEVICES') is not None:
        return [device for device in os.environ['CUDA_VISIBLE_DEVICES'].split(',') if device.strip()]
    try:
        listing = subprocess.run(['nvidia-smi', '-L'], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [str(index) for index, _ in enumerate(line for line in listing.splitlines() if line.startswith('GPU '))]


def worker_environments(workers: int, gpus: list[str] | None = None) -> list[dict[str, str]]:
    """Each worker's environment for its runs: its share of the GPUs (see the module docstring)."""
    gpus = visible_gpus() if gpus is None else gpus
    base = {**os.environ, 'PYTHONUNBUFFERED': '1'}
    if not gpus:
        return [dict(base) for _ in range(workers)]
    if len(gpus) >= workers:   # contiguous shares as even as they can be (5 GPUs, 2 workers: 2 and 3)
        bounds = [index * len(gpus) // workers for index in range(workers + 1)]
        return [{**base, 'CUDA_VISIBLE_DEVICES': ','.join(gpus[bounds[index]:bounds[index + 1]])}
                for index in range(workers)]
    sharing = math.ceil(workers / len(gpus))
    return [{**base, 'CUDA_VISIBLE_DEVICES': gpus[index % len(gpus)],
             'XLA_PYTHON_CLIENT_MEM_FRACTION': f'{0.9 / sharing:.3f}'} for index in range(workers)]


def status(launch: Launch, sweep: spec_lib.Sweep) -> str:
    """``--status``: the results table of the study as it stands (nothing is written)."""
    study = open_study(launch, sweep, join=True)
    runs = study_lib.runs(study)
    columns, rows = results_lib.table(runs, launch.options.metric, launch.options.workdir)
    for row, run in zip(rows, runs):
        row['status'] = run.status + (f' ({run.attribute("worker")})' if run.status == 'running' else '')
    return results_lib.markdown(columns, rows, launch.options.metric, launch.mode, launch.command)
