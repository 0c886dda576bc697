"""Host-block batching (each process's rows of the global batches) and eval
padding (every example once, padding masked), without a device run."""

import grain
import numpy as np
import pytest

import builtdata
from leadmix_jax.input import pipeline, norm_stats
from leadmix_jax.input import built


def test_host_blocks_partition_every_global_batch():
    parent = grain.MapDataset.range(40)  # 5 global batches of 8
    blocks = [pipeline.HostBlocks(parent, 8, 2, host) for host in range(4)]
    assert [len(b) for b in blocks] == [10] * 4
    for g in range(5):
        rows = [list(b[g * 2 : (g + 1) * 2]) for b in blocks]
        assert rows == [[g * 8 + 2 * h, g * 8 + 2 * h + 1] for h in range(4)]
    # a partial last global batch is dropped on every host alike
    assert len(pipeline.HostBlocks(grain.MapDataset.range(43), 8, 2, 3)) == 10


def test_zscore_is_shared_and_exact():
    stats = norm_stats.NormStats(("II", "V1"), (1.0, -2.0), (2.0, 0.5), 3, "x:train")
    x = np.array([[3.0, -1.0], [1.0, -2.0]])
    np.testing.assert_allclose(norm_stats.ZScore(stats)(x), [[1.0, 2.0], [0.0, 0.0]])
    ecg = np.zeros((2500, 12), np.float32)
    ecg[:, 1], ecg[:, 6] = 3.0, -1.0  # II and V1
    prep = pipeline.PrepareExample([1, 6], stats)
    out = prep.map({"ecg": ecg, "label": 1})
    np.testing.assert_allclose(out["ecg"][0], [1.0, 2.0])
    with pytest.raises(ValueError, match="empty"):
        norm_stats.compute(iter([]), ["II"], "x:train")


def test_eval_padding_masks_and_visits_each_example_once(tmp_path_factory):
    builder = built.load_builder(builtdata.data_dir(tmp_path_factory), builtdata.NAME)
    n = builtdata.num_windows("validation")  # 16
    stats = norm_stats.NormStats(("II",), (0.0,), (1.0,), 1, "x")
    cfg = pipeline.PipelineConfig(leads=("II",), global_batch=24)
    batches = list(pipeline.eval_dataset(builder, "validation", cfg, stats))
    assert len(batches) == 1 and batches[0]["ecg"].shape == (24, 2500, 1)
    mask, index = batches[0]["mask"], batches[0]["index"]
    assert mask.tolist() == [1.0] * n + [0.0] * 8
    assert index[:n].tolist() == list(range(n)) and (index[n:] == -1).all()
    assert (batches[0]["ecg"][n:] == 0).all() and list(batches[0]["record_id"][n:]) == [""] * 8


def test_both_file_formats_give_the_same_rows_stats_and_eval_batches(tmp_path_factory):
    """ArrayRecord and TFRecord builds of the same data share every transform:
    the same sampled rows, norm statistics and padded eval batches (with each
    example's index in the split)."""
    array = built.load_builder(builtdata.data_dir(tmp_path_factory), builtdata.NAME)
    tfr = built.load_builder(builtdata.data_dir(tmp_path_factory, "tfrecord"), builtdata.NAME)
    assert built.is_array_record(array) and not built.is_array_record(tfr)
    want = built.sample_indices(array, "train", 5)
    assert want.tolist() == [0, 7, 15, 23, 31]
    a_rows = list(built.read_rows(array, "train", want))
    t_rows = list(built.read_rows(tfr, "train", want))
    assert [i for i, _ in a_rows] == [i for i, _ in t_rows] == want.tolist()
    ids = lambda rows: [(bytes(ex["record_id"]), int(ex["window"])) for _, ex in rows]
    assert ids(a_rows) == ids(t_rows)
    leads = ("I", "V2")
    sa = norm_stats.compute_from_split(array, "train", leads, 64)
    st = norm_stats.compute_from_split(tfr, "train", leads, 64)
    np.testing.assert_allclose(sa.mean, st.mean, rtol=1e-6)
    np.testing.assert_allclose(sa.std, st.std, rtol=1e-6)
    cfg = pipeline.PipelineConfig(leads=leads, global_batch=12)
    a_eval = list(pipeline.eval_dataset(array, "test", cfg, sa))
    t_eval = list(pipeline.eval_dataset(tfr, "test", cfg, sa))
    assert len(a_eval) == len(t_eval) == 2  # 16 windows, padded to 24
    for a, t in zip(a_eval, t_eval):
        assert a["mask"].tolist() == t["mask"].tolist()
        np.testing.assert_array_equal(a["index"], t["index"])
        assert a["record_id"].tolist() == t["record_id"].tolist()
        np.testing.assert_array_equal(a["ecg"], t["ecg"])


def test_norm_stats_warn_about_one_absurd_example(capsys):
    rng = np.random.default_rng(0)
    ecgs = [rng.normal(0, 0.3, (2500, 12)) for _ in range(50)]
    stats = norm_stats.compute(ecgs, ("II", "V2"), "x:train")
    assert capsys.readouterr().out == ""  # ordinary data: no warning
    ecgs[7] = ecgs[7].copy()
    ecgs[7][:, 7] *= 1000  # V2 of one example stored in uV
    stats = norm_stats.compute(ecgs, ("II", "V2"), "x:train")
    out = capsys.readouterr().out
    assert "lead V2's std" in out and "far from the other leads'" in out
    assert "1 example(s) with lead V2's std over 20x the median example's" in out and "examples [7]" in out
    assert stats.std[1] > 20 * stats.std[0]  # the statistics themselves are what they are
