"""Evaluation of a tiny trained checkpoint: every output is written and
consistent; checkpoint selection; lead-set mismatch error."""

import csv
import json
import pathlib
import shutil

import numpy as np
import pytest

import builtdata
from leadmix_jax.evaluate import evaluation
from leadmix_jax import metrics


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    return builtdata.evaluated_workdir(tmp_path_factory)


@pytest.mark.slow
def test_writes_every_output(evaluated):
    workdir, result = evaluated
    out = pathlib.Path(result["out_dir"])
    assert out == pathlib.Path(workdir) / "eval" / str(result["step"])
    names = {p.name for p in out.iterdir()}
    expected = {"predictions.csv", "metrics.json", "summary.md"}
    for target in ("built_mi_test", "built_mi_all"):
        expected |= {f"roc_{target}.png", f"pr_{target}.png", f"confusion_{target}.png"}
    assert expected <= names, names
    for name in expected:
        assert (out / name).stat().st_size > 0
    for name in names:
        if name.endswith(".png"):
            assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_predictions_csv(evaluated):
    _, result = evaluated
    with open(pathlib.Path(result["out_dir"]) / "predictions.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["dataset", "split", "record", "patient", "window", "label", "probability"]
    n_test = builtdata.num_windows("test")
    n_all = sum(builtdata.num_windows(s) for s in builtdata.SPLITS)
    assert len(rows) == n_test + n_all
    assert {r["dataset"] for r in rows} == {builtdata.NAME}
    assert {r["split"] for r in rows[n_test:]} == set(builtdata.SPLITS)
    test_rows = rows[:n_test]
    # every test window exactly once
    assert len({(r["record"], r["window"]) for r in test_rows}) == n_test
    probs = np.array([float(r["probability"]) for r in rows])
    assert ((probs >= 0) & (probs <= 1)).all()
    assert {r["label"] for r in rows} == {"0", "1"}


@pytest.mark.slow
def test_metrics_json_consistent_with_predictions(evaluated):
    _, result = evaluated
    out = pathlib.Path(result["out_dir"])
    report = json.loads((out / "metrics.json").read_text())
    assert report["leads"] == ["II", "III", "aVF"]
    assert report["checkpoint"]["step"] == result["step"]
    assert report["thresholds"]["0.5"] == 0.5
    val = report["validation"]
    assert val["split"] == "validation" and val["n_windows"] == builtdata.num_windows("validation")
    assert report["thresholds"]["val_youden"] == pytest.approx(val["threshold"])
    assert set(report["results"]) == {"built_mi:test", "built_mi:all"}
    with open(out / "predictions.csv") as fh:
        rows = [r for r in csv.DictReader(fh) if r["split"] == "test"][: builtdata.num_windows("test")]
    labels = np.array([int(r["label"]) for r in rows])
    probs = np.array([float(r["probability"]) for r in rows])
    res = report["results"]["built_mi:test"]
    for tname, t in report["thresholds"].items():
        win = res["levels"]["window"]["thresholds"][tname]["metrics"]
        ref = metrics.binary_metrics(labels, probs, t)
        assert win["confusion_matrix"] == ref["confusion_matrix"]
        assert win["auroc"] == pytest.approx(ref["auroc"], abs=1e-5)
    lv = res["levels"]
    assert lv["window"]["n"] == builtdata.num_windows("test")
    assert lv["record"]["n"] == 4 * 2
    # the test split has one patient with an MI and a normal record: left out at patient level
    assert lv["patient"]["n_mixed_patients_dropped"] == 1 and lv["patient"]["n"] == 3
    ci = lv["window"]["thresholds"]["0.5"]["ci"]["auroc"]
    assert ci[0] <= ci[1]


@pytest.mark.slow
def test_summary_markdown(evaluated):
    _, result = evaluated
    text = (pathlib.Path(result["out_dir"]) / "summary.md").read_text()
    assert "## built_mi:test" in text and "## built_mi:all" in text
    assert "val_youden" in text and "| patient |" in text and "95 % CIs" in text
    assert "leads: II, III, aVF" in text


@pytest.mark.slow
def test_reproducible_and_latest_step(evaluated, tmp_path_factory, tmp_path):
    workdir, result = evaluated
    # a copy, so that this evaluation does not overwrite the shared one's outputs
    shutil.copytree(pathlib.Path(workdir) / "checkpoints", tmp_path / "checkpoints")
    workdir = str(tmp_path)
    config = builtdata.make_config(builtdata.data_dir(tmp_path_factory), eval_targets="built_mi:test")
    again = evaluation.evaluate(config, workdir, checkpoint="latest")
    assert again["step"] == 2
    assert again["thresholds"] == result["thresholds"]
    a = again["results"]["built_mi:test"]["levels"]["record"]["thresholds"]["0.5"]
    b = result["results"]["built_mi:test"]["levels"]["record"]["thresholds"]["0.5"]
    assert (tmp_path / "eval" / "2" / "summary.md").exists()
    assert a["ci"] == b["ci"] and a["metrics"]["auroc"] == pytest.approx(b["metrics"]["auroc"], abs=1e-6)
    with pytest.raises(ValueError, match="no checkpoint at step 7"):
        evaluation.evaluate(config, workdir, checkpoint=7)


@pytest.mark.slow
def test_lead_mismatch_is_a_clear_error(evaluated, tmp_path_factory):
    workdir, _ = evaluated
    config = builtdata.make_config(builtdata.data_dir(tmp_path_factory), leads="limb")
    with pytest.raises(ValueError, match=r"trained on leads II,III,aVF.*asks for leads I,II,III,aVL,aVR,aVF"):
        evaluation.evaluate(config, workdir)


def test_parse_targets():
    assert evaluation.parse_targets("a/paper:all, b:test") == [("a/paper", "all"), ("b", "test")]
    with pytest.raises(ValueError, match="dataset:split"):
        evaluation.parse_targets("ptbxl_mi")


@pytest.mark.slow
def test_summary_states_checkpoint_step_and_validation_auroc(evaluated):
    workdir, result = evaluated
    rows = [json.loads(line) for line in (pathlib.Path(workdir) / "metrics.jsonl").read_text().splitlines()]
    val = {r["step"]: r["val_auroc"] for r in rows if "val_auroc" in r}
    assert result["step"] in val and val[result["step"]] == max(val.values())
    text = (pathlib.Path(result["out_dir"]) / "summary.md").read_text()
    assert f"- checkpoint: step {result['step']} (best), validation AUROC {val[result['step']]:.4f}" in text
    report = json.loads((pathlib.Path(result["out_dir"]) / "metrics.json").read_text())
    assert report["checkpoint"]["validation"]["val_auroc"] == pytest.approx(val[result["step"]])


@pytest.mark.slow
def test_absolute_path_target_and_excluded_patients(evaluated, tmp_path_factory, tmp_path):
    workdir, _ = evaluated
    shutil.copytree(pathlib.Path(workdir) / "checkpoints", tmp_path / "checkpoints")
    elsewhere = pathlib.Path(builtdata.data_dir(tmp_path_factory)) / builtdata.NAME
    # data_dir holds nothing: the target names the dataset by its absolute path
    config = builtdata.make_config(
        str(tmp_path / "empty"),
        val_split="",
        eval_targets=f"{elsewhere}:test",
        exclude_patients="tep00, tep01",
    )
    out = evaluation.evaluate(config, str(tmp_path))
    key = f"{elsewhere}:test"
    window = out["results"][key]["levels"]["window"]
    assert window["n"] == builtdata.num_windows("test") - 2 * 2 * 2  # 2 patients x 2 records x 2 windows
    report = json.loads((pathlib.Path(out["out_dir"]) / "metrics.json").read_text())
    assert report["excluded_patients"] == {"n_listed": 2, "removed": {key: {"windows": 8, "patients": 2}}}
    with open(pathlib.Path(out["out_dir"]) / "predictions.csv") as fh:
        patients = {r["patient"] for r in csv.DictReader(fh)}
    assert patients == {"tep02", "tep03"}
    assert "left out: 2 listed patients" in (pathlib.Path(out["out_dir"]) / "summary.md").read_text()


def test_non_finite_windows_are_left_out_and_counted():
    pred = {
        "prob": np.array([0.2, np.nan, 0.7, np.inf]),
        "label": np.array([0, 1, 1, 0]),
        "record": np.array(["a", "b", "c", "d"], object),
    }
    kept, n = evaluation.drop_nonfinite(pred)
    assert n == 2 and kept["record"].tolist() == ["a", "c"] and kept["prob"].tolist() == [0.2, 0.7]
    same, zero = evaluation.drop_nonfinite(kept)
    assert zero == 0 and same is kept


def test_targets_that_are_not_built_are_named_before_any_work(tmp_path_factory, tmp_path):
    data = builtdata.data_dir(tmp_path_factory)
    config = builtdata.make_config(data, eval_targets=f"{builtdata.NAME}:test, ptbxl_mi:all, sph_mi:test")
    problems = evaluation.missing_targets(config)
    assert len(problems) == 2
    assert problems[0].startswith("evaluation target ptbxl_mi: ")
    assert problems[1].startswith("evaluation target sph_mi: ")
    assert evaluation.missing_targets(builtdata.make_config(data, eval_targets=f"{builtdata.NAME}:all")) == []
