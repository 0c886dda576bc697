"""Synthetic PTB, PTB-XL and SPH at the real databases' size and proportions
(or a fraction of it), for the full-scale benchmark (``bench/full_scale.py``).

At ``fraction`` 1:

| database | records | patients | paper rule | lengths |
|---|---|---|---|---|
| PTB-XL 1.0.3 | 21,799 | about 18,900 | about 5.1 k MI, 9.5 k normal | 10 s at 500 and 100 Hz |
| SPH | 25,770 | about 24,700 | 1.0 % MI, 54 % normal | 10-56 s, as the real ``N`` column |
| PTB | about 550 | 290 | 148 MI patients, 52 controls | 30-115 s |

Where the proportions come from: SPH's from its real ``metadata.csv``
(25,770 rows: records per patient, the paper rule's MI and normal counts,
the ``N`` column counted in 500-sample steps; ``../shared/realdata/sph``);
PTB-XL's record and patient totals and label rates from its documentation
and the issue that asked for this; PTB's from PhysioNet's description (549
records of 290 patients, 148 MI and 52 control patients, most records
115.2 s long). The signals are the simulator's, not real ECGs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from leadmix_jax.synthetic.ptb_writer import write_ptb
from leadmix_jax.synthetic.ptbxl_writer import write_ptbxl
from leadmix_jax.synthetic.sph_writer import write_sph

#: SPH records per patient, 1..5 (23,600 / 1,033 / 29 / 3 / 1 patients).
SPH_RECORDS_PER_PATIENT = (23600, 1033, 29, 3, 1)
#: SPH record lengths: (samples at 500 Hz, records) of the real N column.
SPH_LENGTHS = (
    (5000, 18842), (5500, 1500), (6000, 2862), (6500, 608), (7000, 430), (7500, 553),
    (8000, 214), (8500, 186), (9000, 107), (9500, 81), (10000, 87), (10500, 73),
    (11000, 37), (11500, 34), (12000, 26), (12500, 18), (13000, 22), (13500, 14),
    (14000, 12), (14500, 5), (15000, 2), (15500, 9), (16000, 9), (16500, 1), (17000, 5),
    (17500, 2), (18000, 2), (18500, 3), (19000, 5), (19500, 3), (20000, 1), (20500, 4),
    (21500, 6), (22500, 2), (23000, 1), (25500, 1), (26000, 1), (27000, 1), (28000, 1),
)  # fmt: skip

#: Per database: records (or patients, for PTB) at fraction 1 and the writer's arguments.
REAL: dict[str, dict[str, Any]] = {
    "sph": {
        "records": 25770,
        "kwargs": {
            # normal 13,905 and MI 260 of 25,770 records; no MI-like code the rule excludes
            "label_cuts": (13905 / 25770, (13905 + 260) / 25770, (13905 + 260) / 25770),
            "records_per_patient": tuple(n / sum(SPH_RECORDS_PER_PATIENT) for n in SPH_RECORDS_PER_PATIENT),
            "length_table": SPH_LENGTHS,
        },
    },
    "ptbxl": {
        "records": 21799,
        "kwargs": {
            "label_rates": {"mi": 5100 / 21799, "normal": 9500 / 21799, "other": 7199 / 21799},
            # 21,799 records of 18,869 patients: 1.155 records per patient
            "records_per_patient": (0.88, 0.085, 0.035),
        },
    },
    "ptb": {
        "patients": 290,
        "kwargs": {
            "p_mi": 148 / 290,
            "p_control": 52 / 290,
            "p_multi": 0.45,  # 1.9 records per patient: 549 of 290
            "p_xyz": 1.0,
            "lengths": ((115.2, 0.8), (38.4, 0.1), (32.0, 0.05), (60.0, 0.05)),
        },
    },
}


def sizes(fraction: float) -> dict[str, int]:
    """Records (PTB: patients) of each database at ``fraction`` of the real size."""
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    return {
        "sph": max(40, round(REAL["sph"]["records"] * fraction)),
        "ptbxl": max(40, round(REAL["ptbxl"]["records"] * fraction)),
        "ptb": max(6, round(REAL["ptb"]["patients"] * fraction)),
    }


def write_databases(
    root, fraction: float, seed: int = 0, workers: int = 1, progress: bool = True
) -> dict[str, dict[str, Any]]:
    """Writes ``root/ptb``, ``root/ptbxl`` and ``root/sph`` at ``fraction`` of
    the real size; returns the writers' summaries (without per-record lists).
    Deterministic for ``seed`` whatever ``workers`` is."""
    root, n = Path(root), sizes(fraction)
    out = {
        "ptb": write_ptb(root / "ptb", n["ptb"], seed, progress=progress, **REAL["ptb"]["kwargs"]),
        "ptbxl": write_ptbxl(
            root / "ptbxl", n["ptbxl"], seed, workers=workers, progress=progress, **REAL["ptbxl"]["kwargs"]
        ),
        "sph": write_sph(
            root / "sph", n["sph"], seed, workers=workers, progress=progress, **REAL["sph"]["kwargs"]
        ),
    }
    return {db: {k: v for k, v in s.items() if k != "records"} for db, s in out.items()}
