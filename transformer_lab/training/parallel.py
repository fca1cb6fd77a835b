"""Data parallelism over every device of every host: one mesh axis ``data``.

Parameters and optimizer state are replicated; each batch is split along its first axis over the
``data`` axis. A host feeds only its own rows (``local_rows``), and ``to_global`` assembles them into
one global array, so the same code runs on one CPU, one GPU, or a multi-host TPU pod.
"""

from __future__ import annotations

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from transformer_lab.config import ConfigError


def make_mesh() -> Mesh:
    return Mesh(np.asarray(jax.devices()), ('data',))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec())


def batch_sharded(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec('data'))


def local_rows(global_rows: int, field: str = 'data.batch_size') -> int:
    """This host's share of a global batch; the batch must split evenly over all devices."""
    devices = jax.device_count()
    if global_rows % devices:
        raise ConfigError(field, f'{global_rows} rows do not split evenly over the {devices} devices; '
                                 f'use a multiple of {devices}')
    return global_rows // jax.process_count()


def to_global(local_batch: dict, mesh: Mesh) -> dict:
    """Host-local numpy rows -> global jax arrays sharded over the ``data`` axis."""
    sharding = batch_sharded(mesh)
    return {name: jax.make_array_from_process_local_data(sharding, value)
            for name, value in local_batch.items()}
