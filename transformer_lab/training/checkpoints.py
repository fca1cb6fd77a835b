"""Orbax checkpoints of the train state and the input pipeline's position: asynchronous saves that
never fail silently, the last K plus the best kept, and a restore that survives a corrupt latest step.

Layout: ``WORKDIR/checkpoints/<step>/state`` (arrays, restorable onto any device layout) and
``WORKDIR/checkpoints/<step>/data/process_<i>-of-<n>.json`` (each host's grain iterator position).
"""

from __future__ import annotations

import os
import re
import shutil
import warnings

import grain
import jax
import orbax.checkpoint as ocp
from jax.experimental import multihost_utils
from orbax.checkpoint import checkpoint_managers

from transformer_lab import library_log
from transformer_lab.config import UserError, one_of, positive

CORRUPT_DIRECTORY = 'checkpoints_unreadable'


def check_checkpoint(checkpoint) -> None:
    """The ``checkpoint`` section (its ``best_metric`` is checked against the evaluators' metrics)."""
    positive(checkpoint, 'checkpoint', 'every_steps', 'max_to_keep')
    one_of('checkpoint.best_mode', checkpoint.best_mode, ('min', 'max'))


class CheckpointError(UserError, RuntimeError):
    """A checkpoint could not be written, or no checkpoint of a workdir can be read."""


class Checkpoints:
    """``WORKDIR/checkpoints``: keeps the latest ``max_to_keep`` saves and, with ``best_metric``, the
    best save by that metric as well (an orbax AnyPreservationPolicy of LatestN and BestN, so keeping
    the best never deletes the latest, unlike orbax's ``max_to_keep`` with ``best_fn``)."""

    def __init__(self, workdir: str, *, max_to_keep: int, best_metric: str = '', best_mode: str = 'min',
                 read_only: bool = False):
        """``read_only``: for evaluating and sampling; creates, saves and deletes nothing."""
        self.workdir = os.path.abspath(workdir)
        self.directory = os.path.join(self.workdir, 'checkpoints')
        policies = [checkpoint_managers.LatestN(n=max_to_keep)]
        best_fn = None
        if best_metric:
            def best_fn(metrics):
                return metrics[best_metric]
            # BestN keeps the last n after sorting; reverse=True puts the lowest value last.
            policies.append(checkpoint_managers.BestN(get_metric_fn=best_fn, reverse=best_mode == 'min', n=1,
                                                      keep_checkpoints_without_metrics=False))
        options = ocp.CheckpointManagerOptions(read_only=True, create=False) if read_only else \
            ocp.CheckpointManagerOptions(create=True, best_fn=best_fn, best_mode=best_mode,
                                         preservation_policy=checkpoint_managers.AnyPreservationPolicy(policies))
        self.manager = ocp.CheckpointManager(self.directory, options=options)
        self._saving_step = None

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def best_step(self) -> int | None:
        return self.manager.best_step()

    def all_steps(self) -> list[int]:
        return sorted(self.manager.all_steps())

    def save(self, step: int, state, data_iterator=None, metrics: dict | None = None) -> None:
        """Starts an asynchronous save of ``state`` (global arrays) and the iterator's position (captured
        now; no iterator for a checkpoint made to be evaluated, e.g. averaged); first raises
        CheckpointError if the previous save failed."""
        self.wait()
        items = {'state': ocp.args.PyTreeSave(state)}
        if data_iterator is not None:
            items['data'] = grain.checkpoint.CheckpointSave(data_iterator)
        self.manager.save(step, args=ocp.args.Composite(**items), metrics=metrics, force=True)
        self._saving_step = step

    def poll(self) -> None:
        """Raises CheckpointError if a finished asynchronous save failed; never waits for one in flight."""
        if not self.manager.is_saving_in_progress():
            self.wait()

    def wait(self) -> None:
        """Waits for the save in flight; raises CheckpointError if it failed."""
        try:
            self.manager.wait_until_finished()
        except Exception as error:  # orbax re-raises the writer's own exception, whatever its type
            raise CheckpointError(
                f'saving the checkpoint of step {self._saving_step} in {self.directory} failed: {summary(error)}. '
                f'Saved steps still on disk: {self.all_steps()}; fix the cause (disk space, permissions) and '
                f'run again to resume from the latest of them') from error
        finally:
            self._saving_step = None

    def restore(self, abstract_state, step: int, data_iterator=None, *, fields_only: bool = False):
        """The state of ``step`` on ``abstract_state``'s shapes and shardings (any device layout); with
        ``data_iterator``, also moves the iterator to its saved position. Returns (state, data_restored):
        an iterator position saved by another number of hosts or data.workers cannot be restored (False).
        ``fields_only``: ``abstract_state`` is a dict of some of the state's fields ({'params': ...}), and
        only those are read (orbax's partial restore): the parameters without the optimizer's state."""
        state = self.manager.restore(step, args=ocp.args.Composite(state=ocp.args.PyTreeRestore(
            abstract_state, restore_args=ocp.checkpoint_utils.construct_restore_args(abstract_state),
            partial_restore=fields_only)))['state']
        if data_iterator is None:
            return state, False
        own_file = os.path.join(self.directory, str(step), 'data',
                                f'process_{jax.process_index()}-of-{jax.process_count()}.json')
        if not os.path.exists(own_file):
            warnings.warn(f'checkpoint {step} holds the input pipeline position of another number of hosts '
                          f'(no {os.path.basename(own_file)}); the data stream restarts with a new shuffle')
            return state, False
        try:
            self.manager.restore(step, args=ocp.args.Composite(data=grain.checkpoint.CheckpointRestore(data_iterator)))
        except (KeyError, ValueError, TypeError, IndexError) as error:
            library_log.write_exception(error)
            warnings.warn(f'checkpoint {step} holds an input pipeline position of another form (another '
                          f'data.workers, or an earlier version of the pipelines); the data stream restarts '
                          f'with a new shuffle')
            return state, False
        return state, True

    def restore_latest(self, abstract_state, data_iterator=None, *, set_aside_unreadable: bool = True,
                       fields_only: bool = False):
        """Restores the newest readable checkpoint, as ``restore``; None when there is none.

        A newer checkpoint that cannot be read (a save cut off by a crash, a truncated or deleted file)
        is skipped with a warning and, when training, moved to ``WORKDIR/checkpoints_unreadable/`` so
        that new saves can reuse its step. If no checkpoint is readable, raises CheckpointError rather
        than training from scratch over a run.
        """
        failures = []
        for step in reversed(self.all_steps()):
            try:
                restored = self.restore(abstract_state, step, data_iterator, fields_only=fields_only)
            except Exception as error:  # orbax raises ValueError, FileNotFoundError, KeyError or Exception
                library_log.write_exception(error)
                warnings.warn(f'checkpoint {step} in {self.directory} is unreadable ({summary(error)}); '
                              f'trying an older one')
                failures.append((step, error))
                continue
            if failures and set_aside_unreadable:
                self._set_aside([failed for failed, _ in failures])
            return restored
        if failures:
            raise CheckpointError(
                f'no checkpoint in {self.directory} is readable:\n' +
                '\n'.join(f'  step {step}: {summary(error)}' for step, error in failures) +
                f'\nmove {self.directory} aside to train from scratch, or point --workdir elsewhere')
        return None

    def _set_aside(self, steps_to_move: list[int]) -> None:
        if jax.process_index() == 0:
            target = os.path.join(self.workdir, CORRUPT_DIRECTORY)
            os.makedirs(target, exist_ok=True)
            for step in steps_to_move:
                destination = os.path.join(target, str(step))
                while os.path.exists(destination):  # set aside before: keep both
                    destination += '+'
                shutil.move(os.path.join(self.directory, str(step)), destination)
        if jax.process_count() > 1:
            multihost_utils.sync_global_devices('checkpoints set aside')
        self.manager.reload()

    def close(self) -> None:
        """Waits for the save in flight (raising CheckpointError if it failed) and releases the manager."""
        try:
            self.wait()
        finally:
            self.manager.close()


def summary(error: BaseException, limit: int = 160) -> str:
    """An exception in one short line: orbax's and TensorStore's messages run to kilobytes of specs
    (the whole of it goes to the library log). TensorStore puts the cause after long paths (``...: No
    space left on device [os_error_code='28']``): it is kept when the line is cut."""
    text = str(error)
    first_line = (text.strip().splitlines() or [''])[0].split(' See full TensorStore details')[0]
    if len(first_line) > limit:
        os_error = re.search(r":\s*([^:\[\]]+?)\s*\[os_error_code='(\d+)'\]", text)
        first_line = first_line[:limit] + ' ...' + (f' {os_error[1]} (errno {os_error[2]})' if os_error else '')
    return f'{type(error).__name__}: {first_line}' if first_line else type(error).__name__


def abstract_like(tree, shardings) -> object:
    """ShapeDtypeStructs of ``tree`` carrying ``shardings`` (a matching tree): the restore target."""
    return jax.tree.map(lambda x, sharding: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding),
                        tree, shardings)
