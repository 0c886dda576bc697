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


def _child(opt_out: bool) -> tuple[str, int]:
    env = {k: v for k, v in os.environ.items() if k != host_memory.OPT_OUT}
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
