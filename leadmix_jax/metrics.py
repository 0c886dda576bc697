"""Evaluation metrics for binary MI detection (pure NumPy + scikit-learn).

Conventions used throughout this module:

* ``labels``: shape ``(n,)``, values in {0, 1} (1 = MI); bool, int and
  float 0./1. are accepted, anything else raises ``ValueError``.
* ``probs``: shape ``(n,)``, finite probabilities of MI in [0, 1] (the sigmoid
  of the model's logit). Logits or NaNs raise ``ValueError``: they are bugs
  upstream and must not be turned into numbers here. Shape ``(n, 1)`` (one
  logit per example) is accepted and flattened.
* Decision rule: ``pred = probs > threshold``, as in the reference
  (probability > 0.5). :func:`youden_threshold` returns thresholds meant for
  this rule.
* Undefined metrics are ``float('nan')``, never an exception: AUROC, AUPRC
  and the macro averages need both classes in ``labels``; sensitivity needs a
  positive, specificity a negative, precision a predicted positive.
* Levels: ``window`` (one row per 10 s window), ``record`` and ``patient``
  (mean window probability over the record / patient; the group keeps its
  label, which must be the same for all its windows).

Levels with patient-bootstrap confidence intervals are in
:mod:`leadmix_jax.evaluate.level_metrics`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn import metrics as skm

__all__ = [
    "MAIN_METRICS",
    "LEVELS",
    "binary_metrics",
    "youden_threshold",
    "aggregate",
    "auroc",
]

#: Metrics that get bootstrap confidence intervals in :func:`leadmix_jax.evaluate.level_metrics.evaluate_levels`.
MAIN_METRICS = ("accuracy", "sensitivity", "specificity", "macro_f1", "auroc", "auprc", "brier")
#: Threshold-free metrics among :data:`MAIN_METRICS`.
_THRESHOLD_FREE = ("auroc", "auprc", "brier")
#: Evaluation levels, in reporting order.
LEVELS = ("window", "record", "patient")

_NAN = float("nan")


# --------------------------------------------------------------------------
# Input checks and count-based helpers
# --------------------------------------------------------------------------


def _as_1d(x: Any, name: str) -> np.ndarray:
    arr = np.asarray(x)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise ValueError(f"{name} must have shape (n,) or (n, 1), got {arr.shape}")
    return arr


def _check_binary(labels: Any, probs: Any) -> tuple[np.ndarray, np.ndarray]:
    """Validated copies: labels int64 (n,) in {0,1}, probs float64 (n,) in [0,1]."""
    labels = _as_1d(labels, "labels")
    probs = _as_1d(probs, "probs")
    if labels.shape != probs.shape:
        raise ValueError(f"labels {labels.shape} and probs {probs.shape} differ in length")
    if labels.size == 0:
        raise ValueError("empty labels/probs")
    if labels.dtype.kind not in "biuf" or not np.isin(labels, (0, 1)).all():
        raise ValueError(f"labels must be 0/1, got values {np.unique(labels)[:10]}")
    if probs.dtype.kind not in "biuf":
        raise ValueError(f"probs must be numeric, got dtype {probs.dtype}")
    probs = probs.astype(np.float64)
    if not np.isfinite(probs).all():
        raise ValueError(f"probs contain {int((~np.isfinite(probs)).sum())} NaN/inf values")
    if probs.min() < 0.0 or probs.max() > 1.0:
        raise ValueError(
            f"probs must lie in [0, 1] (got [{probs.min():.4g}, {probs.max():.4g}]); "
            "pass sigmoid(logits), not logits"
        )
    return labels.astype(np.int64), probs


def _check_threshold(threshold: Any, name: str = "threshold") -> float:
    t = float(threshold)
    if not (0.0 <= t <= 1.0):
        raise ValueError(f"{name} must be a finite number in [0, 1], got {threshold!r}")
    return t


def _div(a: float, b: float) -> float:
    return float(a) / float(b) if b > 0 else _NAN


def _counts(labels: np.ndarray, probs: np.ndarray, threshold: float) -> tuple[int, int, int, int]:
    """(tn, fp, fn, tp) for the rule ``probs > threshold``."""
    preds = (probs > threshold).astype(np.int64)
    tn, fp, fn, tp = np.bincount(2 * labels + preds, minlength=4)
    return int(tn), int(fp), int(fn), int(tp)


def _count_metrics(tn: int, fp: int, fn: int, tp: int) -> dict[str, float]:
    """Threshold-dependent metrics from the confusion counts.

    The macro averages follow scikit-learn with ``labels=[0, 1]`` and
    ``zero_division=0`` (a class that is never predicted has precision 0,
    sklearn's default value, which the reference's metrics used), but are NaN
    when either class is absent from the labels.
    """
    n = tn + fp + fn + tp
    both = (tp + fn) > 0 and (tn + fp) > 0
    sens = _div(tp, tp + fn)
    spec = _div(tn, tn + fp)
    if both:
        prec1 = tp / (tp + fp) if tp + fp else 0.0
        prec0 = tn / (tn + fn) if tn + fn else 0.0
        f1_1 = 2 * tp / (2 * tp + fp + fn)
        f1_0 = 2 * tn / (2 * tn + fn + fp)
        macro_precision = (prec0 + prec1) / 2
        macro_recall = (sens + spec) / 2
        macro_f1 = (f1_0 + f1_1) / 2
    else:
        macro_precision = macro_recall = macro_f1 = _NAN
    return {
        "accuracy": _div(tp + tn, n),
        "sensitivity": sens,
        "specificity": spec,
        "precision": _div(tp, tp + fp),
        "macro_f1": float(macro_f1),
        "macro_precision": float(macro_precision),
        "macro_recall": float(macro_recall),
    }


def _auroc(labels: np.ndarray, probs: np.ndarray) -> float:
    if labels.min() == labels.max():
        return _NAN
    return float(skm.roc_auc_score(labels, probs))


def auroc(labels: Any, probs: Any) -> float:
    """Area under the ROC curve of ``(n,)`` labels and probabilities; NaN
    when only one class (or nothing) is present. Training validation and
    evaluation both use this one."""
    labels = np.asarray(labels, np.float64).reshape(-1)
    if labels.size == 0:
        return _NAN
    labels, probs = _check_binary(labels, probs)
    return _auroc(labels, probs)


def _auprc(labels: np.ndarray, probs: np.ndarray) -> float:
    if labels.min() == labels.max():
        return _NAN
    return float(skm.average_precision_score(labels, probs, pos_label=1))


def _brier(labels: np.ndarray, probs: np.ndarray) -> float:
    return float(np.mean((probs - labels) ** 2))


# --------------------------------------------------------------------------
# Point metrics
# --------------------------------------------------------------------------


def binary_metrics(labels: Any, probs: Any, threshold: float = 0.5) -> dict[str, Any]:
    """Binary classification metrics at one decision threshold.

    Args:
      labels: ``(n,)`` 0/1 ground truth (1 = MI).
      probs: ``(n,)`` predicted MI probabilities in [0, 1].
      threshold: a window/record/patient is predicted MI iff
        ``prob > threshold``.

    Returns:
      A JSON-serialisable dict of Python scalars:
      ``accuracy``; ``sensitivity`` (recall of MI, NaN without positives);
      ``specificity`` (recall of non-MI, NaN without negatives);
      ``precision`` (of MI, NaN when nothing is predicted MI);
      ``macro_f1``, ``macro_precision``, ``macro_recall`` (scikit-learn,
      ``average='macro'``, ``labels=[0, 1]``, ``zero_division=0``; NaN when a
      class is absent from ``labels``); ``auroc`` (``roc_auc_score``) and
      ``auprc`` (``average_precision_score``), NaN with one class only;
      ``brier`` (``brier_score_loss``); ``confusion_matrix``
      ``[[tn, fp], [fn, tp]]``; ``n``; ``n_pos``; ``threshold``.
    """
    labels, probs = _check_binary(labels, probs)
    threshold = _check_threshold(threshold)
    tn, fp, fn, tp = _counts(labels, probs, threshold)
    out: dict[str, Any] = _count_metrics(tn, fp, fn, tp)
    if (tp + fn) > 0 and (tn + fp) > 0:
        preds = (probs > threshold).astype(np.int64)
        kw = dict(labels=[0, 1], average="macro", zero_division=0.0)
        out["macro_f1"] = float(skm.f1_score(labels, preds, **kw))
        out["macro_precision"] = float(skm.precision_score(labels, preds, **kw))
        out["macro_recall"] = float(skm.recall_score(labels, preds, **kw))
    out["auroc"] = _auroc(labels, probs)
    out["auprc"] = _auprc(labels, probs)
    out["brier"] = float(skm.brier_score_loss(labels, probs, pos_label=1))
    out["confusion_matrix"] = [[tn, fp], [fn, tp]]
    out["n"] = int(labels.size)
    out["n_pos"] = int(tp + fn)
    out["threshold"] = threshold
    return out


def youden_threshold(labels: Any, probs: Any) -> float:
    """Threshold maximising Youden's J = sensitivity + specificity - 1.

    The ROC operating points come from ``sklearn.metrics.roc_curve``
    (``drop_intermediate=False``); its first threshold (``inf``: nothing
    predicted positive) is clipped to 1.0. Among equal J the highest threshold
    (first ROC point) wins.

    roc_curve predicts positive for ``prob >= t_i``; :func:`binary_metrics`
    uses ``prob > t``. The returned value is therefore the midpoint between
    the chosen ROC threshold and the next lower distinct score, so that
    ``binary_metrics(labels, probs, youden_threshold(labels, probs))``
    reproduces exactly the operating point of maximal J on these data.

    Args:
      labels: ``(n,)`` 0/1 ground truth.
      probs: ``(n,)`` predicted probabilities in [0, 1].

    Returns:
      The threshold, a float in [0, 1]. When J is undefined (only one class in
      ``labels``) it falls back to 0.5, the reference's threshold.
    """
    labels, probs = _check_binary(labels, probs)
    if labels.min() == labels.max():
        return 0.5
    fpr, tpr, thr = skm.roc_curve(labels, probs, drop_intermediate=False)
    thr = np.minimum(thr, 1.0)
    i = int(np.argmax(tpr - fpr))
    hi = float(thr[i])
    if i + 1 < thr.size:
        lo = float(thr[i + 1])
        t = lo + (hi - lo) / 2
        if t >= hi:  # hi and lo adjacent floats: anything in [lo, hi) works
            t = lo
    else:  # every score predicted positive
        t = float(np.nextafter(hi, -np.inf))
    return float(min(max(t, 0.0), 1.0))


# --------------------------------------------------------------------------
# Aggregation
# --------------------------------------------------------------------------


def aggregate(
    probs: Any, labels: Any, groups: Any, on_mixed: str = "raise"
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean window probability and label per group (record or patient).

    Args:
      probs: ``(n,)`` window probabilities in [0, 1].
      labels: ``(n,)`` 0/1 window labels.
      groups: ``(n,)`` group id per window (str or int), e.g. record or
        patient ids.
      on_mixed: what to do with a group whose windows carry both labels:
        ``'raise'`` (default, ``ValueError``: a mislabelled group must not
        pass silently) or ``'drop'`` (leave such groups out; for datasets
        such as PTB-XL where one patient can have an MI and a non-MI record).

    Returns:
      ``(group_ids (g,), group_probs (g,) float64, group_labels (g,) int64)``,
      groups in ``np.unique`` (sorted) order, hence deterministic.
    """
    if on_mixed not in ("raise", "drop"):
        raise ValueError(f"on_mixed must be 'raise' or 'drop', got {on_mixed!r}")
    labels, probs = _check_binary(labels, probs)
    groups = _as_1d(groups, "groups")
    if groups.shape != labels.shape:
        raise ValueError(f"groups {groups.shape} and labels {labels.shape} differ in length")
    ids, inv = np.unique(groups, return_inverse=True)
    inv = inv.reshape(-1)
    counts = np.bincount(inv, minlength=ids.size)
    prob_sum = np.bincount(inv, weights=probs, minlength=ids.size)
    pos = np.bincount(inv, weights=labels, minlength=ids.size)
    mixed = (pos > 0) & (pos < counts)
    keep = np.ones(ids.size, dtype=bool)
    if mixed.any():
        if on_mixed == "raise":
            bad = ids[mixed]
            raise ValueError(
                f"{bad.size} group(s) have windows with both labels, e.g. "
                f"{bad[:5].tolist()}; use on_mixed='drop' to leave them out"
            )
        keep = ~mixed
    return (ids[keep], (prob_sum / counts)[keep], (pos == counts)[keep].astype(np.int64))
