"""A model's train state built, placed on the devices and read back, in one place.

The loop, the benchmarks and the tests assemble a state the same way (``assemble``): the model split
into its graph and parameters, the optimizer and its schedule, the step-0 ``steps.TrainState``, the
parallel strategy's shardings and its compiled train step. Read-only commands (runs.load) read only
the parameters of a checkpoint (``read_params``), never the optimizer's state.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from transformer_lab.training import checkpoints, optim, parallel, steps


@dataclasses.dataclass(frozen=True)
class Assembly:
    """What trains a model: its ``graphdef``, the ``initial`` (step 0) state on the default device, the
    ``optimizer`` and learning-rate ``schedule``, and the parallel ``strategy`` with the ``shardings``
    where it keeps each leaf of the state (its global form)."""
    graphdef: nnx.GraphDef
    initial: steps.TrainState
    optimizer: optax.GradientTransformation
    schedule: optax.Schedule
    strategy: parallel.JitParallel | parallel.PmapParallel
    shardings: Any

    def abstract(self):
        """The state's shapes, dtypes and shardings: a checkpoint's restore target."""
        return checkpoints.abstract_like(self.initial, self.shardings)

    def placed(self) -> steps.TrainState:
        """The step-0 state on the devices, in its global form."""
        return jax.device_put(self.initial, self.shardings)

    def train_step(self, train_config):
        """The strategy's train step, jitted (or pmapped) for this state; it takes the state in the
        strategy's own form (``strategy.from_global``)."""
        return self.strategy.compile_train_step(self.graphdef, self.optimizer, train_config, self.initial)


def assemble(config, model: nnx.Module, mesh=None) -> Assembly:
    """``model``'s train state at step 0 under ``config`` (train: optimizer, dropout key, moving average;
    parallel: the strategy) on ``mesh`` (default: every device)."""
    graphdef, params = nnx.split(model)
    optimizer, schedule = optim.make_optimizer(config.train, config.model.d_model)
    initial = steps.new_train_state(params, optimizer, config.seed, config.train.dropout_rng,
                                    ema=config.train.ema_decay > 0)
    strategy = parallel.make_parallel(config.parallel, mesh or parallel.make_mesh())
    return Assembly(graphdef, initial, optimizer, schedule, strategy, strategy.state_shardings(initial))


def read_params(store: checkpoints.Checkpoints, abstract_params, field: str, chosen_steps: list[int] | None):
    """(parameters, step) read from ``store``: the state's ``field`` ('params', or 'ema_params' for the
    moving average) alone, on ``abstract_params``' shapes and shardings. ``chosen_steps`` None: the newest
    readable checkpoint; one step: that checkpoint; several: the element-wise mean of theirs (checkpoint
    averaging), read one at a time so that memory holds two sets, and the newest step."""
    target = {'step': jax.ShapeDtypeStruct((), jnp.int32), field: abstract_params}
    if chosen_steps is None:
        restored = store.restore_latest(target, set_aside_unreadable=False, fields_only=True)
        if restored is None:
            raise FileNotFoundError(f'{store.directory} holds no checkpoint')
        return restored[0][field], int(restored[0]['step'])
    total = None
    for step in chosen_steps:
        params = store.restore(target, step, fields_only=True)[0][field]
        total = params if total is None else jax.tree.map(jnp.add, total, params)
    return jax.tree.map(lambda summed: summed / len(chosen_steps), total), chosen_steps[-1]
