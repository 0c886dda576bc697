"""--mode=explain (leadmix_jax/workflows/explain.py) and calibration through
evaluation, prediction and the explain option of predict, on a small trained checkpoint."""

import csv
import json
import pathlib

import h5py
import numpy as np
import pytest

import builtdata
from leadmix_jax import synthetic
from leadmix_jax.evaluate import calibration
from leadmix_jax.workflows import explain, modes


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    workdir, result = builtdata.evaluated_workdir(tmp_path_factory)
    config = builtdata.make_config(builtdata.data_dir(tmp_path_factory))
    config.explain.ig_steps, config.explain.smooth_samples = 16, 4
    return workdir, result, config


@pytest.fixture(scope="module")
def record(tmp_path_factory):
    path = tmp_path_factory.mktemp("record") / "B00007.h5"
    with h5py.File(path, "w") as fh:  # SPH layout: (12, N) float32 in mV, 500 Hz
        fh.create_dataset("ecg", data=synthetic.synth_record(np.random.default_rng(7), 500, 25, True).T)
    return str(path)


@pytest.mark.slow
def test_a_record_gets_a_figure_and_an_importance_for_every_lead(evaluated, record):
    workdir, _, config = evaluated
    out = explain.run(config, workdir, record)["record"]
    assert pathlib.Path(out["png"]).read_bytes()[:4] == b"\x89PNG"
    saved = json.loads(pathlib.Path(out["json"]).read_text())
    assert saved["leads"] == ["II", "III", "aVF"] and len(saved["windows"]) == 2  # 25 s: two windows
    for entry in [saved] + saved["windows"]:
        assert set(entry["lead_importance"]) == {"II", "III", "aVF"}
        assert sum(entry["lead_importance"].values()) == pytest.approx(1.0)
    top = saved["windows"][0]["top_segments"]
    assert len(top) == 5 and all(
        s["lead"] in saved["leads"] and s["end_s"] - s["start_s"] == pytest.approx(0.2) for s in top
    )
    assert saved["prediction"] in ("MI", "normal") and saved["method"] == "integrated_gradients"


@pytest.mark.slow
def test_a_split_gives_the_mean_importance_by_class(evaluated):
    workdir, _, config = evaluated
    config.explain.split, config.explain.method, config.explain.max_windows = (
        f"{builtdata.NAME}:test",
        "grad_cam",
        0,
    )
    try:
        out = explain.run(config, workdir)["split"]
    finally:
        config.explain.split = ""
    assert out["windows"] == builtdata.num_windows("test")
    with open(out["csv"]) as fh:
        rows = list(csv.DictReader(fh))
    assert {r["class"] for r in rows} == {"mi", "normal"}
    assert sum(int(r["windows"]) for r in rows) == out["windows"]
    for r in rows:
        assert sum(float(r[lead]) for lead in ("II", "III", "aVF")) == pytest.approx(1.0, abs=1e-3)


@pytest.mark.slow
def test_evaluation_fits_the_temperature_and_prediction_applies_it(evaluated, record, capsys):
    workdir, result, config = evaluated
    fitted = calibration.load(workdir, result["step"])
    assert fitted and fitted["temperature"] > 0
    assert (
        fitted["calibrated"]["ece"] <= fitted["raw"]["ece"] + 1e-12
    )  # on the validation windows it was fitted on
    summary = (pathlib.Path(result["out_dir"]) / "summary.md").read_text()
    assert "ECE" in summary and "calibrated" in summary
    target = result["results"][f"{builtdata.NAME}:test"]["calibration"]
    assert set(target) == {"temperature", "raw", "calibrated"} and len(target["raw"]["bins"]) == 10
    config.predict.explain = True
    try:
        out = modes.predict(config, workdir, modes.Inputs(record=record))
    finally:
        config.predict.explain = False
    assert out["temperature"] == pytest.approx(fitted["temperature"])
    want = float(
        np.mean(
            [calibration.apply_temperature(w["probability"], fitted["temperature"]) for w in out["windows"]]
        )
    )
    assert out["calibrated_probability"] == pytest.approx(want)
    assert "calibrated P(MI)" in capsys.readouterr().out
    assert (pathlib.Path(workdir) / "explain" / "B00007.h5.png").exists()  # predict's explain option
