"""The vectorised patient bootstrap (leadmix_jax/evaluate/resampling.py) gives
the intervals of the reference bootstrap (level_metrics.bootstrap_ci with
main_metric_fns: materialised resamples, scikit-learn's AUROC/AUPRC)."""

import numpy as np
import pytest

from leadmix_jax.evaluate import level_metrics, resampling
from leadmix_jax.metrics import MAIN_METRICS, _THRESHOLD_FREE


def reference(labels, probs, patients, thresholds, n_boot, seed):
    fns = {}
    for name, t in thresholds.items():
        for metric, fn in level_metrics.main_metric_fns(t).items():
            if metric not in _THRESHOLD_FREE:
                fns[(name, metric)] = fn
    for metric in _THRESHOLD_FREE:
        fns[(None, metric)] = level_metrics.main_metric_fns()[metric]
    return level_metrics.bootstrap_ci(
        labels, probs, patients, fns, n_boot=n_boot, seed=seed, return_n_valid=True
    )


@pytest.mark.parametrize(
    "n, patients, ties, pos_rate",
    [
        (400, 150, False, 0.3),  # windows: several per patient
        (300, 300, True, 0.2),  # one row per patient, rounded probabilities: many ties
        (60, 25, True, 0.05),  # rare positives: many resamples without one (NaN AUROC)
        (40, 40, False, 0.5),
    ],
)
def test_the_intervals_are_the_reference_bootstraps(n, patients, ties, pos_rate):
    rng = np.random.default_rng(n)
    pat = np.sort(rng.integers(0, patients, n)).astype(str)
    pat_label = rng.random(patients) < pos_rate
    labels = pat_label[pat.astype(int)].astype(np.int64)
    probs = np.clip(0.3 * labels + rng.random(n) * 0.7, 0, 1)
    if ties:
        probs = np.round(probs, 1)
    thresholds = {"0.5": 0.5, "youden": float(np.round(probs[3], 1)) if ties else 0.41}
    want, want_valid = reference(labels, probs, pat, thresholds, 200, 7)
    got = resampling.resampled_main_metrics(labels, probs, pat, thresholds, 200, 7, block=33)
    assert set(got) == set(want)
    for key, values in got.items():
        ci, valid = resampling.percentile_ci(values)
        assert valid == want_valid[key], key
        np.testing.assert_allclose(ci, want[key], rtol=0, atol=1e-12, err_msg=str(key))


def test_level_entries_use_it_and_report_every_main_metric():
    rng = np.random.default_rng(0)
    labels = np.repeat((rng.random(100) < 0.3).astype(np.int64), 2)  # two windows per patient
    probs = rng.random(200)
    out = level_metrics.evaluate_levels(
        probs, labels, np.arange(200).astype(str), (np.arange(200) // 2).astype(str), n_boot=50
    )
    cis = out["levels"]["patient"]["thresholds"]["0.5"]["ci"]
    assert set(cis) == set(MAIN_METRICS) and all(low <= high for low, high in cis.values())
