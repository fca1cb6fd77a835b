"""Orbax checkpoints of the train state and the input pipeline's position, with automatic resume."""

from __future__ import annotations

import os

import jax
import orbax.checkpoint as ocp


class Checkpoints:
    """``WORKDIR/checkpoints/<step>/{state, data}``: the last ``max_to_keep`` saves are kept."""

    def __init__(self, workdir: str, *, every_steps: int, max_to_keep: int):
        self.directory = os.path.join(os.path.abspath(workdir), 'checkpoints')
        self.manager = ocp.CheckpointManager(
            self.directory, options=ocp.CheckpointManagerOptions(
                max_to_keep=max_to_keep, save_interval_steps=max(every_steps, 1), create=True))

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def should_save(self, step: int) -> bool:
        return self.manager.should_save(step)

    def save(self, step: int, state, data_state: dict, *, force: bool = False) -> bool:
        """Saves when ``step`` is on the cadence (or ``force``); returns whether it saved."""
        return self.manager.save(step, args=ocp.args.Composite(
            state=ocp.args.StandardSave(state), data=ocp.args.JsonSave(data_state)), force=force)

    def restore(self, abstract_state, step: int | None = None) -> tuple[object, dict]:
        """Restores onto ``abstract_state``'s shapes and shardings (any device layout)."""
        step = self.latest_step() if step is None else step
        restored = self.manager.restore(step, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract_state), data=ocp.args.JsonRestore()))
        return restored['state'], restored['data']

    def wait(self):
        self.manager.wait_until_finished()

    def close(self):
        self.manager.close()


def abstract_like(tree, sharding) -> object:
    """ShapeDtypeStructs of ``tree`` carrying ``sharding``: the restore target."""
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), tree)
