"""Orbax checkpoints: train state + grain iterator state + run metadata.

Each checkpoint step holds four items:

* ``state``: the :class:`~leadmix_jax.train.trainer.TrainState` (params, optimiser
  state, step, rng), restored straight onto the device mesh;
* ``data``: the training iterator's state (grain's handler, one file per
  process), so a restart continues at the exact next batch; with
  device-resident input a JSON position instead (anything with
  ``checkpoint_args(restore)``, see :class:`leadmix_jax.train.feeds.DevicePosition`);
* ``meta``: JSON with the lead set, normalisation statistics, model settings
  and, when validation ran at that step, its metrics (``validation``:
  ``val_auroc``, ``val_loss``, ``val_youden``): what evaluation and
  prediction need to use the checkpoint;
* ``metrics``: Orbax's own copy of the validation metrics.

Why both ``meta['validation']`` and Orbax's metrics: Orbax writes per-step
metrics to disk only when ``best_fn`` is set; without them a manager opened
later (evaluation, a resumed run) cannot tell the best step and silently
falls back to the latest. ``best_fn`` is set so that the preservation policy
keeps the best step across restarts; selection for evaluation reads the
metrics back from disk (:func:`best_step`).

Saves are asynchronous. Orbax writes each step to a temporary folder and
renames it when complete, so a killed run never restores a half-written
checkpoint; a step damaged afterwards (a deleted or truncated file) is set
aside with a warning and the newest intact step is restored
(:func:`restore_newest_intact`). Kept: the last ``keep`` steps plus the best
by validation AUROC.
"""

from __future__ import annotations

import json
from typing import Any

import grain
import jax
import numpy as np
import orbax.checkpoint as ocp
from absl import logging
from etils import epath

from leadmix_jax.errors import UserError

BEST_METRIC = "val_auroc"
CORRUPT_DIR = "corrupt_checkpoints"


def _state_handler() -> ocp.PyTreeCheckpointHandler:
    """Orbax's handler of the train state, without replica-parallel saving.

    Replica-parallel saving (Orbax's default off GPUs) cuts every replicated
    array into one slice per device and copies each to the host through a
    program of its own: one compilation per parameter shape and device, ~130
    for this model on 8 devices, seconds at every start of a run, to spread
    a 4 MB state over devices. Without it, one replica is written."""
    th = ocp.type_handlers
    registry = th.create_type_handler_registry(
        (int, th.ScalarHandler()),
        (float, th.ScalarHandler()),
        (bytes, th.ScalarHandler()),
        (np.number, th.ScalarHandler()),
        (np.ndarray, th.NumpyHandler()),
        (jax.Array, th.ArrayHandler(use_replica_parallel=False)),
        (str, th.StringHandler()),
    )
    return ocp.PyTreeCheckpointHandler(type_handler_registry=registry)


def make_manager(workdir: str, keep: int, read_only: bool = False) -> ocp.CheckpointManager:
    """Manager of ``workdir/checkpoints`` keeping the ``keep`` latest steps and the best one."""
    policies = ocp.checkpoint_managers
    preservation = policies.AnyPreservationPolicy(
        [
            policies.LatestN(n=keep),
            policies.BestN(
                get_metric_fn=_best_metric, reverse=False, n=1, keep_checkpoints_without_metrics=False
            ),
        ]
    )
    options = ocp.CheckpointManagerOptions(
        preservation_policy=preservation,
        best_fn=_best_metric,
        best_mode="max",
        enable_async_checkpointing=True,
        read_only=read_only,
        create=not read_only,
    )
    return Manager(
        epath.Path(workdir).absolute() / "checkpoints",
        item_names=("state", "data", "meta"),
        item_handlers={"state": _state_handler()},
        options=options,
    )


class Manager(ocp.CheckpointManager):
    """Orbax's checkpoint manager, reading each step's metrics file defensively.

    Orbax reads every step's metrics when it opens the folder; one file that
    does not decode stopped every restart and every prediction. Here such a
    step is recorded in :attr:`damaged` (step -> problem) and has no metrics;
    the selection and the restore below skip or set it aside like any other
    damaged step."""

    def __init__(self, *args, **kwargs):
        self.damaged: dict[int, str] = {}
        super().__init__(*args, **kwargs)

    def metrics(self, step: int):
        try:
            return super().metrics(step)
        except Exception as e:  # noqa: BLE001 - any failure to decode the file means it is damaged
            self.damaged[step] = f"its metrics file does not decode ({_first_line(e)})"
            return None

    def usable_steps(self) -> list[int]:
        """Saved steps that are not known to be damaged, ascending."""
        return sorted(s for s in self.all_steps() if s not in self.damaged)


class DamagedCheckpoint(UserError):
    """A checkpoint step whose files fail to read or decode."""


class CheckpointMismatch(UserError):
    """A checkpoint that reads back fine but belongs to another configuration
    (other shapes, another input mode or data order): not damage."""


def _best_metric(metrics: dict | None) -> float:
    value = float((metrics or {}).get(BEST_METRIC, float("nan")))
    return value if value == value else float("-inf")  # NaN AUROC ranks last


def save(
    manager: ocp.CheckpointManager, step: int, state: Any, iterator, meta: dict, metrics: dict | None = None
) -> None:
    """Starts an asynchronous save of ``step``; ``metrics`` (validation at this
    step, if any) are stored both in ``meta['validation']`` and as Orbax metrics."""
    meta = {**meta, "step": int(step), "validation": dict(metrics) if metrics else None}
    manager.save(
        step,
        args=ocp.args.Composite(
            state=ocp.args.PyTreeSave(state),
            data=_data_args(iterator, restore=False),
            meta=ocp.args.JsonSave(meta),
        ),
        metrics=dict(metrics) if metrics else None,
        force=True,
    )


def _data_args(iterator, restore: bool):
    if hasattr(iterator, "checkpoint_args"):  # device-resident input: a JSON position
        return iterator.checkpoint_args(restore)
    return (
        grain.checkpoint.CheckpointRestore(iterator) if restore else grain.checkpoint.CheckpointSave(iterator)
    )


def restore_train(manager: ocp.CheckpointManager, step: int, abstract_state: Any, iterator):
    """Restores state (onto the shardings of ``abstract_state``) and the
    iterator (in place); returns ``(state, meta)``."""
    out = manager.restore(
        step,
        args=ocp.args.Composite(
            state=ocp.args.PyTreeRestore(
                item=abstract_state, restore_args=ocp.checkpoint_utils.construct_restore_args(abstract_state)
            ),
            data=_data_args(iterator, restore=True),
            meta=ocp.args.JsonRestore(),
        ),
    )
    if hasattr(iterator, "restored"):
        iterator.restored(out["data"])
    return out["state"], out["meta"]


def restore_newest_intact(manager: "Manager", abstract_state: Any, iterator):
    """Restores the newest step that reads back completely.

    A damaged step (a file deleted, truncated or not decoding: state, input
    position, metadata or metrics) is reported with a warning naming the step
    and the problem, moved to ``workdir/corrupt_checkpoints/`` under a name
    of its own (by process 0, so that the resumed run can save that step
    again; nothing is deleted) and the next older step is tried. A step that
    reads back but does not fit this run (:class:`CheckpointMismatch`: other
    parameter shapes, another input mode or data order) stops the restore
    with a one-line error and moves nothing.

    Returns:
      ``(state, meta, step)``, or ``(None, None, None)`` when no step is intact.
    """
    for step in sorted(manager.all_steps(), reverse=True):
        problem = manager.damaged.get(step)
        if problem is None:
            check_fits(manager, step, abstract_state, iterator)
            try:
                state, meta = restore_train(manager, step, abstract_state, iterator)
                return state, meta, step
            except CheckpointMismatch:
                raise
            except Exception as e:  # noqa: BLE001 - any failure to read the step means it is damaged
                problem = describe_problem(manager, step, e)
        aside = _set_aside(manager, step)
        logging.warning("checkpoint step %d is damaged (%s): moved to %s", step, problem, aside)
        print(
            f"warning: checkpoint step {step} is damaged ({problem}); moved to {aside}, resuming from an older step",
            flush=True,
        )
    return None, None, None


def _path_key(path) -> tuple[str, ...]:
    """A tree path as strings, the same for a live tree and Orbax's metadata tree."""
    out = []
    for k in path:
        for attr in ("key", "name", "idx"):
            if hasattr(k, attr):
                out.append(str(getattr(k, attr)))
                break
    return tuple(out)


def check_fits(manager: "Manager", step: int, abstract_state: Any, iterator) -> None:
    """Raises :class:`CheckpointMismatch` when ``step``'s saved state has other
    leaves or shapes than ``abstract_state``, or its input position is of the
    other input mode than ``iterator``. Unreadable metadata is left to the
    restore (it is damage)."""
    try:
        saved = manager.item_metadata(step)["state"]
        saved_shapes = {_path_key(p): tuple(m.shape) for p, m in jax.tree_util.tree_leaves_with_path(saved)}
    except Exception:  # noqa: BLE001 - the restore will report the damage
        return
    want = {_path_key(p): tuple(x.shape) for p, x in jax.tree_util.tree_leaves_with_path(abstract_state)}
    if saved_shapes and saved_shapes != want:
        differ = [
            f"{'/'.join(k)}: saved {saved_shapes.get(k)} vs now {want.get(k)}"
            for k in sorted(set(saved_shapes) | set(want))
            if saved_shapes.get(k) != want.get(k)
        ]
        raise CheckpointMismatch(
            f"checkpoint step {step} of {manager.directory} holds a model of other shapes than this "
            f"config's ({len(differ)} parameters differ, e.g. {'; '.join(differ[:2])}): resume with the "
            "workdir's own config, or start afresh (a new --workdir, or --start_afresh)"
        )
    device_saved = (epath.Path(manager.directory) / str(step) / "data" / "metadata").exists()
    device_now = hasattr(iterator, "checkpoint_args")
    if device_saved != device_now:
        modes = {True: "device", False: "grain"}
        raise CheckpointMismatch(
            f"checkpoint step {step} was written with input_mode={modes[device_saved]!r}, this run "
            f"resolves input_mode to {modes[device_now]!r} (see --config.input_mode and "
            "--config.device_data_budget_bytes): the data order would not resume exactly"
        )


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return f"{type(error).__name__}: {text.splitlines()[0][:200]}" if text else type(error).__name__


def describe_problem(manager: ocp.CheckpointManager, step: int, error: Exception) -> str:
    """One line saying what is wrong with ``step``: a missing item folder or
    the first line of the library's error."""
    root = epath.Path(manager.directory) / str(step)
    missing = [item for item in ("state", "data", "meta") if not (root / item).exists()]
    if missing:
        return f"missing {', '.join(missing)} in {root}"
    return _first_line(error)


def _set_aside(manager: ocp.CheckpointManager, step: int) -> epath.Path:
    """Moves ``step`` to ``corrupt_checkpoints/<step>`` (``<step>.2``, ``.3``...
    when that name is taken: a set-aside copy is never overwritten) and returns
    where it went (on processes other than 0, where it would go)."""
    src = epath.Path(manager.directory) / str(step)
    aside = epath.Path(manager.directory).parent / CORRUPT_DIR
    dst, n = aside / str(step), 1
    while dst.exists():
        n += 1
        dst = aside / f"{step}.{n}"
    if jax.process_index() == 0:
        aside.mkdir(parents=True, exist_ok=True)
        src.rename(dst)
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(f"set_aside_{step}")
    manager.reload()
    if isinstance(manager, Manager):
        manager.damaged.pop(step, None)
    return dst


def step_metrics(manager: ocp.CheckpointManager, step: int) -> dict | None:
    """Validation metrics saved with ``step`` (None when no validation ran there)."""
    try:
        metrics = manager.metrics(step)
    except Exception:  # noqa: BLE001 - an unreadable metrics file counts as none
        metrics = None
    if metrics:
        return dict(metrics)
    path = epath.Path(manager.directory) / str(step) / "meta" / "metadata"
    try:
        return json.loads(path.read_text()).get("validation") or None
    except (OSError, ValueError):
        return None


def _usable(manager: ocp.CheckpointManager, exclude=()) -> list[int]:
    steps = manager.usable_steps() if isinstance(manager, Manager) else sorted(manager.all_steps())
    return [s for s in steps if s not in set(exclude)]


def best_step(manager: ocp.CheckpointManager, exclude=()) -> int | None:
    """The kept step with the highest validation AUROC (None if none has one);
    ties go to the later step. Damaged steps and ``exclude`` are passed over."""
    scored = []
    for step in _usable(manager, exclude):
        metrics = step_metrics(manager, step)
        if metrics and BEST_METRIC in metrics:
            scored.append((_best_metric(metrics), step))
    return max(scored)[1] if scored else None


def select_step(manager: ocp.CheckpointManager, which: str | int, exclude=()) -> int:
    """Resolves ``'best'`` (the latest step when no step has validation
    metrics, with a warning), ``'latest'`` or a step number to a saved step.
    ``best`` and ``latest`` pass over damaged steps (with a warning) and
    ``exclude``; a step asked for by number must be intact."""
    damaged = getattr(manager, "damaged", {})
    for step, problem in sorted(damaged.items()):
        logging.warning(
            "checkpoint step %d of %s is damaged (%s): passed over", step, manager.directory, problem
        )
    steps = _usable(manager, exclude)
    if which not in ("best", "latest"):
        try:
            step = int(which)
        except (TypeError, ValueError):
            raise UserError(
                f"--config.eval_checkpoint={which!r}: use best, latest or a step number"
            ) from None
        if step in damaged:
            raise UserError(
                f"checkpoint step {step} is damaged ({damaged[step]}); saved steps: {sorted(manager.all_steps())}"
            )
        if step not in manager.all_steps():
            raise UserError(f"no checkpoint at step {step}; saved steps: {sorted(manager.all_steps())}")
        return step
    if not steps:
        if manager.all_steps():
            raise UserError(f"no intact checkpoint in {manager.directory}: every step is damaged")
        raise UserError(f"no checkpoint in {manager.directory}: train first (launch.py --mode=train)")
    if which == "best":
        best = best_step(manager, exclude)
        if best is not None:
            return best
        logging.warning(
            "no checkpoint of %s has validation metrics: 'best' is the latest step", manager.directory
        )
    return steps[-1]


def model_meta(config, leads, stats, *, lead_robust: bool = False, **extra) -> dict:
    """The ``meta`` item a training run saves: what :func:`read_meta` gives
    evaluation, prediction and export (leads, normalisation statistics, model
    settings, training dataset; ``lead_robust`` adds the mask settings;
    ``extra`` keys are added as they are)."""
    meta = {
        "leads": list(leads),
        "norm_stats": stats.to_json(),
        "model": config.model.to_dict(),
        "train_dataset": config.train_dataset,
    }
    if lead_robust:
        meta["lead_robust"] = config.lead_robust.to_dict()
    return {**meta, **extra}


def read_meta(manager: ocp.CheckpointManager, step: int) -> dict:
    """The ``meta`` item of ``step``; :class:`UserError` in one line if unreadable."""
    try:
        return manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]
    except Exception as e:  # noqa: BLE001
        raise DamagedCheckpoint(
            f"checkpoint step {step} is damaged ({describe_problem(manager, step, e)})"
        ) from None


def restore_for_inference(manager: ocp.CheckpointManager, step: int, abstract_params: Any):
    """Restores only ``params`` and ``meta`` of ``step`` (no optimiser or
    iterator); :class:`UserError` in one line if the step is damaged."""
    meta = read_meta(manager, step)
    target = {"params": abstract_params}
    try:
        restored = manager.restore(
            step,
            args=ocp.args.Composite(
                state=ocp.args.PyTreeRestore(
                    item=target,
                    partial_restore=True,
                    restore_args=ocp.checkpoint_utils.construct_restore_args(target),
                )
            ),
        )
    except Exception as e:  # noqa: BLE001
        raise DamagedCheckpoint(
            f"checkpoint step {step} is damaged ({describe_problem(manager, step, e)})"
        ) from None
    return restored["state"]["params"], meta


def replicated_abstract(tree: Any, sharding: jax.sharding.Sharding) -> Any:
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), tree)
