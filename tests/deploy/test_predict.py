"""Single-record prediction: real PTB-XL record, synthetic WFDB (PTB layout
with an absent .xyz), SPH-style HDF5 and .npy inputs; missing-lead errors."""

import json
import os
import re
import pathlib

import h5py
import numpy as np
import pytest

import builtdata
from runs import launch
from leadmix_jax.deploy import predict
from leadmix_jax import synthetic as synthetic
from leadmix_jax.data.leads import CANONICAL_LEADS
from leadmix_jax.evaluate import restore


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return builtdata.trained_workdir(tmp_path_factory)


@pytest.fixture(scope="module")
def signal():
    # 25 s at 500 Hz: two full windows and a remainder that is dropped
    return synthetic.synth_record(np.random.default_rng(7), 500, 25, True)


def check_result(result, workdir, n_windows):
    assert result["leads"] == ["II", "III", "aVF"]
    assert result["num_windows"] == n_windows and len(result["windows"]) == n_windows
    probs = [w["probability"] for w in result["windows"]]
    assert all(0.0 <= p <= 1.0 for p in probs)
    assert result["record_probability"] == pytest.approx(float(np.mean(probs)), abs=1e-6)
    assert result["prediction"] in ("MI", "normal")
    assert [w["start_s"] for w in result["windows"]] == [10.0 * i for i in range(n_windows)]
    js, png = pathlib.Path(result["json"]), pathlib.Path(result["png"])
    assert js.parent == pathlib.Path(workdir) / "predictions" and png.parent == js.parent
    assert json.loads(js.read_text())["record_probability"] == result["record_probability"]
    assert png.read_bytes()[:4] == b"\x89PNG"
    return probs


@pytest.mark.slow
def test_real_ptbxl_record(workdir):
    root = os.environ.get("LEADMIX_REAL_DATA")
    if not root:
        pytest.skip("LEADMIX_REAL_DATA is not set")
    path = pathlib.Path(root) / "ptbxl/records500/00000/00001_hr"
    result = predict.predict_record(workdir, str(path) + ".hea")
    check_result(result, workdir, 1)
    assert result["fs"] == 500.0 and result["duration_s"] == pytest.approx(10.0)
    # the record path without extension works too
    again = predict.predict_record(workdir, str(path), write=False)
    assert again["record_probability"] == pytest.approx(result["record_probability"], abs=1e-6)


@pytest.mark.slow
def test_wfdb_hdf5_npy_agree(workdir, signal, tmp_path, capsys):
    # PTB layout: lower-case names, header lists .xyz channels whose file is absent
    xyz = signal[:, :3]
    synthetic.write_wfdb(
        tmp_path,
        "s0001_re",
        [
            ("s0001_re.dat", signal, [n.lower() for n in CANONICAL_LEADS]),
            ("s0001_re.xyz", xyz, ["vx", "vy", "vz"]),
        ],
        500,
        "2000",
        2000.0,
        comments=["Reason for admission: Myocardial infarction"],
        write_files={"s0001_re.dat"},
    )
    assert not (tmp_path / "s0001_re.xyz").exists()
    wfdb_res = predict.predict_record(workdir, str(tmp_path / "s0001_re.hea"))
    probs = check_result(wfdb_res, workdir, 2)
    assert "record P(MI)" in capsys.readouterr().out

    with h5py.File(tmp_path / "A00001.h5", "w") as f:
        f.create_dataset("ecg", data=signal.T)  # SPH layout (12, N), 500 Hz, canonical order
    h5_res = predict.predict_record(workdir, str(tmp_path / "A00001.h5"))
    check_result(h5_res, workdir, 2)

    # npy with only the needed leads, in another order and case
    cols = [CANONICAL_LEADS.index(n) for n in ("aVF", "II", "III")]
    np.save(tmp_path / "rec.npy", signal[:, cols])
    npy_res = predict.predict_record(workdir, str(tmp_path / "rec.npy"), fs=500, lead_names="avf,ii,III")
    check_result(npy_res, workdir, 2)

    # same signal (WFDB is digitised at 2000/mV): same probabilities
    np.testing.assert_allclose([w["probability"] for w in h5_res["windows"]], probs, atol=2e-3)
    np.testing.assert_allclose(
        [w["probability"] for w in npy_res["windows"]],
        [w["probability"] for w in h5_res["windows"]],
        atol=1e-5,
    )


@pytest.mark.slow
def test_missing_leads_are_named(workdir, signal, tmp_path):
    np.save(tmp_path / "two.npy", signal[:, [0, 1]])
    with pytest.raises(ValueError, match=r"lacks lead\(s\) III, aVF needed by the checkpoint"):
        predict.predict_record(workdir, str(tmp_path / "two.npy"), fs=500, lead_names=["I", "II"])
    synthetic.write_wfdb(
        tmp_path,
        "limbless",
        [("limbless.dat", signal[:, 6:], list(CANONICAL_LEADS[6:]))],
        500,
        "1000.0(0)/mV",
        1000.0,
    )
    with pytest.raises(ValueError, match=r"lacks lead\(s\) II, III, aVF"):
        predict.predict_record(workdir, str(tmp_path / "limbless.hea"))


@pytest.mark.slow
def test_bad_inputs(workdir, signal, tmp_path):
    np.save(tmp_path / "x.npy", signal)
    with pytest.raises(ValueError, match="sampling rate and lead names"):
        predict.predict_record(workdir, str(tmp_path / "x.npy"))
    short = signal[:2000]  # 4 s: no 10-s window
    np.save(tmp_path / "short.npy", short)
    res = predict.predict_record(
        workdir, str(tmp_path / "short.npy"), fs=500, lead_names=list(CANONICAL_LEADS)
    )
    assert res["windows"] == [] and res["record_probability"] is None


@pytest.mark.slow
def test_command_line(workdir, signal, tmp_path):
    with h5py.File(tmp_path / "B00002.h5", "w") as f:
        f.create_dataset("ecg", data=signal.T)
    out = launch("--mode=predict", f"--workdir={workdir}", f"--record={tmp_path / 'B00002.h5'}")
    assert out.returncode == 0, out.stderr[-3000:]
    assert "record P(MI)" in out.stdout
    assert (pathlib.Path(workdir) / "predictions" / "B00002.h5.json").exists()
    assert "validation Youden" in out.stdout and "Traceback" not in out.stderr


@pytest.mark.slow
def test_same_stem_outputs_stay_apart_and_validation_threshold_is_default(workdir, signal, tmp_path):

    with h5py.File(tmp_path / "x.h5", "w") as f:
        f.create_dataset("ecg", data=signal.T)
    np.save(tmp_path / "x.npy", signal)
    h5 = predict.predict_record(workdir, str(tmp_path / "x.h5"))
    npy = predict.predict_record(workdir, str(tmp_path / "x.npy"), fs=500, lead_names=list(CANONICAL_LEADS))
    assert pathlib.Path(h5["json"]).name == "x.h5.json" and pathlib.Path(npy["json"]).name == "x.npy.json"
    assert pathlib.Path(h5["png"]).name == "x.h5.png" and pathlib.Path(npy["png"]).name == "x.npy.png"
    assert json.loads(pathlib.Path(h5["json"]).read_text())["record"].endswith("x.h5")
    # the checkpoint's validation (Youden) threshold decides, both are reported
    val = restore.restore(workdir, "best").val_threshold
    assert val is not None and 0.0 <= val <= 1.0
    assert h5["threshold"] == pytest.approx(val) and h5["threshold_name"] == "val_youden"
    assert h5["thresholds"] == {"0.5": 0.5, "val_youden": pytest.approx(val)}
    assert h5["prediction"] == ("MI" if h5["record_probability"] > val else "normal")
    at_half = predict.predict_record(workdir, str(tmp_path / "x.h5"), threshold="0.5", write=False)
    assert at_half["threshold"] == 0.5
    assert at_half["prediction"] == ("MI" if at_half["record_probability"] > 0.5 else "normal")
    with pytest.raises(ValueError, match="outside"):
        predict.predict_record(workdir, str(tmp_path / "x.h5"), threshold="1.5", write=False)


def test_pth_with_pickled_objects_is_refused_in_plain_words(tmp_path):
    torch = pytest.importorskip("torch", reason="the .pth loader needs the torch extra")
    from leadmix_jax.model import torch_import

    evil = tmp_path / "model.pth"
    torch.save({"stem.0.weight": pathlib.Path("/")}, evil)
    with pytest.raises(
        ValueError, match=r"is not a plain PyTorch weights file.*torch.save\(model.state_dict\(\)"
    ):
        torch_import.load_state_dict(str(evil))


def _npy_with_a_huge_lead(tmp_path, signal):
    x = np.asarray(signal[:, [1, 2, 5]], np.float64)  # II, III, aVF (canonical columns 1, 2, 5)
    x[:, 1] *= 1e30  # lead III x1e30: finite, absurd
    np.save(tmp_path / "huge.npy", x)
    return str(tmp_path / "huge.npy")


@pytest.mark.slow
def test_an_absurd_lead_is_never_a_diagnosis(workdir, signal, tmp_path):
    """One lead x1e30 used to print 'record P(MI) = nan -> normal' and exit 0.
    With the clean rule's amplitude check every window is unusable (the
    reason names the amplitude); with the check off, the model's output is
    non-finite and the window is unusable all the same. No prediction either way."""
    path = _npy_with_a_huge_lead(tmp_path, signal)
    result = predict.predict_record(workdir, path, fs=500, lead_names="II,III,aVF", write=False)
    assert result["prediction"] is None and result["record_probability"] is None and result["windows"] == []
    assert [w["window"] for w in result["unusable_windows"]] == [0, 1]
    for w in result["unusable_windows"]:  # the filtered peak of a x1e30 lead
        assert re.fullmatch(r"implausible amplitude \(largest \|x\| [\d.]+e\+(29|30) mV\)", w["reason"]), w
    unchecked = predict.predict_record(
        workdir, path, fs=500, lead_names="II,III,aVF", write=False, amplitude_range=None
    )
    assert unchecked["prediction"] is None and unchecked["windows"] == []
    assert {w["reason"] for w in unchecked["unusable_windows"]} == {"non-finite model output"}
    assert "no usable 10-s window, no prediction" in predict.format_result(unchecked)


@pytest.mark.slow
def test_no_prediction_exits_3_with_one_line(workdir, signal, tmp_path):
    path = _npy_with_a_huge_lead(tmp_path, signal)
    out = launch(
        "--mode=predict", f"--workdir={workdir}", f"--record={path}", "--fs=500", "--lead_names=II,III,aVF"
    )
    assert out.returncode == 3, out.stderr[-2000:]
    assert "-> normal" not in out.stdout and "-> MI" not in out.stdout
    assert "window   0 unusable: implausible amplitude" in out.stdout
    (line,) = [ln for ln in out.stderr.splitlines() if ln.startswith("error:")]
    assert "no usable 10-s window, so no prediction" in line and "Traceback" not in out.stderr
