"""Training input modes and several optimiser steps per compiled call.

A *feed* runs ``k`` training steps in one dispatch (a loop over
:func:`leadmix_jax.train.step.train_step`) and owns the state that must be
checkpointed to resume the input exactly:

* :class:`DeviceFeed` (``input_mode='device'``): the split is resident in
  device memory (:mod:`leadmix_jax.input.resident`); shuffling, batching, lead
  selection, z-scoring and augmentation are inside the compiled call, so
  nothing crosses from the host (the call runs under
  ``jax.transfer_guard_host_to_device('disallow')``). Resume state: epoch and
  position of the stream (a JSON checkpoint item), which are fixed by the
  step (position = step x global batch).
* :class:`GrainFeed` (``input_mode='grain'``): the grain pipeline; ``k`` host
  batches are stacked into one ``(k, B, T, N)`` transfer per dispatch.
  Resume state: grain's iterator state.

Step bookkeeping (:func:`dispatch_length`): a dispatch runs
``steps_per_dispatch`` steps but is cut short so that it ends exactly at every
validation / checkpoint step and at the last step, so those happen at the
same steps as with one step per dispatch. Each distinct length compiles once
(with once-per-epoch intervals: the full length and the epoch's remainder).
Logging happens at the first dispatch end at or after each multiple of
``log_every_steps`` (it does not cut dispatches) and reports that step.
"""

from __future__ import annotations

import time
from typing import Any

import jax
import jax.extend
import jax.numpy as jnp
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
from absl import logging
from jax.sharding import NamedSharding, PartitionSpec as P

from leadmix_jax import checkpointing
from leadmix_jax.mesh import AXIS

from leadmix_jax.input import built, pipeline, resident

MODES = ("auto", "device", "grain")


# ----------------------------------------------------------------------------
# Mode selection and bookkeeping.


def choose_input_mode(
    config: ml_collections.ConfigDict, builder, split: str, num_devices: int | None = None
) -> tuple[str, str]:
    """``(mode, reason)``: ``'device'`` or ``'grain'`` per ``config.input_mode``;
    ``'auto'`` picks device when the split's per-device shard fits
    ``config.device_data_budget_bytes``. The same on every process."""
    mode = config.input_mode
    if mode not in MODES:
        raise ValueError(f"input_mode {mode!r}: use one of {MODES}")
    num_devices = num_devices or jax.device_count()
    n = built.split_size(builder, split)
    need = resident.bytes_per_device(n, resident.example_shape(builder), num_devices)
    budget = int(config.device_data_budget_bytes)
    size = (
        f"{n} examples of {split!r} need {need / 2**20:.1f} MiB per device "
        f"(sharded over {num_devices}), budget {budget / 2**20:.1f} MiB"
    )
    if mode == "grain":
        return "grain", f"input_mode='grain' ({size})"
    if mode == "device":
        return "device", f"input_mode='device' ({size})"
    if need <= budget:
        return "device", f"auto: the split fits in device memory ({size})"
    return "grain", f"auto: the split does not fit in device memory ({size}); streaming with grain"


def data_seed(config: ml_collections.ConfigDict) -> int:
    """Seed of the data order (shuffling, augmentation): ``config.data_seed``,
    or ``config.seed`` when that is negative. A population's members share one
    data order whatever their own seeds; a solo run with the member's seed and
    this data seed sees the same batches."""
    seed = int(config.get("data_seed", -1))
    return int(config.seed) if seed < 0 else seed


def dispatch_length(step: int, total_steps: int, steps_per_dispatch: int, cut_every=()) -> int:
    """Steps of the dispatch that starts after ``step``: ``steps_per_dispatch``,
    cut short to end at ``total_steps`` and at the next multiple of every
    positive interval in ``cut_every`` (validation, checkpoints)."""
    if steps_per_dispatch < 1:
        raise ValueError(f"steps_per_dispatch must be >= 1, got {steps_per_dispatch}")
    end = min(step + steps_per_dispatch, total_steps)
    for every in cut_every:
        if every > 0:
            end = min(end, (step // every + 1) * every)
    return end - step


def crossed(step: int, end: int, every: int) -> bool:
    """Whether ``(step, end]`` holds a multiple of ``every``."""
    return every > 0 and end // every > step // every


# ----------------------------------------------------------------------------
# Feeds.


def run_steps(body, state, k: int, trip: jax.Array):
    """``k`` applications of ``body(state, i) -> (state, metrics)``; metrics
    stacked to ``(k, ...)``.

    A while loop whose trip count ``trip`` (equal to ``k``) is a runtime value,
    not a ``scan`` of static length: XLA inlines a loop of length 1 and fuses
    it with its surroundings, which changes the rounding of a few parameters
    by an ulp. With a runtime trip count every ``k`` compiles the same loop
    body, so K=1 and K=8 dispatches give bitwise-identical parameters.
    """
    # The step is traced once: its jaxpr gives the metrics' shapes and is the
    # loop body (tracing the train step is seconds; eval_shape + a second
    # trace in the loop doubled every program's start-up).
    closed, shapes = jax.make_jaxpr(body, return_shape=True)(state, jnp.int32(0))
    traced_body = jax.extend.core.jaxpr_as_fun(closed)
    out_tree = jax.tree.structure(shapes)
    metrics = jax.tree.map(lambda a: jnp.zeros((k, *a.shape), a.dtype), shapes[1])

    def step(i, carry):
        s, ms = carry
        s, m = jax.tree.unflatten(out_tree, traced_body(*jax.tree.leaves((s, i))))
        return s, jax.tree.map(lambda buf, v: buf.at[i].set(v), ms, m)

    return jax.lax.fori_loop(0, trip, step, (state, metrics))


class TripCounts(dict):
    """The runtime trip counts of :func:`run_steps` on the devices, put there
    once per ``k``: ``trips[k]`` is a replicated int32 scalar."""

    def __init__(self, sharding):
        super().__init__()
        self.sharding = sharding

    def __missing__(self, k: int) -> jax.Array:
        self[k] = jax.device_put(np.int32(k), self.sharding)
        return self[k]


class GrainFeed:
    """``k`` batches from a grain iterator per dispatch, one host->device copy."""

    mode = "grain"

    def __init__(self, exp, iterator):
        self.exp, self.iterator = exp, iterator
        self.wait_s = 0.0  # time spent waiting for the pipeline since the last reset
        self._sharding = NamedSharding(exp.mesh, P(None, AXIS))
        self._compiled: dict[int, Any] = {}
        self._trips = TripCounts(exp.replicated)
        self._step = exp.step_fn

    @property
    def checkpointable(self):
        return self.iterator

    def _fn(self, k: int):
        if k not in self._compiled:
            step = self._step

            def dispatch(state, batches, trip):
                return run_steps(lambda s, i: step(s, jax.tree.map(lambda b: b[i], batches)), state, k, trip)

            self._compiled[k] = jax.jit(
                dispatch,
                in_shardings=(self.exp.replicated, self._sharding, self.exp.replicated),
                out_shardings=(self.exp.replicated, self.exp.replicated),
                donate_argnums=(0,),
            )
        return self._compiled[k]

    def host_batches(self, k: int) -> dict:
        """``k`` process-local batches stacked: ``ecg`` (k, b, T, N), ``label`` (k, b)."""
        t0 = time.perf_counter()
        local = [next(self.iterator) for _ in range(k)]
        self.wait_s += time.perf_counter() - t0
        return {key: np.stack([np.asarray(b[key]) for b in local]) for key in ("ecg", "label")}

    def run(self, state, k: int):
        """``k`` steps; returns the new state and metrics of shape ``(k,)``."""
        host = self.host_batches(k)
        batches = {key: jax.make_array_from_process_local_data(self._sharding, v) for key, v in host.items()}
        return self.run_on_device(state, batches, k)

    def run_on_device(self, state, batches: dict, k: int):
        """``k`` steps on stacked global batches already on the devices
        (``ecg`` (k, B, T, N), ``label`` (k, B), sharded over ``data``)."""
        return self._fn(k)(state, batches, self._trips[k])


class DevicePosition:
    """The checkpointed position of the device-resident stream (a JSON item
    in place of grain's iterator state)."""

    def __init__(self, num_examples: int, global_batch: int, seed: int):
        self.num_examples, self.global_batch, self.seed = num_examples, global_batch, seed
        self.step = 0

    def to_json(self) -> dict:
        position = self.step * self.global_batch
        return {
            "input_mode": "device",
            "step": self.step,
            "epoch": position // self.num_examples,
            "position": position,
            "index_in_epoch": position % self.num_examples,
            "num_examples": self.num_examples,
            "global_batch": self.global_batch,
            "seed": self.seed,
        }

    def checkpoint_args(self, restore: bool):
        return ocp.args.JsonRestore() if restore else ocp.args.JsonSave(self.to_json())

    def restored(self, saved: dict) -> None:
        """Takes the saved position; :class:`~leadmix_jax.checkpointing.CheckpointMismatch`
        when it belongs to another data order (a config change, not damage)."""
        if not isinstance(saved, dict) or saved.get("input_mode") != "device":
            raise checkpointing.CheckpointMismatch(
                "the checkpoint's input state is not a device-mode position (was it written "
                "with input_mode='grain'?): resume with the same input mode"
            )
        for key in ("num_examples", "global_batch", "seed"):
            if saved[key] != getattr(self, key):
                raise checkpointing.CheckpointMismatch(
                    f"checkpoint was written with {key}={saved[key]}, this run has "
                    f"{getattr(self, key)}: the data order would not resume exactly"
                )
        self.step = int(saved["step"])


class DeviceFeed:
    """``k`` steps per dispatch over a device-resident split.

    Args:
      exp: the :class:`~leadmix_jax.train.trainer.Experiment`.
      split: the split on the devices (:func:`leadmix_jax.input.resident.load_resident`).
      spec: lead selection, normalisation and augmentation.
      seed: data-order seed (shuffle key and augmentation key derive from it,
        :func:`leadmix_jax.input.resident.data_keys`).
    """

    mode = "device"

    def __init__(
        self,
        exp,
        split: resident.Resident,
        spec: resident.BatchSpec,
        seed: int,
    ):
        self.exp, self.n = exp, split.num_examples
        self.batch = exp.config.batch_size
        self.position = DevicePosition(self.n, self.batch, seed)
        self.wait_s = 0.0
        shuffle_key, augment_key = resident.data_keys(seed)
        rep = exp.replicated
        self.arrays = {
            "ecg": split.ecg,
            "label": split.label,
            "shuffle_key": jax.device_put(shuffle_key, rep),
            "augment_key": jax.device_put(augment_key, rep),
        }
        self._batch_of = resident.make_batch_fn(spec, exp.mesh)
        self._step = exp.step_fn
        self.steps_per_dispatch = int(exp.config.steps_per_dispatch)
        self._compiled: dict[int, Any] = {}
        self._trips = TripCounts(exp.replicated)

    @property
    def checkpointable(self) -> DevicePosition:
        return self.position

    def indices(self, arrays: dict, step: jax.Array, k: int):
        """Row indices and stream positions of steps ``step .. step + k - 1``, ``(k, B)`` each."""
        first = step.astype(jnp.int32) * self.batch
        idx = resident.stream_indices(arrays["shuffle_key"], first, k * self.batch, self.n)
        pos = first + jnp.arange(k * self.batch, dtype=jnp.int32)
        return idx.reshape(k, self.batch), pos.reshape(k, self.batch)

    @staticmethod
    def step_of(state) -> jax.Array:
        """The train step of ``state`` (fixes the stream position)."""
        return state.step

    def make_batch(self, arrays: dict, idx: jax.Array, pos: jax.Array) -> dict:
        """The global batch of rows ``idx`` at stream positions ``pos`` (``(B,)`` each)."""
        return self._batch_of(arrays["ecg"], arrays["label"], idx, pos, arrays["augment_key"])

    def _program(self, size: int):
        """The compiled dispatch of up to ``size`` steps: ``(state, arrays,
        trip) -> (state, metrics (size,))``, running ``trip`` steps."""
        if size not in self._compiled:

            def dispatch(state, arrays, trip):
                idx, pos = self.indices(arrays, self.step_of(state), size)

                def body(s, i):
                    return self._step(s, self.make_batch(arrays, idx[i], pos[i]))

                return run_steps(body, state, size, trip)

            self._compiled[size] = jax.jit(
                dispatch, out_shardings=(self.exp.replicated, self.exp.replicated), donate_argnums=(0,)
            )
        return self._compiled[size]

    def run(self, state, k: int):
        """``k`` steps; returns the new state and metrics of shape ``(k,)``.
        Nothing may be copied from the host during the call.

        Every dispatch of up to ``config.steps_per_dispatch`` steps runs the
        same compiled program (the trip count is a runtime value), so the
        shorter dispatches that end at validation and checkpoint steps
        compile nothing new."""
        size = max(k, self.steps_per_dispatch)
        with jax.transfer_guard_host_to_device("disallow"):
            state, metrics = self._program(size)(state, self.arrays, self._trips[k])
        if k < size:  # outside the guard: slicing sends its start index to the device
            metrics = jax.tree.map(lambda m: m[:k], metrics)
        self.position.step += k
        return state, metrics


def make_feed(
    exp, config: ml_collections.ConfigDict, builder, stats, pcfg, mode: str | None = None, reason: str = ""
):
    """The feed of ``config.input_mode`` (chosen by :func:`choose_input_mode`
    unless ``mode`` is given); logs the mode and why."""
    if mode is None:
        mode, reason = choose_input_mode(config, builder, config.train_split)
    logging.info("input mode: %s (%s); %d steps per dispatch", mode, reason, config.steps_per_dispatch)
    if mode == "grain":
        return GrainFeed(exp, iter(pipeline.train_dataset(builder, config.train_split, pcfg, stats)))
    split = resident.load_resident(builder, config.train_split, exp.mesh)
    spec = resident.BatchSpec.from_config(exp.leads, stats, pcfg.augment)
    return DeviceFeed(exp, split, spec, data_seed(config))
