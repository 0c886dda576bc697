"""Label rules (leadmix_jax.data.labels) and the builders' scans, incl. the real metadata."""

import math
import os
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

from leadmix_jax.data.build import databases
from leadmix_jax.data import labels
from leadmix_jax import synthetic as synthetic

REAL = os.environ.get("LEADMIX_REAL_DATA")
needs_real = pytest.mark.skipif(not REAL, reason="LEADMIX_REAL_DATA not set")

CLASSES = {
    "NORM": "NORM",
    "IMI": "MI",
    "ASMI": "MI",
    "LMI": "MI",
    "PMI": "MI",
    "INJIN": "MI",
    "IRBBB": "CD",
    "LVH": "HYP",
    "NDT": "STTC",
    "SR": "",
    "LVOLT": "",
}


@pytest.mark.parametrize(
    "codes, paper, alt",
    [
        ({"NORM": 100.0, "SR": 0.0}, "normal", "normal"),
        ({"NORM": 100.0, "LVOLT": 0.0}, "normal", "normal"),  # form code: no class
        ({"NORM": 100.0, "IRBBB": 100.0}, "normal", None),  # other class: alt excludes
        ({"IMI": 0.0, "NDT": 100.0}, "mi", "mi"),  # any likelihood, even 0
        ({"ASMI": 15.0, "NORM": 80.0}, "mi", "mi"),  # MI checked first
        ({"LMI": 100.0}, None, "mi"),  # not a paper code
        ({"PMI": 100.0}, None, "mi"),
        ({"INJIN": 50.0}, None, "mi"),
        ({"LVH": 100.0}, None, None),
        ({}, None, None),
    ],
)
def test_ptbxl_rules(codes, paper, alt):
    assert labels.ptbxl_label(codes, "paper") == paper
    assert labels.ptbxl_label(codes, "mi_superclass", CLASSES) == alt


def test_ptbxl_superclass_needs_classes():
    with pytest.raises(ValueError, match="scp_statements"):
        labels.ptbxl_label({"NORM": 100.0}, "mi_superclass")
    with pytest.raises(ValueError, match="Unknown label rule"):
        labels.ptbxl_label({"NORM": 100.0}, "other")


def test_parse_scp_codes():
    assert labels.parse_scp_codes("{'NORM': 100.0, 'SR': 0.0}") == {"NORM": 100.0, "SR": 0.0}
    assert labels.parse_scp_codes("{}") == {}
    for bad in ["", "{'NORM': 100.0", "['NORM']", "{'NORM': 'x'}", "__import__('os')", None]:
        with pytest.raises(labels.CodeParseError):
            labels.parse_scp_codes(bad)


@pytest.mark.parametrize(
    "code, label",
    [
        ("1", "normal"),
        ("1;1", "normal"),
        (" 1 ", "normal"),
        ("1+22", None),
        ("22;23", None),
        ("161", "mi"),
        ("50+161", "mi"),
        ("165;22", "mi"),
        ("166+332;146", "mi"),
        ("160,1", "mi"),
        ("162", None),
        ("163+332", None),
        ("1610", "mi"),  # prefix rule, as the paper
    ],
)
def test_sph_rule(code, label):
    assert labels.sph_label(labels.parse_aha_codes(code)) == label
    assert labels.sph_label(labels.parse_aha_codes(code), "mi_superclass") == label


@pytest.mark.parametrize("bad", ["", " ; ", "abc", "1;x", float("nan"), None])
def test_sph_unparseable(bad):
    with pytest.raises(labels.CodeParseError):
        labels.parse_aha_codes(bad)


def _ptb_comments(reason, extra="no"):
    return [
        "age: 60",
        "sex: male",
        "",
        "Diagnose:",
        f"Reason for admission: {reason}",
        f"Additional diagnoses: {extra}",
    ]


def test_ptb_rules():
    mi = _ptb_comments("Myocardial infarction")
    ctrl = _ptb_comments("Healthy control")
    other_old_mi = _ptb_comments("Unstable angina", "Old myocardial infarction")
    other = _ptb_comments("Cardiomyopathy")
    # paper: text search first, then CONTROLS (fallback: reason field)
    assert labels.ptb_label(mi, False) == "mi"
    assert labels.ptb_label(other_old_mi, False) == "mi"
    assert labels.ptb_label(ctrl, True) == "normal"
    assert labels.ptb_label(ctrl, False) is None  # not listed in CONTROLS
    assert labels.ptb_label(ctrl, None) == "normal"  # no CONTROLS file
    assert labels.ptb_label(other, None) is None
    # superclass: the structured field
    assert labels.ptb_label(mi, None, "mi_superclass") == "mi"
    assert labels.ptb_label(other_old_mi, None, "mi_superclass") is None
    assert labels.ptb_label(ctrl, False, "mi_superclass") == "normal"
    assert labels.ptb_label(["reason for admission:   HEALTHY CONTROL  "], None, "mi_superclass") == "normal"
    with pytest.raises(labels.CodeParseError):
        labels.ptb_label([], True)
    assert labels.LABEL_NAMES == ("normal", "mi") and labels.label_index("mi") == 1


@pytest.mark.parametrize("rule, key", [("paper", "label"), ("mi_superclass", "label_alt")])
def test_scans_agree_with_synthetic_writers(tmp_path, rule, key):
    """The synthetic databases carry their own labels (edge cases included)."""
    summ = synthetic.write_all(tmp_path, seed=3, ptb_patients=10, ptbxl_records=45, sph_records=45, noise=0.5)
    for db, name in (("ptb", "ptbdb_mi"), ("ptbxl", "ptbxl_mi"), ("sph", "sph_mi")):
        s = databases.scan_database(name, tmp_path / db, rule)
        got = {t.record_id: t.label for t in s.tasks}
        got.update({k.record_id: "other" for k in s.skipped if k.reason == "excluded_label"})
        want = {}
        for r in summ[db]["records"]:
            rid = r.get("record") or str(r["ecg_id"])
            want[rid] = r.get(key, r["label"])
        assert got == want, db


@needs_real
def test_real_sph_metadata_counts():
    for rule in labels.RULES:
        s = databases.scan_database("sph_mi", Path(REAL) / "sph", rule)
        counts = Counter(t.label for t in s.tasks)
        assert counts == {"mi": 260, "normal": 13905}
        assert s.n_source == 25770
        assert not [k for k in s.skipped if k.reason != "excluded_label"]
        assert sum(k.reason == "excluded_label" for k in s.skipped) == 25770 - 260 - 13905
    # 13,905 normal = 13,903 rows "1" + 2 rows "1;1"
    meta = pd.read_csv(Path(REAL) / "sph/metadata.csv", dtype=str, keep_default_na=False)
    assert Counter(c for c in meta.AHA_Code if c.replace(";", "") == "1" * len(c.split(";"))) == {
        "1": 13903,
        "1;1": 2,
    }


@needs_real
def test_real_ptbxl_metadata_counts():
    root = Path(REAL) / "ptbxl"
    s = databases.scan_database("ptbxl_mi", root, "paper")
    assert s.n_source == 300
    assert Counter(t.label for t in s.tasks) == {"mi": 41, "normal": 186}
    df = pd.read_csv(root / "ptbxl_database.csv")
    fold = dict(zip(df.ecg_id.astype(str), df.strat_fold))
    assert all(t.fold == fold[t.record_id] for t in s.tasks)
    assert all(t.sex in ("male", "female") for t in s.tasks)
    assert [t.record_id for t in s.tasks if math.isnan(t.age)] == ["108"]  # empty age field
    alt = databases.scan_database("ptbxl_mi", root, "mi_superclass")
    paper_mi = {t.record_id for t in s.tasks if t.label == "mi"}
    alt_mi = {t.record_id for t in alt.tasks if t.label == "mi"}
    alt_normal = {t.record_id for t in alt.tasks if t.label == "normal"}
    assert paper_mi <= alt_mi  # the 5 paper codes are MI-class
    assert alt_normal <= {t.record_id for t in s.tasks if t.label == "normal"}


@needs_real
def test_real_ptb_headers():
    s = databases.scan_database("ptbdb_mi", Path(REAL) / "ptbdb", "paper")
    assert sorted(t.record_id for t in s.tasks) == [
        "patient001/s0010_re",
        "patient002/s0015lre",
        "patient003/s0017lre",
        "patient012/s0043lre",
    ]
    assert {t.label for t in s.tasks} == {"mi"}  # no CONTROLS: all four are MI
    assert {t.sex for t in s.tasks} == {"male", "female"}
    alt = databases.scan_database("ptbdb_mi", Path(REAL) / "ptbdb", "mi_superclass")
    assert {t.label for t in alt.tasks} == {"mi"} and len(alt.tasks) == 4
