"""Training of LeadMix-MST: pure jitted steps, data-parallel over all devices.

One code path for one CPU, one GPU or a multi-host TPU pod: a 1-D mesh with
axis ``data`` spans every device of every process, parameters and optimiser
state are replicated, batches are split along ``data``. Each process feeds
its local part of the global batch (``jax.make_array_from_process_local_data``).
"""

from __future__ import annotations

import dataclasses
import functools
import json
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from absl import logging
from etils import epath
from flax import nnx, struct
from jax.sharding import Mesh

from leadmix_jax import (
    checkpointing,
    dispatch,
    inference,
    input_pipeline,
    lead_robust,
    loop,
    norm_stats,
)
from leadmix_jax import leads as leads_lib


@struct.dataclass
class TrainState:
    step: jax.Array
    params: Any
    opt_state: Any
    rng: jax.Array  # raw uint32 key: dropout key of step s = fold_in(rng, s)


# ----------------------------------------------------------------------------
# Model, optimiser, loss.


def make_optimizer(config: ml_collections.ConfigDict, total_steps: int) -> optax.GradientTransformation:
    o = config.optimizer
    if o.schedule == "constant":
        lr = optax.constant_schedule(o.learning_rate)
    elif o.schedule == "cosine":
        lr = optax.warmup_cosine_decay_schedule(
            0.0, o.learning_rate, max(o.warmup_steps, 1), max(total_steps, o.warmup_steps + 1)
        )
    else:
        raise ValueError(f"unknown schedule {o.schedule!r}: use 'constant' or 'cosine'")
    tx = optax.adamw(lr, b1=o.b1, b2=o.b2, eps=o.eps, weight_decay=o.weight_decay)
    if o.grad_clip_norm > 0:
        tx = optax.chain(optax.clip_by_global_norm(o.grad_clip_norm), tx)
    return tx


# ----------------------------------------------------------------------------
# Steps (pure; compiled once).

# Salt of the lead-mask key: fold_in(dropout key, salt), so the dropout keys of
# the official model's steps stay what they were.
_MASK_KEY_SALT = 0x3A5C


def train_step(
    state: TrainState,
    batch: dict,
    *,
    graphdef,
    tx,
    label_smoothing: float,
    pos_weight: float,
    lead_masks=None,
) -> tuple[TrainState, dict]:
    """One optimiser step on a global batch ``ecg`` (B, T, N), ``label`` (B,).

    ``lead_masks``: for the lead-robust model, a
    :class:`~leadmix_jax.lead_robust.MaskSampler`; each example gets a
    ``(12,)`` presence mask drawn here from the step's key (N = 12)."""
    key = jax.random.fold_in(state.rng, state.step)
    inputs = (batch["ecg"],)
    if lead_masks is not None:
        inputs += (lead_masks(jax.random.fold_in(key, _MASK_KEY_SALT), batch["ecg"].shape[0]),)

    def loss_fn(params):
        logits = nnx.merge(graphdef, params)(*inputs, rng=key)
        return inference.bce_with_logits(logits, batch["label"], label_smoothing, pos_weight).mean()

    loss, grads = jax.value_and_grad(loss_fn)(state.params)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    new_state = state.replace(step=state.step + 1, params=params, opt_state=opt_state)
    return new_state, {"loss": loss, "grad_norm": optax.tree.norm(grads)}


# ----------------------------------------------------------------------------
# Mesh and batches.

# The mesh and the global batch are the inference module's (one definition).
make_mesh = inference.make_mesh
global_batch = inference.global_batch


def check_batch_divides(global_batch_size: int) -> None:
    if global_batch_size % jax.device_count():
        raise ValueError(
            f"batch_size {global_batch_size} must be divisible by the {jax.device_count()} "
            "devices of the data-parallel mesh"
        )


@dataclasses.dataclass
class Experiment(inference.OnMesh):
    """Everything the loop and evaluation need, built once from a config."""

    config: ml_collections.ConfigDict
    leads: tuple[str, ...]
    mesh: Mesh
    graphdef: Any
    tx: optax.GradientTransformation
    total_steps: int
    steps_per_epoch: int
    lead_masks: Any = None  # lead_robust.MaskSampler of a lead-robust model, else None

    def init_state(self) -> TrainState:
        """Fresh state, replicated on the mesh (same on every process: seeded)."""
        cfg = self.config

        def init():
            model = inference.build_model(cfg.model, len(self.leads), cfg.seed)
            params = nnx.state(model, nnx.Param)
            return TrainState(
                step=jnp.zeros((), jnp.int32),
                params=params,
                opt_state=self.tx.init(params),
                rng=jax.random.PRNGKey(cfg.seed + 1),
            )

        return jax.jit(init, out_shardings=self.replicated)()

    def abstract_state(self) -> TrainState:
        shapes = jax.eval_shape(lambda: self.init_state())
        return checkpointing.replicated_abstract(shapes, self.replicated)

    def compiled_train_step(self):
        step = jax.tree_util.Partial(
            train_step,
            graphdef=self.graphdef,
            tx=self.tx,
            label_smoothing=self.config.loss.label_smoothing,
            pos_weight=self.config.loss.pos_weight,
            lead_masks=self.lead_masks,
        )
        return jax.jit(
            lambda s, b: step(s, b),
            in_shardings=(self.replicated, self.data_sharding),
            out_shardings=(self.replicated, self.replicated),
            donate_argnums=(0,),
        )

    @functools.cached_property
    def runner(self) -> inference.Runner:
        """The eval step of this experiment's model on its mesh (compiled once)."""
        return inference.Runner(self.graphdef, self.mesh)


def make_experiment(config: ml_collections.ConfigDict, train_size: int | None = None) -> Experiment:
    # A lead-robust model trains on all 12 leads in canonical order (masks pick subsets).
    robust = lead_robust.is_lead_robust(config.model)
    leads = leads_lib.CANONICAL_LEADS if robust else leads_lib.parse_leads(config.leads)
    check_batch_divides(config.batch_size)
    model = nnx.eval_shape(lambda: inference.build_model(config.model, len(leads)))
    graphdef, _ = nnx.split(model, nnx.Param)
    steps_per_epoch = max(1, (train_size or config.batch_size) // config.batch_size)
    total = config.num_train_steps if config.num_train_steps > 0 else config.num_epochs * steps_per_epoch
    return Experiment(
        config,
        leads,
        make_mesh(),
        graphdef,
        make_optimizer(config, total),
        total,
        steps_per_epoch,
        lead_robust.sampler_from_config(config),
    )


# ----------------------------------------------------------------------------
# The loop.


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict:
    """Trains per ``config``, resuming from ``workdir`` when it holds checkpoints.

    Returns the last logged metrics, validation metrics if any ran, and
    ``best_step``/``best_val_auroc``: the checkpoint ``--checkpoint=best``
    selects (None without validation). Ctrl-C raises :class:`~leadmix_jax.loop.Interrupted`
    after the pending checkpoint is written.
    """
    workdir_path = epath.Path(workdir)
    is_chief = jax.process_index() == 0
    if is_chief:
        workdir_path.mkdir(parents=True, exist_ok=True)
        (workdir_path / "config.json").write_text(config.to_json_best_effort(indent=2))
    logging.info(
        "processes %d, devices %d (local %d), backend %s",
        jax.process_count(),
        jax.device_count(),
        jax.local_device_count(),
        jax.default_backend(),
    )

    builder = input_pipeline.load_builder(config.data_dir, config.train_dataset)
    train_size = input_pipeline.split_size(builder, config.train_split)
    exp = make_experiment(config, train_size)
    stats = norm_stats_for(workdir, builder, config, exp.leads)
    pcfg = input_pipeline.PipelineConfig(
        leads=exp.leads,
        global_batch=config.batch_size,
        seed=dispatch.data_seed(config),
        workers=config.workers,
        shuffle_window=config.shuffle_window,
        augment=input_pipeline.AugmentConfig(**config.augment),
    )
    feed = dispatch.make_feed(exp, config, builder, stats, pcfg)  # device-resident or grain

    manager = checkpointing.make_manager(workdir, config.keep_checkpoints)
    state, _, start = checkpointing.restore_newest_intact(manager, exp.abstract_state(), feed.checkpointable)
    if start is not None:
        loop.say(f"resumed from step {start}")
    else:
        state, start = exp.init_state(), 0

    val_builder = validation_builder(config)
    meta = checkpointing.model_meta(config, exp.leads, stats, lead_robust=exp.lead_masks is not None)

    def validate_at(state) -> dict:
        val = validate(exp, state.params, val_builder, config.val_split, stats, config.eval_batch_size)
        if is_chief:
            logging.info(
                "step %d  validation: loss %.4f  AUROC %.4f  Youden threshold %.4f",
                int(state.step),
                val["val_loss"],
                val["val_auroc"],
                val["val_youden"],
            )
        return val

    try:
        last = loop.run_loop(
            config,
            exp,
            feed,
            state,
            start,
            workdir,
            validate=validate_at if val_builder is not None else None,
            save=lambda step, state, val: checkpointing.save(
                manager, step, state, feed.checkpointable, meta, val
            ),
        )
    except loop.Interrupted:
        manager.wait_until_finished()
        manager.close()
        raise
    manager.wait_until_finished()
    best = checkpointing.best_step(manager)
    last["best_step"] = best
    last["best_val_auroc"] = (
        checkpointing.step_metrics(manager, best)["val_auroc"] if best is not None else None
    )
    manager.close()
    if best is not None:
        loop.say(
            f"training done at step {exp.total_steps}; best checkpoint: step {best} "
            f"(validation AUROC {last['best_val_auroc']:.4f})"
        )
    return last


def validation_builder(config: ml_collections.ConfigDict):
    """The builder of the validation dataset, None when ``config.val_split`` is empty."""
    if not config.val_split:
        return None
    return input_pipeline.load_builder(config.data_dir, config.val_dataset or config.train_dataset)


def validate(exp: Experiment, params, builder, split: str, stats, batch_size: int) -> dict:
    """``val_loss``, ``val_auroc``, ``val_youden`` of ``params`` on ``split``.

    A lead-robust model is validated on each lead set of
    ``config.lead_robust.val_sets``: ``val_auroc`` and ``val_loss`` are the
    means over the sets (what selects the best checkpoint), ``val_youden`` is
    Youden's J on all sets' windows pooled, and ``val_auroc_<set>`` each set's."""
    if exp.lead_masks is None:
        preds = exp.runner.run_split(params, builder, split, stats, batch_size, exp.config.workers)
        return inference.validation_metrics(preds)
    per_set, pooled = {}, []
    for name, subset in lead_robust.parse_eval_leads(exp.config.lead_robust.val_sets):
        runner = exp.runner.with_mask(lead_robust.lead_mask(subset))
        preds = runner.run_split(params, builder, split, stats, batch_size, exp.config.workers)
        per_set[name] = inference.validation_metrics(preds)
        pooled.append(preds)
    both = {k: np.concatenate([p[k] for p in pooled]) for k in ("label", "prob", "loss")}
    out = {
        "val_loss": float(np.mean([m["val_loss"] for m in per_set.values()])),
        "val_auroc": float(np.mean([m["val_auroc"] for m in per_set.values()])),
        "val_youden": inference.validation_metrics(both)["val_youden"],
    }
    out.update({f"val_auroc_{name}": m["val_auroc"] for name, m in per_set.items()})
    return out


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
    stats = input_pipeline.compute_norm_stats(
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
