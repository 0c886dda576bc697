"""leadmix_jax/model/inference.py: the padded batches every inference and
attribution call is cut into."""

import numpy as np

from leadmix_jax.model import inference


def test_padded_batches_one_shape_and_real_rows():
    x = np.arange(11 * 3, dtype=np.float64).reshape(11, 3)
    batches = list(inference.padded_batches(x, batch_size=10, multiple=4))  # 10 -> 8 rows per batch
    assert [c.shape for c, _ in batches] == [(8, 3), (8, 3)]
    assert [n for _, n in batches] == [8, 3]
    assert all(c.dtype == np.float32 for c, _ in batches)
    np.testing.assert_array_equal(np.concatenate([c[:n] for c, n in batches]), x.astype(np.float32))
    np.testing.assert_array_equal(batches[-1][0][3:], 0.0)  # the padding is zeros


def test_padded_batches_at_least_one_device_multiple_and_empty_input():
    ((chunk, n),) = inference.padded_batches(np.ones((3, 2)), batch_size=2, multiple=8)
    assert chunk.shape == (8, 2) and n == 3
    assert list(inference.padded_batches(np.ones((0, 2)), batch_size=16, multiple=8)) == []
