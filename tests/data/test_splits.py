"""Patient-level folds (leadmix_jax.data.splits) and patient-disjoint built splits."""

import os
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tensorflow_datasets as tfds

from leadmix_jax.data.build import databases
from leadmix_jax.data import splits
from leadmix_jax import synthetic as synthetic

REAL = os.environ.get("LEADMIX_REAL_DATA")


def test_split_of_fold():
    assert [splits.split_of_fold(f) for f in range(1, 11)] == ["train"] * 8 + ["validation", "test"]
    for bad in (0, 11, -1):
        with pytest.raises(ValueError):
            splits.split_of_fold(bad)


def _records(n_pat, seed):
    rng = np.random.default_rng(seed)
    pids, labs = [], []
    for p in range(n_pat):
        lab = "mi" if rng.random() < 0.3 else "normal"
        for _ in range(1 + (rng.random() < 0.2) * int(rng.integers(1, 4))):
            pids.append(f"P{p:04d}")
            labs.append(lab)
    return pids, labs


def test_assign_folds_grouped_deterministic_balanced():
    pids, labs = _records(3000, 0)
    folds = splits.assign_folds(pids)
    assert folds == splits.assign_folds(list(reversed(pids)))
    assert set(folds) == set(pids) and set(folds.values()) == set(range(1, 11))
    per = defaultdict(Counter)
    for p, lab in zip(pids, labs):
        per[folds[p]][lab] += 1
    for lab in ("mi", "normal"):
        counts = np.array([per[f][lab] for f in range(1, 11)])
        # binomial spread: every fold within 25% of its share
        assert np.all(np.abs(counts - counts.mean()) < 0.25 * counts.mean()), (lab, counts)
    other = splits.assign_folds(pids, seed=1)
    assert other != folds and set(other.values()) == set(range(1, 11))


def test_one_patient_more_or_less_moves_no_other_patient():
    pids, _ = _records(300, 1)
    folds = splits.assign_folds(pids)
    for drop in ("P0000", "P0150", "P0299"):
        rest = splits.assign_folds([p for p in pids if p != drop])
        assert rest == {p: f for p, f in folds.items() if p != drop}
    more = splits.assign_folds(pids + ["NEW"])
    assert {p: more[p] for p in folds} == folds


def _sph_metadata(path, rows):
    path.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows, columns=["ECG_ID", "AHA_Code", "Patient_ID", "Age", "Sex", "N", "Date"]).to_csv(
        path / "metadata.csv", index=False
    )


def test_bad_sph_row_moves_no_other_record(tmp_path):
    """Issue 14.1: one unparseable code / empty patient id / extra row must not
    change any other record's fold (the greedy folds changed 7 of 29)."""
    rng = np.random.default_rng(3)
    rows = [
        [f"A{i:05d}", "161" if rng.random() < 0.3 else "1", f"S{i // 2:05d}", 50, "M", 5000, "2020-01-01"]
        for i in range(1, 60)
    ]
    _sph_metadata(tmp_path / "ok", rows)
    base = {t.record_id: t.fold for t in databases.scan_database("sph_mi", tmp_path / "ok").tasks}
    assert len(base) == 59 and len(set(base.values())) >= 8
    variants = {
        "code": [r if r[0] != "A00007" else [r[0], "16x", *r[2:]] for r in rows],
        "patient": [r if r[0] != "A00020" else [r[0], r[1], "", *r[3:]] for r in rows],
        "removed": [r for r in rows if r[0] != "A00033"],
        "added": rows + [["A00099", "161", "S09999", 60, "F", 5000, "2020-01-02"]],
    }
    for name, variant in variants.items():
        _sph_metadata(tmp_path / name, variant)
        folds = {t.record_id: t.fold for t in databases.scan_database("sph_mi", tmp_path / name).tasks}
        common = set(folds) & set(base)
        assert len(common) >= 58, name
        assert {r: folds[r] for r in common} == {r: base[r] for r in common}, name


@pytest.mark.skipif(not REAL, reason="LEADMIX_REAL_DATA not set")
def test_real_sph_split_counts():
    """The released SPH splits (dataset version 1.1.0), paper rule."""
    scan = databases.scan_database("sph_mi", Path(REAL) / "sph")
    counts, patients = defaultdict(Counter), defaultdict(set)
    for t in scan.tasks:
        counts[splits.split_of_fold(t.fold)][t.label] += 1
        patients[splits.split_of_fold(t.fold)].add(t.patient_id)
    assert {s: dict(c) for s, c in counts.items()} == {
        "train": {"mi": 211, "normal": 11077},
        "validation": {"mi": 26, "normal": 1398},
        "test": {"mi": 23, "normal": 1430},
    }
    assert {s: len(p) for s, p in patients.items()} == {"train": 10951, "validation": 1377, "test": 1409}
    per_fold = Counter(t.fold for t in scan.tasks if t.label == "mi")
    assert min(per_fold.values()) == 23 and max(per_fold.values()) == 29


def test_small_database_is_spread_over_folds():
    pids = [f"S{i:05d}" for i in range(40)]
    folds = splits.assign_folds(pids)
    assert len(set(folds.values())) == 10


def test_check_patient_disjoint():
    splits.check_patient_disjoint({"train": ["a", "b", "a"], "test": ["c"]})
    with pytest.raises(ValueError, match="'b'"):
        splits.check_patient_disjoint({"train": ["a", "b"], "test": ["b"]})


@pytest.mark.parametrize(
    "name, writer, kwargs",
    [
        ("ptbdb_mi", synthetic.write_ptb, dict(n_patients=24, p_multi=0.6, seconds=(10.5, 21.0))),
        ("sph_mi", synthetic.write_sph, dict(n_records=40, p_multi=0.5, max_samples=5000)),
        ("ptbxl_mi", synthetic.write_ptbxl, dict(n_records=40, p_multi=0.5)),
    ],
)
@pytest.mark.slow
def test_built_splits_are_patient_disjoint(tmp_path, name, writer, kwargs):
    writer(tmp_path / "src", seed=5, **kwargs)
    builder = databases.builder_class(name)(data_dir=str(tmp_path / "out"), num_workers=1)
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=str(tmp_path / "src"))
    )
    patients, records = {}, defaultdict(set)
    for split in builder.info.splits:
        src = builder.as_data_source(split=split)
        patients[split] = {src[i]["patient_id"].decode() for i in range(len(src))}
        for i in range(len(src)):
            ex = src[i]
            assert splits.split_of_fold(int(ex["fold"])) == split
            records[ex["patient_id"].decode()].add(split)
    assert len(patients) >= 2
    splits.check_patient_disjoint(patients)
    assert all(len(s) == 1 for s in records.values())
    multi = Counter(t.patient_id for t in builder.scan(tmp_path / "src").tasks)
    assert max(multi.values()) >= 2  # the test has multi-record patients
