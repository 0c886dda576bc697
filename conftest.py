"""Test set-up shared by tests/ and datasets/: 8 simulated CPU devices.

XLA reads the flag when the backend starts, so it is set here before any test
module imports jax.
"""

import os

# The tests compile many small programs and run each only a few steps: XLA's
# CPU backend without LLVM optimisation compiles them about twice as fast
# (results are the same programs' results; only the machine code is slower).
# Subprocesses the tests start get the same flags (tests/builtdata.xla_flags).
TEST_XLA_FLAGS = "--xla_backend_optimization_level=0"
os.environ["LEADMIX_TEST_XLA_FLAGS"] = TEST_XLA_FLAGS
os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + f" {TEST_XLA_FLAGS} --xla_force_host_platform_device_count=8"
).strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# TensorFlow (pulled in by TFDS) must never grab an accelerator in tests.
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

# One persistent XLA compilation cache for the session: the pytest-xdist
# workers and every `launch.py` subprocess a test starts inherit this
# variable, so a program compiled once (the tiny model's train step, the
# parity model's forward pass) is read back instead of compiled again. The
# cache changes no result: an entry is keyed by the program, flags and devices.
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    import atexit
    import shutil
    import tempfile

    _cache_dir = tempfile.mkdtemp(prefix="leadmix-test-xla-cache-")
    os.environ["JAX_COMPILATION_CACHE_DIR"] = _cache_dir
    atexit.register(shutil.rmtree, _cache_dir, ignore_errors=True)
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "-1")

from absl import flags  # noqa: E402

from leadmix_jax import host_memory  # noqa: E402

# glibc's default allocator for the tests and the launch.py processes they
# start: host_memory's single arena saves page faults per dispatch but slows
# XLA's multi-threaded compiles, and the suite mostly compiles (quick tier,
# 2 cores: 73-83 s with the defaults against 83-87 s with the setting).
os.environ.setdefault(host_memory.OPT_OUT, "1")

# grain's worker processes read absl flags; pytest never parses them.
flags.FLAGS.mark_as_parsed()


# The longest test files first: with pytest-xdist's --dist=loadfile a file
# runs on one worker, so a long file scheduled last leaves the other worker
# idle at the end (longest-first keeps the two busy). Seconds measured on 2
# cores; a file not listed keeps its place after these.
_LONG_FILES = {
    "tests/train/test_population.py": 190,
    "tests/input/test_resident.py": 190,
    "tests/train/test_resume.py": 160,
    "tests/train/test_trainer.py": 100,
    "tests/model/test_lead_robust.py": 90,
    "tests/deploy/test_export.py": 80,
    "tests/workflows/test_demo.py": 50,
    "tests/test_launch.py": 50,
}


def pytest_collection_modifyitems(config, items):
    del config

    def weight(item):
        path = item.nodeid.split("::")[0]
        return -_LONG_FILES.get(path, 0)

    items.sort(key=weight)  # stable: tests keep their order within a file
