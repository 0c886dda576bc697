"""The process pool that preprocesses records during a build.

Why a process pool inside ``_generate_examples`` rather than TFDS's Beam
path: it works unchanged with the stock ``tfds build`` CLI and with
``Builder(...).download_and_prepare()``, needs no Beam runner configuration,
keeps the example order (and so the written files) identical for any number of
workers (``imap`` is ordered), and shares one pool across the three splits.
Workers are started with ``spawn`` (the parent has TensorFlow/JAX threads, so
``fork`` is unsafe) and import only NumPy/SciPy/PyWavelets/wfdb/h5py. The
number of workers is the ``num_workers`` builder argument, else the
``LEADMIX_BUILD_WORKERS`` environment variable, else all usable cores; 1 runs
everything in-process. At PTB-XL scale the preprocessing dominates and
scales with cores; a cluster build would need the Beam path instead.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import sys
import threading
from collections.abc import Iterator, Sequence

from leadmix_jax.data.build.task import RecordResult, RecordTask, process_record

WORKERS_ENV = "LEADMIX_BUILD_WORKERS"

__all__ = ["WORKERS_ENV", "default_workers", "RecordPool"]


def default_workers() -> int:
    """``LEADMIX_BUILD_WORKERS`` if set, else the number of usable cores."""
    env = os.environ.get(WORKERS_ENV, "").strip()
    if env:
        return max(1, int(env))
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


_THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


@contextlib.contextmanager
def _workers_skip_main():
    """Keeps ``spawn`` workers from re-importing the parent's ``__main__``.

    ``spawn`` re-runs the main module's imports in every worker; under the
    ``tfds`` CLI (or any script) that means importing TensorFlow, several
    seconds and hundreds of MB per worker, for nothing: the workers only need
    :mod:`leadmix_jax.data.records`. The main module's ``__spec__``/``__file__``
    are hidden while the workers start (they are read only then). Workers
    also get single-threaded BLAS/OpenMP (unless the environment says
    otherwise), since there is one worker per core.
    """
    main = sys.modules.get("__main__")
    saved = {k: main.__dict__[k] for k in ("__spec__", "__file__") if main and k in main.__dict__}
    env = {k: os.environ.get(k) for k in _THREAD_ENV}
    try:
        if main is not None:
            main.__dict__["__spec__"] = None
            main.__dict__.pop("__file__", None)
        for k in _THREAD_ENV:  # one process per core: no BLAS/OpenMP thread pools
            os.environ.setdefault(k, "1")
        yield
    finally:
        if main is not None:
            main.__dict__.update(saved)
        for k, v in env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


class RecordPool:
    """Maps :func:`process_record` over tasks, in order, in-process or with a
    lazily started ``spawn`` pool that is reused until :meth:`close`."""

    def __init__(self, workers: int):
        self.workers = max(1, int(workers))
        self._pool = None

    def map(self, tasks: Sequence[RecordTask]) -> Iterator[RecordResult]:
        if self.workers == 1 or len(tasks) < 2:
            for t in tasks:
                yield process_record(t)
            return
        if self._pool is None:
            with _workers_skip_main():
                self._pool = multiprocessing.get_context("spawn").Pool(self.workers)
        chunk = max(1, min(16, len(tasks) // (self.workers * 8)))
        # At most `limit` records in flight: results wait in memory until the
        # TFDS writer takes them, and a fast pool must not pile them up.
        limit = max(64, 4 * chunk * self.workers)
        slots, stop = threading.Semaphore(limit), threading.Event()

        def feed():  # runs in the pool's task-handler thread
            for t in tasks:
                while not slots.acquire(timeout=0.2):
                    if stop.is_set():
                        return
                if stop.is_set():
                    return
                yield t

        try:
            for result in self._pool.imap(process_record, feed(), chunksize=chunk):
                slots.release()
                yield result
        finally:
            stop.set()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.terminate()
            self._pool.join()
            self._pool = None
