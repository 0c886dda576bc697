"""Orbax checkpoints: train state + grain iterator state + run metadata.

Each checkpoint step holds three items:

* ``state``: the :class:`~leadmix_jax.train.TrainState` (params, optimiser
  state, step, rng), restored straight onto the device mesh;
* ``data``: the training iterator's state (grain's handler, one file per
  process), so a restart continues at the exact next batch; with
  device-resident input a JSON position instead (anything with
  ``checkpoint_args(restore)``, see :class:`leadmix_jax.dispatch.DevicePosition`);
* ``meta``: JSON with the lead set, normalisation statistics and model
  settings: what evaluation and prediction need to use the checkpoint.

Saves are asynchronous. Orbax writes each step to a temporary folder and
renames it when complete, so a killed run never restores a half-written
checkpoint. Kept: the last ``keep`` steps plus the best by validation AUROC.
"""

from __future__ import annotations

from typing import Any

import grain
import jax
import orbax.checkpoint as ocp
from etils import epath

BEST_METRIC = "val_auroc"


def make_manager(workdir: str, keep: int, read_only: bool = False) -> ocp.CheckpointManager:
    policies = ocp.checkpoint_managers
    preservation = policies.AnyPreservationPolicy([
        policies.LatestN(n=keep),
        policies.BestN(get_metric_fn=_best_metric, reverse=False, n=1,
                       keep_checkpoints_without_metrics=False),
    ])
    options = ocp.CheckpointManagerOptions(
        preservation_policy=preservation, enable_async_checkpointing=True, read_only=read_only,
        create=not read_only)
    return ocp.CheckpointManager(epath.Path(workdir).absolute() / "checkpoints",
                                 item_names=("state", "data", "meta"), options=options)


def _best_metric(metrics: dict) -> float:
    value = float(metrics.get(BEST_METRIC, float("nan")))
    return value if value == value else float("-inf")  # NaN AUROC ranks last


def save(manager: ocp.CheckpointManager, step: int, state: Any, iterator, meta: dict,
         metrics: dict | None = None) -> None:
    """Starts an asynchronous save of ``step``."""
    manager.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state),
        data=_data_args(iterator, restore=False),
        meta=ocp.args.JsonSave(meta)), metrics=metrics, force=True)


def _data_args(iterator, restore: bool):
    if hasattr(iterator, "checkpoint_args"):  # device-resident input: a JSON position
        return iterator.checkpoint_args(restore)
    return grain.checkpoint.CheckpointRestore(iterator) if restore else grain.checkpoint.CheckpointSave(iterator)


def restore_train(manager: ocp.CheckpointManager, step: int, abstract_state: Any, iterator):
    """Restores state (onto the shardings of ``abstract_state``) and the
    iterator (in place); returns ``(state, meta)``."""
    out = manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract_state),
        data=_data_args(iterator, restore=True),
        meta=ocp.args.JsonRestore()))
    if hasattr(iterator, "restored"):
        iterator.restored(out["data"])
    return out["state"], out["meta"]


def best_step(manager: ocp.CheckpointManager) -> int | None:
    """The kept step with the highest validation AUROC (None if none has one)."""
    scored = []
    for step in manager.all_steps():
        metrics = manager.metrics(step) or {}
        if BEST_METRIC in metrics:
            scored.append((_best_metric(metrics), step))
    return max(scored)[1] if scored else None


def select_step(manager: ocp.CheckpointManager, which: str | int) -> int:
    """Resolves ``'best'`` (falls back to latest when no step has metrics),
    ``'latest'`` or a step number to a saved step."""
    steps = manager.all_steps()
    if not steps:
        raise FileNotFoundError(f"no checkpoint in {manager.directory}")
    if which == "latest":
        return manager.latest_step()
    if which == "best":
        return best_step(manager) or manager.latest_step()
    step = int(which)
    if step not in steps:
        raise ValueError(f"no checkpoint at step {step}; saved steps: {sorted(steps)}")
    return step


def restore_for_inference(manager: ocp.CheckpointManager, step: int, abstract_params: Any):
    """Restores only ``params`` and ``meta`` of ``step`` (no optimiser or iterator)."""
    meta = manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]
    target = {"params": abstract_params}
    restored = manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.PyTreeRestore(item=target, partial_restore=True,
                                     restore_args=ocp.checkpoint_utils.construct_restore_args(target))))
    return restored["state"]["params"], meta


def replicated_abstract(tree: Any, sharding: jax.sharding.Sharding) -> Any:
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), tree)
