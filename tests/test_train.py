"""Tests of the training loop in this process: logs, determinism, the
non-finite guard, the TFRecord path, best-checkpoint selection and Ctrl-C
handling. The helpers here (``run_launch`` ...) serve the tests that run
launch.py in subprocesses (test_train_launch.py, test_device_input.py)."""

import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

import builtdata
from leadmix_jax import checkpointing, input_pipeline, loop, train

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return builtdata.data_dir(tmp_path_factory)


def make_config(data_dir, **overrides):
    """configs/test.py's schedule (6 steps, validation at 3 and 6, checkpoints
    every 2) on the tiny dataset, then ``overrides``."""
    schedule = {
        "num_train_steps": 6,
        "eval_every_steps": 3,
        "checkpoint_every_steps": 2,
        "log_every_steps": 1,
    }
    return builtdata.make_config(data_dir, **{**schedule, **overrides})


def run_launch(workdir, data_dir, devices, extra=(), **popen):
    env = {
        **os.environ,
        "XLA_FLAGS": builtdata.xla_flags(devices),
        "JAX_PLATFORMS": "cpu",
        "PYTHONPATH": f"{ROOT / 'tests'}:{ROOT}",
    }
    cmd = [
        sys.executable,
        str(ROOT / "launch.py"),
        f"--config={ROOT / 'configs/test.py'}",
        f"--workdir={workdir}",
        f"--config.data_dir={data_dir}",
        f"--config.train_dataset={builtdata.NAME}",
        *extra,
    ]
    return subprocess.Popen(
        cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **popen
    )


def kill_when(proc, path, timeout=600):
    """SIGKILLs ``proc``'s process group as soon as ``path`` exists (``proc``
    started with ``start_new_session=True``); fails if it ended first."""
    deadline = time.time() + timeout
    while not path.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None, "run finished before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def finish(proc, timeout=300):
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out[-3000:]
    return out


def losses(workdir):
    rows = [json.loads(line) for line in (pathlib.Path(workdir) / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in rows if "loss" in r}


def final_params(workdir, config):
    exp = train.make_experiment(config)
    manager = checkpointing.make_manager(str(workdir), keep=10, read_only=True)
    params, meta = checkpointing.restore_for_inference(
        manager, manager.latest_step(), exp.abstract_state().params
    )
    return manager.latest_step(), jax.tree.map(np.asarray, params), meta


def assert_params_close(a, b, atol=1e-5):
    """Parameter trees equal within ``atol``, except the attention key biases,
    which need only stay at rounding-noise level (< 1e-4) in both: a bias
    added to every key shifts all scores of a query alike and softmax cancels
    it, so its gradient is 0 in exact arithmetic and AdamW turns the rounding
    noise of two summation orders into steps of opposite signs."""
    flat = jax.tree_util.tree_flatten_with_path(a)[0]
    for (path, x), y in zip(flat, jax.tree.leaves(b), strict=True):
        name = jax.tree_util.keystr(path)
        if "key_bias" in name:
            assert np.abs(x).max() < 1e-4 and np.abs(y).max() < 1e-4, name
        else:
            np.testing.assert_allclose(x, y, rtol=0, atol=atol, err_msg=name)


def assert_trees_equal(a, b, rtol=0.0, atol=0.0):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        if rtol or atol:
            np.testing.assert_allclose(x, y, rtol=rtol, atol=atol)
        else:
            np.testing.assert_array_equal(x, y)


@pytest.fixture(scope="module")
def trained_run(data_dir, tmp_path_factory):
    """``(workdir, result)`` of configs/test.py's schedule with validation."""
    workdir = tmp_path_factory.mktemp("trained_run")
    return workdir, train.train_and_evaluate(make_config(data_dir), str(workdir))


@pytest.mark.slow
def test_trains_and_writes_logs(data_dir, trained_run):
    config = make_config(data_dir)
    tmp_path, last = trained_run
    assert np.isfinite(last["loss"]) and 0 <= last["val_auroc"] <= 1
    for name in ("config.json", "norm_stats.json", "metrics.jsonl"):
        assert (tmp_path / name).exists(), name
    assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
    stats = json.loads((tmp_path / "norm_stats.json").read_text())
    assert stats["leads"] == ["II", "III", "aVF"] and all(s > 0 for s in stats["std"])
    step, _, meta = final_params(tmp_path, config)
    assert step == 6 and meta["leads"] == ["II", "III", "aVF"]
    assert meta["norm_stats"]["mean"] == stats["mean"]


@pytest.mark.slow
def test_same_seed_gives_identical_parameters(data_dir, trained_run, tmp_path):
    # a second run of the same seed, without validation: identical parameters
    # (and validation changes nothing in training)
    config = make_config(data_dir, val_split="")
    train.train_and_evaluate(config, str(tmp_path / "a"))
    a = final_params(tmp_path / "a", config)[1]
    assert_trees_equal(a, final_params(trained_run[0], config)[1])
    # ... and the seed matters: another seed starts elsewhere.
    other = train.make_experiment(make_config(data_dir, seed=1)).init_state().params
    assert any(not np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(other)))


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_nan_input_stops_with_a_clear_error(tmp_path):
    data_dir = builtdata.build(str(tmp_path / "nan_data"), nan_fraction=0.5)
    config = make_config(data_dir)
    with pytest.raises(loop.NonFiniteLossError, match=r"training loss became nan at step \d"):
        train.train_and_evaluate(config, str(tmp_path / "wd"))


@pytest.mark.slow
def test_tfrecord_build_trains(tmp_path_factory, tmp_path):
    data_dir = builtdata.data_dir(tmp_path_factory, "tfrecord")
    builder = input_pipeline.load_builder(data_dir, builtdata.NAME)
    assert not input_pipeline.is_array_record(builder)
    config = make_config(data_dir)
    last = train.train_and_evaluate(config, str(tmp_path / "wd"))
    assert np.isfinite(last["loss"]) and 0 <= last["val_auroc"] <= 1
    assert final_params(tmp_path / "wd", config)[0] == 6


def test_eval_visits_every_example_once(data_dir):
    builder = input_pipeline.load_builder(data_dir, builtdata.NAME)
    config = make_config(data_dir)
    exp = train.make_experiment(config)
    stats = input_pipeline.compute_norm_stats(builder, "train", exp.leads, 64)
    n = builtdata.num_windows("validation")  # 16: one batch of 24 with 8 padded rows
    preds = exp.runner.run_split(exp.init_state().params, builder, "validation", stats, batch_size=24)
    assert sorted(preds["index"].tolist()) == list(range(n))
    assert len(preds["record_id"]) == n
    assert set(preds["record_id"]) == {f"va{p:02d}_{r}" for p in range(4) for r in range(2)}


@pytest.mark.slow
def test_best_checkpoint_is_highest_validation_auroc_in_a_new_process(data_dir, tmp_path):
    config = make_config(
        data_dir,
        num_train_steps=8,
        eval_every_steps=2,
        checkpoint_every_steps=2,
        keep_checkpoints=1,
        log_every_steps=4,
    )
    last = train.train_and_evaluate(config, str(tmp_path))
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    val = {r["step"]: r["val_auroc"] for r in rows if "val_auroc" in r}
    assert sorted(val) == [2, 4, 6, 8]
    top = max(val.values())
    assert last["best_step"] in val and val[last["best_step"]] == pytest.approx(top)
    assert last["best_val_auroc"] == pytest.approx(top)
    # a fresh process knows nothing of the training run's manager: it reads the disk
    code = (
        "import sys, json; from leadmix_jax import inference; "
        "m = inference.restore(sys.argv[1], 'best'); print(json.dumps([m.step, m.validation]))"
    )
    env = {
        **os.environ,
        "XLA_FLAGS": builtdata.xla_flags(1),
        "JAX_PLATFORMS": "cpu",
        "PYTHONPATH": str(ROOT),
    }
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    step, validation = json.loads(out.stdout.strip().splitlines()[-1])
    assert step == last["best_step"] and validation["val_auroc"] == pytest.approx(top)
    assert 0.0 <= validation["val_youden"] <= 1.0


def test_metrics_jsonl_keeps_one_record_per_step_after_resume(tmp_path):
    from leadmix_jax import metric_writers

    writer = metric_writers.MetricWriter(str(tmp_path))
    for step in range(1, 7):
        writer.write(step, {"loss": float(step)})
    writer.close()
    with open(tmp_path / "metrics.jsonl", "a") as fh:
        fh.write('{"step": 7, "lo')  # a line cut by a kill mid-write
    # the run resumes from the checkpoint of step 4 and redoes 5 and 6
    writer = metric_writers.MetricWriter(str(tmp_path), resume_step=4)
    for step in (5, 6):
        writer.write(step, {"loss": 10.0 + step})
    writer.close()
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5, 6]
    assert [r["loss"] for r in rows] == [1.0, 2.0, 3.0, 4.0, 15.0, 16.0]


def test_ctrl_c_is_a_stop_request_and_a_second_one_interrupts():
    """The first SIGINT only sets the flag the loop checks between dispatches
    (it cannot be swallowed inside a library call); the second interrupts."""
    previous = signal.getsignal(signal.SIGINT)
    with loop.StopRequest() as stop:
        assert not stop.requested
        signal.raise_signal(signal.SIGINT)
        assert stop.requested
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is previous
