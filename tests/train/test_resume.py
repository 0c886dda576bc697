"""Training runs of launch.py in subprocesses (the device count is fixed when
JAX starts): 1 vs 8 devices, exact resume after SIGKILL, 2 processes vs 1,
and Ctrl-C. A file of its own so that pytest-xdist can run it beside
test_train.py."""

import re
import signal
import time

import numpy as np
import pytest

import builtdata
from runs import (
    free_port,
    assert_params_close,
    assert_trees_equal,
    final_params,
    finish,
    kill_when,
    losses,
    make_config,
    run_launch,
)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return builtdata.data_dir(tmp_path_factory)


@pytest.fixture(scope="module")
def reference_run(data_dir, tmp_path_factory):
    """1 process x 8 devices, configs/test.py's schedule (6 steps, validation
    at 3 and 6, checkpoints every 2) without interruption: the run that the
    1-device, killed and two-process runs below are compared with."""
    workdir = tmp_path_factory.mktemp("reference") / "run"
    finish(run_launch(workdir, data_dir, 8))
    return workdir


@pytest.mark.slow
def test_eight_devices_match_one(data_dir, reference_run, tmp_path):
    finish(run_launch(tmp_path / "d1", data_dir, 1))
    one, eight = losses(tmp_path / "d1"), losses(reference_run)
    assert sorted(one) == sorted(eight) == list(range(1, 7))
    for step in one:
        np.testing.assert_allclose(eight[step], one[step], rtol=1e-5)


@pytest.mark.slow
def test_killed_run_resumes_exactly(data_dir, reference_run, tmp_path):
    victim = run_launch(tmp_path / "run", data_dir, 8, start_new_session=True)
    ckpts = tmp_path / "run" / "checkpoints"
    kill_when(victim, ckpts / "4")  # no clean exit: no final save, no flush
    saved = sorted(int(p.name) for p in ckpts.iterdir() if p.name.isdigit())
    assert saved and saved[-1] < 6
    out = finish(run_launch(tmp_path / "run", data_dir, 8))
    assert f"resumed from step {saved[-1]}" in out
    config = make_config(data_dir)
    ref_step, ref_params, ref_meta = final_params(reference_run, config)
    run_step, run_params, run_meta = final_params(tmp_path / "run", config)
    assert ref_step == run_step == 6
    assert_trees_equal(run_params, ref_params)
    assert run_meta["validation"] == ref_meta["validation"]  # validation after the resume too


@pytest.mark.slow
def test_two_processes_match_one_process(data_dir, reference_run, tmp_path):
    port = free_port()
    pair = [
        run_launch(
            tmp_path / "multi",
            data_dir,
            4,
            [f"--coordinator_address=127.0.0.1:{port}", "--num_processes=2", f"--process_id={i}"],
        )
        for i in range(2)
    ]
    # 2 processes x 4 devices vs 1 process x 8: the same 8 per-device partial
    # sums. With validation: multi-host eval runs too.
    for p in pair:
        finish(p)
    config = make_config(data_dir)
    _, multi, _ = final_params(tmp_path / "multi", config)
    _, one, _ = final_params(reference_run, config)
    # Cross-process all-reduces sum in another order: float rounding only
    # (1e-5 is 1 % of one AdamW step at lr 1e-3).
    assert_params_close(multi, one, atol=1e-5)
    np.testing.assert_allclose(
        list(losses(tmp_path / "multi").values()), list(losses(reference_run).values()), rtol=1e-5
    )


@pytest.mark.slow
def test_ctrl_c_says_where_it_stopped(data_dir, tmp_path):
    steps = [
        "--config.num_train_steps=400",
        "--config.checkpoint_every_steps=2",
        "--config.val_split=",
        "--config.log_every_steps=1",
    ]
    proc = run_launch(tmp_path / "run", data_dir, 1, steps)
    deadline = time.time() + 240
    while (
        not (tmp_path / "run" / "checkpoints" / "2").exists()
        and proc.poll() is None
        and time.time() < deadline
    ):
        time.sleep(0.05)
    assert proc.poll() is None, "run finished before it could be interrupted"
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, out[-3000:]
    assert "Traceback" not in out
    assert re.search(r"interrupted at step \d+; run the same command again to resume", out), out[-2000:]
    assert "compiling the train step" in out and "computing normalisation statistics" in out
