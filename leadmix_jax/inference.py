"""The one inference path: restoring a model, the eval step, running a split.

Training validation, ``evaluate.py`` and ``predict.py`` (and export) all go
through this module:

* :func:`build_model` builds LeadMix-MST from the ``model`` settings that
  every checkpoint carries in its metadata;
* :class:`Runner` holds the model's graph, the device mesh and the jitted
  eval step (compiled once per batch shape); :meth:`Runner.run_split` runs
  every example of a split exactly once (padding masked out) and
  :meth:`Runner.probabilities` runs already z-scored windows;
* :func:`restore` reads a checkpoint for inference only (parameters and
  metadata: leads, normalisation statistics, validation metrics and
  threshold; no optimiser state, no data iterator) into a
  :class:`RestoredModel`;
* :func:`validation_metrics` is what training logs and saves per validation.

Z-scoring itself is :class:`leadmix_jax.norm_stats.ZScore`, used by the
input pipeline and :meth:`RestoredModel.predict_windows` alike.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging
from etils import epath
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from leadmix_jax import checkpointing, input_pipeline, lead_robust, metrics, norm_stats
from leadmix_jax import leads as leads_lib
from leadmix_jax.errors import UserError
from leadmix_jax.model import LeadMixMST


def build_model(model_cfg: Mapping[str, Any], num_leads: int, seed: int | jax.Array = 0):
    """LeadMix-MST for ``num_leads`` leads from a ``config.model`` mapping
    (or a checkpoint's ``meta['model']``); with ``variant='lead_robust'`` the
    lead-robust :class:`~leadmix_jax.lead_robust.LeadRobustMST` (always the 12
    canonical leads plus a presence mask; ``num_leads`` must be 12).
    ``seed``: an int or a typed key (``jax.random.key(int)`` is the same model).

    Settings the model no longer accepts (e.g. formulation options of older
    checkpoints) are ignored, so old checkpoints keep loading.
    """
    cfg = dict(model_cfg)
    cfg["dtype"] = jnp.dtype(cfg.get("dtype", "float32"))
    accepted = set(inspect.signature(LeadMixMST.__init__).parameters) - {"self", "num_leads", "rngs"}
    kwargs = {k: v for k, v in cfg.items() if k in accepted}
    if lead_robust.is_lead_robust(cfg):
        if num_leads != lead_robust.NUM_LEADS:
            raise ValueError(
                f"the lead-robust model takes all 12 leads (and a mask), got num_leads={num_leads}"
            )
        return lead_robust.LeadRobustMST(**kwargs, rngs=nnx.Rngs(seed))
    return LeadMixMST(num_leads, **kwargs, rngs=nnx.Rngs(seed))


def bce_with_logits(
    logits: jax.Array, labels: jax.Array, label_smoothing: float = 0.0, pos_weight: float = 1.0
) -> jax.Array:
    """Per-example binary cross-entropy with logits, ``(B,) -> (B,)``.

    Label smoothing maps targets to ``y (1 - s) + s / 2``; ``pos_weight``
    scales the positive term (PyTorch's ``BCEWithLogitsLoss(pos_weight=...)``).
    """
    y = labels * (1.0 - label_smoothing) + 0.5 * label_smoothing
    return pos_weight * y * jax.nn.softplus(-logits) + (1.0 - y) * jax.nn.softplus(logits)


def eval_step(params, batch: dict, *, graphdef) -> dict:
    """``ecg`` (B, T, N), ``label`` (B,) -> probabilities and per-example loss, (B,) each; no dropout.

    A lead-robust model's batch also carries ``lead_mask`` (B, 12)."""
    model = nnx.merge(graphdef, params)
    logits = model(batch["ecg"], batch["lead_mask"]) if "lead_mask" in batch else model(batch["ecg"])
    return {"prob": jax.nn.sigmoid(logits), "loss": bce_with_logits(logits, batch["label"])}


def make_mesh() -> Mesh:
    """1-D mesh over every device of every process, axis ``data``."""
    return Mesh(np.asarray(jax.devices()), ("data",))


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
        return NamedSharding(self.mesh, P("data"))


class Runner(OnMesh):
    """The model's graph on a mesh with its jitted eval step.

    Args:
      graphdef: ``nnx.split(model, nnx.Param)[0]`` of the model.
      mesh: devices to split batches over (default: all devices, axis ``data``).
      lead_mask: ``(12,)`` presence mask given to a lead-robust model with
        every batch (None for the official model). Runners that differ only
        in the mask share one compiled step (the mask is an input).
    """

    def __init__(self, graphdef, mesh: Mesh | None = None, lead_mask: np.ndarray | None = None):
        self.graphdef = graphdef
        self.mesh = mesh if mesh is not None else make_mesh()
        self.lead_mask = None if lead_mask is None else np.asarray(lead_mask, np.float32)

    def with_mask(self, lead_mask: np.ndarray) -> "Runner":
        """The same compiled step, another lead mask."""
        other = Runner(self.graphdef, self.mesh, lead_mask)
        if "step" in self.__dict__:
            other.__dict__["step"] = self.__dict__["step"]
        return other

    def _add_mask(self, batch: dict, rows: int) -> dict:
        if self.lead_mask is not None:
            batch["lead_mask"] = np.broadcast_to(self.lead_mask, (rows, self.lead_mask.shape[0])).copy()
        return batch

    @functools.cached_property
    def step(self):
        """Jitted :func:`eval_step` (compiled once per batch shape), shared by
        every runner of the same graph and mesh: evaluating many checkpoints
        of one architecture (a protocol's members) compiles it once."""
        return _jitted_eval_step(self.graphdef, self.mesh)

    def run_split(
        self, params, builder, split: str, stats: norm_stats.NormStats, batch_size: int, workers: int = 0
    ) -> dict[str, np.ndarray]:
        """Every example of ``split`` exactly once.

        Returns numpy arrays over the split's examples (padding removed),
        in the same order on every process: ``prob``, ``loss``, ``label``,
        ``index`` and the id fields ``record_id``, ``patient_id``, ``window``.
        """
        from jax.experimental import multihost_utils

        pcfg = input_pipeline.PipelineConfig(
            leads=tuple(stats.leads), global_batch=batch_size, workers=workers
        )
        chunks: dict[str, list] = {}
        for local in input_pipeline.eval_dataset(builder, split, pcfg, stats):
            local = self._add_mask(dict(local), len(local["label"]))
            keys = ("ecg", "label", "lead_mask") if self.lead_mask is not None else ("ecg", "label")
            out = self.step(params, global_batch(local, self.data_sharding, keys))
            rows = {
                **local_rows(out, batch_size),
                "label": np.asarray(local["label"]),
                "mask": np.asarray(local["mask"]),
                "index": np.asarray(local["index"]),
            }
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

    def probabilities(self, params, x: np.ndarray, batch_size: int) -> np.ndarray:
        """Probabilities ``(B,)`` of z-scored windows ``x`` ``(B, T, N)``, in
        batches of ``batch_size`` (the last one padded: one compiled shape)."""
        batch_size = max(batch_size, self.mesh.size)
        batch_size -= batch_size % self.mesh.size
        out = []
        for i in range(0, x.shape[0], batch_size):
            chunk = np.asarray(x[i : i + batch_size], np.float32)
            pad = batch_size - chunk.shape[0]
            if pad:
                chunk = np.concatenate([chunk, np.zeros((pad, *chunk.shape[1:]), np.float32)])
            batch = self._add_mask({"ecg": chunk, "label": np.zeros((batch_size,), np.float32)}, batch_size)
            prob = self.step(params, {k: jax.device_put(v, self.data_sharding) for k, v in batch.items()})
            out.append(np.asarray(prob["prob"])[: batch_size - pad])
        return np.concatenate(out) if out else np.zeros((0,), np.float32)


@functools.lru_cache(maxsize=16)
def _jitted_eval_step(graphdef, mesh: Mesh):
    fn = jax.tree_util.Partial(eval_step, graphdef=graphdef)
    return jax.jit(
        lambda p, b: fn(p, b),
        in_shardings=(NamedSharding(mesh, P()), NamedSharding(mesh, P("data"))),
        out_shardings=NamedSharding(mesh, P()),
    )


def local_rows(out: dict, batch_size: int) -> dict:
    """This process's rows of a replicated global output."""
    local = batch_size // jax.process_count()
    start = jax.process_index() * local
    return {k: np.asarray(v)[start : start + local] for k, v in out.items()}


def validation_metrics(preds: Mapping[str, np.ndarray]) -> dict[str, float]:
    """``val_loss``, ``val_auroc`` and ``val_youden`` (Youden's J threshold on
    the windows) of :meth:`Runner.run_split` output."""
    n = len(preds["loss"])
    return {
        "val_loss": float(preds["loss"].mean()) if n else float("nan"),
        "val_auroc": metrics.auroc(preds["label"], preds["prob"]),
        "val_youden": metrics.youden_threshold(preds["label"], preds["prob"]) if n else 0.5,
    }


# ----------------------------------------------------------------------------
# Restoring a checkpoint.


@dataclasses.dataclass
class RestoredModel:
    """A checkpoint ready for inference."""

    workdir: str
    step: int
    which: str  # 'best', 'latest' or the step asked for
    meta: dict  # the checkpoint's metadata
    leads: tuple[str, ...]
    stats: norm_stats.NormStats
    params: Any  # replicated on runner.mesh
    runner: Runner

    @property
    def validation(self) -> dict | None:
        """Validation metrics saved with this step (``val_auroc``, ``val_loss``,
        ``val_youden``), None for checkpoints saved without validation."""
        return self.meta.get("validation") or None

    @property
    def val_threshold(self) -> float | None:
        val = self.validation
        return float(val["val_youden"]) if val and "val_youden" in val else None

    @property
    def is_lead_robust(self) -> bool:
        """Whether this is a lead-robust checkpoint (any lead subset at inference)."""
        return lead_robust.is_lead_robust(self.meta.get("model"))

    @property
    def input_leads(self) -> tuple[str, ...]:
        """The leads the model is run on: its own, or a lead-robust model's subset."""
        if self.is_lead_robust and self.runner.lead_mask is not None:
            return lead_robust.mask_leads(self.runner.lead_mask)
        return self.leads

    def with_leads(self, subset) -> "RestoredModel":
        """A lead-robust checkpoint run on ``subset`` (a lead spec, e.g.
        ``'inferior'`` or ``'I,V2'``): inputs keep all 12 leads, the mask
        says which are present. ``ValueError`` for an official checkpoint."""
        if not self.is_lead_robust:
            raise ValueError(
                f"{self.workdir} step {self.step} is not lead-robust: it takes leads "
                f"{','.join(self.leads)} only"
            )
        return dataclasses.replace(self, runner=self.runner.with_mask(lead_robust.lead_mask(subset)))

    def run_split(self, builder, split: str, batch_size: int, workers: int = 0) -> dict:
        return self.runner.run_split(self.params, builder, split, self.stats, batch_size, workers)

    def predict_windows(self, windows: np.ndarray, batch_size: int = 16) -> np.ndarray:
        """MI probabilities ``(B,)`` of preprocessed windows ``(B, T, N)`` in
        mV, in the checkpoint's lead order (z-scored here)."""
        if windows.shape[0] == 0:
            return np.zeros((0,), np.float32)
        return self.runner.probabilities(self.params, norm_stats.ZScore(self.stats)(windows), batch_size)


_CACHE: dict[tuple, RestoredModel] = {}


def restore(
    workdir: str, checkpoint: str | int | None = "best", mesh: Mesh | None = None, cache: bool = False
) -> RestoredModel:
    """Restores ``checkpoint`` (``'best'``, ``'latest'`` or a step) of ``workdir``.

    The model is built from the checkpoint's metadata, not from a config.
    ``mesh``: devices to run on (default all). With ``cache``, restored
    models are kept in memory per workdir, step and mesh (saved steps never
    change). Errors (no checkpoint, unknown or damaged step) are
    :class:`~leadmix_jax.errors.UserError`.
    """
    which = str(checkpoint) if checkpoint not in (None, "") else "best"
    path = epath.Path(workdir)
    if not (path / "checkpoints").exists():
        raise UserError(
            f"no checkpoints in {path.absolute()} (expected {path.absolute() / 'checkpoints'}): "
            "train first or pass the training --workdir"
        )
    manager = checkpointing.make_manager(workdir, keep=1, read_only=True)
    try:
        step = checkpointing.select_step(manager, which)
        key = (str(path.absolute()), int(step), id(mesh))
        if cache and key in _CACHE:
            return _CACHE[key]
        meta = checkpointing.read_meta(manager, step)
        leads = leads_lib.parse_leads(list(meta["leads"]))
        stats = norm_stats.NormStats.from_json(meta["norm_stats"])
        norm_stats.check_leads(stats, leads, f"{workdir} step {step}")
        graphdef, _ = nnx.split(nnx.eval_shape(lambda: build_model(meta["model"], len(leads))), nnx.Param)
        shapes = jax.eval_shape(lambda: nnx.state(build_model(meta["model"], len(leads)), nnx.Param))
        # a lead-robust model runs on all 12 leads until a subset is chosen (with_leads)
        runner = Runner(
            graphdef,
            mesh,
            lead_robust.lead_mask(leads) if lead_robust.is_lead_robust(meta["model"]) else None,
        )
        abstract = checkpointing.replicated_abstract(shapes, runner.replicated)
        params, meta = checkpointing.restore_for_inference(manager, step, abstract)
    finally:
        manager.close()
    logging.info("restored %s checkpoint step %d of %s (leads %s)", which, step, workdir, ",".join(leads))
    restored = RestoredModel(str(workdir), int(step), which, meta, leads, stats, params, runner)
    if cache:
        _CACHE[key] = restored
    return restored
