"""One model's training run: data, statistics, feed, checkpoints, validation.

    python launch.py --config=configs/paper.py --workdir=runs/inferior --config.leads=inferior

One code path for one CPU, one GPU or a multi-host TPU pod: a 1-D mesh with
axis ``data`` spans every device of every process (:mod:`leadmix_jax.mesh`),
parameters and optimiser state are replicated, batches are split along
``data``. Restarting the same command resumes from the newest intact
checkpoint, data position included.
"""

from __future__ import annotations

import json

import jax
import ml_collections
from absl import logging
from etils import epath

from leadmix_jax import checkpointing
from leadmix_jax.input import built, norm_stats, pipeline
from leadmix_jax.input.augment import AugmentConfig
from leadmix_jax.train import feeds, lifecycle, loop, resume, validation
from leadmix_jax.train.experiment import make_experiment


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict:
    """Trains per ``config``, resuming from ``workdir`` when it holds checkpoints.

    Returns the last logged metrics, validation metrics if any ran, and
    ``best_step``/``best_val_auroc``: the checkpoint ``--checkpoint=best``
    selects (None without validation). Ctrl-C raises
    :class:`~leadmix_jax.train.loop.Interrupted` after the pending checkpoint
    is written.
    """
    # Checks first: a run that fails them leaves no workdir behind.
    builder = built.load_builder(config.data_dir, config.train_dataset)
    train_size = built.split_size(builder, config.train_split)
    val_builder = validation.validation_builder(config)
    resume.check(workdir, config)
    write_config(config, workdir)
    logging.info(
        "processes %d, devices %d (local %d), backend %s",
        jax.process_count(),
        jax.device_count(),
        jax.local_device_count(),
        jax.default_backend(),
    )
    exp = make_experiment(config, train_size)
    stats = norm_stats_for(workdir, builder, config, exp.leads)
    feed = feeds.make_feed(exp, config, builder, stats, pipeline_config(config, exp.leads))

    manager = checkpointing.make_manager(workdir, config.keep_checkpoints)
    state, start = lifecycle.restore_or_init(
        manager, exp.abstract_state(), exp.init_state, feed.checkpointable, ""
    )
    meta = checkpointing.model_meta(config, exp.leads, stats, lead_robust=exp.lead_masks is not None)

    def validate_at(state) -> dict:
        val = validation.validate(exp, state.params, val_builder, config.val_split, stats)
        if jax.process_index() == 0:
            logging.info(
                "step %d  validation: loss %.4f  AUROC %.4f  Youden threshold %.4f",
                int(state.step),
                val["val_loss"],
                val["val_auroc"],
                val["val_youden"],
            )
        return val

    def save(step, state, val) -> None:
        checkpointing.save(manager, step, state, feed.checkpointable, meta, val)

    last = lifecycle.train(
        config,
        exp,
        feed,
        state,
        start,
        workdir,
        [manager],
        validate=validate_at if val_builder is not None else None,
        save=save,
    )
    last.update(lifecycle.best(manager))
    lifecycle.close([manager])
    if last["best_step"] is not None:
        loop.say(
            f"training done at step {exp.total_steps}; best checkpoint: step {last['best_step']} "
            f"(validation AUROC {last['best_val_auroc']:.4f})"
        )
    return last


def write_config(config: ml_collections.ConfigDict, workdir: str) -> None:
    """``workdir/config.json`` (process 0): what eval, predict and export read back."""
    if jax.process_index() == 0:
        path = epath.Path(workdir)
        path.mkdir(parents=True, exist_ok=True)
        (path / "config.json").write_text(config.to_json_best_effort(indent=2))


def pipeline_config(config: ml_collections.ConfigDict, leads) -> pipeline.PipelineConfig:
    """The grain pipeline's settings of a training config (model leads ``leads``)."""
    return pipeline.PipelineConfig(
        leads=tuple(leads),
        global_batch=config.batch_size,
        seed=feeds.data_seed(config),
        workers=config.workers,
        shuffle_window=config.shuffle_window,
        augment=AugmentConfig.from_config(config.augment),
    )


def norm_stats_for(workdir: str, builder, config, leads) -> norm_stats.NormStats:
    """The training split's statistics of ``leads``, computed by process 0
    (cached in ``workdir/norm_stats.json``) and read by every process."""
    stats = _load_or_compute_stats(workdir, builder, config, leads) if jax.process_index() == 0 else None
    return _broadcast_stats(workdir, stats, leads)


def _load_or_compute_stats(workdir: str, builder, config, leads) -> norm_stats.NormStats:
    """Cached in ``workdir/norm_stats.json``; recomputed if the leads changed."""
    path = epath.Path(workdir) / "norm_stats.json"
    if path.exists():
        stats = norm_stats.NormStats.from_json(json.loads(path.read_text()))
        if tuple(stats.leads) == tuple(leads):
            return stats
    loop.say(
        f"computing normalisation statistics on {config.train_dataset}:{config.train_split} "
        f"(up to {config.norm_max_examples} examples)"
    )
    stats = norm_stats.compute_from_split(
        builder, config.train_split, leads, config.norm_max_examples, config.train_dataset
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(stats.to_json(), indent=1))
    return stats


def _broadcast_stats(workdir: str, stats, leads):
    """Every process uses the statistics process 0 computed and wrote."""
    if jax.process_count() == 1:
        return stats
    from jax.experimental import multihost_utils

    multihost_utils.sync_global_devices("norm_stats_written")
    path = epath.Path(workdir) / "norm_stats.json"
    return norm_stats.NormStats.from_json(json.loads(path.read_text()))
