"""Helpers shared by the synthetic database writers."""

from __future__ import annotations

from collections import Counter

import numpy as np


def _rec_rng(seed: int, db: int, i: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), db, int(i) + 1])  # i = -1: the db-level stream


def _choice(rng: np.random.Generator, items):
    return items[int(rng.integers(len(items)))]


def _label_counts(records: list[dict], key: str) -> dict[str, int]:
    c = Counter(r[key] for r in records)
    return {k: c.get(k, 0) for k in ("mi", "normal", "other")}


def map_records(fn, jobs: list[tuple], workers: int = 1, label: str = "") -> list:
    """``[fn(*job) for job in jobs]``, in order; in a ``spawn`` process pool
    when ``workers > 1`` (each record draws from its own generator, so the
    files are the same for any number of workers). With ``label``, a progress
    line about every 10 %."""
    import multiprocessing
    import time

    out, t0, step = [], time.perf_counter(), max(1, len(jobs) // 10)

    def note(done: int) -> None:
        if label and (done % step == 0 or done == len(jobs)):
            rate = done / max(time.perf_counter() - t0, 1e-9)
            print(f"{label}: {done}/{len(jobs)} records ({rate:,.0f}/s)", flush=True)

    if workers <= 1 or len(jobs) < 2:
        for job in jobs:
            out.append(fn(*job))
            note(len(out))
        return out
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        for result in pool.imap(
            _star, [(fn, job) for job in jobs], chunksize=max(1, min(32, step // workers))
        ):
            out.append(result)
            note(len(out))
    return out


def _star(item):
    fn, job = item
    return fn(*job)
