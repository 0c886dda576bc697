"""Tests of leadmix_jax.metrics."""

import json
import math

import numpy as np
import pytest
from sklearn import metrics as skm

from leadmix_jax.evaluate import level_metrics as L
from leadmix_jax import metrics as M


def _sk_reference(labels, probs, threshold):
    preds = (np.asarray(probs) > threshold).astype(int)
    kw = dict(labels=[0, 1], average="macro", zero_division=0.0)
    return {
        "accuracy": skm.accuracy_score(labels, preds),
        "sensitivity": skm.recall_score(labels, preds, pos_label=1),
        "specificity": skm.recall_score(labels, preds, pos_label=0),
        "precision": skm.precision_score(labels, preds, pos_label=1, zero_division=np.nan),
        "macro_f1": skm.f1_score(labels, preds, **kw),
        "macro_precision": skm.precision_score(labels, preds, **kw),
        "macro_recall": skm.recall_score(labels, preds, **kw),
        "auroc": skm.roc_auc_score(labels, probs),
        "auprc": skm.average_precision_score(labels, probs),
        "brier": skm.brier_score_loss(labels, probs, pos_label=1),
        "confusion_matrix": skm.confusion_matrix(labels, preds, labels=[0, 1]).tolist(),
    }


# ---------------------------------------------------------------- binary_metrics


def test_binary_metrics_hand_computed():
    m = M.binary_metrics([0, 0, 1, 1], [0.1, 0.6, 0.4, 0.9])
    # preds at 0.5: [0, 1, 0, 1] -> tn=1, fp=1, fn=1, tp=1
    assert m["confusion_matrix"] == [[1, 1], [1, 1]]
    assert m["accuracy"] == 0.5
    assert m["sensitivity"] == 0.5
    assert m["specificity"] == 0.5
    assert m["precision"] == 0.5
    assert m["macro_f1"] == 0.5
    assert m["macro_precision"] == 0.5
    assert m["macro_recall"] == 0.5
    # positive pairs (0.4, 0.9) vs negatives (0.1, 0.6): 3 of 4 ordered right
    assert m["auroc"] == pytest.approx(0.75)
    # ranking 0.9(+) 0.6(-) 0.4(+) 0.1(-): AP = 0.5*1 + 0.5*(2/3)
    assert m["auprc"] == pytest.approx(0.5 + 1 / 3)
    # (0.1^2 + 0.6^2 + 0.6^2 + 0.1^2) / 4
    assert m["brier"] == pytest.approx((0.01 + 0.36 + 0.36 + 0.01) / 4)
    assert m["n"] == 4 and m["n_pos"] == 2 and m["threshold"] == 0.5


def test_binary_metrics_threshold_is_strict():
    # prob == threshold is predicted negative, as in the reference (> 0.5)
    m = M.binary_metrics([0, 1], [0.5, 0.7])
    assert m["confusion_matrix"] == [[1, 0], [0, 1]]
    m = M.binary_metrics([0, 1], [0.2, 0.7], threshold=0.7)
    assert m["confusion_matrix"] == [[1, 0], [1, 0]]


def test_binary_metrics_hand_computed_unbalanced():
    labels = [0, 0, 0, 0, 1, 1]
    probs = [0.2, 0.7, 0.8, 0.1, 0.9, 0.3]
    m = M.binary_metrics(labels, probs)
    # preds [0,1,1,0,1,0]: tn=2, fp=2, fn=1, tp=1
    assert m["confusion_matrix"] == [[2, 2], [1, 1]]
    assert m["accuracy"] == pytest.approx(3 / 6)
    assert m["sensitivity"] == pytest.approx(1 / 2)
    assert m["specificity"] == pytest.approx(2 / 4)
    assert m["precision"] == pytest.approx(1 / 3)
    f1_pos = 2 * 1 / (2 * 1 + 2 + 1)
    f1_neg = 2 * 2 / (2 * 2 + 1 + 2)
    assert m["macro_f1"] == pytest.approx((f1_pos + f1_neg) / 2)
    assert m["macro_precision"] == pytest.approx((2 / 3 + 1 / 3) / 2)
    # positives 0.9, 0.3 vs negatives 0.2, 0.7, 0.8, 0.1: 0.9 beats 4, 0.3 beats 2
    assert m["auroc"] == pytest.approx(6 / 8)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("threshold", [0.5, 0.3, 0.77])
def test_binary_metrics_equals_sklearn(seed, threshold):
    rng = np.random.default_rng(seed)
    n = 200
    labels = rng.integers(0, 2, n)
    probs = np.clip(0.3 * labels + rng.random(n) * 0.7, 0, 1)
    probs[:20] = np.round(probs[:20], 1)  # some ties, some exactly at 0.3 / 0.5
    m = M.binary_metrics(labels, probs, threshold)
    ref = _sk_reference(labels, probs, threshold)
    for k, v in ref.items():
        if k == "confusion_matrix":
            assert m[k] == v
        else:
            assert m[k] == pytest.approx(v, rel=1e-12, abs=1e-12), k


def test_binary_metrics_accepts_column_and_bool_inputs():
    labels = np.array([False, False, True, True])
    probs = np.array([[0.1], [0.6], [0.4], [0.9]], dtype=np.float32)
    m = M.binary_metrics(labels, probs)
    assert m["accuracy"] == 0.5 and m["auroc"] == pytest.approx(0.75)
    json.dumps(m)
    assert all(type(m[k]) is float for k in M.MAIN_METRICS)


def test_binary_metrics_all_negative_gives_nan_not_exception():
    m = M.binary_metrics([0, 0, 0], [0.1, 0.7, 0.2])
    for k in ("sensitivity", "auroc", "auprc", "macro_f1", "macro_precision", "macro_recall"):
        assert math.isnan(m[k]), k
    assert m["specificity"] == pytest.approx(2 / 3)
    assert m["accuracy"] == pytest.approx(2 / 3)
    assert m["precision"] == 0.0  # one predicted positive, wrong
    assert m["brier"] == pytest.approx((0.01 + 0.49 + 0.04) / 3)
    assert m["n_pos"] == 0
    json.dumps(m)


def test_binary_metrics_all_positive_gives_nan_not_exception():
    m = M.binary_metrics([1, 1], [0.1, 0.2])
    for k in ("specificity", "precision", "auroc", "auprc", "macro_f1"):
        assert math.isnan(m[k]), k
    assert m["sensitivity"] == 0.0 and m["accuracy"] == 0.0
    assert m["confusion_matrix"] == [[0, 0], [2, 0]]


def test_binary_metrics_no_predicted_positive_precision_nan():
    m = M.binary_metrics([0, 1, 1], [0.1, 0.2, 0.3])
    assert math.isnan(m["precision"])
    # macro precision counts the never-predicted class as 0 (sklearn default)
    assert m["macro_precision"] == pytest.approx((1 / 3 + 0) / 2)
    assert m["macro_f1"] == pytest.approx((2 / 4 + 0) / 2)


@pytest.mark.parametrize(
    "labels, probs",
    [
        ([0, 2], [0.1, 0.2]),  # non-binary label
        ([0, 1], [0.1, np.nan]),  # NaN prob
        ([0, 1], [-1.3, 2.0]),  # logits instead of probabilities
        ([0, 1, 1], [0.1, 0.2]),  # length mismatch
        ([], []),  # empty
    ],
)
def test_binary_metrics_rejects_bad_input(labels, probs):
    with pytest.raises(ValueError):
        M.binary_metrics(labels, probs)


# ---------------------------------------------------------------- youden


def test_youden_separable_picks_separating_threshold():
    labels = [0, 0, 0, 1, 1]
    probs = [0.1, 0.2, 0.35, 0.6, 0.8]
    t = M.youden_threshold(labels, probs)
    assert 0.35 <= t < 0.6
    m = M.binary_metrics(labels, probs, t)
    assert m["accuracy"] == 1.0 and m["sensitivity"] == 1.0 and m["specificity"] == 1.0


def test_youden_reproduces_max_j_operating_point():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, 300)
    probs = np.round(np.clip(0.25 * labels + 0.75 * rng.random(300), 0, 1), 2)  # ties
    t = M.youden_threshold(labels, probs)
    fpr, tpr, _ = skm.roc_curve(labels, probs)
    m = M.binary_metrics(labels, probs, t)
    assert m["sensitivity"] + m["specificity"] - 1 == pytest.approx(np.max(tpr - fpr))


def test_youden_infinite_first_threshold_and_scores_at_one():
    # inverted scores: best J is 0, reached first at roc_curve's inf threshold
    t = M.youden_threshold([1, 1, 0, 0], [0.1, 0.2, 1.0, 1.0])
    assert t == 1.0
    # a positive at exactly 1.0 must stay positive at the returned threshold
    t = M.youden_threshold([0, 0, 1, 1], [0.1, 0.2, 1.0, 1.0])
    assert 0.2 <= t < 1.0
    assert M.binary_metrics([0, 0, 1, 1], [0.1, 0.2, 1.0, 1.0], t)["accuracy"] == 1.0


def test_youden_one_class_falls_back_to_half():
    assert M.youden_threshold([0, 0, 0], [0.1, 0.9, 0.4]) == 0.5
    assert M.youden_threshold([1, 1], [0.1, 0.9]) == 0.5


# ---------------------------------------------------------------- aggregate


def test_aggregate_hand_computed_means():
    probs = [0.2, 0.4, 0.9, 0.7, 0.1, 0.3]
    labels = [0, 0, 1, 1, 0, 0]
    records = ["b", "b", "a", "a", "c", "b"]
    ids, gp, gl = M.aggregate(probs, labels, records)
    assert ids.tolist() == ["a", "b", "c"]
    np.testing.assert_allclose(gp, [0.8, 0.3, 0.1])
    assert gl.tolist() == [1, 0, 0]
    # patients with integer ids
    patients = [7, 7, 3, 3, 7, 7]
    ids, gp, gl = M.aggregate(probs, labels, patients)
    assert ids.tolist() == [3, 7]
    np.testing.assert_allclose(gp, [0.8, (0.2 + 0.4 + 0.1 + 0.3) / 4])
    assert gl.tolist() == [1, 0]


def test_aggregate_mixed_labels_raise_or_drop():
    probs = [0.2, 0.4, 0.9, 0.7]
    labels = [0, 1, 1, 1]
    groups = ["p1", "p1", "p2", "p2"]
    with pytest.raises(ValueError, match="p1"):
        M.aggregate(probs, labels, groups)
    ids, gp, gl = M.aggregate(probs, labels, groups, on_mixed="drop")
    assert ids.tolist() == ["p2"] and gp.tolist() == [pytest.approx(0.8)] and gl.tolist() == [1]


# ---------------------------------------------------------------- bootstrap


def _clustered_data(seed=0):
    """20 patients; patient 0 (MI) has 100 windows, all right; others 1 window."""
    rng = np.random.default_rng(seed)
    labels = np.r_[np.ones(100, int), rng.integers(0, 2, 19)]
    probs = np.r_[np.full(100, 0.9), rng.random(19)]
    patients = np.r_[np.zeros(100, int), np.arange(1, 20)]
    return labels, probs, patients


@pytest.mark.slow
def test_bootstrap_reproducible_and_seed_dependent():
    labels, probs, patients = _clustered_data()
    fns = L.main_metric_fns(0.5)
    a = L.bootstrap_ci(labels, probs, patients, fns, n_boot=200, seed=1)
    b = L.bootstrap_ci(labels, probs, patients, fns, n_boot=200, seed=1)
    c = L.bootstrap_ci(labels, probs, patients, fns, n_boot=200, seed=2)
    assert a == b
    assert a != c
    assert set(a) == set(M.MAIN_METRICS)


def test_bootstrap_covers_point_estimate():
    rng = np.random.default_rng(0)
    n_pat = 60
    windows = rng.integers(1, 6, n_pat)
    patients = np.repeat(np.arange(n_pat), windows)
    labels = np.repeat(rng.integers(0, 2, n_pat), windows)
    probs = np.clip(0.35 * labels + 0.65 * rng.random(labels.size), 0, 1)
    fns = L.main_metric_fns(0.5)
    cis, n_valid = L.bootstrap_ci(labels, probs, patients, fns, n_boot=200, seed=0, return_n_valid=True)
    point = M.binary_metrics(labels, probs)
    for name, (low, high) in cis.items():
        assert low <= point[name] <= high, name
        assert low < high, name
        assert n_valid[name] == 200


def test_bootstrap_fast_fns_match_binary_metrics():
    rng = np.random.default_rng(5)
    labels = rng.integers(0, 2, 150)
    probs = rng.random(150)
    for t in (0.5, 0.42):
        point = M.binary_metrics(labels, probs, t)
        for name, fn in L.main_metric_fns(t).items():
            assert fn(labels, probs) == pytest.approx(point[name], rel=1e-12), name


def test_bootstrap_resamples_whole_patients():
    # each patient has a distinct prob and k_p windows; every resample must
    # contain each prob value a multiple of k_p times
    windows = np.array([1, 2, 3, 5, 7])
    patients = np.repeat(np.arange(5), windows)
    probs = np.repeat([0.1, 0.3, 0.5, 0.7, 0.9], windows)
    labels = np.repeat([0, 0, 1, 1, 0], windows)
    seen = []

    def spy(lab, pr):
        seen.append(pr.copy())
        return float(pr.mean())

    L.bootstrap_ci(labels, probs, patients, {"spy": spy}, n_boot=50, seed=0)
    assert len(seen) == 50
    for pr in seen:
        vals, counts = np.unique(pr, return_counts=True)
        k = dict(zip([0.1, 0.3, 0.5, 0.7, 0.9], windows))
        for v, c in zip(vals, counts):
            assert c % k[round(float(v), 1)] == 0
        assert 0 < pr.size  # 5 patients drawn, each brings >= 1 window


def test_bootstrap_by_patient_wider_than_by_window():
    labels, probs, patients = _clustered_data()
    fns = {"accuracy": L.main_metric_fns(0.5)["accuracy"]}
    by_patient = L.bootstrap_ci(labels, probs, patients, fns, n_boot=200, seed=0)
    by_window = L.bootstrap_ci(labels, probs, np.arange(labels.size), fns, n_boot=200, seed=0)
    w_pat = by_patient["accuracy"][1] - by_patient["accuracy"][0]
    w_win = by_window["accuracy"][1] - by_window["accuracy"][0]
    assert w_pat > 2 * w_win


def test_bootstrap_ignores_nan_resamples_and_counts_them():
    # one MI patient among 6: resamples without it have undefined AUROC
    labels = np.array([1, 1, 0, 0, 0, 0, 0])
    probs = np.array([0.8, 0.9, 0.1, 0.4, 0.3, 0.2, 0.6])
    patients = np.array([0, 0, 1, 2, 3, 4, 5])
    fns = L.main_metric_fns(0.5)
    cis, n_valid = L.bootstrap_ci(labels, probs, patients, fns, n_boot=200, seed=0, return_n_valid=True)
    assert 0 < n_valid["auroc"] < 200
    assert n_valid["auroc"] == n_valid["sensitivity"]
    assert n_valid["brier"] == 200
    assert all(np.isfinite(cis["auroc"]))


def test_bootstrap_one_class_gives_nan_interval():
    labels = np.zeros(6, int)
    probs = np.linspace(0.1, 0.6, 6)
    cis, n_valid = L.bootstrap_ci(
        labels, probs, np.arange(6), L.main_metric_fns(), n_boot=20, seed=0, return_n_valid=True
    )
    assert all(math.isnan(v) for v in cis["auroc"])
    assert n_valid["auroc"] == 0
    assert all(np.isfinite(cis["specificity"]))


# ---------------------------------------------------------------- evaluate_levels


def _dataset(seed=0):
    rng = np.random.default_rng(seed)
    probs, labels, records, patients = [], [], [], []
    for p in range(30):
        y = int(rng.integers(0, 2))
        for r in range(int(rng.integers(1, 4))):
            for _ in range(int(rng.integers(1, 5))):
                labels.append(y)
                probs.append(float(np.clip(0.3 * y + 0.7 * rng.random(), 0, 1)))
                records.append(f"p{p:02d}/r{r}")
                patients.append(f"p{p:02d}")
    return np.array(probs), np.array(labels), np.array(records), np.array(patients)


@pytest.mark.slow
def test_evaluate_levels_json_and_consistency():
    probs, labels, records, patients = _dataset()
    t_val = M.youden_threshold(labels, probs)
    res = L.evaluate_levels(
        probs, labels, records, patients, thresholds={"0.5": 0.5, "youden_val": t_val}, n_boot=100, seed=0
    )
    text = json.dumps(res)
    back = json.loads(text)
    assert set(back["levels"]) == {"window", "record", "patient"}
    assert back["levels"]["window"]["n"] == probs.size
    assert back["levels"]["patient"]["n"] == 30
    assert back["levels"]["record"]["n"] == np.unique(records).size
    assert back["levels"]["patient"]["n_mixed_patients_dropped"] == 0

    # record level = binary_metrics on the hand-aggregated record means
    _, rp, rl = M.aggregate(probs, labels, records)
    rec = res["levels"]["record"]["thresholds"]["youden_val"]
    assert rec["metrics"] == M.binary_metrics(rl, rp, t_val)
    for level in M.LEVELS:
        for tname in ("0.5", "youden_val"):
            r = res["levels"][level]["thresholds"][tname]
            assert set(r["ci"]) == set(M.MAIN_METRICS)
            for m, (low, high) in r["ci"].items():
                assert low <= r["metrics"][m] <= high, (level, tname, m)
        # threshold-free CIs are shared across thresholds
        a = res["levels"][level]["thresholds"]["0.5"]["ci"]
        b = res["levels"][level]["thresholds"]["youden_val"]["ci"]
        assert a["auroc"] == b["auroc"]

    # reproducible
    assert (
        L.evaluate_levels(
            probs, labels, records, patients, thresholds={"0.5": 0.5, "youden_val": t_val}, n_boot=100, seed=0
        )
        == res
    )

    md = L.metrics_markdown(back)
    assert md.count("\n| window |") == 2 and md.count("| patient |") == 2
    assert "youden_val" in md and "[" in md and "patients" in md


def test_evaluate_levels_patient_mean_over_windows():
    probs = np.array([0.2, 0.4, 0.9, 0.8, 0.7, 0.1])
    labels = np.array([0, 0, 0, 1, 1, 0])
    records = np.array(["a1", "a1", "a2", "b1", "b1", "c1"])
    patients = np.array(["a", "a", "a", "b", "b", "c"])
    res = L.evaluate_levels(probs, labels, records, patients, n_boot=20)
    pat = res["levels"]["patient"]["thresholds"]["0.5"]["metrics"]
    # patient a: mean of 3 windows = 0.5 -> predicted negative (not > 0.5);
    # mean of record means would be 0.6 -> positive
    assert pat["confusion_matrix"] == [[2, 0], [0, 1]]
    brier = ((0.5 - 0) ** 2 + (0.75 - 1) ** 2 + (0.1 - 0) ** 2) / 3
    assert pat["brier"] == pytest.approx(brier)


def test_evaluate_levels_degenerate_one_class_is_nan_and_json():
    probs = np.array([0.1, 0.3, 0.6, 0.2])
    labels = np.zeros(4, int)
    res = L.evaluate_levels(probs, labels, ["r1", "r1", "r2", "r3"], ["p1", "p1", "p2", "p3"], n_boot=20)
    for level in M.LEVELS:
        r = res["levels"][level]["thresholds"]["0.5"]
        assert math.isnan(r["metrics"]["auroc"]) and math.isnan(r["metrics"]["sensitivity"])
        assert r["ci_n_valid"]["auroc"] == 0
    json.dumps(res)
    assert "n/a" in L.metrics_markdown(res)


def test_evaluate_levels_validates_groups():
    probs = np.array([0.2, 0.4, 0.9, 0.7])
    labels = np.array([0, 0, 1, 1])
    # record "r" shared by two patients
    with pytest.raises(ValueError, match="more than one patient"):
        L.evaluate_levels(probs, labels, ["r", "r", "s", "s"], ["a", "b", "b", "b"], n_boot=5)
    # record with mixed labels
    with pytest.raises(ValueError, match="both labels"):
        L.evaluate_levels(probs, labels, ["r", "r", "r", "s"], ["a", "a", "a", "b"], n_boot=5)
    # patient with an MI and a non-MI record: raise by default, drop on request
    records, patients = ["r", "r", "s", "t"], ["a", "a", "a", "b"]
    with pytest.raises(ValueError, match="both labels"):
        L.evaluate_levels(probs, labels, records, patients, n_boot=5)
    res = L.evaluate_levels(probs, labels, records, patients, n_boot=5, mixed_patients="drop")
    assert res["levels"]["patient"]["n"] == 1
    assert res["levels"]["patient"]["n_mixed_patients_dropped"] == 1
    assert res["levels"]["record"]["n"] == 3
