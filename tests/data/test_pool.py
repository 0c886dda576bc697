"""Tests of leadmix_jax.data.build.pool: the record pool gives the same results
in the same order in-process and with worker processes, and its settings."""

import os
import sys

import numpy as np
import pytest

from leadmix_jax import synthetic
from leadmix_jax.data.build import pool, task


@pytest.fixture(scope="module")
def tasks(tmp_path_factory):
    """Five records: three good ones (10 s at 500 Hz), one missing, one too short."""
    root = tmp_path_factory.mktemp("pool")
    out = []
    for i, seconds in enumerate((10.0, 12.0, 10.0, None, 3.0)):
        name = f"r{i}"
        if seconds is not None:
            sig = synthetic.synth_record(np.random.default_rng(i), 500, seconds, i % 2 == 0, "inferior")
            synthetic.write_wfdb(
                root, name, [(f"{name}.dat", sig, list(synthetic.PTBXL_LEADS))], 500, "1000.0(0)/mV", 1000.0
            )
        out.append(
            task.RecordTask(name, f"p{i}", "mi", 1, "", float("nan"), "", "wfdb", str(root / name), 500.0)
        )
    return out


def _summary(results):
    return [(r.task.record_id, r.reason, None if r.windows is None else r.windows.tobytes()) for r in results]


def test_workers_give_the_in_process_results_in_order(tasks):
    one = pool.RecordPool(1)
    serial = list(one.map(tasks))
    assert [r.reason for r in serial] == [None, None, None, "missing_signal_file", "too_short"]
    assert [r.windows.shape[0] for r in serial[:3]] == [1, 1, 1]
    two = pool.RecordPool(2)
    try:
        parallel = list(two.map(tasks))
        again = list(two.map(tasks[::-1]))  # the pool is reused until closed
    finally:
        two.close()
    assert _summary(parallel) == _summary(serial)
    assert _summary(again) == _summary(serial[::-1])
    assert two._pool is None


def test_default_workers_follow_the_environment(monkeypatch):
    monkeypatch.setenv(pool.WORKERS_ENV, "3")
    assert pool.default_workers() == 3
    monkeypatch.setenv(pool.WORKERS_ENV, "0")
    assert pool.default_workers() == 1
    monkeypatch.delenv(pool.WORKERS_ENV)
    assert pool.default_workers() == len(os.sched_getaffinity(0))


def test_workers_start_without_the_parents_main_and_with_one_thread(monkeypatch):
    main = sys.modules["__main__"]
    monkeypatch.setattr(main, "__file__", "/somewhere/script.py", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    with pool._workers_skip_main():
        assert getattr(main, "__spec__", None) is None and not hasattr(main, "__file__")
        assert os.environ["OMP_NUM_THREADS"] == "1"
    assert main.__file__ == "/somewhere/script.py"
    assert "OMP_NUM_THREADS" not in os.environ
