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
import time
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from absl import logging
from etils import epath
from flax import nnx, struct
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from leadmix_jax import checkpointing, input_pipeline, metric_writers
from leadmix_jax import leads as leads_lib
from leadmix_jax.model import LeadMixMST


class NonFiniteLossError(FloatingPointError):
    """Raised when the training loss becomes NaN or infinite."""


@struct.dataclass
class TrainState:
    step: jax.Array
    params: Any
    opt_state: Any
    rng: jax.Array  # raw uint32 key: dropout key of step s = fold_in(rng, s)


# ----------------------------------------------------------------------------
# Model, optimiser, loss.

def build_model(config: ml_collections.ConfigDict, num_leads: int, seed: int = 0) -> LeadMixMST:
    m = config.model
    return LeadMixMST(num_leads, base=m.base, depth=m.depth, heads=m.heads, dropout=m.dropout,
                      dtype=jnp.dtype(m.dtype), rngs=nnx.Rngs(seed))


def make_optimizer(config: ml_collections.ConfigDict, total_steps: int) -> optax.GradientTransformation:
    o = config.optimizer
    if o.schedule == "constant":
        lr = optax.constant_schedule(o.learning_rate)
    elif o.schedule == "cosine":
        lr = optax.warmup_cosine_decay_schedule(0.0, o.learning_rate, max(o.warmup_steps, 1),
                                                max(total_steps, o.warmup_steps + 1))
    else:
        raise ValueError(f"unknown schedule {o.schedule!r}: use 'constant' or 'cosine'")
    tx = optax.adamw(lr, b1=o.b1, b2=o.b2, eps=o.eps, weight_decay=o.weight_decay)
    if o.grad_clip_norm > 0:
        tx = optax.chain(optax.clip_by_global_norm(o.grad_clip_norm), tx)
    return tx


def bce_with_logits(logits: jax.Array, labels: jax.Array, label_smoothing: float = 0.0,
                    pos_weight: float = 1.0) -> jax.Array:
    """Per-example binary cross-entropy with logits, ``(B,) -> (B,)``.

    Label smoothing maps targets to ``y (1 - s) + s / 2``; ``pos_weight``
    scales the positive term (PyTorch's ``BCEWithLogitsLoss(pos_weight=...)``).
    """
    y = labels * (1.0 - label_smoothing) + 0.5 * label_smoothing
    return pos_weight * y * jax.nn.softplus(-logits) + (1.0 - y) * jax.nn.softplus(logits)


# ----------------------------------------------------------------------------
# Steps (pure; compiled once).

def train_step(state: TrainState, batch: dict, *, graphdef, tx, label_smoothing: float,
               pos_weight: float) -> tuple[TrainState, dict]:
    """One optimiser step on a global batch ``ecg`` (B, T, N), ``label`` (B,)."""
    key = jax.random.fold_in(state.rng, state.step)

    def loss_fn(params):
        logits = nnx.merge(graphdef, params)(batch["ecg"], rng=key)
        return bce_with_logits(logits, batch["label"], label_smoothing, pos_weight).mean()

    loss, grads = jax.value_and_grad(loss_fn)(state.params)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    new_state = state.replace(step=state.step + 1, params=params, opt_state=opt_state)
    return new_state, {"loss": loss, "grad_norm": optax.tree.norm(grads)}


def eval_step(params, batch: dict, *, graphdef) -> dict:
    """Probabilities and per-example loss, ``(B,)`` each, no dropout."""
    logits = nnx.merge(graphdef, params)(batch["ecg"])
    return {"prob": jax.nn.sigmoid(logits), "loss": bce_with_logits(logits, batch["label"])}


# ----------------------------------------------------------------------------
# Mesh and batches.

def make_mesh() -> Mesh:
    """1-D mesh over every device of every process, axis ``data``."""
    return Mesh(np.asarray(jax.devices()), ("data",))


def global_batch(local: dict, sharding: NamedSharding, keys=("ecg", "label")) -> dict:
    """Process-local numpy batch -> global jax arrays sharded on ``data``."""
    return {k: jax.make_array_from_process_local_data(sharding, np.asarray(local[k])) for k in keys}


def check_batch_divides(global_batch_size: int) -> None:
    if global_batch_size % jax.device_count():
        raise ValueError(f"batch_size {global_batch_size} must be divisible by the {jax.device_count()} "
                         "devices of the data-parallel mesh")


@dataclasses.dataclass
class Experiment:
    """Everything the loop and evaluation need, built once from a config."""

    config: ml_collections.ConfigDict
    leads: tuple[str, ...]
    mesh: Mesh
    graphdef: Any
    tx: optax.GradientTransformation
    total_steps: int
    steps_per_epoch: int

    @property
    def replicated(self) -> NamedSharding:
        return NamedSharding(self.mesh, P())

    @property
    def data_sharding(self) -> NamedSharding:
        return NamedSharding(self.mesh, P("data"))

    def init_state(self) -> TrainState:
        """Fresh state, replicated on the mesh (same on every process: seeded)."""
        cfg = self.config

        def init():
            model = build_model(cfg, len(self.leads), cfg.seed)
            params = nnx.state(model, nnx.Param)
            return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                              opt_state=self.tx.init(params),
                              rng=jax.random.PRNGKey(cfg.seed + 1))

        return jax.jit(init, out_shardings=self.replicated)()

    def abstract_state(self) -> TrainState:
        shapes = jax.eval_shape(lambda: self.init_state())
        return checkpointing.replicated_abstract(shapes, self.replicated)

    def compiled_train_step(self):
        step = jax.tree_util.Partial(train_step, graphdef=self.graphdef, tx=self.tx,
                                     label_smoothing=self.config.loss.label_smoothing,
                                     pos_weight=self.config.loss.pos_weight)
        return jax.jit(lambda s, b: step(s, b),
                       in_shardings=(self.replicated, self.data_sharding),
                       out_shardings=(self.replicated, self.replicated), donate_argnums=(0,))

    @functools.cached_property
    def _eval_step(self):
        step = jax.tree_util.Partial(eval_step, graphdef=self.graphdef)
        return jax.jit(lambda p, b: step(p, b), in_shardings=(self.replicated, self.data_sharding),
                       out_shardings=self.replicated)

    def compiled_eval_step(self):
        """The jitted eval step, built once per experiment (compiled once per shape)."""
        return self._eval_step


def make_experiment(config: ml_collections.ConfigDict, train_size: int | None = None) -> Experiment:
    leads = leads_lib.parse_leads(config.leads)
    check_batch_divides(config.batch_size)
    model = nnx.eval_shape(lambda: build_model(config, len(leads)))
    graphdef, _ = nnx.split(model, nnx.Param)
    steps_per_epoch = max(1, (train_size or config.batch_size) // config.batch_size)
    total = config.num_train_steps if config.num_train_steps > 0 else config.num_epochs * steps_per_epoch
    return Experiment(config, leads, make_mesh(), graphdef, make_optimizer(config, total), total,
                      steps_per_epoch)


# ----------------------------------------------------------------------------
# Evaluation over a split (used for validation here and by evaluate.py).

def predict_split(exp: Experiment, params, builder, split: str, stats, batch_size: int) -> dict:
    """Runs the model over every example of ``split`` exactly once.

    Returns numpy arrays over the split's examples (padding removed), in the
    same order on every process: ``prob``, ``loss``, ``label``, ``index`` and
    the id fields ``record_id``, ``patient_id``, ``window``.
    """
    from jax.experimental import multihost_utils

    pcfg = input_pipeline.PipelineConfig(leads=exp.leads, global_batch=batch_size,
                                         workers=exp.config.workers)
    step = exp.compiled_eval_step()
    chunks: dict[str, list] = {}
    for local in input_pipeline.eval_dataset(builder, split, pcfg, stats):
        out = step(params, global_batch(local, exp.data_sharding))
        local_rows = _local_rows(out, batch_size)
        rows = {"prob": local_rows["prob"], "loss": local_rows["loss"],
                "label": np.asarray(local["label"]), "mask": np.asarray(local["mask"]),
                "index": np.asarray(local["index"])}
        for k in input_pipeline.ID_FIELDS:
            rows[k] = np.asarray(local[k])
        for k, v in rows.items():
            chunks.setdefault(k, []).append(v)
    local_all = {k: np.concatenate(v) for k, v in chunks.items()}
    if jax.process_count() > 1:
        numeric = {k: v for k, v in local_all.items() if v.dtype.kind in "fiub"}
        gathered = multihost_utils.process_allgather(numeric)
        local_all = {k: np.asarray(v).reshape(-1) for k, v in gathered.items()}
        # String ids stay per process; multi-host callers look them up by index.
    keep = local_all["mask"] > 0
    return {k: v[keep] for k, v in local_all.items() if k != "mask"}


def _local_rows(out: dict, batch_size: int) -> dict:
    """This process's rows of a replicated global output."""
    local = batch_size // jax.process_count()
    start = jax.process_index() * local
    return {k: np.asarray(v)[start:start + local] for k, v in out.items()}


def auroc(labels: np.ndarray, probs: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score
    if len(np.unique(labels)) < 2:
        return float("nan")
    return float(roc_auc_score(labels, probs))


# ----------------------------------------------------------------------------
# The loop.

def _meta(exp: Experiment, stats) -> dict:
    return {"leads": list(exp.leads), "norm_stats": stats.to_json(),
            "model": exp.config.model.to_dict(), "train_dataset": exp.config.train_dataset}


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict:
    """Trains per ``config``, resuming from ``workdir`` when it holds checkpoints.

    Returns the last logged metrics (and validation metrics if any ran).
    """
    workdir_path = epath.Path(workdir)
    is_chief = jax.process_index() == 0
    if is_chief:
        workdir_path.mkdir(parents=True, exist_ok=True)
        (workdir_path / "config.json").write_text(config.to_json_best_effort(indent=2))
    logging.info("processes %d, devices %d (local %d), backend %s", jax.process_count(),
                 jax.device_count(), jax.local_device_count(), jax.default_backend())

    builder = input_pipeline.load_builder(config.data_dir, config.train_dataset)
    train_size = input_pipeline.split_size(builder, config.train_split)
    exp = make_experiment(config, train_size)
    stats = input_pipeline.load_or_compute_norm_stats(
        workdir, builder, config.train_split, exp.leads, config.norm_max_examples,
        config.train_dataset) if is_chief else None
    stats = _broadcast_stats(workdir, stats, exp.leads)
    pcfg = input_pipeline.PipelineConfig(
        leads=exp.leads, global_batch=config.batch_size, seed=config.seed, workers=config.workers,
        shuffle_window=config.shuffle_window, augment=input_pipeline.AugmentConfig(**config.augment))
    train_iter = iter(input_pipeline.train_dataset(builder, config.train_split, pcfg, stats))

    manager = checkpointing.make_manager(workdir, config.keep_checkpoints)
    start = manager.latest_step()
    if start is not None:
        state, _ = checkpointing.restore_train(manager, start, exp.abstract_state(), train_iter)
        logging.info("resumed from step %d", start)
    else:
        state, start = exp.init_state(), 0

    val_builder = input_pipeline.load_builder(config.data_dir, config.val_dataset or config.train_dataset) \
        if config.val_split else None
    writer = metric_writers.MetricWriter(workdir, enabled=is_chief)
    progress = metric_writers.Progress(exp.total_steps, config.batch_size, start)
    step_fn = exp.compiled_train_step()
    eval_every = config.eval_every_steps if config.eval_every_steps > 0 else exp.steps_per_epoch
    ckpt_every = config.checkpoint_every_steps if config.checkpoint_every_steps > 0 else exp.steps_per_epoch
    meta = _meta(exp, stats)
    last: dict = {}
    pending = None  # previous step's metrics, checked one step late to keep the device busy
    t_data = 0.0
    for step in range(start + 1, exp.total_steps + 1):
        t0 = time.perf_counter()
        local = next(train_iter)
        t_data += time.perf_counter() - t0
        state, metrics = step_fn(state, global_batch(local, exp.data_sharding))
        if pending is not None:
            _check_finite(*pending)
        pending = (step, metrics)
        if step % config.log_every_steps == 0 or step == exp.total_steps:
            _check_finite(*pending)
            last = {k: float(v) for k, v in metrics.items()}
            last["samples_per_s"] = progress.rate(step)
            last["data_wait_s"] = t_data
            writer.write(step, last)
            if is_chief:
                logging.info(progress.line(step, last["loss"]))
            t_data = 0.0
        val = None
        if val_builder is not None and (step % eval_every == 0 or step == exp.total_steps):
            val = validate(exp, state.params, val_builder, config.val_split, stats, config.eval_batch_size)
            writer.write(step, val)
            if is_chief:
                logging.info("step %d  validation: loss %.4f  AUROC %.4f", step, val["val_loss"], val["val_auroc"])
            last.update(val)
            progress.reset(step)
        if step % ckpt_every == 0 or step == exp.total_steps:
            checkpointing.save(manager, step, state, train_iter, meta, val)
    if pending is not None:
        _check_finite(*pending)
    manager.wait_until_finished()
    manager.close()
    writer.close()
    return last


def validate(exp: Experiment, params, builder, split: str, stats, batch_size: int) -> dict:
    preds = predict_split(exp, params, builder, split, stats, batch_size)
    return {"val_loss": float(preds["loss"].mean()) if len(preds["loss"]) else float("nan"),
            "val_auroc": auroc(preds["label"], preds["prob"])}


def _check_finite(step: int, metrics: dict) -> None:
    loss = float(metrics["loss"])
    if not np.isfinite(loss):
        raise NonFiniteLossError(
            f"training loss became {loss} at step {step}: check the input data for NaN/Inf or "
            "lower the learning rate; the last saved checkpoint is intact")


def _broadcast_stats(workdir: str, stats, leads):
    """Every process uses the statistics process 0 computed and wrote."""
    if jax.process_count() == 1:
        return stats
    from jax.experimental import multihost_utils
    multihost_utils.sync_global_devices("norm_stats_written")
    path = epath.Path(workdir) / "norm_stats.json"
    return input_pipeline.NormStats.from_json(json.loads(path.read_text()))
