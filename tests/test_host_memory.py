"""leadmix_jax.host_memory: a freed large buffer is reused, not faulted in again."""

import os
import subprocess
import sys

import pytest

from leadmix_jax import host_memory

# A child process mallocs, writes and frees a 64 MiB buffer 3 times (as
# XLA:CPU does with a call's temporaries) and prints the minor page faults of
# the last 2. (Not numpy: it asks for huge pages, which hides the faults.)
CHILD = """
import ctypes, resource
from leadmix_jax import host_memory
print(host_memory.keep_freed_memory())
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
def cycle():
    buf = libc.malloc(64 << 20)
    ctypes.memset(buf, 1, 64 << 20)  # every page written
    libc.free(buf)
cycle()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
cycle()
cycle()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""
PAGES = 2 * (64 << 20) // 4096  # pages written by the 2 measured allocations

glibc = pytest.mark.skipif(not host_memory.on_glibc(), reason="glibc only")


def _child(opt_out: bool, platforms: str = "cpu") -> tuple[str, int]:
    env = {k: v for k, v in os.environ.items() if k != host_memory.OPT_OUT}
    env["JAX_PLATFORMS"] = platforms
    if opt_out:
        env[host_memory.OPT_OUT] = "1"
    out = subprocess.run(
        [sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    return out[0], int(out[1])


@glibc
def test_freed_buffers_are_reused_without_page_faults():
    applied, faults = _child(opt_out=False)
    assert applied == "True"
    assert faults < PAGES // 20, faults  # against 32,768 pages written


@glibc
def test_opt_out_keeps_glibc_defaults():
    applied, faults = _child(opt_out=True)
    assert applied == "False"
    assert faults > PAGES // 2, faults  # glibc unmaps the freed buffer: every page faults again


@glibc
def test_accelerator_host_keeps_glibc_defaults():
    applied, faults = _child(opt_out=False, platforms="cuda")
    assert applied == "False"
    assert faults > PAGES // 2, faults


@pytest.mark.parametrize(
    "platforms, expected", [("cpu", False), ("cuda", True), ("cpu,tpu", True), (" cpu , ", False)]
)
def test_jax_platforms_decides(platforms, expected):
    assert host_memory.accelerator_expected({"JAX_PLATFORMS": platforms}) is expected


@pytest.mark.parametrize(
    "node, plugin, expected", [(True, True, True), (True, False, False), (False, True, False)]
)
def test_unset_platforms_need_a_device_node_and_a_plugin(tmp_path, monkeypatch, node, plugin, expected):
    dev = tmp_path / "nvidiactl"
    if node:
        dev.touch()
    monkeypatch.setattr(host_memory, "DEVICE_NODES", (str(dev), str(tmp_path / "vfio" / "[0-9]*")))
    monkeypatch.setattr(host_memory, "accelerator_plugin_installed", lambda: plugin)
    assert host_memory.accelerator_expected({}) is expected


def test_plugin_probe_starts_no_backend():
    # Called before JAX starts its threads, the probe must not import JAX.
    code = "import sys\nfrom leadmix_jax import host_memory as h\nh.accelerator_expected()\nh.accelerator_plugin_installed()\nprint('jax' in sys.modules)"
    env = {k: v for k, v in os.environ.items() if k != "JAX_PLATFORMS"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False"]
