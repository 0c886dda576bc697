"""A trained checkpoint restored for inference: parameters, leads, statistics, thresholds.

Evaluation, prediction and export all start from :func:`restore`: the model is
rebuilt from the checkpoint's metadata (its ``model`` settings, leads and
normalisation statistics), not from an experiment config, and only the
parameters are read (no optimiser state, no data iterator).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
from absl import logging
from etils import epath
from jax.sharding import Mesh

from leadmix_jax import checkpointing
from leadmix_jax.data import leads as leads_lib
from leadmix_jax.errors import UserError
from leadmix_jax.input import norm_stats, pipeline
from leadmix_jax.model import lead_robust, variants
from leadmix_jax.model.inference import Runner


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
    def temperature(self) -> float | None:
        """The calibration temperature fitted for this step by ``--mode=eval``
        (:mod:`leadmix_jax.evaluate.calibration`), None if not fitted (or lead-robust)."""
        if self.is_lead_robust:
            return None
        from leadmix_jax.evaluate import calibration

        fitted = calibration.load(self.workdir, self.step)
        return float(fitted["temperature"]) if fitted else None

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
        """:meth:`~leadmix_jax.model.inference.Runner.run_batches` over every example of ``split``."""
        batches = pipeline.eval_batches(builder, split, self.stats, batch_size, workers)
        return self.runner.run_batches(self.params, batches, batch_size)

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
        return _restore_step(manager, workdir, which, mesh, cache)
    finally:
        manager.close()


def _restore_step(manager, workdir: str, which: str, mesh, cache: bool, passed=()) -> RestoredModel:
    """``which`` of ``manager``; for ``best`` and ``latest`` a damaged step is
    passed over (with a warning) for the next one."""
    step = checkpointing.select_step(manager, which, exclude=passed)
    key = (str(epath.Path(workdir).absolute()), int(step), id(mesh))
    if cache and key in _CACHE:
        return _CACHE[key]
    try:
        restored = _read_step(manager, workdir, step, which, mesh)
    except checkpointing.DamagedCheckpoint as e:
        if which not in ("best", "latest"):
            raise
        logging.warning("%s; trying the next %s step", e, which)
        print(f"warning: {e}; using the next {which} step", flush=True)
        return _restore_step(manager, workdir, which, mesh, cache, (*passed, step))
    if cache:
        _CACHE[key] = restored
    return restored


def _read_step(manager, workdir: str, step: int, which: str, mesh) -> RestoredModel:
    """Parameters and metadata of ``step`` onto ``mesh``."""
    meta = checkpointing.read_meta(manager, step)
    leads = leads_lib.parse_leads(list(meta["leads"]))
    stats = norm_stats.NormStats.from_json(meta["norm_stats"])
    norm_stats.check_leads(stats, leads, f"{workdir} step {step}")
    graphdef, shapes = variants.graph_and_shapes(meta["model"], len(leads))
    # a lead-robust model runs on all 12 leads until a subset is chosen (with_leads)
    mask = lead_robust.lead_mask(leads) if lead_robust.is_lead_robust(meta["model"]) else None
    runner = Runner(graphdef, mesh, mask)
    abstract = checkpointing.replicated_abstract(shapes, runner.replicated)
    params, meta = checkpointing.restore_for_inference(manager, step, abstract)
    logging.info("restored %s checkpoint step %d of %s (leads %s)", which, step, workdir, ",".join(leads))
    return RestoredModel(str(workdir), int(step), which, meta, leads, stats, params, runner)
