"""Orbax checkpoints of the train state and the input pipeline's position, with automatic resume."""

from __future__ import annotations

import os

import jax
import orbax.checkpoint as ocp


class Checkpoints:
    """``WORKDIR/checkpoints/<step>/{state, data}``: the last ``max_to_keep`` saves are kept."""

    def __init__(self, workdir: str, *, max_to_keep: int):
        self.directory = os.path.join(os.path.abspath(workdir), 'checkpoints')
        self.manager = ocp.CheckpointManager(
            self.directory, options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True))

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def save(self, step: int, state, data_state: dict) -> None:
        """Saves (asynchronously) the train state and the input pipeline's position at ``step``."""
        self.manager.save(step, args=ocp.args.Composite(
            state=ocp.args.StandardSave(state), data=ocp.args.JsonSave(data_state)), force=True)

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
