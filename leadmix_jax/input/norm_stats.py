"""Per-lead normalisation statistics and the one z-scoring.

The statistics (mean and std per lead, over time and examples of the
training split) are computed once per training run and saved with every
checkpoint, so that evaluation and prediction z-score exactly as training
did. This module computes, converts and applies them; reading and writing
files is the caller's business (the trainer caches them in
``workdir/norm_stats.json``, checkpoints carry them in their metadata).

Z-scoring is :func:`zscore` with the float32 factors of :func:`zscore_factors`
on every path: the grain pipeline and prediction (:class:`ZScore`), the
device-resident batches and a population's members (inside the compiled
step) and the exported model (folded in front of the network).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence

import numpy as np
from absl import logging

from leadmix_jax.data import leads as leads_lib
from leadmix_jax.input import built


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
    z-scoring never divides by zero. Leads and examples whose scale is far
    from the others' are reported (:func:`outliers`)."""
    leads = leads_lib.parse_leads(leads)
    idx = np.asarray(leads_lib.lead_indices(leads))
    s = np.zeros(len(idx))
    s2 = np.zeros(len(idx))
    count = n = 0
    example_std = []
    for ecg in ecgs:
        x = np.asarray(ecg, np.float64)[:, idx]
        s += x.sum(axis=0)
        s2 += np.square(x).sum(axis=0)
        example_std.append(x.std(axis=0))
        count += x.shape[0]
        n += 1
    if count == 0:
        raise ValueError(f"{source} is empty: cannot compute normalisation statistics")
    mean = s / count
    std = np.sqrt(np.maximum(s2 / count - mean**2, 0.0))
    for warning in outliers(np.asarray(example_std), std, leads, source):
        logging.warning("%s", warning)
        print(f"warning: {warning}", flush=True)
    std = np.where(std > 1e-6, std, 1.0)
    return NormStats(leads, tuple(mean.tolist()), tuple(std.tolist()), n, source)


#: How far (a factor) a lead's or an example's scale may be from the others' before it is reported.
OUTLIER_FACTOR = 20.0


def outliers(example_std: np.ndarray, lead_std: np.ndarray, leads: Sequence[str], source: str) -> list[str]:
    """Warnings for statistics that one bad record could have skewed.

    Args:
      example_std: ``(n, N)`` each example's std per lead.
      lead_std: ``(N,)`` the split's std per lead.

    Returns one line per lead whose std is more than :data:`OUTLIER_FACTOR`
    times above or below the median lead's, and per lead with examples whose
    std is that far above the lead's median example (a record in uV, a lead
    x1e30: one such example inflates the lead's std)."""
    out = []
    typical = float(np.median(lead_std))
    for lead, value in zip(leads, lead_std):
        if typical > 0 and not 1 / OUTLIER_FACTOR <= value / typical <= OUTLIER_FACTOR:
            out.append(
                f"{source}: lead {lead}'s std {value:.3g} is far from the other leads' (median {typical:.3g}): "
                "check the data for a record with a wrong unit or gain"
            )
    median = np.median(example_std, axis=0)
    for k, lead in enumerate(leads):
        far = np.flatnonzero(example_std[:, k] > OUTLIER_FACTOR * max(median[k], 1e-12))
        if far.size:
            out.append(
                f"{source}: {far.size} example(s) with lead {lead}'s std over {OUTLIER_FACTOR:g}x the median "
                f"example's ({median[k]:.3g}), e.g. examples {far[:5].tolist()} (largest {example_std[far, k].max():.3g})"
            )
    return out


def zscore_factors(mean: Sequence[float], std: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """``(mean, 1 / std)`` as float32 ``(N,)`` arrays: the factors of :func:`zscore`.

    ``1 / std`` is taken in float64 and rounded once, so every path multiplies
    by the same float32 numbers."""
    return np.asarray(mean, np.float32), (1.0 / np.asarray(std, np.float64)).astype(np.float32)


def zscore(x, mean, inv_std):
    """``(x - mean) * inv_std``: ``(..., T, N)`` windows z-scored per lead.

    NumPy or JAX arrays alike; ``mean`` and ``inv_std`` are the factors of
    :func:`zscore_factors`, broadcastable against ``x`` (``(N,)``, or
    ``(P, 1, 1, N)`` for a population's members)."""
    return (x - mean) * inv_std


class ZScore:
    """:func:`zscore` with the factors of ``stats``, on NumPy windows:
    ``(..., T, N) -> (..., T, N)`` float32 (pickled into grain workers)."""

    def __init__(self, stats: NormStats):
        self.mean, self.inv_std = zscore_factors(stats.mean, stats.std)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return zscore(np.asarray(x, np.float32), self.mean, self.inv_std)


def compute_from_split(
    builder, split: str, leads: Sequence[str], max_examples: int, source_name: str = ""
) -> NormStats:
    """:func:`compute` over (up to ``max_examples``) evenly spaced examples of a
    built dataset's ``split``: the same examples in either file format."""
    rows = built.read_rows(builder, split, built.sample_indices(builder, split, max_examples))
    return compute((ex["ecg"] for _, ex in rows), leads, f"{source_name or builder.name}:{split}")


def check_leads(stats: NormStats, leads: Sequence[str], where: str) -> None:
    """``ValueError`` when ``stats`` are not for ``leads`` (in that order)."""
    if tuple(stats.leads) != tuple(leads):
        raise ValueError(
            f"normalisation statistics of {where} are for leads {','.join(stats.leads)}, "
            f"the model's are {','.join(leads)}"
        )
