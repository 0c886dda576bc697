"""Readers (leadmix_jax.data.records), bad records, build reports and built examples."""

import json
import re
import os
import shutil
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import tensorflow_datasets as tfds
import wfdb

import runs
from leadmix_jax.data.build import builder as build_lib, databases, task
from leadmix_jax.data import preprocessing, records
from leadmix_jax import synthetic as synthetic
from leadmix_jax.data.leads import CANONICAL_LEADS, reorder_to_canonical
from leadmix_jax.input import built

REAL = os.environ.get("LEADMIX_REAL_DATA")
needs_real = pytest.mark.skipif(not REAL, reason="LEADMIX_REAL_DATA not set")
REPO = Path(__file__).resolve().parents[2]
DUMMY = {name: REPO / "datasets" / name / "dummy_data" for name in ("ptbdb_mi", "ptbxl_mi", "sph_mi")}


def _build(name, src, out, config="paper", workers=1, file_format=None):
    builder = databases.builder_class(name)(
        data_dir=str(out), config=config, num_workers=workers, file_format=file_format
    )
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=str(src)))
    report = json.loads((Path(builder.data_dir) / build_lib.REPORT_NAME).read_text())
    return builder, report


def _examples(builder, split):
    src = builder.as_data_source(split=split)
    return [src[i] for i in range(len(src))]


def _raw_canonical(record_path, channels=None):
    """Independent read: wfdb.rdrecord + lead names -> canonical order."""
    rec = wfdb.rdrecord(str(record_path), channels=channels)
    return rec.p_signal[:, reorder_to_canonical(rec.sig_name)], rec.fs


# ---------------------------------------------------------------------------
# readers


def test_read_wfdb_any_lead_order_and_case(tmp_path):
    sig = synthetic.synth_record(np.random.default_rng(0), 500, 10.0, True, "inferior")
    perm = [11, 3, 0, 7, 1, 9, 2, 4, 10, 5, 8, 6]
    names = ["v6", "AVR", "i", "V2", "Ii", "V4", "III", "aVl", "v5", "avf", "v3", "V1"]
    assert [CANONICAL_LEADS[p].lower() for p in perm] == [n.lower() for n in names]
    synthetic.write_wfdb(tmp_path, "r", [("r.dat", sig[:, perm], names)], 500, "1000", 1000.0)
    out, fs, header = records.read_wfdb(tmp_path / "r", expected_fs=500)
    assert fs == 500 and out.shape == (5000, 12) and out.dtype == np.float64
    np.testing.assert_allclose(out, sig, atol=0.5e-3 + 1e-9)
    with pytest.raises(records.RecordError) as err:
        records.read_wfdb(tmp_path / "r", expected_fs=1000)
    assert err.value.reason == "wrong_sampling_rate"


def test_read_ptb_style_record_without_xyz(tmp_path):
    synthetic.write_ptb(tmp_path, 3, seed=1, p_xyz=0.0, seconds=(10.5, 11.0))
    name = (tmp_path / "RECORDS").read_text().split()[0]
    out, fs, header = records.read_wfdb(tmp_path / name, expected_fs=1000)
    assert not (tmp_path / name).with_suffix(".xyz").exists()
    assert header.sig_name[-3:] == ("vx", "vy", "vz") and out.shape[1] == 12
    raw, _ = _raw_canonical(tmp_path / name, channels=list(range(12)))
    np.testing.assert_array_equal(out, raw)


def test_read_sph_h5(tmp_path):
    sig = synthetic.synth_record(np.random.default_rng(0), 500, 12.0, False)
    with h5py.File(tmp_path / "A1.h5", "w") as fh:
        fh.create_dataset("ecg", data=sig.T)
    out = records.read_sph_h5(tmp_path / "A1.h5", 6000)
    np.testing.assert_array_equal(out, sig.astype(np.float64))
    for n, reason in ((7000, "truncated_signal"), (5000, "header_mismatch")):
        with pytest.raises(records.RecordError) as err:
            records.read_sph_h5(tmp_path / "A1.h5", n)
        assert err.value.reason == reason


def test_process_record_never_raises(tmp_path):
    missing = task.RecordTask(
        "x", "p", "mi", 1, "", float("nan"), "", "wfdb", str(tmp_path / "nothing"), 500.0
    )
    res = task.process_record(missing)
    assert not res.ok and res.reason == "missing_signal_file"
    res = task.process_record(task.RecordTask("x", "p", "mi", 1, "", 0.0, "", "bogus", "", 500.0))
    assert res.reason == "processing_error" and "bogus" in res.detail


# ---------------------------------------------------------------------------
# small source databases with one bad record each


def _ptbxl_row(ecg_id, pid, codes, fold):
    row = {c: "" for c in synthetic.PTBXL_COLUMNS}
    row.update(
        ecg_id=str(ecg_id),
        patient_id=f"{pid:.1f}",
        age="50.0",
        sex="0",
        scp_codes=repr(codes),
        strat_fold=str(fold),
        filename_lr=f"records100/00000/{ecg_id:05d}_lr",
        filename_hr=f"records500/00000/{ecg_id:05d}_hr",
    )
    return row


def _ptbxl_record(root, ecg_id, seconds=10.0, fs=500, mi=False, leads=None, sig=None):
    if sig is None:
        sig = synthetic.synth_record(
            np.random.default_rng(ecg_id), fs, seconds, mi, "anterior" if mi else None
        )
    synthetic.write_wfdb(
        root / "records500/00000",
        f"{ecg_id:05d}_hr",
        [(f"{ecg_id:05d}_hr.dat", sig, list(leads or synthetic.PTBXL_LEADS))],
        fs,
        "1000.0(0)/mV",
        1000.0,
    )


def _write_ptbxl_csv(root, rows):
    pd.DataFrame(rows, columns=list(synthetic.PTBXL_COLUMNS)).to_csv(root / "ptbxl_database.csv", index=False)


@pytest.fixture(scope="module")
def ptbxl_base(tmp_path_factory):
    """3 good records: train (MI), validation, test; bad ones get ecg_id 9, fold 2."""
    root = tmp_path_factory.mktemp("ptbxl_base")
    rows = [
        _ptbxl_row(1, 11.0, {"IMI": 100.0}, 1),
        _ptbxl_row(2, 12.0, {"NORM": 100.0}, 9),
        _ptbxl_row(3, 13.0, {"NORM": 100.0}, 10),
    ]
    for i in (1, 2, 3):
        _ptbxl_record(root, i, mi=i == 1)
    _write_ptbxl_csv(root, rows)
    return root, rows


def _flat(root, i):
    sig = synthetic.synth_record(np.random.default_rng(i), 500, 20.0, False)
    sig[:, 4] = 0.25  # aVL disconnected: flat in every window
    _ptbxl_record(root, i, sig=sig)


def _nan(root, i):
    sig = synthetic.synth_record(np.random.default_rng(i), 500, 10.0, False)
    _ptbxl_record(root, i, sig=sig)
    d = root / f"records500/00000/{i:05d}_hr.dat"
    raw = np.fromfile(d, "<i2").reshape(-1, 12)
    raw[100:200, 7] = -32768  # WFDB's invalid-sample value -> NaN
    raw.tofile(d)


def _truncate(root, i):
    _ptbxl_record(root, i)
    d = root / f"records500/00000/{i:05d}_hr.dat"
    d.write_bytes(d.read_bytes()[:50_000])


def _too_long_file(root, i):
    _ptbxl_record(root, i)
    d = root / f"records500/00000/{i:05d}_hr.dat"
    d.write_bytes(d.read_bytes() + b"\0" * 240)


def _no_dat(root, i):
    _ptbxl_record(root, i)
    (root / f"records500/00000/{i:05d}_hr.dat").unlink()


def _no_hea(root, i):
    _ptbxl_record(root, i)
    (root / f"records500/00000/{i:05d}_hr.hea").unlink()


def _eleven_leads(root, i):
    sig = synthetic.synth_record(np.random.default_rng(i), 500, 10.0, False)
    leads = list(synthetic.PTBXL_LEADS[:11]) + ["X"]
    _ptbxl_record(root, i, sig=sig, leads=leads)


def _gain_off(root, i, gain):
    """The header's gain is wrong: the stored samples read as ``1000 / gain`` times the mV."""
    sig = synthetic.synth_record(np.random.default_rng(i), 500, 10.0, False)
    synthetic.write_wfdb(
        root / "records500/00000",
        f"{i:05d}_hr",
        [(f"{i:05d}_hr.dat", sig, list(synthetic.PTBXL_LEADS))],
        500,
        f"{gain}(0)/mV",
        1000.0,
    )


def _random_bytes(root, i):
    _ptbxl_record(root, i)
    d = root / f"records500/00000/{i:05d}_hr.dat"
    d.write_bytes(np.random.default_rng(i).integers(0, 256, d.stat().st_size, dtype=np.uint8).tobytes())


PTBXL_BAD = {  # reason: (make the signal, scp_codes, fold override)
    "missing_header_file": (_no_hea, {"NORM": 100.0}),
    "missing_signal_file": (_no_dat, {"NORM": 100.0}),
    "missing_signal_file/no_files": (lambda root, i: None, {"NORM": 100.0}),
    "truncated_signal": (_truncate, {"NORM": 100.0}),
    "header_mismatch": (_too_long_file, {"NORM": 100.0}),
    "missing_leads": (_eleven_leads, {"NORM": 100.0}),
    "wrong_sampling_rate": (lambda root, i: _ptbxl_record(root, i, fs=250), {"NORM": 100.0}),
    "too_short": (lambda root, i: _ptbxl_record(root, i, seconds=6.0), {"NORM": 100.0}),
    "no_clean_window/flat": (_flat, {"NORM": 100.0}),
    "no_clean_window/nonfinite": (_nan, {"NORM": 100.0}),
    "unparseable_codes": (lambda root, i: _ptbxl_record(root, i), "{'NORM': 100.0"),
    "bad_metadata": (lambda root, i: _ptbxl_record(root, i), {"NORM": 100.0}),
    "implausible_amplitude/gain_1000x_too_small": (lambda root, i: _gain_off(root, i, 1.0), {"NORM": 100.0}),
    "implausible_amplitude/gain_1000x_too_large": (lambda root, i: _gain_off(root, i, 1e6), {"NORM": 100.0}),
    "implausible_amplitude/random_bytes": (_random_bytes, {"NORM": 100.0}),
}


@pytest.mark.parametrize("kind", sorted(PTBXL_BAD))
def test_ptbxl_bad_record_is_skipped_and_reported(tmp_path, ptbxl_base, kind):
    base, rows = ptbxl_base
    src = tmp_path / "src"
    shutil.copytree(base, src)
    make, codes = PTBXL_BAD[kind]
    make(src, 9)
    row = _ptbxl_row(9, 19.0, {}, 2)
    row["scp_codes"] = codes if isinstance(codes, str) else repr(codes)
    if kind == "bad_metadata":
        row["strat_fold"] = "eleven"
    _write_ptbxl_csv(src, rows + [row])
    builder, report = _build("ptbxl_mi", src, tmp_path / "out")
    reason = kind.split("/")[0]
    assert report["records_kept"] == 3 and report["records_skipped"] == 1
    assert list(report["skipped"]) == [reason]
    entry = report["skipped"][reason]
    assert entry["count"] == 1 and entry["examples"][0]["record_id"] == "9"
    assert entry["description"] == records.REASONS[reason]
    if kind == "no_clean_window/flat":
        assert "2 window(s): 2 flat, 0 non-finite" in entry["examples"][0]["detail"]
        assert report["windows_dropped"]["flat"] == 2
    if kind == "no_clean_window/nonfinite":
        assert "1 non-finite" in entry["examples"][0]["detail"]
        assert report["windows_dropped"]["nonfinite"] == 1
    if reason == "implausible_amplitude":
        assert "mV after filtering" in entry["examples"][0]["detail"]
        assert report["windows_dropped"]["implausible_amplitude"] == 1
        assert report["amplitude_range_mv"] == "0.05,40,2.5"
    if reason not in ("unparseable_codes", "bad_metadata"):  # found while processing
        assert entry["by_split"] == {"train": 1} and entry["by_label"] == {"normal": 1}
    assert {s: builder.info.splits[s].num_examples for s in builder.info.splits} == {
        "train": 1,
        "validation": 1,
        "test": 1,
    }


def _sph_write(root, ecg_id, n=5000, mi=False, data=None):
    (root / "records").mkdir(parents=True, exist_ok=True)
    if data is None:
        data = synthetic.synth_record(
            np.random.default_rng(int(ecg_id[1:])), 500, n / 500, mi, "inferior" if mi else None
        ).T
    with h5py.File(root / "records" / f"{ecg_id}.h5", "w") as fh:
        fh.create_dataset("ecg", data=np.asarray(data, np.float32))


@pytest.fixture(scope="module")
def sph_base(tmp_path_factory):
    """The dummy database's 3 good records (train, validation, test)."""
    root = tmp_path_factory.mktemp("sph_base")
    shutil.copytree(DUMMY["sph_mi"], root / "db")
    return root / "db"


def _sph_garbage(root, i):
    (root / "records").mkdir(exist_ok=True)
    (root / "records" / f"{i}.h5").write_bytes(b"not an hdf5 file" * 10)


def _sph_nan(root, i):
    data = synthetic.synth_record(np.random.default_rng(5), 500, 10.0, True, "inferior").T
    data[3, 1000] = np.nan
    _sph_write(root, i, data=data)


def _sph_scaled(root, i, scale, lead=None):
    data = synthetic.synth_record(np.random.default_rng(5), 500, 10.0, True, "inferior").T.astype(np.float64)
    if lead is None:
        data *= scale
    else:
        data[lead] *= scale
    _sph_write(root, i, data=data)


def _sph_h5(root, i, make):
    (root / "records").mkdir(exist_ok=True)
    with h5py.File(root / "records" / f"{i}.h5", "w") as fh:
        make(fh)


SPH_BAD = {  # reason: (writer, N in metadata)
    "unreadable_hdf5": (_sph_garbage, 5000),
    "missing_signal_file": (lambda root, i: None, 5000),
    "truncated_signal": (lambda root, i: _sph_write(root, i, 5000), 6000),
    "missing_leads": (lambda root, i: _sph_write(root, i, data=np.zeros((8, 5000))), 5000),
    "no_clean_window": (_sph_nan, 5000),
    "unparseable_codes": (lambda root, i: _sph_write(root, i), 5000),
    "implausible_amplitude/stored_in_uv": (lambda root, i: _sph_scaled(root, i, 1000.0), 5000),
    "implausible_amplitude/one_lead_1e30": (lambda root, i: _sph_scaled(root, i, 1e30, lead=7), 5000),
    "unreadable_hdf5/ecg_is_a_group": (
        lambda root, i: _sph_h5(root, i, lambda fh: fh.create_group("ecg")),
        5000,
    ),
    "header_mismatch/complex_values": (
        lambda root, i: _sph_h5(
            root, i, lambda fh: fh.create_dataset("ecg", data=np.ones((12, 5000), np.complex64))
        ),
        5000,
    ),
}


@pytest.mark.parametrize("kind", sorted(SPH_BAD))
def test_sph_bad_record_is_skipped_and_reported(tmp_path, sph_base, kind):
    src = tmp_path / "src"
    shutil.copytree(sph_base, src)
    make, n = SPH_BAD[kind]
    make(src, "A00009")
    code = "16x" if kind == "unparseable_codes" else "161"
    with open(src / "metadata.csv", "a") as fh:
        fh.write(f"A00009,{code},S00099,60,M,{n},2020-01-09\n")
    builder, report = _build("sph_mi", src, tmp_path / "out")
    reason = kind.split("/")[0]
    assert report["records_kept"] == 3 and report["records_skipped"] == 1
    assert list(report["skipped"]) == [reason]
    detail = report["skipped"][reason]["examples"][0]["detail"]
    assert report["skipped"][reason]["examples"][0]["record_id"] == "A00009"
    if kind == "implausible_amplitude/one_lead_1e30":
        assert re.search(r"largest \|x\| [\d.]+e\+(29|30) mV after filtering", detail)  # names its amplitude
    if kind == "unreadable_hdf5/ecg_is_a_group":
        assert "'ecg' is an HDF5 group, not a dataset" in detail
    if kind == "header_mismatch/complex_values":
        assert "complex" in detail
    assert report["records_excluded_label"] == 1  # the dummy's A00004
    assert sum(builder.info.splits[s].num_examples for s in builder.info.splits) == 4


@pytest.fixture(scope="module")
def ptb_base(tmp_path_factory):
    root = tmp_path_factory.mktemp("ptb_base")
    shutil.copytree(DUMMY["ptbdb_mi"], root / "db")
    return root / "db"


def _ptb_add(src, name, fs=1000, comments=True):
    sig = synthetic.synth_record(np.random.default_rng(9), fs, 10.5, True, "inferior")
    com = ["age: 50", "sex: male", "Reason for admission: Myocardial infarction"] if comments else None
    synthetic.write_wfdb(
        src / name.split("/")[0],
        name.split("/")[1],
        [(name.split("/")[1] + ".dat", sig, list(synthetic.PTB_LEADS))],
        fs,
        "2000",
        2000.0,
        comments=com,
    )


PTB_BAD = {
    "missing_signal_file": lambda src, name: None,  # listed in RECORDS, no files
    "wrong_sampling_rate": lambda src, name: _ptb_add(src, name, fs=500),
    "unparseable_codes": lambda src, name: _ptb_add(src, name, comments=False),
}


@pytest.mark.parametrize("kind", sorted(PTB_BAD))
def test_ptb_bad_record_is_skipped_and_reported(tmp_path, ptb_base, kind):
    src = tmp_path / "src"
    shutil.copytree(ptb_base, src)
    PTB_BAD[kind](src, "patient077/s0077lre")
    with open(src / "RECORDS", "a") as fh:
        fh.write("patient077/s0077lre\n")
    builder, report = _build("ptbdb_mi", src, tmp_path / "out")
    assert report["records_kept"] == 3 and list(report["skipped"]) == [kind]
    assert report["skipped"][kind]["examples"][0]["record_id"] == "patient077/s0077lre"
    assert report["records_excluded_label"] == 1  # the dummy's Cardiomyopathy


@pytest.mark.parametrize(
    "name, missing, config",
    [
        ("ptbxl_mi", "ptbxl_database.csv", "paper"),
        ("ptbxl_mi", "scp_statements.csv", "mi_superclass"),
        ("ptbdb_mi", "RECORDS", "paper"),
        ("sph_mi", "metadata.csv", "paper"),
    ],
)
def test_not_the_database_stops_with_a_clear_message(tmp_path, name, missing, config):
    src = tmp_path / "src"
    shutil.copytree(DUMMY[name], src)
    (src / missing).unlink()
    with pytest.raises(build_lib.NotTheDatabaseError, match=missing):
        _build(name, src, tmp_path / "out", config=config)
    # and a folder of something else entirely
    with pytest.raises(build_lib.NotTheDatabaseError, match="Expected"):
        _build(name, DUMMY["sph_mi" if name != "sph_mi" else "ptbxl_mi"], tmp_path / "o2")


# ---------------------------------------------------------------------------
# built examples


def test_built_window_equals_preprocess_record(tmp_path):
    builder, report = _build("ptbxl_mi", DUMMY["ptbxl_mi"], tmp_path / "out")
    (ex,) = _examples(builder, "test")
    assert ex["record_id"].decode() == "3" and ex["label"] == 1 and ex["fold"] == 10
    assert ex["patient_id"].decode() == "1103" and ex["sex"].decode() == "male"
    assert ex["age"] == np.float32(70.0) and "AMI" in ex["codes"].decode()
    raw, fs = _raw_canonical(DUMMY["ptbxl_mi"] / "records500/00000/00003_hr")
    res = preprocessing.preprocess_record(raw, fs)
    assert ex["ecg"].dtype == np.float32 and ex["ecg"].shape == (2500, 12)
    np.testing.assert_array_equal(ex["ecg"], res.windows[ex["window"]])
    assert report["records"]["test"] == {"normal": 0, "mi": 1, "total": 1}


def test_both_file_formats_build_and_read_back(tmp_path):
    b_ar, _ = _build("sph_mi", DUMMY["sph_mi"], tmp_path / "ar")
    b_tf, rep = _build("sph_mi", DUMMY["sph_mi"], tmp_path / "tf", file_format="tfrecord", workers=2)
    assert b_ar.info.file_format.value == "array_record" and rep["file_format"] == "tfrecord"
    assert rep["workers"] == 2
    reread = databases.builder_class("sph_mi")(data_dir=str(tmp_path / "tf"))
    assert reread.info.file_format.value == "tfrecord"  # restored, not the default
    for split in ("train", "validation", "test"):
        a = sorted(_examples(b_ar, split), key=lambda e: (e["record_id"], e["window"]))
        ds = tfds.load(
            "sph_mi", split=split, data_dir=str(tmp_path / "tf"), builder_kwargs={"file_format": "tfrecord"}
        )
        t = sorted(tfds.as_numpy(ds), key=lambda e: (e["record_id"], e["window"]))
        assert len(a) == len(t) > 0
        for x, y in zip(a, t):
            assert x["record_id"] == y["record_id"] and x["window"] == y["window"]
            np.testing.assert_array_equal(x["ecg"], y["ecg"])
    data_source = tfds.data_source("sph_mi", split="test", data_dir=str(tmp_path / "ar"))
    assert [int(data_source[i]["window"]) for i in range(len(data_source))] in ([0, 1], [1, 0])


@pytest.mark.slow
def test_workers_give_identical_datasets(tmp_path):
    synthetic.write_ptbxl(tmp_path / "src", 24, seed=2)
    b1, r1 = _build("ptbxl_mi", tmp_path / "src", tmp_path / "w1", workers=1)
    b2, r2 = _build("ptbxl_mi", tmp_path / "src", tmp_path / "w2", workers=2)
    for split in b1.info.splits:
        f1 = sorted(Path(b1.data_dir).glob(f"*-{split}.array_record*"))
        f2 = sorted(Path(b2.data_dir).glob(f"*-{split}.array_record*"))
        assert [f.read_bytes() for f in f1] == [f.read_bytes() for f in f2]
    for k in ("records", "windows_per_split", "skipped", "excluded_label"):
        assert r1[k] == r2[k]


@pytest.mark.slow
def test_tfds_build_cli(tmp_path):
    out = runs.tfds_build(
        "ptbdb_mi",
        tmp_path,
        f"--manual_dir={DUMMY['ptbdb_mi']}",
        "--file_format=tfrecord",
        "--config=mi_superclass",
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "ptbdb_mi/mi_superclass: 4 records in source" in out.stdout
    report = build_lib.read_report(tmp_path, "ptbdb_mi", "mi_superclass")
    assert report["records_kept"] == 3 and report["file_format"] == "tfrecord"
    assert len(list((tmp_path / "ptbdb_mi/mi_superclass/1.1.0").glob("*.tfrecord*"))) == 3


# ---------------------------------------------------------------------------
# real records


@pytest.mark.slow
@needs_real
def test_real_ptb_build(tmp_path):
    root = Path(REAL) / "ptbdb"
    builder, report = _build("ptbdb_mi", root, tmp_path / "out", workers=2)
    assert report["records_in_source"] == 4 and report["records_kept"] == 4
    assert report["skipped"] == {} and report["records_excluded_label"] == 0
    examples = [e for s in builder.info.splits for e in _examples(builder, s)]
    assert {int(e["label"]) for e in examples} == {1}
    by_record = {}
    for e in examples:
        by_record.setdefault(e["record_id"].decode(), []).append(e)
    assert sorted(by_record) == [
        "patient001/s0010_re",
        "patient002/s0015lre",
        "patient003/s0017lre",
        "patient012/s0043lre",
    ]
    raw, fs = _raw_canonical(root / "patient002/s0015lre", channels=list(range(12)))
    res = preprocessing.preprocess_record(raw, fs)
    got = sorted(by_record["patient002/s0015lre"], key=lambda e: e["window"])
    assert [e["window"] for e in got] == list(res.window_index)
    for e in got:
        np.testing.assert_array_equal(e["ecg"], res.windows[list(res.window_index).index(e["window"])])
    assert report["windows"] == len(examples) == 3 + 3 * 11  # 38.4 s + 3 x 115.2 s


@pytest.mark.slow
@needs_real
def test_real_ptbxl_build(tmp_path):
    root = Path(REAL) / "ptbxl"
    builder, report = _build("ptbxl_mi", root, tmp_path / "out", workers=2)
    assert report["records_in_source"] == 300
    assert report["records_kept"] == 41 + 186 and report["skipped"] == {}
    assert sum(report["records"][s]["mi"] for s in report["records"]) == 41
    assert sum(report["records"][s]["normal"] for s in report["records"]) == 186
    assert report["records_excluded_label"] == 300 - 227
    fold = pd.read_csv(root / "ptbxl_database.csv").set_index("ecg_id").strat_fold
    n = 0
    for split in ("train", "validation", "test"):
        for e in _examples(builder, split):
            f = int(fold[int(e["record_id"])])
            assert e["fold"] == f and build_lib.splits_lib.split_of_fold(f) == split
            n += 1
    assert n == 227  # one 10 s window per record
    ex = _examples(builder, "test")[0]
    rel = f"records500/{int(ex['record_id']) // 1000 * 1000:05d}/{int(ex['record_id']):05d}_hr"
    raw, fs = _raw_canonical(root / rel)
    np.testing.assert_array_equal(ex["ecg"], preprocessing.preprocess_record(raw, fs).windows[0])


# ---------------------------------------------------------------------------
# issue 14: one bad input never stops a build


def test_empty_split_is_reported_and_the_others_are_built(tmp_path, ptbxl_base, capsys):
    """14.2a: a truncated .dat of the only validation record leaves validation
    empty; train and test are built, report and console say so, and opening
    the empty split for training fails with a clear message."""

    base, rows = ptbxl_base
    src = tmp_path / "src"
    shutil.copytree(base, src)
    d = src / "records500/00000/00002_hr.dat"
    d.write_bytes(d.read_bytes()[:50_000])
    builder, report = _build("ptbxl_mi", src, tmp_path / "out")
    assert report["empty_splits"] == ["validation"]
    assert report["skipped"]["truncated_signal"]["by_split"] == {"validation": 1}
    assert {s: builder.info.splits[s].num_examples for s in builder.info.splits} == {"train": 1, "test": 1}
    assert "split validation is EMPTY" in capsys.readouterr().out
    reread = built.load_builder(str(tmp_path / "out"), "ptbxl_mi/paper")
    assert built.split_size(reread, "train") == 1
    with pytest.raises(ValueError, match="split 'validation' of ptbxl_mi/paper/1.1.0 is empty"):
        built.split_size(reread, "validation")


def test_ptbxl_csv_row_with_an_extra_field_is_skipped(tmp_path, ptbxl_base):
    """14.2b: pandas stops at such a row ("Error tokenizing data")."""
    base, rows = ptbxl_base
    src = tmp_path / "src"
    shutil.copytree(base, src)
    line = pd.DataFrame([_ptbxl_row(9, 19.0, {"NORM": 100.0}, 2)]).to_csv(index=False, header=False).strip()
    with open(src / "ptbxl_database.csv", "a") as fh:
        fh.write(line + ",extra\n")
    builder, report = _build("ptbxl_mi", src, tmp_path / "out")
    assert report["records_in_source"] == 4 and report["records_kept"] == 3
    entry = report["skipped"]["bad_metadata"]
    assert entry["count"] == 1 and entry["examples"][0]["record_id"] == "9"
    n = len(synthetic.PTBXL_COLUMNS)
    assert entry["examples"][0]["detail"] == (
        f"ptbxl_database.csv line 5: {n + 1} fields, the header has {n}"
    )


def test_sph_metadata_with_a_non_utf8_byte_is_skipped(tmp_path, sph_base):
    """14.2c: one byte 0xff in a row: only that row is skipped."""
    src = tmp_path / "src"
    shutil.copytree(sph_base, src)
    _sph_write(src, "A00009", mi=True)
    with open(src / "metadata.csv", "ab") as fh:
        fh.write(b"A00009,161,S\xff0099,60,M,5000,2020-01-09\n")
    builder, report = _build("sph_mi", src, tmp_path / "out")
    assert report["records_kept"] == 3 and report["records_in_source"] == 5
    entry = report["skipped"]["bad_metadata"]
    assert entry["examples"] == [{"record_id": "A00009", "detail": "metadata.csv line 6: non-UTF-8 byte"}]


def test_metadata_paths_outside_the_source_are_not_followed(tmp_path, ptbxl_base, sph_base):
    """14.4: absolute and '..' paths are skipped as unsafe_path, though a
    readable record is there."""
    base, rows = ptbxl_base
    src = tmp_path / "src"
    shutil.copytree(base, src)
    outside = tmp_path / "outside"
    _ptbxl_record(outside, 8)
    _ptbxl_record(outside, 9)
    bad = [_ptbxl_row(8, 18.0, {"NORM": 100.0}, 2), _ptbxl_row(9, 19.0, {"NORM": 100.0}, 2)]
    bad[0]["filename_hr"] = str(outside / "records500/00000/00008_hr")
    bad[1]["filename_hr"] = "../outside/records500/00000/00009_hr"
    assert (src / bad[1]["filename_hr"]).with_suffix(".hea").exists()
    _write_ptbxl_csv(src, rows + bad)
    _, report = _build("ptbxl_mi", src, tmp_path / "out")
    assert report["records_kept"] == 3 and list(report["skipped"]) == ["unsafe_path"]
    assert [e["record_id"] for e in report["skipped"]["unsafe_path"]["examples"]] == ["8", "9"]

    sph = tmp_path / "sph"
    shutil.copytree(sph_base, sph)
    _sph_write(tmp_path, "A00009", mi=True)  # tmp_path/records/A00009.h5
    with open(sph / "metadata.csv", "a") as fh:
        fh.write("../records/A00009,161,S00099,60,M,5000,2020-01-09\n")
    _, report = _build("sph_mi", sph, tmp_path / "out_sph")
    assert report["records_kept"] == 3
    assert report["skipped"]["unsafe_path"]["examples"][0]["record_id"] == "../records/A00009"

    ptb = tmp_path / "ptb"
    shutil.copytree(DUMMY["ptbdb_mi"], ptb)
    _ptb_add(tmp_path, "patient077/s0077lre")  # outside the PTB folder
    with open(ptb / "RECORDS", "a") as fh:
        fh.write("../patient077/s0077lre\n")
    scan = databases.scan_database("ptbdb_mi", ptb)
    assert [(s.record_id, s.reason) for s in scan.skipped if s.reason != "excluded_label"] == [
        ("../patient077/s0077lre", "unsafe_path")
    ]


def test_wfdb_units_are_converted_for_building_and_prediction(tmp_path):
    """14.3: a header in uV holds the same signal as one in mV; the builder
    (process_record) and predict read both as mV."""
    from leadmix_jax.deploy import predict

    sig = synthetic.synth_record(np.random.default_rng(4), 500, 10.0, True, "inferior")
    names = list(synthetic.PTBXL_LEADS)
    synthetic.write_wfdb(tmp_path, "mv", [("mv.dat", sig, names)], 500, "1000.0(0)/mV", 1000.0)
    # 1 adu per uV: the same integers as 1000 adu per mV
    synthetic.write_wfdb(tmp_path, "uv", [("uv.dat", sig, names)], 500, "1.0(0)/uV", 1000.0)
    mv, _, _ = records.read_wfdb(tmp_path / "mv", 500)
    uv, _, header = records.read_wfdb(tmp_path / "uv", 500)
    assert header.units[0] == "uV"
    np.testing.assert_allclose(uv, mv, rtol=1e-12)
    np.testing.assert_allclose(mv, sig, atol=0.5e-3 + 1e-9)
    fields = dict(
        patient_id="p", label="mi", fold=1, codes="", age=1.0, sex="", kind="wfdb", expected_fs=500.0
    )
    a = task.process_record(task.RecordTask("mv", path=str(tmp_path / "mv"), **fields))
    b = task.process_record(task.RecordTask("uv", path=str(tmp_path / "uv"), **fields))
    assert a.ok and b.ok
    np.testing.assert_allclose(b.windows, a.windows, rtol=1e-5, atol=1e-6)
    p_sig, p_fs, p_names = predict.read_record(str(tmp_path / "uv.hea"))
    np.testing.assert_array_equal(p_sig, uv)
    assert p_fs == 500 and p_names == list(CANONICAL_LEADS)
    synthetic.write_wfdb(tmp_path, "mmhg", [("mmhg.dat", sig, names)], 500, "1.0(0)/mmHg", 1.0)
    with pytest.raises(records.RecordError, match="unit 'mmHg'"):
        records.read_wfdb(tmp_path / "mmhg", 500)


def test_killed_build_leftovers_are_removed(tmp_path):
    """14.7: an incomplete.* folder left by a killed build is deleted by the next one."""
    stale = tmp_path / "out" / "sph_mi" / "paper" / "incomplete.AB12CD_1.1.0"
    (stale / "sub").mkdir(parents=True)
    (stale / "sub" / "sph_mi-train.array_record-00000-of-00001").write_bytes(b"x" * 10)
    builder, report = _build("sph_mi", DUMMY["sph_mi"], tmp_path / "out")
    assert report["records_kept"] == 3
    # the build's lock file stays beside the version folder
    assert sorted(p.name for p in stale.parent.iterdir()) == [".1.1.0.build.lock", "1.1.0"]


# ---------------------------------------------------------------------------
# issue 15.2: one reader per format, one-line errors naming the file


def test_bad_files_give_one_line_errors_naming_the_file(tmp_path):
    from leadmix_jax.deploy import predict

    _ptbxl_record(tmp_path, 1)
    d = tmp_path / "records500/00000/00001_hr.dat"
    d.write_bytes(d.read_bytes()[:50_000])
    (tmp_path / "bad.h5").write_bytes(b"garbage, not HDF5" * 20)
    np.save(tmp_path / "text.npy", np.array([["a", "b"], ["c", "d"]]))
    (tmp_path / "junk.npy").write_bytes(b"not a numpy file")
    cases = [
        (str(tmp_path / "records500/00000/00001_hr.hea"), {}, "truncated_signal", "00001_hr"),
        (str(tmp_path / "bad.h5"), {}, "unreadable_hdf5", "bad.h5"),
        (str(tmp_path / "text.npy"), dict(fs=500, lead_names="I,II"), "unreadable_array", "text.npy"),
        (str(tmp_path / "junk.npy"), dict(fs=500, lead_names="I,II"), "unreadable_array", "junk.npy"),
    ]
    for path, kwargs, reason, name in cases:
        with pytest.raises(records.RecordError) as err:
            predict.read_record(path, **kwargs)
        msg = str(err.value)
        assert err.value.reason == reason and "\n" not in msg and name in msg, msg
        assert msg.startswith(str(tmp_path)), msg
