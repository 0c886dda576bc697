"""Tests of leadmix_jax.launching: what reaches the log."""

import logging

from leadmix_jax import launching


def record(path: str, level: int, message: str) -> logging.LogRecord:
    return logging.LogRecord("x", level, path, 1, message, None, None)


def test_the_log_keeps_this_projects_lines_and_other_libraries_warnings():
    quiet = launching._QuietLibraries()
    site = "/venv/lib/python3.11/site-packages"
    assert quiet.filter(record("/work/leadmix_jax/train/loop.py", logging.INFO, "step 10/80"))
    assert quiet.filter(record("/work/launch.py", logging.INFO, "JAX process 0 of 1"))
    assert not quiet.filter(record(f"{site}/orbax/checkpoint/manager.py", logging.INFO, "saving"))
    assert not quiet.filter(record(f"{site}/onnx_ir/_core.py", logging.INFO, "anything"))
    assert quiet.filter(record(f"{site}/orbax/checkpoint/manager.py", logging.WARNING, "disk full"))
    # known noise goes even as a warning, and even from a module of ours
    noise = "Please consider providing the trackable_obj argument"
    assert not quiet.filter(record(f"{site}/tensorflow/lite/python/lite.py", logging.WARNING, noise))
    assert not quiet.filter(record("/work/leadmix_jax/deploy/converters.py", logging.WARNING, noise))
