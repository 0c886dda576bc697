"""Helpers shared by the synthetic database writers."""

from __future__ import annotations

from collections import Counter

import numpy as np


def _rec_rng(seed: int, db: int, i: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), db, int(i) + 1])  # i = -1: the db-level stream


def patients_of_records(
    prng: np.random.Generator, n_records: int, p_multi: float, records_per_patient=None
) -> list[int]:
    """The patient (0, 1, ...) of each record, in order: a patient has 1 record,
    or with probability ``p_multi`` 2-3; or 1, 2, ... with the probabilities
    ``records_per_patient``."""
    pat: list[int] = []
    while len(pat) < n_records:
        if records_per_patient is None:
            k = 1 + (int(prng.integers(1, 3)) if prng.random() < p_multi else 0)
        else:
            k = 1 + int(prng.choice(len(records_per_patient), p=records_per_patient))
        pat += [pat[-1] + 1 if pat else 0] * k
    return pat[:n_records]


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
