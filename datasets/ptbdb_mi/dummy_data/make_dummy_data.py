"""Writes this folder: a tiny synthetic PTB Diagnostic ECG Database in its original layout.

Run from anywhere: ``python datasets/ptbdb_mi/dummy_data/make_dummy_data.py``.
Signals are synthetic (:func:`leadmix_jax.synthetic.synth_record`, written by
:func:`leadmix_jax.synthetic.write_wfdb`); no real
patient data. Layout as PhysioNet's ptbdb 1.0.0: ``RECORDS``, ``CONTROLS``,
``patientNNN/sXXXXyyy.{hea,dat}``, 1000 Hz, lower-case lead names, headers
that list the 3 Frank leads of an ``.xyz`` file that is absent (as in many
real records), a CRLF ``_re`` header with checksums and LF ``lre`` headers
with zero fields. To stay small the ``.dat`` files use WFDB format 80 (8-bit,
40 adu/mV) instead of PTB's format 16; the reader handles any WFDB format.

Records (RECORDS entry: reason for admission -> fold -> split):
  patient001/s0001_re: Myocardial infarction -> fold 1 -> train
  patient005/s0002lre: Healthy control (in CONTROLS) -> fold 9 -> validation
  patient007/s0003lre: Myocardial infarction -> fold 10 -> test
  patient041/s0004lre: Cardiomyopathy -> excluded (header only; never read)
Expected examples (one 10 s window each): train 1, validation 1, test 1.
Patient ids were chosen so that leadmix_jax.data.splits.fold_of_patient puts one
record in each split.
"""

from pathlib import Path

import numpy as np

from leadmix_jax import synthetic as synthetic

HERE = Path(__file__).resolve().parent
LEADS = ("i", "ii", "iii", "avr", "avl", "avf", "v1", "v2", "v3", "v4", "v5", "v6")
GAIN = 40.0
RECORDS = [  # record, reason, age, sex, mi, territory, write .dat
    ("patient001/s0001_re", "Myocardial infarction", 63, "male", True, "inferior", True),
    ("patient005/s0002lre", "Healthy control", 45, "female", False, None, True),
    ("patient007/s0003lre", "Myocardial infarction", 71, "male", True, "anterior", True),
    ("patient041/s0004lre", "Cardiomyopathy", 52, "male", False, None, False),
]


def _comments(reason: str, age: int, sex: str, territory) -> list[str]:
    loc = territory or ("n/a" if reason == "Healthy control" else "no")
    return [
        f"age: {age}",
        f"sex: {sex}",
        "ECG date: 01/01/1990",
        "",
        "Diagnose:",
        f"Reason for admission: {reason}",
        f"Acute infarction (localization): {loc}",
        "Former infarction (localization): no",
        "Additional diagnoses: no",
        "Smoker: no",
        "",
        "Therapy:",
        "Medication pre admission: n/a",
    ]


def main(root: Path = HERE) -> None:
    for i, (name, reason, age, sex, mi, territory, write) in enumerate(RECORDS):
        folder, rec = name.split("/")
        rng = np.random.default_rng(200 + i)
        seconds = 10.0 if write else 0.01
        sig = (
            synthetic.synth_record(rng, 1000, seconds, mi, territory)
            if write
            else np.zeros((10, 12), np.float32)
        )
        crlf = rec.endswith("_re")  # as in ptbdb: CRLF + checksums in _re, LF + zeros in lre
        synthetic.write_wfdb(
            root / folder,
            rec,
            [(f"{rec}.dat", sig, list(LEADS)), (f"{rec}.xyz", sig[:, :3], ["vx", "vy", "vz"])],
            1000,
            f"{GAIN:g}",
            GAIN,
            comments=_comments(reason, age, sex, territory),
            newline="\r\n" if crlf else "\n",
            signed_checksum=True,
            zero_fields=not crlf,
            write_files={f"{rec}.dat"} if write else set(),
            fmt="80",
        )
    (root / "RECORDS").write_text("".join(f"{r[0]}\n" for r in RECORDS))
    (root / "CONTROLS").write_text("".join(f"{r[0]}\n" for r in RECORDS if r[1] == "Healthy control"))


if __name__ == "__main__":
    main()
