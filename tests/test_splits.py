"""Patient-level folds (leadmix_jax.splits) and patient-disjoint built splits."""

from collections import Counter, defaultdict

import numpy as np
import pytest
import tensorflow_datasets as tfds

from leadmix_jax import build, splits, synthetic


def test_split_of_fold():
    assert [splits.split_of_fold(f) for f in range(1, 11)] == ["train"] * 8 + [
        "validation", "test"]
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


def test_assign_folds_grouped_stratified_deterministic():
    pids, labs = _records(500, 0)
    folds = splits.assign_folds(pids, labs)
    assert folds == splits.assign_folds(list(reversed(pids)), list(reversed(labs)))
    assert set(folds) == set(pids) and set(folds.values()) == set(range(1, 11))
    per = defaultdict(Counter)
    for p, lab in zip(pids, labs):
        per[folds[p]][lab] += 1
    for lab in ("mi", "normal"):
        counts = [per[f][lab] for f in range(1, 11)]
        assert max(counts) - min(counts) <= 4, (lab, counts)   # <= max records per patient
    other = splits.assign_folds(pids, labs, seed=1)
    assert other != folds and set(other.values()) == set(range(1, 11))


def test_assign_folds_patient_stratum_is_mi_if_any_record_is():
    folds = splits.assign_folds(["a", "a", "b"], ["normal", "mi", "normal"])
    assert set(folds) == {"a", "b"}
    with pytest.raises(ValueError):
        splits.assign_folds(["a"], [])


def test_small_database_is_spread_over_folds():
    pids = [f"S{i:05d}" for i in range(12)]
    folds = splits.assign_folds(pids, ["mi"] * 12)
    assert len(set(folds.values())) == 10


def test_check_patient_disjoint():
    splits.check_patient_disjoint({"train": ["a", "b", "a"], "test": ["c"]})
    with pytest.raises(ValueError, match="'b'"):
        splits.check_patient_disjoint({"train": ["a", "b"], "test": ["b"]})


@pytest.mark.parametrize("name, writer, kwargs", [
    ("ptbdb_mi", synthetic.write_ptb, dict(n_patients=24, p_multi=0.6, seconds=(10.5, 21.0))),
    ("sph_mi", synthetic.write_sph, dict(n_records=40, p_multi=0.5, max_samples=5000)),
    ("ptbxl_mi", synthetic.write_ptbxl, dict(n_records=40, p_multi=0.5)),
])
def test_built_splits_are_patient_disjoint(tmp_path, name, writer, kwargs):
    writer(tmp_path / "src", seed=5, **kwargs)
    builder = build.load_builder_class(name)(data_dir=str(tmp_path / "out"), num_workers=1)
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
        manual_dir=str(tmp_path / "src")))
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
    multi = Counter(t.patient_id for t in build.SCANNERS[builder.DATABASE](
        tmp_path / "src").tasks)
    assert max(multi.values()) >= 2                         # the test has multi-record patients
