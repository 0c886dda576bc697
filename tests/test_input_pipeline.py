"""Host-block batching (each process's rows of the global batches) and eval
padding (every example once, padding masked), without a device run."""

import grain
import numpy as np
import pytest

import builtdata
from leadmix_jax import input_pipeline, norm_stats


def test_host_blocks_partition_every_global_batch():
    parent = grain.MapDataset.range(40)  # 5 global batches of 8
    blocks = [input_pipeline.HostBlocks(parent, 8, 2, host) for host in range(4)]
    assert [len(b) for b in blocks] == [10] * 4
    for g in range(5):
        rows = [list(b[g * 2 : (g + 1) * 2]) for b in blocks]
        assert rows == [[g * 8 + 2 * h, g * 8 + 2 * h + 1] for h in range(4)]
    # a partial last global batch is dropped on every host alike
    assert len(input_pipeline.HostBlocks(grain.MapDataset.range(43), 8, 2, 3)) == 10


def test_zscore_is_shared_and_exact():
    stats = norm_stats.NormStats(("II", "V1"), (1.0, -2.0), (2.0, 0.5), 3, "x:train")
    x = np.array([[3.0, -1.0], [1.0, -2.0]])
    np.testing.assert_allclose(norm_stats.ZScore(stats)(x), [[1.0, 2.0], [0.0, 0.0]])
    ecg = np.zeros((2500, 12), np.float32)
    ecg[:, 1], ecg[:, 6] = 3.0, -1.0  # II and V1
    prep = input_pipeline.PrepareExample([1, 6], stats)
    out = prep.map({"ecg": ecg, "label": 1})
    np.testing.assert_allclose(out["ecg"][0], [1.0, 2.0])
    with pytest.raises(ValueError, match="empty"):
        norm_stats.compute(iter([]), ["II"], "x:train")


def test_eval_padding_masks_and_visits_each_example_once(tmp_path_factory):
    builder = input_pipeline.load_builder(builtdata.data_dir(tmp_path_factory), builtdata.NAME)
    n = builtdata.num_windows("validation")  # 16
    stats = norm_stats.NormStats(("II",), (0.0,), (1.0,), 1, "x")
    cfg = input_pipeline.PipelineConfig(leads=("II",), global_batch=24)
    batches = list(input_pipeline.eval_dataset(builder, "validation", cfg, stats))
    assert len(batches) == 1 and batches[0]["ecg"].shape == (24, 2500, 1)
    mask, index = batches[0]["mask"], batches[0]["index"]
    assert mask.tolist() == [1.0] * n + [0.0] * 8
    assert index[:n].tolist() == list(range(n)) and (index[n:] == -1).all()
    assert (batches[0]["ecg"][n:] == 0).all() and list(batches[0]["record_id"][n:]) == [""] * 8
