"""Validation during training: the metrics that select the best checkpoint.

Every validation runs the model over the whole validation split through the
one inference path (:class:`~leadmix_jax.model.inference.Runner`) and gives
``val_loss``, ``val_auroc`` (what selects the best step) and ``val_youden``
(the decision threshold prediction uses), as saved with each checkpoint.
"""

from __future__ import annotations

from collections.abc import Mapping

import ml_collections
import numpy as np
from absl import logging

from leadmix_jax import metrics
from leadmix_jax.data import leads as leads_lib
from leadmix_jax.input import built, pipeline
from leadmix_jax.model import lead_robust


def validation_builder(config: ml_collections.ConfigDict):
    """The builder of the validation dataset, None when ``config.val_split`` is empty."""
    if not config.val_split:
        return None
    return built.load_builder(config.data_dir, config.val_dataset or config.train_dataset)


def validation_metrics(preds: Mapping[str, np.ndarray]) -> dict[str, float]:
    """``val_loss``, ``val_auroc`` and ``val_youden`` (Youden's J threshold on
    the windows) of :meth:`~leadmix_jax.model.inference.Runner.run_batches` output.

    Windows whose probability is not finite are unusable: left out of every
    metric and counted in ``val_nonfinite`` (present only when there are any)."""
    finite = np.isfinite(preds["prob"])
    label, prob, loss = preds["label"][finite], preds["prob"][finite], preds["loss"][finite]
    n = len(loss)
    out = {
        "val_loss": float(loss.mean()) if n else float("nan"),
        "val_auroc": metrics.auroc(label, prob) if n else float("nan"),
        "val_youden": metrics.youden_threshold(label, prob) if n else 0.5,
    }
    if not finite.all():
        out["val_nonfinite"] = float((~finite).sum())
        logging.warning(
            "validation: %d window(s) with a non-finite model output left out", int(out["val_nonfinite"])
        )
    return out


def _predict(runner, params, builder, split: str, stats, config) -> dict[str, np.ndarray]:
    batches = pipeline.eval_batches(
        builder, split, stats, config.eval_batch_size, config.get("eval_workers", 0)
    )
    return runner.run_batches(params, batches, config.eval_batch_size)


def validate(exp, params, builder, split: str, stats) -> dict:
    """``val_loss``, ``val_auroc``, ``val_youden`` of ``params`` on ``split``.

    A lead-robust model is validated on each lead set of
    ``config.lead_robust.val_sets``: ``val_auroc`` and ``val_loss`` are the
    means over the sets (what selects the best checkpoint), ``val_youden`` is
    Youden's J on all sets' windows pooled, and ``val_auroc_<set>`` each set's.

    Args:
      exp: the run's :class:`~leadmix_jax.train.experiment.Experiment`.
      params: the model's parameters on ``exp.mesh``.
      builder: the validation dataset (:func:`validation_builder`).
      split: its split.
      stats: the normalisation statistics of the model's leads.
    """
    if exp.lead_masks is None:
        return validation_metrics(_predict(exp.runner, params, builder, split, stats, exp.config))
    per_set, pooled = {}, []
    for name, subset in leads_lib.parse_lead_sets(exp.config.lead_robust.val_sets):
        runner = exp.runner.with_mask(lead_robust.lead_mask(subset))
        preds = _predict(runner, params, builder, split, stats, exp.config)
        per_set[name] = validation_metrics(preds)
        pooled.append(preds)
    both = {k: np.concatenate([p[k] for p in pooled]) for k in ("label", "prob", "loss")}
    out = {
        "val_loss": float(np.mean([m["val_loss"] for m in per_set.values()])),
        "val_auroc": float(np.mean([m["val_auroc"] for m in per_set.values()])),
        "val_youden": validation_metrics(both)["val_youden"],
    }
    out.update({f"val_auroc_{name}": m["val_auroc"] for name, m in per_set.items()})
    return out
