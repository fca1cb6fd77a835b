"""Parallelism over every device of every host: one mesh axis ``data``, two ways to run the step.

``parallel.mode='jit'`` (the default) compiles the train step once with ``jax.jit`` over a
NamedSharding mesh: the batch is split along its first axis over ``data``, parameters and optimizer
state are replicated or, with ``parallel.shard_parameters``, FSDP-sharded along ``data`` (XLA inserts
the all-gathers and reduce-scatters). ``parallel.mode='pmap'`` maps the same step with ``jax.pmap``
over the local devices, with an explicit ``psum`` across all devices (for parity with pmap codebases;
pmap is in maintenance mode in current JAX and is implemented as jit over shard_map).

Either way a host feeds only its own rows, and the state has one *global* layout (``to_global``)
for checkpoints and evaluation, so a checkpoint moves freely between modes and device counts.
"""

from __future__ import annotations

import dataclasses
import math
import os

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from transformer_lab.config import ConfigError, one_of, require
from transformer_lab.training import steps

MODES = ('jit', 'pmap')


def check_parallel(parallel_config) -> None:
    one_of('parallel.mode', parallel_config.mode, MODES)
    require(not (parallel_config.shard_parameters and parallel_config.mode == 'pmap'), 'parallel.shard_parameters',
            "pmap replicates parameters on every device; use parallel.mode='jit' to shard them")
    every = parallel_config.stop_check_every_steps
    require(isinstance(every, int) and not isinstance(every, bool) and every > 0, 'parallel.stop_check_every_steps',
            f'must be a positive whole number of steps, got {every!r}')


def initialize_distributed(parallel_config) -> None:
    """Joins a multi-host run when the config or the environment asks for it; before any JAX use.

    ``parallel.distributed=True`` (with ``coordinator_address``, ``num_processes``, ``process_id``, or
    empty to let JAX detect SLURM, Open MPI, Kubernetes or a Cloud TPU pod), or the environment
    variable JAX_COORDINATOR_ADDRESS. CPU hosts talk through gloo collectives.
    """
    if not (parallel_config.distributed or os.environ.get('JAX_COORDINATOR_ADDRESS')):
        return
    if jax.distributed.is_initialized():
        return
    jax.config.update('jax_cpu_collectives_implementation', 'gloo')
    jax.distributed.initialize(coordinator_address=parallel_config.coordinator_address or None,
                               num_processes=parallel_config.num_processes or None,
                               process_id=parallel_config.process_id if parallel_config.num_processes else None)


def make_mesh() -> Mesh:
    return Mesh(np.asarray(jax.devices()), ('data',))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec())


def batch_sharded(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec('data'))


@dataclasses.dataclass(frozen=True)
class BatchLayout:
    """How ``data.batch_size`` (global rows per optimizer update) splits over hosts, devices and
    ``train.grad_accum_steps`` micro-batches."""
    global_rows: int
    hosts: int
    devices: int
    micro_batches: int

    @property
    def host_rows(self) -> int:
        return self.global_rows // self.hosts

    @property
    def device_rows(self) -> int:
        """Rows one device holds at once: its share of one micro-batch (what sets the memory)."""
        return self.global_rows // (self.devices * self.micro_batches)

    def describe(self) -> str:
        return (f'batch: {self.global_rows} rows per update = {self.devices} devices x {self.micro_batches} '
                f'micro-batches x {self.device_rows} rows ({self.host_rows} rows per host, {self.hosts} hosts)')


def batch_layout(global_rows: int, micro_batches: int = 1, field: str = 'data.batch_size') -> BatchLayout:
    """The layout of a global batch on this topology; it must split evenly over devices and micro-batches."""
    devices = jax.device_count()
    if global_rows % (devices * micro_batches):
        hint = f' x {micro_batches} micro-batches (train.grad_accum_steps)' if micro_batches > 1 else ''
        raise ConfigError(field, f'{global_rows} rows do not split evenly over the {devices} devices{hint}; '
                                 f'use a multiple of {devices * micro_batches}')
    return BatchLayout(global_rows, jax.process_count(), devices, micro_batches)


def local_rows(global_rows: int, field: str = 'data.batch_size') -> int:
    """This host's share of a global batch (evaluation batches, which have no micro-batches)."""
    return batch_layout(global_rows, 1, field).host_rows


def to_global(local_batch: dict, mesh: Mesh) -> dict:
    """Host-local numpy rows -> global jax arrays sharded over the ``data`` axis."""
    sharding = batch_sharded(mesh)
    return {name: jax.make_array_from_process_local_data(sharding, value)
            for name, value in local_batch.items()}


def fsdp_sharding(shape: tuple[int, ...], mesh: Mesh, min_size: int) -> NamedSharding:
    """FSDP-style placement of one array: its largest axis that the device count divides is split
    over ``data``; arrays smaller than ``min_size`` elements (or with no such axis) stay replicated."""
    devices = mesh.shape['data']
    if math.prod(shape) < min_size or devices == 1:
        return replicated(mesh)
    for axis in sorted(range(len(shape)), key=lambda a: -shape[a]):
        if shape[axis] % devices == 0:
            spec = [None] * len(shape)
            spec[axis] = 'data'
            return NamedSharding(mesh, PartitionSpec(*spec))
    return replicated(mesh)


class JitParallel:
    """``jax.jit`` over the mesh; the step's layout is the global layout."""

    def __init__(self, mesh: Mesh, parallel_config):
        self.mesh = mesh
        self.shard_parameters = parallel_config.shard_parameters
        self.min_shard_size = parallel_config.min_shard_size

    def state_shardings(self, state):
        if not self.shard_parameters:
            return jax.tree.map(lambda _: replicated(self.mesh), state)
        return jax.tree.map(lambda x: fsdp_sharding(x.shape, self.mesh, self.min_shard_size), state)

    def compile_train_step(self, graphdef, optimizer, train_config, state):
        step = steps.make_train_step(graphdef, optimizer, label_smoothing=train_config.label_smoothing,
                                     grad_accum_steps=train_config.grad_accum_steps,
                                     dropout_rng=train_config.dropout_rng, ema_decay=train_config.ema_decay)
        shardings = self.state_shardings(state)
        return jax.jit(step, in_shardings=(shardings, batch_sharded(self.mesh)),
                       out_shardings=(shardings, replicated(self.mesh)), donate_argnums=0)

    def from_global(self, state):
        return state

    def to_global(self, state):
        return state

    def put_batch(self, local_batch: dict):
        return to_global(local_batch, self.mesh)


class PmapParallel:
    """``jax.pmap`` over this host's devices: the state carries a leading axis of local devices
    (replicas), each batch is reshaped to [local devices, rows per device, ...]."""

    def __init__(self, mesh: Mesh, parallel_config):
        if parallel_config.shard_parameters:
            raise ConfigError('parallel.shard_parameters', "pmap replicates parameters on every device; "
                                                           "use parallel.mode='jit' to shard them")
        self.mesh = mesh
        self.local_mesh = Mesh(np.asarray(jax.local_devices()), ('data',))

    def state_shardings(self, state):
        return jax.tree.map(lambda _: replicated(self.mesh), state)

    def compile_train_step(self, graphdef, optimizer, train_config, state):
        del state
        step = steps.make_train_step(graphdef, optimizer, label_smoothing=train_config.label_smoothing,
                                     grad_accum_steps=train_config.grad_accum_steps, axis_name='data',
                                     dropout_rng=train_config.dropout_rng, ema_decay=train_config.ema_decay)
        mapped = jax.pmap(step, axis_name='data', donate_argnums=0)

        def train_step(state, batch):
            state, metrics = mapped(state, batch)
            return state, jax.tree.map(lambda x: x[0], metrics)  # psum'd: the same on every device
        train_step.lower = mapped.lower  # for cost analysis (scripts/bench.py)
        return train_step

    def from_global(self, state):
        """Global replicated arrays -> one replica per local device."""
        count = jax.local_device_count()

        def stack(x):
            local = np.asarray(x.addressable_data(0))
            return jax.device_put(np.broadcast_to(local, (count, *local.shape)),
                                  batch_sharded(self.local_mesh))
        return jax.tree.map(stack, state)

    def to_global(self, state):
        """Replica 0 of each array, as a global replicated array (checkpoints, evaluation)."""
        return jax.tree.map(lambda x: jax.make_array_from_process_local_data(
            replicated(self.mesh), np.asarray(x.addressable_data(0))[0]), state)

    def put_batch(self, local_batch: dict):
        count = jax.local_device_count()
        return {name: value.reshape(count, value.shape[0] // count, *value.shape[1:])
                for name, value in local_batch.items()}


def make_parallel(parallel_config, mesh: Mesh) -> JitParallel | PmapParallel:
    return {'jit': JitParallel, 'pmap': PmapParallel}[parallel_config.mode](mesh, parallel_config)
