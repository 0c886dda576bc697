"""Per-lead normalisation statistics and z-scoring.

The statistics (mean and std per lead, over time and examples of the
training split) are computed once per training run and saved with every
checkpoint, so that evaluation and prediction z-score exactly as training
did. This module only computes, converts and applies them; reading and
writing files is the caller's business (``train.py`` caches them in
``workdir/norm_stats.json``, checkpoints carry them in their metadata).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence

import numpy as np

from leadmix_jax import leads as leads_lib


@dataclasses.dataclass(frozen=True)
class NormStats:
    """Per-lead mean and std (in the model's lead order), from a training split."""

    leads: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    num_examples: int
    source: str  # "<dataset>:<split>" they were computed on

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    def select(self, leads: Sequence[str]) -> "NormStats":
        """The statistics of ``leads`` (a subset, in the given order)."""
        missing = [lead for lead in leads if lead not in self.leads]
        if missing:
            raise ValueError(f"no normalisation statistics for leads {missing} (have {list(self.leads)})")
        idx = [self.leads.index(lead) for lead in leads]
        pick = lambda v: tuple(float(v[i]) for i in idx)  # noqa: E731
        return dataclasses.replace(self, leads=tuple(leads), mean=pick(self.mean), std=pick(self.std))

    @classmethod
    def from_json(cls, d: dict) -> "NormStats":
        return cls(tuple(d["leads"]), tuple(d["mean"]), tuple(d["std"]), int(d["num_examples"]), d["source"])


def compute(ecgs: Iterable[np.ndarray], leads: Sequence[str], source: str) -> NormStats:
    """Statistics of ``leads`` over windows ``ecg`` ``(T, 12)`` in canonical lead order.

    Accumulates in float64; a constant lead (std ~ 0) gets std 1 so that
    z-scoring never divides by zero.
    """
    leads = leads_lib.parse_leads(leads)
    idx = np.asarray(leads_lib.lead_indices(leads))
    s = np.zeros(len(idx))
    s2 = np.zeros(len(idx))
    count = n = 0
    for ecg in ecgs:
        x = np.asarray(ecg, np.float64)[:, idx]
        s += x.sum(axis=0)
        s2 += np.square(x).sum(axis=0)
        count += x.shape[0]
        n += 1
    if count == 0:
        raise ValueError(f"{source} is empty: cannot compute normalisation statistics")
    mean = s / count
    std = np.sqrt(np.maximum(s2 / count - mean**2, 0.0))
    std = np.where(std > 1e-6, std, 1.0)
    return NormStats(leads, tuple(mean.tolist()), tuple(std.tolist()), n, source)


class ZScore:
    """``(x - mean) / std`` per lead, float32: ``(..., T, N) -> (..., T, N)``.

    The one implementation of z-scoring, used by the input pipeline (per
    example, pickled into grain workers) and by prediction (per window batch).
    """

    def __init__(self, stats: NormStats):
        self.mean = np.asarray(stats.mean, np.float32)
        # 1/std in float64 first: the same float32 factors on every path
        self.inv_std = (1.0 / np.asarray(stats.std, np.float64)).astype(np.float32)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return (np.asarray(x, np.float32) - self.mean) * self.inv_std


def check_leads(stats: NormStats, leads: Sequence[str], where: str) -> None:
    """``ValueError`` when ``stats`` are not for ``leads`` (in that order)."""
    if tuple(stats.leads) != tuple(leads):
        raise ValueError(
            f"normalisation statistics of {where} are for leads {','.join(stats.leads)}, "
            f"the model's are {','.join(leads)}"
        )
