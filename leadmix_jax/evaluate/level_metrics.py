"""Window / record / patient levels with patient-bootstrap confidence intervals.

Conventions as :mod:`leadmix_jax.metrics` (labels ``(n,)`` in {0, 1},
probabilities ``(n,)`` in [0, 1], ``pred = probs > threshold``).
Confidence intervals: percentile bootstrap resampling PATIENTS with
replacement (a drawn patient brings all its windows / records, so patients
drawn k times count k times), at every level.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Mapping
from typing import Any

import numpy as np

from leadmix_jax.evaluate import resampling
from leadmix_jax.metrics import (
    LEVELS,
    MAIN_METRICS,
    _auprc,
    _auroc,
    _brier,
    _check_binary,
    _as_1d,
    _check_threshold,
    _count_metrics,
    _counts,
    _THRESHOLD_FREE,
    aggregate,
    binary_metrics,
)

__all__ = ["main_metric_fns", "bootstrap_ci", "evaluate_levels", "metrics_markdown"]

_NAN = float("nan")


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
        name: at(name) for name in MAIN_METRICS if name not in _THRESHOLD_FREE
    }
    fns.update(auroc=_auroc, auprc=_auprc, brier=_brier)
    return {name: fns[name] for name in MAIN_METRICS}


def bootstrap_ci(
    labels: Any,
    probs: Any,
    patients: Any,
    metric_fns: Mapping[Hashable, Callable[[np.ndarray, np.ndarray], float]],
    n_boot: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
    return_n_valid: bool = False,
):
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


def evaluate_levels(
    probs: Any,
    labels: Any,
    record_ids: Any,
    patient_ids: Any,
    thresholds: Mapping[str, float] | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
    mixed_patients: str = "raise",
) -> dict[str, Any]:
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
    thresholds = {str(k): _check_threshold(v, f"thresholds[{k!r}]") for k, v in thresholds.items()}
    labels, probs = _check_binary(labels, probs)
    record_ids = _as_1d(record_ids, "record_ids")
    patient_ids = _as_1d(patient_ids, "patient_ids")
    if record_ids.shape != labels.shape or patient_ids.shape != labels.shape:
        raise ValueError("probs, labels, record_ids and patient_ids must have the same length")
    data, n_all_patients = _levels_data(probs, labels, record_ids, patient_ids, mixed_patients)
    out: dict[str, Any] = {
        "config": {
            "n_boot": int(n_boot),
            "seed": int(seed),
            "alpha": float(alpha),
            "resampling": "patient",
            "aggregation": "mean window probability",
            "thresholds": dict(thresholds),
        },
        "levels": {},
    }
    for level in LEVELS:
        entry = _level_entry(*data[level], thresholds, n_boot, seed, alpha)
        if level == "patient":
            entry["n_mixed_patients_dropped"] = n_all_patients - entry["n"]
        out["levels"][level] = entry
    return out


def _levels_data(probs, labels, record_ids, patient_ids, mixed_patients: str):
    """``({level: (labels, probs, patients)}, number of patients)``: windows as
    they are; records and patients by mean window probability. Every record
    must belong to one patient (``ValueError`` otherwise)."""
    _, pat_code = np.unique(patient_ids, return_inverse=True)
    pat_code = pat_code.reshape(-1)
    rec_ids, rec_first, rec_inv = np.unique(record_ids, return_index=True, return_inverse=True)
    rec_inv = rec_inv.reshape(-1)
    split = pat_code != pat_code[rec_first][rec_inv]
    if split.any():
        bad = np.unique(record_ids[split])
        raise ValueError(f"{bad.size} record id(s) belong to more than one patient, e.g. {bad[:5].tolist()}")
    r_ids, r_probs, r_labels = aggregate(probs, labels, record_ids)
    assert np.array_equal(r_ids, rec_ids)
    r_patients = patient_ids[rec_first]
    p_ids, p_probs, p_labels = aggregate(probs, labels, patient_ids, on_mixed=mixed_patients)
    data = {
        "window": (labels, probs, patient_ids),
        "record": (r_labels, r_probs, r_patients),
        "patient": (p_labels, p_probs, p_ids),
    }
    return data, int(pat_code.max()) + 1


def _level_entry(
    lab, pr, pats, thresholds: Mapping[str, float], n_boot: int, seed: int, alpha: float
) -> dict:
    """One level's counts and, per threshold, :func:`binary_metrics` with
    patient-bootstrap CIs of :data:`MAIN_METRICS` (the draws of one
    :func:`bootstrap_ci` call, every threshold on the same draws; computed
    many resamples at a time by :mod:`leadmix_jax.evaluate.resampling`)."""
    resampled = resampling.resampled_main_metrics(lab, pr, pats, thresholds, n_boot, seed)
    cis, n_valid = {}, {}
    for key, values in resampled.items():
        cis[key], n_valid[key] = resampling.percentile_ci(values, alpha)
    entry: dict[str, Any] = {
        "n": int(lab.size),
        "n_pos": int(lab.sum()),
        "n_patients": int(np.unique(pats).size),
        "thresholds": {},
    }
    for tname, t in thresholds.items():
        keys = {m: ((None, m) if m in _THRESHOLD_FREE else (tname, m)) for m in MAIN_METRICS}
        entry["thresholds"][tname] = {
            "metrics": binary_metrics(lab, pr, t),
            "ci": {m: list(cis[k]) for m, k in keys.items()},
            "ci_n_valid": {m: n_valid[k] for m, k in keys.items()},
        }
    return entry


_TABLE_METRICS = (
    "accuracy",
    "sensitivity",
    "specificity",
    "macro_precision",
    "macro_recall",
    "macro_f1",
    "auroc",
    "auprc",
    "brier",
)


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
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join(["---"] * 2 + ["---:"] * (len(header) - 2)) + "|",
    ]
    any_dagger = False
    for level in LEVELS:
        if level not in results["levels"]:
            continue
        entry = results["levels"][level]
        for tname, res in entry["thresholds"].items():
            met = res["metrics"]
            cells = [level, f"{tname} ({float(met['threshold']):.3f})", f"{met['n']} ({met['n_pos']})"]
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
    note = (
        f"\n{conf:g} % CIs: percentile bootstrap, {n_boot} resamples of patients "
        f"(seed {cfg['seed']}); prediction = MI iff probability > threshold; "
        "record/patient probability = mean window probability."
    )
    if any_dagger:
        note += " † fewer valid resamples than requested (metric undefined in some)."
    return "\n".join(lines) + "\n" + note + "\n"
