"""Host memory: keep the C heap's freed memory in the process (Linux, glibc).

Why. XLA:CPU allocates each call's temporary buffer (the activations a
training step keeps for its backward pass: hundreds of MB for the paper
model) with ``malloc`` and frees it when the call returns. glibc serves such
large requests from fresh ``mmap`` regions and unmaps them on ``free``, so
each dispatch faults the whole buffer in again, page by page, with the kernel
zeroing every page.

What. :func:`keep_freed_memory` asks glibc (``mallopt``) for one arena, no
``mmap`` for large blocks and no trimming below 1 GiB, so a freed buffer
stays mapped and the next call reuses it. The process's resident memory then
stays at its peak instead of shrinking between calls; that is the cost.

It must run before the threads that allocate start (before JAX creates its
CPU client), so entry points call it first: ``launch.py`` and the
benchmarks. Set ``LEADMIX_GLIBC_MALLOC_DEFAULTS=1`` to keep glibc's defaults
(the tests' ``conftest.py`` does, for itself and the ``launch.py`` processes
it starts: the suite mostly compiles). Elsewhere (macOS, musl) it does nothing.

Not on accelerator hosts: one arena serialises every thread's ``malloc``, and
XLA compiles on many threads, while the step's buffers live on the device
there, so the page faults it saves do not arise. More arenas do not help
XLA:CPU (a block over a secondary arena's heap is ``mmap``-ed regardless), so
:func:`keep_freed_memory` leaves the allocator alone where JAX will find an
accelerator (:func:`accelerator_expected`). The page faults, step times and
compile times behind these choices are in ``docs/training.md``.
"""

from __future__ import annotations

import ctypes
import glob
import importlib.metadata
import importlib.util
import os
import pkgutil
import platform

# mallopt parameters, from glibc's <malloc.h>.
M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
M_ARENA_MAX = -8
TRIM_THRESHOLD_BYTES = 1 << 30
OPT_OUT = "LEADMIX_GLIBC_MALLOC_DEFAULTS"
# Device nodes of the accelerators JAX has plugins for: NVIDIA (CUDA), AMD
# (ROCm's kfd), Google TPU (accel on v4+, vfio on v5e/v6e).
DEVICE_NODES = ("/dev/nvidiactl", "/dev/nvidia0", "/dev/kfd", "/dev/accel0", "/dev/vfio/[0-9]*")


def on_glibc() -> bool:
    """Whether this process runs on Linux with glibc (where ``mallopt`` exists)."""
    return platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"


def accelerator_plugin_installed() -> bool:
    """Whether a JAX accelerator plugin is installed (a ``jax_plugins``
    namespace module or entry point, as JAX discovers them, or ``libtpu``),
    found without importing JAX or starting a backend."""
    if importlib.metadata.entry_points(group="jax_plugins"):
        return True
    if importlib.util.find_spec("libtpu") is not None:
        return True
    spec = importlib.util.find_spec("jax_plugins")
    return spec is not None and any(pkgutil.iter_modules(spec.submodule_search_locations or []))


def accelerator_expected(environ=os.environ) -> bool:
    """Whether JAX in this process will run on an accelerator: ``JAX_PLATFORMS``
    names one, or (unset) a plugin is installed and a device node exists."""
    platforms = [p.strip() for p in environ.get("JAX_PLATFORMS", "").split(",") if p.strip()]
    if platforms:
        return any(p != "cpu" for p in platforms)
    devices = any(glob.glob(pattern) for pattern in DEVICE_NODES)
    return devices and accelerator_plugin_installed()


def keep_freed_memory() -> bool:
    """Sets glibc's allocator to keep freed memory mapped; returns whether it did
    (False off glibc, when ``LEADMIX_GLIBC_MALLOC_DEFAULTS`` is set, where an
    accelerator is expected, or when ``mallopt`` refuses a setting)."""
    if os.environ.get(OPT_OUT) or not on_glibc() or accelerator_expected():
        return False
    return apply_mallopt()


def apply_mallopt() -> bool:
    """The ``mallopt`` calls of :func:`keep_freed_memory`, unconditionally
    (benchmarks that measure their cost call it directly); False where
    ``libc.so.6`` is missing or ``mallopt`` refuses a setting."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    settings = ((M_ARENA_MAX, 1), (M_MMAP_MAX, 0), (M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES))
    # mallopt returns 1 on success and 0 on error; all are applied either way.
    return all([libc.mallopt(param, value) == 1 for param, value in settings])
