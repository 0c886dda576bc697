"""Patient-level splits: 10 folds, folds 1-8 train, 9 validation, 10 test.

PTB-XL ships ``strat_fold`` (patient-respecting, label-stratified) and is used
as is. PTB and SPH have no folds, so :func:`assign_folds` makes 10
deterministic ones:

* grouped by patient: all records of a patient get the patient's fold;
* stratified by label: a patient's stratum is ``mi`` if any of their records
  is MI, else ``normal``;
* greedy: patients are taken in a fixed order (stratum, most records first,
  then a SHA-256 hash of ``seed:patient_id``) and each goes to the fold that
  currently holds the fewest records of its stratum, then the fewest records
  overall; remaining ties are broken by a hash of ``seed:patient_id:fold`` so
  that small databases do not fill folds 1, 2, 3 ... in order.

No random generator is involved: the folds depend only on the patient ids,
their labels and record counts, and ``seed``. Adding or removing one patient
can move others (greedy), so fold lists should be taken from one build.
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence

NUM_FOLDS = 10
TRAIN_FOLDS = tuple(range(1, 9))
VALIDATION_FOLD = 9
TEST_FOLD = 10
SPLITS: tuple[str, ...] = ("train", "validation", "test")
DEFAULT_SEED = 0

__all__ = ["NUM_FOLDS", "TRAIN_FOLDS", "VALIDATION_FOLD", "TEST_FOLD", "SPLITS",
           "split_of_fold", "assign_folds", "check_patient_disjoint"]


def split_of_fold(fold: int) -> str:
    """``1..8`` -> ``'train'``, ``9`` -> ``'validation'``, ``10`` -> ``'test'``."""
    fold = int(fold)
    if fold in TRAIN_FOLDS:
        return "train"
    if fold == VALIDATION_FOLD:
        return "validation"
    if fold == TEST_FOLD:
        return "test"
    raise ValueError(f"fold must be in 1..{NUM_FOLDS}, got {fold}.")


def _hash(*parts) -> int:
    key = ":".join(str(p) for p in parts).encode("utf-8")
    return int.from_bytes(hashlib.sha256(key).digest()[:8], "big")


def assign_folds(patient_ids: Sequence[str], labels: Sequence[str], *,
                 num_folds: int = NUM_FOLDS, seed: int = DEFAULT_SEED) -> dict[str, int]:
    """Deterministic patient-grouped, label-stratified folds.

    Args:
      patient_ids: patient of each record.
      labels: label of each record (``'mi'`` / ``'normal'``; any hashable
        strings work, a patient's stratum is ``'mi'`` if any record is).
      num_folds: number of folds.
      seed: changes the order and tie-breaks.

    Returns:
      ``{patient_id: fold}`` with folds ``1..num_folds``.
    """
    if len(patient_ids) != len(labels):
        raise ValueError(f"{len(patient_ids)} patient ids but {len(labels)} labels.")
    n_records: Counter = Counter()
    labels_of: dict[str, set] = defaultdict(set)
    for p, lab in zip(patient_ids, labels):
        p = str(p)
        n_records[p] += 1
        labels_of[p].add(str(lab))
    stratum = {p: ("mi" if "mi" in labs else min(labs)) for p, labs in labels_of.items()}
    order = sorted(n_records, key=lambda p: (stratum[p], -n_records[p], _hash(seed, p), p))
    per_stratum: dict[str, list[int]] = defaultdict(lambda: [0] * num_folds)
    total = [0] * num_folds
    folds: dict[str, int] = {}
    for p in order:
        counts = per_stratum[stratum[p]]
        best = min(range(num_folds),
                   key=lambda f: (counts[f], total[f], _hash(seed, p, f)))
        folds[p] = best + 1
        counts[best] += n_records[p]
        total[best] += n_records[p]
    return folds


def check_patient_disjoint(split_patients: Mapping[str, Iterable[str]]) -> None:
    """Raises ValueError naming any patient found in more than one split."""
    seen: dict[str, str] = {}
    clashes = []
    for split, pats in split_patients.items():
        for p in set(pats):
            if p in seen and seen[p] != split:
                clashes.append((p, seen[p], split))
            seen.setdefault(p, split)
    if clashes:
        raise ValueError(f"Patients in more than one split: {clashes[:10]}")
