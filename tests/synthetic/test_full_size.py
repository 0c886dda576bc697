"""Synthetic databases at the real size's proportions (leadmix_jax/synthetic/full_size.py)."""

import filecmp

import numpy as np
import pytest

from leadmix_jax.synthetic import full_size, ptbxl_writer, sph_writer


def test_sizes_follow_the_fraction():
    assert full_size.sizes(1.0) == {"sph": 25770, "ptbxl": 21799, "ptb": 290}
    assert full_size.sizes(0.25) == {"sph": 6442, "ptbxl": 5450, "ptb": 72}
    assert full_size.sizes(1e-4) == {"sph": 40, "ptbxl": 40, "ptb": 6}  # the writers' minimum
    with pytest.raises(ValueError):
        full_size.sizes(0)


def test_the_label_rates_are_the_real_ones():
    kwargs = full_size.REAL["ptbxl"]["kwargs"]
    weights = ptbxl_writer._mix_weights(kwargs["label_rates"])
    labels = np.array([ptbxl_writer._paper_label_ptbxl(m[1]) for m in ptbxl_writer._PTBXL_MIX])
    for label, rate in kwargs["label_rates"].items():
        assert weights[labels == label].sum() == pytest.approx(rate)
    # SPH: 13,905 normal and 260 MI of 25,770 records, drawn by one uniform number per record
    cuts = full_size.REAL["sph"]["kwargs"]["label_cuts"]
    draws = np.random.default_rng(0).random(200_000)
    assert np.mean(draws < cuts[0]) == pytest.approx(13905 / 25770, abs=0.005)
    assert np.mean((draws >= cuts[0]) & (draws < cuts[1])) == pytest.approx(260 / 25770, abs=0.001)
    sizes, counts = np.array(full_size.SPH_LENGTHS).T
    assert counts.sum() == 25770 and np.average(sizes, weights=counts) / 500 == pytest.approx(
        10.908, abs=0.001
    )


def test_records_per_patient_and_lengths_come_out_as_asked(tmp_path):
    info = sph_writer.write_sph(tmp_path, 300, 1, **full_size.REAL["sph"]["kwargs"])
    lengths = np.array([r["n"] for r in info["records"]])
    assert set(lengths) <= {n for n, _ in full_size.SPH_LENGTHS}
    assert 0.6 < np.mean(lengths == 5000) < 0.85  # 73 % of the real records
    assert 1.0 < info["n_records"] / info["n_patients"] < 1.15  # real: 1.045


def test_parallel_writing_gives_the_same_files(tmp_path):
    full_size.write_databases(tmp_path / "one", 1e-4, seed=5, workers=1, progress=False)
    summary = full_size.write_databases(tmp_path / "two", 1e-4, seed=5, workers=2, progress=False)
    assert summary["sph"]["n_records"] == 40 and summary["ptbxl"]["n_records"] == 40
    assert summary["ptb"]["n_patients"] == 6
    cmp = filecmp.dircmp(tmp_path / "one", tmp_path / "two")

    def same(c):
        return not (c.left_only or c.right_only or c.diff_files) and all(same(s) for s in c.subdirs.values())

    assert same(cmp)
    for db in ("sph", "ptbxl", "ptb"):  # dircmp compares by stat: compare the bytes of one folder too
        files = sorted(p for p in (tmp_path / "one" / db).rglob("*") if p.is_file())
        assert files and all(
            filecmp.cmp(p, tmp_path / "two" / p.relative_to(tmp_path / "one"), shallow=False) for p in files
        )
