"""Calibration of the MI probability: expected calibration error, reliability
diagram, temperature scaling.

* :func:`ece`: expected calibration error of ``P(MI)`` over ``bins`` equal-width
  bins of the predicted probability: ``sum_b n_b / n * |mean label_b - mean
  prob_b|`` (Naeini et al., 2015; Guo et al., 2017 for binary scores).
* :func:`fit_temperature`: the temperature ``T > 0`` that minimises the
  validation windows' negative log-likelihood of ``sigmoid(logit / T)``
  (Guo et al., 2017): one parameter, the ranking (AUROC) unchanged. Fitted
  on the checkpoint's validation split by ``--mode=eval`` and stored beside
  the checkpoint (``<workdir>/calibration/<step>.json``, :func:`save`,
  :func:`load`); prediction applies it, the export sidecar records it.
"""

from __future__ import annotations

import json

import numpy as np
from etils import epath
from scipy import optimize

BINS = 10
_EPS = 1e-7


def logits_of(probs: np.ndarray) -> np.ndarray:
    """The logits of probabilities (clipped away from 0 and 1)."""
    p = np.clip(np.asarray(probs, np.float64), _EPS, 1 - _EPS)
    return np.log(p) - np.log1p(-p)


def apply_temperature(probs: np.ndarray, temperature: float) -> np.ndarray:
    """``sigmoid(logit(p) / T)``."""
    return 1.0 / (1.0 + np.exp(-logits_of(probs) / float(temperature)))


def _bins(y: np.ndarray, p: np.ndarray, bins: int) -> list[dict]:
    """Per equal-width bin of ``p``: edges, windows, mean prediction, MI rate."""
    which = np.minimum((p * bins).astype(int), bins - 1)
    rows = []
    for b in range(bins):
        inside = which == b
        rows.append(
            {
                "low": b / bins,
                "high": (b + 1) / bins,
                "n": int(inside.sum()),
                "mean_prob": float(p[inside].mean()) if inside.any() else None,
                "mi_rate": float(y[inside].mean()) if inside.any() else None,
            }
        )
    return rows


def _ece_of(rows: list[dict], total: int) -> float:
    if not total:
        return float("nan")
    return float(sum(r["n"] / total * abs(r["mi_rate"] - r["mean_prob"]) for r in rows if r["n"]))


def ece(labels: np.ndarray, probs: np.ndarray, bins: int = BINS) -> float:
    """Expected calibration error of ``P(MI)``; NaN without windows."""
    y, p = np.asarray(labels, np.float64), np.asarray(probs, np.float64)
    return _ece_of(_bins(y, p, bins), y.size)


def brier(labels: np.ndarray, probs: np.ndarray) -> float:
    """Mean squared error of ``P(MI)``; NaN without windows."""
    y, p = np.asarray(labels, np.float64), np.asarray(probs, np.float64)
    return float(np.mean((p - y) ** 2)) if y.size else float("nan")


def reliability(labels: np.ndarray, probs: np.ndarray, bins: int = BINS) -> dict:
    """Per bin: its edges, windows, mean predicted probability and observed MI rate."""
    y, p = np.asarray(labels, np.float64), np.asarray(probs, np.float64)
    rows = _bins(y, p, bins)
    return {"bins": rows, "ece": _ece_of(rows, y.size)}


def _nll(labels: np.ndarray, logits: np.ndarray, temperature: float) -> float:
    z = logits / temperature
    return float(np.mean(np.logaddexp(0.0, z) - labels * z))


def fit_temperature(labels: np.ndarray, probs: np.ndarray) -> dict:
    """The NLL-minimising temperature on (validation) windows, with the NLL,
    Brier score and ECE before and after. ``temperature`` 1.0 (no change)
    when both classes are not present."""
    y = np.asarray(labels, np.float64)
    z = logits_of(probs)
    result = {"temperature": 1.0, "windows": int(y.size)}
    if y.size and 0 < y.sum() < y.size:
        fit = optimize.minimize_scalar(
            lambda log_t: _nll(y, z, np.exp(log_t)), bounds=(np.log(0.05), np.log(20.0)), method="bounded"
        )
        result["temperature"] = float(np.exp(fit.x))
    calibrated = apply_temperature(probs, result["temperature"])
    for name, p in (("raw", np.asarray(probs, np.float64)), ("calibrated", calibrated)):
        result[name] = {
            "nll": _nll(y, logits_of(p), 1.0) if y.size else float("nan"),
            "brier": brier(y, p),
            "ece": ece(y, p),
        }
    return result


def path(workdir: str, step: int) -> epath.Path:
    return epath.Path(workdir) / "calibration" / f"{int(step)}.json"


def save(workdir: str, step: int, fitted: dict) -> None:
    p = path(workdir, step)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(fitted, indent=1) + "\n")


def load(workdir: str, step: int) -> dict | None:
    """The fitted calibration of ``step``, or None (not fitted yet, or unreadable)."""
    try:
        fitted = json.loads(path(workdir, step).read_text())
        return fitted if float(fitted["temperature"]) > 0 else None
    except (OSError, ValueError, KeyError, TypeError):
        return None
