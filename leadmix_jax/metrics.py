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
* Confidence intervals: percentile bootstrap resampling PATIENTS with
  replacement (a drawn patient brings all its windows / records, so patients
  drawn k times count k times), at every level.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Mapping
from typing import Any

import numpy as np
from sklearn import metrics as skm

__all__ = [
    "MAIN_METRICS",
    "LEVELS",
    "binary_metrics",
    "youden_threshold",
    "aggregate",
    "main_metric_fns",
    "bootstrap_ci",
    "evaluate_levels",
    "metrics_markdown",
]

#: Metrics that get bootstrap confidence intervals in :func:`evaluate_levels`.
MAIN_METRICS = ("accuracy", "sensitivity", "specificity", "macro_f1",
                "auroc", "auprc", "brier")
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
            "pass sigmoid(logits), not logits")
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

def aggregate(probs: Any, labels: Any, groups: Any, on_mixed: str = "raise"
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
                f"{bad[:5].tolist()}; use on_mixed='drop' to leave them out")
        keep = ~mixed
    return (ids[keep], (prob_sum / counts)[keep],
            (pos == counts)[keep].astype(np.int64))


# --------------------------------------------------------------------------
# Bootstrap
# --------------------------------------------------------------------------

def main_metric_fns(threshold: float = 0.5) -> dict[str, Callable[[np.ndarray, np.ndarray], float]]:
    """NaN-safe metric functions ``fn(labels (n,), probs (n,)) -> float``.

    One per name in :data:`MAIN_METRICS`, same definitions as
    :func:`binary_metrics` (threshold-dependent ones at ``threshold``), but
    computed from confusion counts without scikit-learn's input validation,
    so they are cheap enough for :func:`bootstrap_ci`. Inputs are assumed
    already valid (0/1 int labels, probabilities).
    """
    threshold = _check_threshold(threshold)

    def at(name: str) -> Callable[[np.ndarray, np.ndarray], float]:
        def fn(labels: np.ndarray, probs: np.ndarray) -> float:
            return _count_metrics(*_counts(labels, probs, threshold))[name]
        fn.__name__ = f"{name}_at_{threshold:g}"
        return fn

    fns: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
        name: at(name) for name in MAIN_METRICS if name not in _THRESHOLD_FREE}
    fns.update(auroc=_auroc, auprc=_auprc, brier=_brier)
    return {name: fns[name] for name in MAIN_METRICS}


def bootstrap_ci(labels: Any, probs: Any, patients: Any,
                 metric_fns: Mapping[Hashable, Callable[[np.ndarray, np.ndarray], float]],
                 n_boot: int = 1000, seed: int = 0, alpha: float = 0.05,
                 return_n_valid: bool = False):
    """Percentile bootstrap confidence intervals, resampling patients.

    Each of the ``n_boot`` resamples draws as many patients as there are,
    with replacement (``np.random.default_rng(seed).integers``); every row of
    a drawn patient is included once per time the patient was drawn. Each
    ``metric_fns[name](labels_resample, probs_resample)`` is evaluated on the
    same resamples (paired). Resamples where a metric is NaN (e.g. AUROC when
    no MI patient was drawn) are ignored for that metric; the interval is the
    ``[alpha/2, 1 - alpha/2]`` percentile range of the valid values, and
    ``(nan, nan)`` when none is valid.

    Metric functions must return NaN, not raise, on undefined resamples
    (:func:`main_metric_fns` does; ``sklearn.metrics.roc_auc_score`` does
    not). They receive int64 0/1 labels and float64 probabilities.

    Args:
      labels: ``(n,)`` 0/1 labels of the rows (windows, records or patients).
      probs: ``(n,)`` probabilities in [0, 1].
      patients: ``(n,)`` patient id of each row (the resampling unit). Pass
        ``np.arange(n)`` to resample rows independently.
      metric_fns: name -> ``fn(labels (m,), probs (m,)) -> float``.
      n_boot: number of resamples (>= 1).
      seed: seed of the numpy Generator; same seed, same intervals.
      alpha: 1 - confidence level (0.05 gives 95 % intervals).
      return_n_valid: also return name -> number of valid (non-NaN)
        resamples.

    Returns:
      ``{name: (low, high)}`` of Python floats, or
      ``({name: (low, high)}, {name: n_valid})`` if ``return_n_valid``.
    """
    labels, probs = _check_binary(labels, probs)
    patients = _as_1d(patients, "patients")
    if patients.shape != labels.shape:
        raise ValueError(f"patients {patients.shape} and labels {labels.shape} differ in length")
    if int(n_boot) != n_boot or n_boot < 1:
        raise ValueError(f"n_boot must be a positive integer, got {n_boot!r}")
    if not (0.0 < alpha < 1.0):
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
    n_boot = int(n_boot)
    names = list(metric_fns)
    _, inv = np.unique(patients, return_inverse=True)
    inv = inv.reshape(-1)
    n_pat = int(inv.max()) + 1
    rows = np.arange(labels.size)
    rng = np.random.default_rng(seed)
    values = np.full((len(names), n_boot), np.nan)
    for b in range(n_boot):
        draw = rng.integers(0, n_pat, size=n_pat)
        multiplicity = np.bincount(draw, minlength=n_pat)
        idx = np.repeat(rows, multiplicity[inv])
        lab, pr = labels[idx], probs[idx]
        for k, name in enumerate(names):
            values[k, b] = float(metric_fns[name](lab, pr))
    cis: dict[Hashable, tuple[float, float]] = {}
    n_valid: dict[Hashable, int] = {}
    q = [100 * alpha / 2, 100 * (1 - alpha / 2)]
    for k, name in enumerate(names):
        valid = values[k][~np.isnan(values[k])]
        n_valid[name] = int(valid.size)
        if valid.size:
            low, high = np.percentile(valid, q)
            cis[name] = (float(low), float(high))
        else:
            cis[name] = (_NAN, _NAN)
    return (cis, n_valid) if return_n_valid else cis


# --------------------------------------------------------------------------
# Levels
# --------------------------------------------------------------------------

def evaluate_levels(probs: Any, labels: Any, record_ids: Any, patient_ids: Any,
                    thresholds: Mapping[str, float] | None = None,
                    n_boot: int = 1000, seed: int = 0, alpha: float = 0.05,
                    mixed_patients: str = "raise") -> dict[str, Any]:
    """Metrics with patient-bootstrap CIs at window, record and patient level.

    Record and patient probabilities are the mean of their windows'
    probabilities (a patient's mean is over all its windows, not over record
    means). At each level and for each named threshold, :func:`binary_metrics`
    is reported together with bootstrap CIs of :data:`MAIN_METRICS`, always
    resampling patients (one :func:`bootstrap_ci` call per level with the
    same ``seed``, so all thresholds, and the window and record levels, see
    the same patient draws).

    Args:
      probs: ``(n,)`` window probabilities of MI in [0, 1].
      labels: ``(n,)`` 0/1 window labels (the label of the window's record).
      record_ids: ``(n,)`` record id per window; every record must belong to
        one patient (``ValueError`` otherwise) and carry one label.
      patient_ids: ``(n,)`` patient id per window.
      thresholds: name -> threshold in [0, 1] for the rule ``prob > t``,
        e.g. ``{'0.5': 0.5, 'youden_val': t_val}``; default ``{'0.5': 0.5}``.
      n_boot, seed, alpha: see :func:`bootstrap_ci`.
      mixed_patients: ``'raise'`` or ``'drop'`` patients with both MI and
        non-MI records at the patient level (see :func:`aggregate`); the
        number dropped is reported.

    Returns:
      A JSON-serialisable dict (``json.dumps`` works; undefined values are
      ``float('nan')``)::

        {"config": {"n_boot", "seed", "alpha", "resampling": "patient",
                    "aggregation": "mean window probability",
                    "thresholds": {name: t}},
         "levels": {level: {"n": int, "n_pos": int, "n_patients": int,
                            "n_mixed_patients_dropped": int,  # patient only
                            "thresholds": {name: {
                                "metrics": binary_metrics(...),
                                "ci": {metric: [low, high]},
                                "ci_n_valid": {metric: int}}}}}}
    """
    if thresholds is None:
        thresholds = {"0.5": 0.5}
    if not thresholds:
        raise ValueError("thresholds must name at least one threshold")
    thresholds = {str(k): _check_threshold(v, f"thresholds[{k!r}]")
                  for k, v in thresholds.items()}
    labels, probs = _check_binary(labels, probs)
    record_ids = _as_1d(record_ids, "record_ids")
    patient_ids = _as_1d(patient_ids, "patient_ids")
    if record_ids.shape != labels.shape or patient_ids.shape != labels.shape:
        raise ValueError("probs, labels, record_ids and patient_ids must have the same length")

    # Every record must belong to a single patient.
    _, pat_code = np.unique(patient_ids, return_inverse=True)
    pat_code = pat_code.reshape(-1)
    rec_ids, rec_first, rec_inv = np.unique(record_ids, return_index=True,
                                            return_inverse=True)
    rec_inv = rec_inv.reshape(-1)
    split = pat_code != pat_code[rec_first][rec_inv]
    if split.any():
        bad = np.unique(record_ids[split])
        raise ValueError(f"{bad.size} record id(s) belong to more than one patient, "
                         f"e.g. {bad[:5].tolist()}")

    r_ids, r_probs, r_labels = aggregate(probs, labels, record_ids)
    assert np.array_equal(r_ids, rec_ids)
    r_patients = patient_ids[rec_first]
    p_ids, p_probs, p_labels = aggregate(probs, labels, patient_ids, on_mixed=mixed_patients)
    n_all_patients = int(pat_code.max()) + 1

    data = {
        "window": (labels, probs, patient_ids),
        "record": (r_labels, r_probs, r_patients),
        "patient": (p_labels, p_probs, p_ids),
    }
    out: dict[str, Any] = {
        "config": {"n_boot": int(n_boot), "seed": int(seed), "alpha": float(alpha),
                   "resampling": "patient",
                   "aggregation": "mean window probability",
                   "thresholds": dict(thresholds)},
        "levels": {},
    }
    for level in LEVELS:
        lab, pr, pats = data[level]
        fns: dict[Hashable, Callable] = {}
        for tname, t in thresholds.items():
            for m, fn in main_metric_fns(t).items():
                if m not in _THRESHOLD_FREE:
                    fns[(tname, m)] = fn
        for m in _THRESHOLD_FREE:
            fns[(None, m)] = main_metric_fns()[m]
        cis, n_valid = bootstrap_ci(lab, pr, pats, fns, n_boot=n_boot, seed=seed,
                                    alpha=alpha, return_n_valid=True)
        entry: dict[str, Any] = {
            "n": int(lab.size), "n_pos": int(lab.sum()),
            "n_patients": int(np.unique(pats).size), "thresholds": {}}
        if level == "patient":
            entry["n_mixed_patients_dropped"] = n_all_patients - int(p_ids.size)
        for tname, t in thresholds.items():
            keys = {m: ((None, m) if m in _THRESHOLD_FREE else (tname, m))
                    for m in MAIN_METRICS}
            entry["thresholds"][tname] = {
                "metrics": binary_metrics(lab, pr, t),
                "ci": {m: list(cis[k]) for m, k in keys.items()},
                "ci_n_valid": {m: n_valid[k] for m, k in keys.items()},
            }
        out["levels"][level] = entry
    return out


_TABLE_METRICS = ("accuracy", "sensitivity", "specificity", "macro_precision",
                  "macro_recall", "macro_f1", "auroc", "auprc", "brier")


def _fmt(x: Any) -> str:
    x = float(x)
    return "n/a" if math.isnan(x) else f"{x:.3f}"


def metrics_markdown(results: Mapping[str, Any]) -> str:
    """Markdown table of :func:`evaluate_levels` output.

    Rows are level x threshold, columns the metrics, each cell
    ``value [low, high]`` where a bootstrap CI exists. Cells marked with a
    dagger had fewer valid resamples than ``n_boot`` (the metric was
    undefined in some resamples). Undefined values print as ``n/a``.

    Args:
      results: the dict returned by :func:`evaluate_levels` (or the same
        structure read back from JSON).

    Returns:
      The table followed by a one-line note on the CIs, as a string.
    """
    cfg = results["config"]
    n_boot = int(cfg["n_boot"])
    header = ["level", "threshold", "n (MI)"] + list(_TABLE_METRICS)
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join(["---"] * 2 + ["---:"] * (len(header) - 2)) + "|"]
    any_dagger = False
    for level in LEVELS:
        if level not in results["levels"]:
            continue
        entry = results["levels"][level]
        for tname, res in entry["thresholds"].items():
            met = res["metrics"]
            cells = [level, f"{tname} ({float(met['threshold']):.3f})",
                     f"{met['n']} ({met['n_pos']})"]
            for m in _TABLE_METRICS:
                cell = _fmt(met[m])
                if m in res.get("ci", {}):
                    low, high = res["ci"][m]
                    cell += f" [{_fmt(low)}, {_fmt(high)}]"
                    if int(res.get("ci_n_valid", {}).get(m, n_boot)) < n_boot:
                        cell += " †"
                        any_dagger = True
                cells.append(cell)
            lines.append("| " + " | ".join(cells) + " |")
    conf = 100 * (1 - float(cfg["alpha"]))
    note = (f"\n{conf:g} % CIs: percentile bootstrap, {n_boot} resamples of patients "
            f"(seed {cfg['seed']}); prediction = MI iff probability > threshold; "
            "record/patient probability = mean window probability.")
    if any_dagger:
        note += " † fewer valid resamples than requested (metric undefined in some)."
    return "\n".join(lines) + "\n" + note + "\n"
