"""Device-resident training data: the split lives in accelerator memory and
every per-step input operation runs inside the compiled step.

Layout (the choice, for 1..N devices on 1..P hosts): the training split's
windows, all 12 leads, raw float32, are one global array ``ecg``
``(n_pad, T, 12)`` **sharded** on the ``data`` mesh axis (``n_pad`` = ``n``
rounded up to a multiple of the device count; the padding rows are never
drawn), plus ``label`` ``(n_pad,)``. Each device holds ``n_pad / D`` rows and
each host reads from disk only the rows of its own devices. Memory per device
falls with the device count, so what fits one accelerator fits a pod. The
price is one collective per step: to build its part of a global batch a
device needs rows held by others. Every device gathers the rows of the
global batch it owns (lead selection first, so only ``N`` leads move),
zeros elsewhere, and a ``psum_scatter`` over ``data`` hands each device its
``B / D`` rows: ``B * T * N * 4`` bytes per step (0.96 MB at B=32, 3 leads),
cheap next to the step. Adding zeros is exact, so the batch equals a plain
gather bit for bit. (Replication would skip the collective but cost ``D``
copies of the split, and every host would read all of it.)

Order: the same stream as the grain pipeline. Training reads positions
``0, 1, 2, ...`` of an endless stream; position ``p`` is example
``perm_e[p mod n]`` of epoch ``e = p // n``, where ``perm_e`` is
``jax.random.permutation(fold_in(shuffle_key, e), n)``. Global batch ``s``
holds positions ``[s B, (s + 1) B)`` (batches may straddle epochs, as in
grain: nothing is dropped and every example is seen once per epoch). The
permutations are computed identically on every device, so the order does not
depend on the number of devices or processes, and the position of step ``s``
is ``s * B``: the resume state is the train step (checkpointed as JSON with
epoch and position). Random augmentation of the example at position ``p``
uses ``fold_in(augment_key, p)``: also independent of devices, dispatch size
and restarts.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from leadmix_jax.data import leads as leads_lib
from leadmix_jax.input import built, norm_stats
from leadmix_jax.input.augment import AugmentConfig, augment_example
from leadmix_jax.mesh import AXIS

# Offset of the data-order keys from the run's seed key (params use the seed,
# dropout PRNGKey(seed + 1)): a fixed constant keeps them separate streams.
_DATA_KEY_SALT = 0x1EAD


# ----------------------------------------------------------------------------
# Sizes and loading.


def padded_rows(num_examples: int, num_devices: int) -> int:
    """Rows of the resident array: ``num_examples`` rounded up to a multiple of the devices."""
    return math.ceil(num_examples / num_devices) * num_devices


def bytes_per_device(num_examples: int, example_shape: Sequence[int], num_devices: int) -> int:
    """Accelerator memory one device needs for its shard of ``ecg`` (float32) and ``label``."""
    rows = padded_rows(num_examples, num_devices) // num_devices
    return rows * (int(np.prod(example_shape)) * 4 + 4)


def example_shape(builder) -> tuple[int, ...]:
    """``(T, 12)`` of the built dataset's ``ecg`` feature."""
    return tuple(builder.info.features["ecg"].shape)


@dataclasses.dataclass(frozen=True)
class Resident:
    """A split in device memory: ``ecg`` ``(n_pad, T, 12)`` float32 raw
    (canonical lead order, not normalised) and ``label`` ``(n_pad,)`` float32,
    both sharded on ``data``; ``num_examples`` = ``n`` real rows."""

    ecg: jax.Array
    label: jax.Array
    num_examples: int


def load_resident(builder, split: str, mesh: Mesh) -> Resident:
    """Loads ``split`` onto the devices of ``mesh``, sharded on ``data``.

    Each process reads only the rows of its addressable devices (random
    access for ArrayRecord; TFRecord is read sequentially and the other
    rows skipped). Row ``i`` is example ``i`` of the split in storage order.
    """
    n = built.split_size(builder, split)
    if n == 0:
        raise ValueError(f"split {split!r} is empty")
    shape = example_shape(builder)
    rows = padded_rows(n, mesh.size)
    sharding = NamedSharding(mesh, P(AXIS))
    index_map = sharding.addressable_devices_indices_map((rows, *shape))
    starts = sorted({idx[0].start or 0 for idx in index_map.values()})
    per = rows // mesh.size
    ecg = {s: np.zeros((per, *shape), np.float32) for s in starts}
    label = {s: np.zeros((per,), np.float32) for s in starts}
    wanted = [i for s in starts for i in range(s, min(s + per, n))]
    logging.info(
        "loading %d of %d examples of %s:%s into device memory (%.1f MB per device)",
        len(wanted),
        n,
        builder.name,
        split,
        bytes_per_device(n, shape, mesh.size) / 1e6,
    )
    for i, ex in built.read_rows(builder, split, wanted):
        s = (i // per) * per
        ecg[s][i - s] = np.asarray(ex["ecg"], np.float32)
        label[s][i - s] = np.float32(ex["label"])
    return Resident(
        ecg=jax.make_array_from_callback((rows, *shape), sharding, lambda idx: ecg[idx[0].start or 0]),
        label=jax.make_array_from_callback((rows,), sharding, lambda idx: label[idx[0].start or 0]),
        num_examples=n,
    )


# ----------------------------------------------------------------------------
# Order.


def data_keys(seed: int) -> tuple[jax.Array, jax.Array]:
    """``(shuffle_key, augment_key)`` of the data order of ``seed`` (raw keys)."""
    data_key = jax.random.fold_in(jax.random.PRNGKey(seed), _DATA_KEY_SALT)
    shuffle_key, augment_key = jax.random.split(data_key)
    return shuffle_key, augment_key


def stream_indices(
    shuffle_key: jax.Array, first_position: jax.Array, count: int, num_examples: int
) -> jax.Array:
    """Example indices of stream positions ``first_position + [0, count)``, ``(count,)`` int32.

    Args:
      shuffle_key: raw key; epoch ``e`` is shuffled by ``fold_in(shuffle_key, e)``.
      first_position: traced int32 scalar.
      count: static number of positions.
      num_examples: ``n``, static.
    """
    n = num_examples
    pos = first_position + jnp.arange(count, dtype=jnp.int32)
    first_epoch = first_position // n
    # Epochs a run of `count` consecutive positions can touch (static).
    span = (count - 1) // n + 2
    epochs = first_epoch + jnp.arange(span, dtype=jnp.int32)
    perms = jax.vmap(lambda e: jax.random.permutation(jax.random.fold_in(shuffle_key, e), n))(epochs)
    return perms[pos // n - first_epoch, pos % n].astype(jnp.int32)


# ----------------------------------------------------------------------------
# Batches (inside the compiled step).


@dataclasses.dataclass(frozen=True)
class BatchSpec:
    """Static description of how a batch is made from resident rows."""

    lead_idx: tuple[int, ...]  # canonical indices of the model's leads, in input order
    mean: tuple[float, ...]  # per model lead
    std: tuple[float, ...]
    augment: AugmentConfig = AugmentConfig()

    @classmethod
    def from_config(cls, leads: Sequence[str], stats, augment: AugmentConfig) -> "BatchSpec":
        return cls(tuple(leads_lib.lead_indices(leads)), tuple(stats.mean), tuple(stats.std), augment)


def make_batch_fn(spec: BatchSpec, mesh: Mesh):
    """Returns ``batch(ecg, label, idx, pos, augment_key) -> {"ecg": (B, T, N),
    "label": (B,)}``, sharded on ``data``, for global row indices ``idx``
    ``(B,)`` and stream positions ``pos`` ``(B,)`` (replicated). Lead
    selection, per-lead z-score (the grain path's float32 arithmetic) and
    augmentation (example at position ``p``: ``fold_in(augment_key, p)``)
    happen here."""
    lead_idx = np.asarray(spec.lead_idx)
    mean, inv_std = norm_stats.zscore_factors(spec.mean, spec.std)
    aug = spec.augment

    def local(ecg, label, idx, pos, augment_key):
        rows = ecg.shape[0]
        d = jax.lax.axis_index(AXIS)
        li = idx - d * rows
        mine = (li >= 0) & (li < rows)
        li = jnp.clip(li, 0, rows - 1)
        x = jnp.take(ecg, li, axis=0)[:, :, lead_idx]
        x = jnp.where(mine[:, None, None], x, 0.0)
        y = jnp.where(mine, jnp.take(label, li, axis=0), 0.0)
        # Exactly one device owns each row: the sum is that row, bit for bit.
        x = jax.lax.psum_scatter(x, AXIS, scatter_dimension=0, tiled=True)
        y = jax.lax.psum_scatter(y, AXIS, scatter_dimension=0, tiled=True)
        x = norm_stats.zscore(x, mean, inv_std)
        if aug.active:
            b = x.shape[0]
            my_pos = jax.lax.dynamic_slice_in_dim(pos, d * b, b)
            x = jax.vmap(lambda e, p: augment_example(e, jax.random.fold_in(augment_key, p), aug))(x, my_pos)
        return x, y

    sharded = jax.shard_map(
        local, mesh=mesh, in_specs=(P(AXIS), P(AXIS), P(), P(), P()), out_specs=(P(AXIS), P(AXIS))
    )

    def batch(ecg, label, idx, pos, augment_key):
        x, y = sharded(ecg, label, idx, pos, augment_key)
        return {"ecg": x, "label": y}

    return batch
