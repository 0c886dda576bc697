"""Writes this folder: a tiny synthetic SPH database in its original layout.

Run from anywhere: ``python datasets/sph_mi/dummy_data/make_dummy_data.py``.
Signals are synthetic (:func:`leadmix_jax.synthetic.synth_record`, written by
:func:`leadmix_jax.synthetic.write_sph_record`), quantised
to 1/256 mV and stored gzip-compressed to keep the folder small; no real patient
data. ``metadata.csv`` has the 7 original columns; ``records/<ECG_ID>.h5``
holds dataset ``ecg`` float32 ``(12, N)`` at 500 Hz, leads I..V6.

Records (ECG_ID: AHA_Code, Patient_ID -> fold -> split):
  A00001: 161+332 (MI), S00001 -> fold 5 -> train (10 s)
  A00002: 1 (normal), S00012 -> fold 9 -> validation (10 s)
  A00003: 50+160 (MI), S00005 -> fold 10 -> test (21 s: 2 windows)
  A00004: 22;23 (excluded; no signal file needed), S00030
Expected examples: train 1, validation 1, test 2. Patient ids were chosen so
that leadmix_jax.data.splits.fold_of_patient puts one record in each split.
"""

import csv
from pathlib import Path

import numpy as np

from leadmix_jax import synthetic as synthetic

HERE = Path(__file__).resolve().parent
ROWS = [  # ECG_ID, AHA_Code, Patient_ID, Age, Sex, N, mi, territory, write
    ("A00001", "161+332", "S00001", 66, "M", 5000, True, "inferior", True),
    ("A00002", "1", "S00012", 41, "F", 5000, False, None, True),
    ("A00003", "50+160", "S00005", 72, "M", 10500, True, "anterior", True),
    ("A00004", "22;23", "S00030", 58, "F", 5000, False, None, False),
]


def main(root: Path = HERE) -> None:
    (root / "records").mkdir(parents=True, exist_ok=True)
    rows = []
    for i, (ecg_id, code, pid, age, sex, n, mi, territory, write) in enumerate(ROWS):
        if write:
            rng = np.random.default_rng(300 + i)
            sig = synthetic.synth_record(rng, 500, n / 500, mi, territory)
            synthetic.write_sph_record(root / "records" / f"{ecg_id}.h5", sig, quantum=1 / 256, compress=True)
        rows.append([ecg_id, code, pid, str(age), sex, str(n), f"2020-01-0{i + 1}"])
    with open(root / "metadata.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(synthetic.SPH_COLUMNS)
        w.writerows(rows)


if __name__ == "__main__":
    main()
