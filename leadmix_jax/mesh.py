"""The one device mesh: a 1-D ``data`` axis over every device of every process.

Parameters and optimiser state are replicated on it, batches are split along
``data``; each process contributes its local rows of every global batch.
Training, inference and the device-resident input all use these shardings.
"""

from __future__ import annotations

import functools

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

AXIS = "data"


def make_mesh() -> Mesh:
    """1-D mesh over every device of every process, axis ``data``."""
    return Mesh(np.asarray(jax.devices()), (AXIS,))


@functools.cache
def local_mesh() -> Mesh:
    """A mesh of this process's first device (one record, one export: no split);
    the same object on every call (restored models are cached per mesh)."""
    return Mesh(np.asarray(jax.local_devices()[:1]), (AXIS,))


def global_batch(local: dict, sharding: NamedSharding, keys=("ecg", "label")) -> dict:
    """Process-local numpy batch -> global jax arrays sharded on ``data``."""
    return {k: jax.make_array_from_process_local_data(sharding, np.asarray(local[k])) for k in keys}


class OnMesh:
    """The two shardings of the ``data`` mesh (``self.mesh``): replicated
    (parameters, optimiser state, outputs) and split along ``data`` (batches)."""

    mesh: Mesh

    @property
    def replicated(self) -> NamedSharding:
        return NamedSharding(self.mesh, P())

    @property
    def data_sharding(self) -> NamedSharding:
        return NamedSharding(self.mesh, P(AXIS))
