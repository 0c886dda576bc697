"""Restarting a workdir: the config may change only where the run stays the same.

A restarted command resumes its run exactly (checkpoint, data position). That
is only true if the config still describes the same run, so before anything
is restored the new config is compared with the workdir's saved
``config.json``:

* a change of a field that alters the run (model, leads, datasets, batch,
  seeds, input settings, optimiser, loss, augmentation, ...) is a one-line
  :class:`~leadmix_jax.errors.UserError` naming the fields; nothing is moved
  or deleted;
* fields that are safe to change (:data:`SAFE`: more steps or epochs with a
  constant learning rate, evaluation, logging and checkpoint cadence, how
  many steps one dispatch runs, ...) are allowed, and the log says so.

To start afresh, use a new ``--workdir`` or ``launch.py --start_afresh``,
which moves the old run aside under ``previous_runs/<time>/`` in the workdir
(:func:`move_aside`; nothing is deleted).
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Mapping

import jax
from etils import epath

from leadmix_jax.errors import UserError

#: Fields (or prefixes ending in '.') that can change between starts of one run.
SAFE = (
    "num_epochs",
    "num_train_steps",
    "eval_every_steps",
    "checkpoint_every_steps",
    "log_every_steps",
    "keep_checkpoints",
    "steps_per_dispatch",
    "workers",
    "eval_workers",
    "eval_batch_size",
    "eval_checkpoint",
    "eval_targets",
    "eval_leads",
    "eval_plots",
    "bootstrap_samples",
    "exclude_patients",
    "mode",
    "data_dir",
    "device_data_budget_bytes",
    "amplitude_range_mv",
    "population.members_per_pass",
    "report.",
    "predict.",
    "explain.",
    "export.",
)
#: What a workdir's run leaves there (data caches such as the demo's databases stay).
RUN_FILES = (
    "checkpoints",
    "corrupt_checkpoints",
    "metrics.jsonl",
    "tensorboard",
    "norm_stats.json",
    "config.json",
    "eval",
    "predictions",
    "export",
    "members",
    "protocol",
)


def flatten(tree: Mapping, prefix: str = "") -> dict:
    """``{'a': {'b': 1}} -> {'a.b': 1}``."""
    out = {}
    for key, value in tree.items():
        if isinstance(value, Mapping):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _safe(key: str, new: dict) -> bool:
    if key in ("num_epochs", "num_train_steps") and new.get("optimizer.schedule") == "cosine":
        return False  # the cosine schedule's length is the run's length
    return any(key == s or (s.endswith(".") and key.startswith(s)) for s in SAFE)


def changes(saved: Mapping, new: Mapping) -> tuple[list[str], list[str]]:
    """``(run-altering changes, safe changes)`` from ``saved`` to ``new``, as
    ``'field old -> new'``; fields only one side has are not compared."""
    old, cur = flatten(saved), flatten(new)
    altering, safe = [], []
    for key in sorted(set(old) & set(cur)):
        if json.dumps(old[key]) != json.dumps(cur[key]):
            text = f"{key} {old[key]!r} -> {cur[key]!r}"
            (safe if _safe(key, cur) else altering).append(text)
    return altering, safe


def has_run(workdir: str) -> bool:
    """Whether ``workdir`` holds a run to resume (a saved config and a checkpoint step)."""
    path = epath.Path(workdir)
    ckpts = path / "checkpoints"
    steps = [p for p in ckpts.iterdir() if p.name.isdigit()] if ckpts.is_dir() else []
    return (path / "config.json").exists() and bool(steps or list(path.glob("population_*leads")))


def check(workdir: str, config) -> None:
    """Raises :class:`UserError` when ``config`` would change the run saved in
    ``workdir``; says which safe fields changed. Nothing to check in a new workdir."""
    if not has_run(workdir):
        return
    path = epath.Path(workdir) / "config.json"
    try:
        saved = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise UserError(
            f"{path} does not read as a config ({type(e).__name__}): start afresh with --start_afresh"
        ) from None
    altering, safe = changes(saved, config.to_dict())
    if altering:
        raise UserError(
            f"{workdir} holds a run with another configuration ({'; '.join(altering)}): resuming would not "
            "continue that run. Use the saved values, a new --workdir, or --start_afresh to move the old run aside"
        )
    if safe and jax.process_index() == 0:
        print(f"config changed since the last start, safe to change: {'; '.join(safe)}", flush=True)


def move_aside(workdir: str) -> epath.Path | None:
    """Moves the run in ``workdir`` to ``workdir/previous_runs/<UTC time>[.n]/``;
    returns where, or None when there was nothing to move."""
    path = epath.Path(workdir)
    present = [path / n for n in RUN_FILES if (path / n).exists()] + list(path.glob("population_*leads"))
    if not present or jax.process_index() != 0:
        return None
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d-%H%M%S")
    dest, n = path / "previous_runs" / stamp, 1
    while dest.exists():
        n += 1
        dest = path / "previous_runs" / f"{stamp}.{n}"
    dest.mkdir(parents=True)
    for item in present:
        item.rename(dest / item.name)
    print(f"moved the previous run in {workdir} to {dest}", flush=True)
    return dest
