"""Tests of leadmix_jax.synthetic: the ECG generator and the three database writers.

The label rules are re-implemented here from docs/data.md (not
imported from the builders), so the writers are checked against the documented rules.
"""

from __future__ import annotations

import ast
import csv
import hashlib
import os
import re
from pathlib import Path

import h5py
import numpy as np
import pytest
import wfdb

from leadmix_jax import synthetic as syn
from leadmix_jax.synthetic import sph_writer
from leadmix_jax.data.leads import CANONICAL_LEADS

I, II, III, AVR, AVL, AVF = range(6)
TERRITORY_LEADS = {
    "inferior": ["II", "III", "aVF"],
    "anterior": ["V1", "V2", "V3", "V4"],
    "lateral": ["I", "aVL", "V5", "V6"],
}
PAPER_MI_CODES = {"IMI", "ASMI", "ILMI", "AMI", "ALMI"}


# ---------------------------------------------------------------- label rules


def ptb_label(comments: list[str], record: str, controls: set[str]) -> str:
    if "myocardial infarction" in " ".join(comments).lower():
        return "mi"
    return "normal" if record in controls else "other"


def ptbxl_label(codes: dict) -> str:
    if PAPER_MI_CODES & set(codes):
        return "mi"
    return "normal" if "NORM" in codes else "other"


def ptbxl_label_alt(codes: dict, classes: dict) -> str:
    cls = {classes[c] for c in codes if classes.get(c)}
    if "MI" in cls:
        return "mi"
    return "normal" if cls == {"NORM"} else "other"


def sph_label(code: str) -> str:
    parts = {p.strip() for p in re.split(r"[,;+]", code) if p.strip()}
    if any(p.startswith(("160", "161", "165", "166")) for p in parts):
        return "mi"
    return "normal" if parts == {"1"} else "other"


# ------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def dbs(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthdb")
    summaries = syn.write_all(root, seed=7, ptb_patients=7, ptbxl_records=40, sph_records=40)
    return root, summaries


def _tree_digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _st_level(x: np.ndarray, beats: np.ndarray, fs: float) -> np.ndarray:
    """Per-lead median over beats of x(R + 80 ms) - x(R - 60 ms) (PR baseline)."""
    b = beats[(beats > 0.1) & (beats < len(x) / fs - 0.15)]
    st = x[np.rint((b + 0.08) * fs).astype(int)] - x[np.rint((b - 0.06) * fs).astype(int)]
    return np.median(st, axis=0)


# ----------------------------------------------------------------- generator


def test_record_shape_dtype_and_plausible_amplitudes():
    x = syn.synth_record(np.random.default_rng(0), 500, 10, False)
    assert x.shape == (5000, 12) and x.dtype == np.float32
    assert np.isfinite(x).all()
    p2p = x.max(0) - x.min(0)
    assert (p2p > 0.1).all() and (p2p < 8.0).all()  # mV
    assert p2p[6:].max() > 0.8  # precordial QRS
    assert len(CANONICAL_LEADS) == x.shape[1]


@pytest.mark.parametrize(
    "mi,territory,cond",
    [
        (False, None, None),
        (True, None, None),
        (True, "anterior", "lvh"),
        (False, None, "af"),
        (False, None, "bbb"),
    ],
)
def test_limb_lead_identities(mi, territory, cond):
    x = syn.synth_record(np.random.default_rng(3), 250, 8, mi, territory, condition=cond)
    i, ii = x[:, I].astype(np.float64), x[:, II].astype(np.float64)
    tol = 1e-5
    np.testing.assert_allclose(x[:, III], ii - i, atol=tol)
    np.testing.assert_allclose(x[:, AVR], -(i + ii) / 2, atol=tol)
    np.testing.assert_allclose(x[:, AVL], i - ii / 2, atol=tol)
    np.testing.assert_allclose(x[:, AVF], ii - i / 2, atol=tol)


def test_determinism_and_seed_dependence():
    a = syn.synth_record(np.random.default_rng(42), 500, 10, True)
    b = syn.synth_record(np.random.default_rng(42), 500, 10, True)
    c = syn.synth_record(np.random.default_rng(43), 500, 10, True)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    np.testing.assert_array_equal(syn.synth_record(5, 500, 2, False), syn.synth_record(5, 500, 2, False))


def test_heart_rate_and_rr_variability():
    rng = np.random.default_rng(1)
    hrs = []
    for _ in range(30):
        _, info = syn.synthesize(rng, 500, 20, False)
        assert 55 <= info.hr <= 100
        rr = np.diff(info.beats)
        assert abs(60 / rr.mean() - info.hr) < 0.1 * info.hr
        assert rr.std() > 0  # not a metronome
        hrs.append(info.hr)
    assert np.ptp(hrs) > 15


def test_territory_drawn_at_random_and_validated():
    rng = np.random.default_rng(2)
    seen = {syn.synthesize(rng, 100, 3, True)[1].territory for _ in range(40)}
    assert seen == {"inferior", "anterior", "lateral"}
    assert syn.synthesize(rng, 100, 3, False)[1].territory is None
    with pytest.raises(ValueError):
        syn.synth_record(rng, 100, 3, True, "nowhere")
    with pytest.raises(ValueError):
        syn.synth_record(rng, 100, 3, False, condition="flu")


@pytest.mark.parametrize("territory", ["inferior", "anterior", "lateral"])
def test_mi_raises_st_in_territory_leads(territory):
    """A real signal property: on average MI records have a higher ST level in
    the territory's leads than normal ones, but the classes overlap (mild MI,
    normal variants), so the task is not trivial."""
    rng = np.random.default_rng(11)
    leads = [CANONICAL_LEADS.index(n) for n in TERRITORY_LEADS[territory]]
    st = {True: [], False: []}
    for mi in (True, False):
        for _ in range(30):
            x, info = syn.synthesize(rng, 500, 10, mi, territory if mi else None)
            st[mi].append(_st_level(x, info.beats, 500)[leads].mean())
    mi_st, norm_st = np.array(st[True]), np.array(st[False])
    assert mi_st.mean() - norm_st.mean() > 0.04
    assert abs(norm_st.mean()) < 0.05
    assert mi_st.min() < np.percentile(norm_st, 90)  # overlap: some MI are mild


def test_mi_t_inversion_and_q_wave_in_recent_stage():
    rng = np.random.default_rng(5)
    fs = 500
    for _ in range(5):
        xm, im = syn.synthesize(rng, fs, 10, True, "anterior", stage="recent", noise=0, severity=1.0)
        xn, inn = syn.synthesize(rng, fs, 10, False, noise=0)
        v = [CANONICAL_LEADS.index(n) for n in ("V2", "V3")]

        def t_amp(x, beats):
            b = beats[(beats > 0.1) & (beats < 9.5)]
            win = np.rint((b[:, None] + np.linspace(0.18, 0.32, 15)) * fs).astype(int)
            seg = x[win][:, :, v] - x[np.rint((b - 0.06) * fs).astype(int)][:, None, v]
            return np.median(seg.mean(axis=1), axis=0).mean()

        assert t_amp(xm, im.beats) < t_amp(xn, inn.beats)
        assert im.q_mv > 0 and im.t_inv_mv > 0


def test_synth_record_is_seeded_finite_and_in_millivolts():
    """Same seed, same record; MI and normal records differ; amplitudes are
    those of a surface ECG in mV (speed belongs in bench/, not in a test)."""
    a = syn.synth_record(np.random.default_rng(7), 500, 10, True)
    b = syn.synth_record(np.random.default_rng(7), 500, 10, True)
    c = syn.synth_record(np.random.default_rng(7), 500, 10, False)
    assert a.shape == (5000, 12) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert np.isfinite(a).all()
    peak = np.abs(a).max(axis=0)
    assert (peak > 0.05).all() and (peak < 10.0).all(), peak


# ----------------------------------------------------------------------- PTB


def test_ptb_layout_and_readback(dbs):
    root, s = dbs
    ptb = root / "ptb"
    recs = (ptb / "RECORDS").read_text().splitlines()
    controls = set((ptb / "CONTROLS").read_text().splitlines())
    assert len(recs) == s["ptb"]["n_records"] and controls <= set(recs)
    assert s["ptb"]["n_patients"] < len(recs)  # some patients have several
    assert all(re.fullmatch(r"patient\d{3}/s\d{4}(_re|lre)", r) for r in recs)
    summary = {r["record"]: r for r in s["ptb"]["records"]}
    n_xyz = n_missing_xyz = 0
    for rec in recs:
        path = ptb / rec
        hdr = wfdb.rdheader(str(path))
        assert hdr.n_sig == 15 and hdr.fs == 1000
        assert hdr.sig_name == [
            "i",
            "ii",
            "iii",
            "avr",
            "avl",
            "avf",
            "v1",
            "v2",
            "v3",
            "v4",
            "v5",
            "v6",
            "vx",
            "vy",
            "vz",
        ]
        assert hdr.fmt == ["16"] * 15 and hdr.adc_gain == [2000.0] * 15
        assert 30 * 1000 <= hdr.sig_len <= 60 * 1000
        raw = path.with_suffix(".hea").read_bytes()
        assert (b"\r\n" in raw) == rec.endswith("_re")  # CRLF in _re, LF in lre
        assert hdr.comments[0].startswith("age: ") and hdr.comments[1] in ("sex: male", "sex: female")
        assert any(c.startswith("Reason for admission: ") for c in hdr.comments)
        sig, fields = wfdb.rdsamp(str(path), channels=list(range(12)))
        assert sig.shape == (hdr.sig_len, 12) and fields["fs"] == 1000
        assert fields["units"] == ["mV"] * 12
        np.testing.assert_allclose(sig[:, III], sig[:, II] - sig[:, I], atol=1.01 / 2000)
        if path.with_suffix(".xyz").exists():
            n_xyz += 1
            full, f15 = wfdb.rdsamp(str(path))
            assert full.shape == (hdr.sig_len, 15) and f15["sig_name"][12:] == ["vx", "vy", "vz"]
        else:
            n_missing_xyz += 1
        assert ptb_label(hdr.comments, rec, controls) == summary[rec]["label"]
    assert n_xyz > 0 and n_missing_xyz > 0
    labels = s["ptb"]["labels"]
    assert labels["mi"] > 0 and labels["normal"] > 0 and labels["other"] > 0


def test_ptb_other_diagnoses_and_alt_label():
    """Cardiomyopathy & co. are excluded; a non-MI admission that mentions an
    old myocardial infarction is MI only under the paper's text rule."""
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        s = syn.write_ptb(d, 12, seed=3, seconds=(30.0, 31.0), p_xyz=0.0, noise=0.5)
        reasons = {r["reason"] for r in s["records"]}
        assert {"Myocardial infarction", "Healthy control"} <= reasons
        assert reasons & {
            "Cardiomyopathy",
            "Bundle branch block",
            "Myocardial hypertrophy",
            "Dysrhythmia",
            "Valvular heart disease",
            "Myocarditis",
        }
        for r in s["records"]:
            alt = {"Myocardial infarction": "mi", "Healthy control": "normal"}.get(r["reason"], "other")
            assert r["label_alt"] == alt
        assert any(r["label"] == "mi" and r["label_alt"] == "other" for r in s["records"])
        assert not list(Path(d).rglob("*.xyz"))


# -------------------------------------------------------------------- PTB-XL


def _read_ptbxl(root: Path):
    with open(root / "ptbxl_database.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    with open(root / "scp_statements.csv", newline="", encoding="utf-8") as fh:
        scp = list(csv.reader(fh))
    return rows, scp


def test_ptbxl_csv_columns_and_labels(dbs):
    root, s = dbs
    rows, scp = _read_ptbxl(root / "ptbxl")
    assert tuple(rows[0].keys()) == syn.PTBXL_COLUMNS
    assert tuple(scp[0]) == syn.SCP_COLUMNS and scp[0][0] == ""
    classes = {r[0]: r[5] for r in scp[1:]}
    for code in ("IMI", "ASMI", "ILMI", "AMI", "ALMI", "LMI", "PMI", "IPLMI", "INJAS"):
        assert classes[code] == "MI"
    assert classes["NORM"] == "NORM" and classes["LVH"] == "HYP" and classes["NDT"] == "STTC"
    assert classes["CLBBB"] == "CD" and classes["SR"] == ""
    summary = {r["ecg_id"]: r for r in s["ptbxl"]["records"]}
    fold_of: dict[str, str] = {}
    for row in rows:
        assert re.fullmatch(r"\d+\.0", row["patient_id"])
        codes = ast.literal_eval(row["scp_codes"])
        assert isinstance(codes, dict) and set(codes) <= set(classes)
        assert all(isinstance(v, float) and 0 <= v <= 100 for v in codes.values())
        e = int(row["ecg_id"])
        assert row["filename_lr"] == f"records100/{e // 1000 * 1000:05d}/{e:05d}_lr"
        assert row["filename_hr"] == f"records500/{e // 1000 * 1000:05d}/{e:05d}_hr"
        assert 1 <= int(row["strat_fold"]) <= 10
        assert fold_of.setdefault(row["patient_id"], row["strat_fold"]) == row["strat_fold"]
        assert row["sex"] in ("0", "1") and re.fullmatch(r"\d+\.0", row["age"])
        assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", row["recording_date"])
        lab = ptbxl_label(codes)
        assert lab == summary[e]["label"]
        assert ptbxl_label_alt(codes, classes) == summary[e]["label_alt"]
        if lab == "mi":
            assert PAPER_MI_CODES & set(codes)
    assert len(fold_of) < len(rows)  # repeated patients
    lab = s["ptbxl"]["labels"]
    assert lab["mi"] > 0 and lab["normal"] > 0 and lab["other"] > 0


def test_ptbxl_label_edge_cases_present(dbs):
    recs = dbs[1]["ptbxl"]["records"]
    assert any(r["label"] == "other" and r["label_alt"] == "mi" for r in recs)  # LMI, PMI
    assert any(r["label"] == "normal" and r["label_alt"] == "other" for r in recs)
    assert any(
        r["label"] == "mi" and any(v == 0.0 for c, v in r["scp_codes"].items() if c in PAPER_MI_CODES)
        for r in recs
    )
    assert {r["strat_fold"] for r in recs} == set(range(1, 11))


def test_ptbxl_wfdb_readback(dbs):
    root, s = dbs
    rows, _ = _read_ptbxl(root / "ptbxl")
    for row in rows[:12]:
        hr, fh = wfdb.rdsamp(str(root / "ptbxl" / row["filename_hr"]))
        lr, fl = wfdb.rdsamp(str(root / "ptbxl" / row["filename_lr"]))
        assert hr.shape == (5000, 12) and fh["fs"] == 500
        assert lr.shape == (1000, 12) and fl["fs"] == 100
        names = ["I", "II", "III", "AVR", "AVL", "AVF", "V1", "V2", "V3", "V4", "V5", "V6"]
        assert fh["sig_name"] == names and fl["sig_name"] == names
        assert fh["units"] == ["mV"] * 12 and fl["units"] == ["mV"] * 12
        h = wfdb.rdheader(str(root / "ptbxl" / row["filename_hr"]))
        assert h.fmt == ["16"] * 12 and h.adc_gain == [1000.0] * 12
        np.testing.assert_allclose(hr[:, III], hr[:, II] - hr[:, I], atol=1.01e-3)
        np.testing.assert_allclose(lr[:, AVF], lr[:, II] - lr[:, I] / 2, atol=1.51e-3)
        # the 100 Hz record is the same signal downsampled
        for c in range(12):
            assert np.corrcoef(lr[10:-10, c], hr[::5][10:-10, c])[0, 1] > 0.8


# ----------------------------------------------------------------------- SPH


def test_sph_layout_and_labels(dbs):
    root, s = dbs
    sph = root / "sph"
    with open(sph / "metadata.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert tuple(rows[0].keys()) == syn.SPH_COLUMNS
    summary = {r["ecg_id"]: r for r in s["sph"]["records"]}
    for row in rows:
        assert re.fullmatch(r"A\d{5}", row["ECG_ID"]) and re.fullmatch(r"S\d{5}", row["Patient_ID"])
        assert row["Sex"] in ("M", "F") and re.fullmatch(r"\d{4}-\d\d-\d\d", row["Date"])
        n = int(row["N"])
        assert 5000 <= n <= 30000
        with h5py.File(sph / "records" / f"{row['ECG_ID']}.h5", "r") as f:
            assert list(f.keys()) == ["ecg"]
            x = f["ecg"][()]
        assert x.shape == (12, n) and x.dtype == np.float32
        np.testing.assert_allclose(x[III], x[II] - x[I], atol=1e-5)
        assert sph_label(row["AHA_Code"]) == summary[row["ECG_ID"]]["label"]
    n_long = sum(int(r["N"]) > 5000 for r in rows)
    assert sum(int(r["N"]) == 5000 for r in rows) > n_long
    codes = {r["AHA_Code"]: sph_label(r["AHA_Code"]) for r in rows}
    assert codes["50+161"] == "mi" and codes["165;22"] == "mi" and codes["166+332;146"] == "mi"
    assert codes["162"] == "other" and codes["163+332"] == "other" and codes["1"] == "normal"
    lab = s["sph"]["labels"]
    assert lab["mi"] > 0 and lab["normal"] > 0 and lab["other"] > 0
    assert len({r["Patient_ID"] for r in rows}) == s["sph"]["n_patients"]


def test_sph_rule_edge_cases():
    assert sph_label("50+161") == "mi" and sph_writer._sph_label("50+161") == "mi"
    for code, lab in [
        ("1", "normal"),
        ("1;22", "other"),
        ("22;23", "other"),
        ("165;22", "mi"),
        ("166+332;146", "mi"),
        ("162", "other"),
        ("163+332", "other"),
        ("160", "mi"),
    ]:
        assert sph_writer._sph_label(code) == sph_label(code) == lab


# --------------------------------------------------------------- determinism


def test_writers_are_deterministic(tmp_path):
    for sub in ("a", "b"):
        syn.write_ptb(tmp_path / sub / "ptb", 2, seed=9, seconds=(30.0, 30.5))
        syn.write_ptbxl(tmp_path / sub / "ptbxl", 6, seed=9)
        syn.write_sph(tmp_path / sub / "sph", 6, seed=9)
    syn.write_ptbxl(tmp_path / "c" / "ptbxl", 6, seed=10)
    a, b = _tree_digest(tmp_path / "a"), _tree_digest(tmp_path / "b")
    assert a == b and len(a) > 20
    c = _tree_digest(tmp_path / "c")
    assert c["ptbxl/ptbxl_database.csv"] != a["ptbxl/ptbxl_database.csv"]


# ------------------------------------------------- against the real formats

REAL = os.environ.get("LEADMIX_REAL_DATA")


@pytest.mark.skipif(not REAL, reason="LEADMIX_REAL_DATA not set")
def test_formats_match_real_files(dbs):
    root, _ = dbs
    real = Path(REAL)
    first = lambda p: p.read_text(encoding="utf-8").splitlines()[0]  # noqa: E731
    assert first(real / "ptbxl/ptbxl_database.csv") == first(root / "ptbxl/ptbxl_database.csv")
    assert first(real / "ptbxl/scp_statements.csv") == first(root / "ptbxl/scp_statements.csv")
    assert first(real / "sph/metadata.csv") == first(root / "sph/metadata.csv")
    rh = wfdb.rdheader(str(real / "ptbxl/records500/00000/00001_hr"))
    sh = wfdb.rdheader(str(root / "ptbxl/records500/00000/00001_hr"))
    for attr in (
        "n_sig",
        "fs",
        "sig_len",
        "sig_name",
        "fmt",
        "adc_gain",
        "units",
        "baseline",
        "adc_res",
        "adc_zero",
    ):
        assert getattr(rh, attr) == getattr(sh, attr), attr
    rp = wfdb.rdheader(str(real / "ptbdb/patient001/s0010_re"))
    rec = (root / "ptb/RECORDS").read_text().splitlines()[0]
    sp = wfdb.rdheader(str(root / "ptb" / rec))
    for attr in ("n_sig", "fs", "sig_name", "fmt", "adc_gain", "units", "adc_res", "adc_zero"):
        assert getattr(rp, attr) == getattr(sp, attr), attr
    keys = lambda h: [c.split(":")[0] for c in h.comments if ":" in c][:6]  # noqa: E731
    assert keys(rp) == keys(sp)
