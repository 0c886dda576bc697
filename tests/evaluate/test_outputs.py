"""Tests of leadmix_jax.evaluate.outputs: the files of one evaluation hold
exactly the predictions and metrics they were given."""

import csv
import json

import numpy as np
from etils import epath

from leadmix_jax.evaluate import level_metrics, outputs


def _target(seed, n_patients=6):
    rng = np.random.default_rng(seed)
    rows = []
    for p in range(n_patients):
        label = p % 2
        for r in range(2):
            for w in range(2):
                rows.append(
                    (f"p{p}", f"p{p}_r{r}", w, label, float(np.clip(0.4 * label + rng.uniform(0, 0.6), 0, 1)))
                )
    patient, record, window, label, prob = map(np.asarray, zip(*rows))
    return {
        "split": np.full(len(rows), "test", dtype=object),
        "record": record.astype(object),
        "patient": patient.astype(object),
        "window": window.astype(np.int64),
        "label": label.astype(np.int64),
        "prob": prob.astype(np.float64),
    }


def _report(preds, thresholds):
    results = {
        key: level_metrics.evaluate_levels(
            p["prob"], p["label"], p["record"], p["patient"], thresholds, n_boot=20, seed=0
        )
        for key, p in preds.items()
    }
    results["empty:test"] = {"note": "no windows"}
    return {
        "checkpoint": {"workdir": "/w", "step": 12, "which": "best", "validation": {"val_auroc": 0.75}},
        "leads": ["II", "III", "aVF"],
        "lead_robust": False,
        "train_dataset": "sph_mi/paper",
        "norm_stats_source": "sph_mi/paper:train",
        "excluded_patients": {"n_listed": 0, "removed": {}},
        "thresholds": thresholds,
        "validation": {
            "threshold": thresholds["val_youden"],
            "n_windows": 40,
            "n_pos": 12,
            "dataset": "sph_mi/paper",
            "split": "validation",
        },
        "targets": list(results),
        "results": results,
    }


def test_predictions_metrics_summary_and_figures(tmp_path):
    preds = {"a/paper:test": _target(0), "b:all": _target(1)}
    thresholds = {"0.5": 0.5, "val_youden": 0.35}
    report = _report(preds, thresholds)
    empty = {k: v[:0] for k, v in _target(2).items()}
    files = outputs.write_outputs(epath.Path(tmp_path), report, {**preds, "empty:test": empty})
    names = sorted(p.split("/")[-1] for p in files)
    assert names == sorted(
        ["predictions.csv", "metrics.json", "summary.md"]
        + [f"{kind}_{t}.png" for t in ("a_paper_test", "b_all") for kind in ("roc", "pr", "confusion")]
    )
    with open(tmp_path / "predictions.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 48 and {r["dataset"] for r in rows} == {"a/paper", "b"}
    first = preds["a/paper:test"]
    assert rows[0] == {
        "dataset": "a/paper",
        "split": "test",
        "record": first["record"][0],
        "patient": first["patient"][0],
        "window": str(first["window"][0]),
        "label": str(first["label"][0]),
        "probability": f"{first['prob'][0]:.6f}",
    }
    assert json.loads((tmp_path / "metrics.json").read_text()) == json.loads(json.dumps(report))
    summary = (tmp_path / "summary.md").read_text()
    assert "checkpoint: step 12 (best), validation AUROC 0.7500 at training time" in summary
    assert "`val_youden` = 0.3500" in summary and "## a/paper:test" in summary and "## empty:test" in summary
    assert "24 windows, 12 records, 6 patients (MI: 12 windows, 6 records, 3 patients)" in summary
    auroc = report["results"]["a/paper:test"]["levels"]["patient"]["thresholds"]["0.5"]["metrics"]["auroc"]
    assert f"{auroc:.3f}" in summary


def test_without_plots_only_the_tables(tmp_path):
    preds = {"x:test": _target(3)}
    report = _report(preds, {"0.5": 0.5, "val_youden": 0.4})
    files = outputs.write_outputs(epath.Path(tmp_path), report, preds, plots=False)
    assert sorted(p.split("/")[-1] for p in files) == ["metrics.json", "predictions.csv", "summary.md"]
    assert not list(tmp_path.glob("*.png"))
