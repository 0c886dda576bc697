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
