"""The patient bootstrap of the main metrics, many resamples at a time.

:func:`~leadmix_jax.evaluate.level_metrics.bootstrap_ci` evaluates metric
functions on materialised resamples: every resample repeats the rows of the
patients drawn, and AUROC and AUPRC (scikit-learn) validate and sort them
again. At the databases' real size (15 k windows a target, 1000 resamples,
3 levels, 3 targets, 21 models) that dominated the evaluation (the profile
is in ``bench/results/full-scale-2026-12-07.md``).

Here a resample is a weight per row: how many times its patient was drawn.
With the rows sorted once by probability, each metric of
:data:`~leadmix_jax.metrics.MAIN_METRICS` is a weighted sum over the groups of
equal probability, computed for a block of resamples at once with NumPy:

* AUROC: the Mann-Whitney statistic, ties counted one half (scikit-learn's
  trapezoidal ROC area);
* AUPRC: average precision, ``sum (R_k - R_{k-1}) P_k`` over the distinct
  thresholds from the highest down (scikit-learn's ``average_precision_score``);
* the threshold metrics from the weighted confusion counts of
  ``prob > threshold`` (a suffix of the sorted rows); Brier from the weighted
  squared errors.

The patient draws are :func:`bootstrap_ci`'s (the same generator calls, in
the same order), so the intervals are the same up to floating-point
summation order (``tests/evaluate/test_resampling.py``).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

_NAN = float("nan")


def resampled_main_metrics(
    labels: np.ndarray,
    probs: np.ndarray,
    patients: np.ndarray,
    thresholds: Mapping[str, float],
    n_boot: int,
    seed: int = 0,
    block: int = 64,
) -> dict[tuple[str | None, str], np.ndarray]:
    """The main metrics of ``n_boot`` patient-bootstrap resamples.

    Args:
      labels: ``(n,)`` int 0/1; probs: ``(n,)`` float in [0, 1];
      patients: ``(n,)`` patient of each row (the resampling unit).
      thresholds: name -> threshold of the rule ``prob > threshold``.
      n_boot: resamples; seed: of ``np.random.default_rng``.
      block: resamples computed together (memory: ``block x n`` floats, a few times).

    Returns:
      ``{(threshold name, metric): (n_boot,)}`` for accuracy, sensitivity,
      specificity and macro_f1 at each threshold, and ``{(None, metric)}``
      for auroc, auprc and brier; NaN where a resample leaves the metric
      undefined (one class only).
    """
    probs = np.asarray(probs, np.float64)
    order = np.argsort(probs, kind="stable")
    p, y = probs[order], np.asarray(labels, np.float64)[order]
    _, inv = np.unique(np.asarray(patients)[order], return_inverse=True)
    inv = inv.reshape(-1)
    n_pat = int(inv.max()) + 1
    starts = np.flatnonzero(np.r_[True, p[1:] != p[:-1]])  # groups of equal probability, ascending
    cuts = {name: int(np.searchsorted(p, t, side="right")) for name, t in thresholds.items()}
    sq_err = (p - y) ** 2
    rng = np.random.default_rng(seed)
    out: dict[tuple[str | None, str], list[np.ndarray]] = {}
    for first in range(0, n_boot, block):
        m = min(block, n_boot - first)
        draws = rng.integers(0, n_pat, size=(m, n_pat))  # = m calls of size n_pat, in order
        counts = np.bincount((draws + n_pat * np.arange(m)[:, None]).ravel(), minlength=m * n_pat)
        w = counts.reshape(m, n_pat)[:, inv].astype(np.float64)  # (m, n): copies of each row
        for key, values in _block_metrics(w, y, sq_err, starts, cuts).items():
            out.setdefault(key, []).append(values)
    return {key: np.concatenate(parts) for key, parts in out.items()}


def _block_metrics(w, y, sq_err, starts, cuts) -> dict[tuple[str | None, str], np.ndarray]:
    """Every metric of a block of resamples with row weights ``w (m, n)``."""
    wp = w * y
    wn = w - wp
    gp, gn = np.add.reduceat(wp, starts, axis=1), np.add.reduceat(wn, starts, axis=1)  # (m, G)
    pos, neg = gp.sum(axis=1), gn.sum(axis=1)
    both = (pos > 0) & (neg > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        below = np.cumsum(gn, axis=1) - gn  # negatives strictly below each group
        auroc = (gp * (below + 0.5 * gn)).sum(axis=1) / (pos * neg)
        tp_k, fp_k = np.cumsum(gp[:, ::-1], axis=1), np.cumsum(gn[:, ::-1], axis=1)  # from the top
        precision = np.where(tp_k + fp_k > 0, tp_k / np.maximum(tp_k + fp_k, 1e-300), 0.0)
        recall_step = gp[:, ::-1] / pos[:, None]
        auprc = (recall_step * precision).sum(axis=1)
        out = {
            (None, "auroc"): np.where(both, auroc, _NAN),
            (None, "auprc"): np.where(both, auprc, _NAN),
            (None, "brier"): (w * sq_err).sum(axis=1) / w.sum(axis=1),
        }
        for name, cut in cuts.items():
            tp, fp = wp[:, cut:].sum(axis=1), wn[:, cut:].sum(axis=1)
            fn, tn = pos - tp, neg - fp
            f1 = (2 * tp / (2 * tp + fp + fn) + 2 * tn / (2 * tn + fn + fp)) / 2
            out[(name, "accuracy")] = (tp + tn) / (pos + neg)
            out[(name, "sensitivity")] = np.where(pos > 0, tp / pos, _NAN)
            out[(name, "specificity")] = np.where(neg > 0, tn / neg, _NAN)
            out[(name, "macro_f1")] = np.where(both, f1, _NAN)
    return out


def percentile_ci(values: np.ndarray, alpha: float = 0.05) -> tuple[tuple[float, float], int]:
    """``((low, high), n_valid)``: the percentile interval of the non-NaN values."""
    valid = values[~np.isnan(values)]
    if not valid.size:
        return (_NAN, _NAN), 0
    low, high = np.percentile(valid, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return (float(low), float(high)), int(valid.size)
