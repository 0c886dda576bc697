"""A training run's life around the loop, the same for one model and a population.

1. :func:`restore_or_init`: the newest intact checkpoint of the run's manager
   is restored (state and input position), or a fresh state is made;
2. :func:`train`: :func:`leadmix_jax.train.loop.run_loop` from that step to
   the end; on Ctrl-C the pending checkpoints of every manager are written
   and the managers closed before :class:`~leadmix_jax.train.loop.Interrupted`
   goes on up;
3. :func:`best`: the step ``--checkpoint=best`` selects and its validation
   AUROC, then :func:`close`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import orbax.checkpoint as ocp

from leadmix_jax import checkpointing
from leadmix_jax.train import loop


def restore_or_init(
    manager: ocp.CheckpointManager,
    abstract_state: Any,
    init_state: Callable[[], Any],
    checkpointable,
    what: str,
) -> tuple[Any, int]:
    """``(state, start step)``: the newest intact step of ``manager`` restored onto
    ``abstract_state`` (``checkpointable``, the feed's input position, restored
    in place), else ``init_state()`` at step 0. ``what`` names the run in the
    "resumed" line."""
    state, _, start = checkpointing.restore_newest_intact(manager, abstract_state, checkpointable)
    if start is not None:
        loop.say(f"{what}resumed from step {start}")
        return state, start
    return init_state(), 0


def train(
    config,
    exp,
    feed,
    state,
    start: int,
    workdir: str,
    managers: Sequence[ocp.CheckpointManager],
    *,
    validate,
    save,
) -> dict:
    """:func:`~leadmix_jax.train.loop.run_loop` to the end; returns its last metrics.

    Every manager has finished writing when this returns; on Ctrl-C they
    are also closed before :class:`~leadmix_jax.train.loop.Interrupted` is raised."""
    try:
        last = loop.run_loop(config, exp, feed, state, start, workdir, validate=validate, save=save)
    except loop.Interrupted:
        close(managers)
        raise
    for manager in managers:
        manager.wait_until_finished()
    return last


def best(manager: ocp.CheckpointManager) -> dict:
    """``best_step`` (None without validation) and its ``best_val_auroc``."""
    step = checkpointing.best_step(manager)
    metrics = checkpointing.step_metrics(manager, step) if step is not None else None
    return {"best_step": step, "best_val_auroc": metrics["val_auroc"] if metrics else None}


def close(managers: Sequence[ocp.CheckpointManager]) -> None:
    """Waits for every pending save, then closes the managers."""
    for manager in managers:
        manager.wait_until_finished()
        manager.close()
