"""Calibration (leadmix_jax/evaluate/calibration.py): ECE, temperature scaling."""

import numpy as np
import pytest

from leadmix_jax.evaluate import calibration


def test_ece_of_a_hand_computed_example():
    labels = np.array([0, 0, 1, 1, 1])
    probs = np.array([0.05, 0.15, 0.12, 0.95, 0.91])
    # bin 0: p 0.05 (y 0); bin 1: p 0.15, 0.12 (y 0, 1); bin 9: p 0.95, 0.91 (y 1, 1)
    want = 1 / 5 * 0.05 + 2 / 5 * abs(0.5 - 0.135) + 2 / 5 * abs(1 - 0.93)
    assert calibration.ece(labels, probs) == pytest.approx(want)
    rel = calibration.reliability(labels, probs)
    assert [b["n"] for b in rel["bins"]] == [1, 2, 0, 0, 0, 0, 0, 0, 0, 2]
    assert np.isnan(calibration.ece([], []))


def test_temperature_recovers_an_overconfident_models_scale():
    rng = np.random.default_rng(0)
    z = rng.normal(0, 3, 20000)  # the true logits
    labels = (rng.random(z.size) < 1 / (1 + np.exp(-z))).astype(float)
    overconfident = 1 / (1 + np.exp(-2.5 * z))  # logits 2.5x too large
    fitted = calibration.fit_temperature(labels, overconfident)
    assert fitted["temperature"] == pytest.approx(2.5, rel=0.05)
    assert fitted["calibrated"]["ece"] < fitted["raw"]["ece"] / 3
    assert fitted["calibrated"]["nll"] < fitted["raw"]["nll"]
    calibrated = calibration.apply_temperature(overconfident, fitted["temperature"])
    assert np.all(np.diff(calibrated[np.argsort(overconfident)]) >= 0)  # the ranking (AUROC) is kept


def test_one_class_keeps_the_identity_and_files_round_trip(tmp_path):
    fitted = calibration.fit_temperature(np.zeros(10), np.linspace(0.1, 0.4, 10))
    assert fitted["temperature"] == 1.0
    calibration.save(str(tmp_path), 7, {**fitted, "temperature": 1.7})
    assert calibration.load(str(tmp_path), 7)["temperature"] == 1.7
    assert calibration.load(str(tmp_path), 8) is None
    (tmp_path / "calibration" / "9.json").write_text("garbage")
    assert calibration.load(str(tmp_path), 9) is None  # unreadable: uncalibrated, not a crash
