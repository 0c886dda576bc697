"""Helpers of the training tests: configs, ``launch.py`` subprocesses, kills,
and comparisons of parameter trees."""

from __future__ import annotations

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

import builtdata
from leadmix_jax import checkpointing
from leadmix_jax.train import experiment

ROOT = pathlib.Path(__file__).resolve().parents[1]


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


def tfds_build(dataset: str, data_dir, *flags, workers: int = 2, env=None, timeout=600):
    """``tfds build datasets/<dataset> *flags --data_dir=<data_dir>`` through
    TFDS's own command line, as a user runs it (from ``data_dir``), with
    ``LEADMIX_BUILD_WORKERS=workers`` and ``env`` added; the
    ``subprocess.CompletedProcess``, stdout and stderr captured as text."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "tensorflow_datasets.scripts.cli.main",
            "build",
            str(ROOT / "datasets" / dataset),
        ]
        + [*flags, f"--data_dir={data_dir}"],
        capture_output=True,
        text=True,
        env=dict(os.environ, LEADMIX_BUILD_WORKERS=str(workers), **(env or {})),
        cwd=data_dir,
        timeout=timeout,
    )


def launch(*args, devices=1, timeout=300) -> subprocess.CompletedProcess:
    """``launch.py *args`` to completion on ``devices`` simulated CPU devices,
    as a user starts it (TensorFlow's log level unset: launch.py must silence
    TensorFlow itself); stdout and stderr captured as text."""
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": builtdata.xla_flags(devices)}
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)
    return subprocess.run(
        [sys.executable, str(ROOT / "launch.py"), *map(str, args)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


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
    exp = experiment.make_experiment(config)
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


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
