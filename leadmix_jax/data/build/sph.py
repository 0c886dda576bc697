"""SPH (Shandong Provincial Hospital, figshare collection 5779802): what
``sph_mi`` knows about its source layout.

:func:`scan` reads ``metadata.csv``; signals are ``<root>/records/<ECG_ID>.h5``
(dataset ``ecg``, ``(12, N)``, 500 Hz), folds are patient-grouped.
"""

from __future__ import annotations

import math
from pathlib import Path

from leadmix_jax.data import labels as labels_lib
from leadmix_jax.data.build.scan import (
    EXPECTED_FS,
    NotTheDatabaseError,
    Scan,
    Skip,
    inside,
    nan_float,
    parse_sex,
    read_table,
    require_columns,
    with_folds,
)
from leadmix_jax.data.build.task import RecordTask
from leadmix_jax.data.records import EXCLUDED_LABEL


SPH_EXPECTED = (
    "the SPH database folder (figshare collection 5779802): it holds "
    "metadata.csv (ECG_ID, AHA_Code, Patient_ID, Age, Sex, N, Date) and "
    "records/<ECG_ID>.h5"
)
SPH_COLUMNS = ("ECG_ID", "AHA_Code", "Patient_ID")


def scan(root, rule: str = "paper") -> Scan:
    """Scans SPH's ``metadata.csv``; signals are ``root/records/<ECG_ID>.h5``."""
    root = Path(str(root))  # no os.*: TFDS tests patch it
    meta = root / "metadata.csv"
    if not meta.is_file():
        raise NotTheDatabaseError(
            f"{root} is not the SPH database: no metadata.csv. Expected {SPH_EXPECTED}."
        )
    table = read_table(meta, "SPH metadata.csv")
    require_columns(table.columns, SPH_COLUMNS, meta, "SPH's metadata.csv")
    tasks, skipped, seen = [], list(table.bad), set()
    for row in table.rows:
        rid = str(row["ECG_ID"]).strip()
        patient = str(row["Patient_ID"]).strip()
        if not rid or rid in seen or not patient:
            skipped.append(
                Skip(rid or "?", "bad_metadata", "duplicate ECG_ID" if rid in seen else "empty/invalid id")
            )
            continue
        if any(c in rid for c in "/\\") or rid.startswith(".") or inside(root, f"records/{rid}.h5") is None:
            skipped.append(Skip(rid, "unsafe_path", "ECG_ID names a file outside records/"))
            continue
        seen.add(rid)
        try:
            label = labels_lib.sph_label(labels_lib.parse_aha_codes(row["AHA_Code"]), rule)
        except labels_lib.CodeParseError as err:
            skipped.append(Skip(rid, "unparseable_codes", str(err)))
            continue
        if label is None:
            skipped.append(Skip(rid, EXCLUDED_LABEL, str(row["AHA_Code"])))
            continue
        n = nan_float(row.get("N", ""))
        tasks.append(
            RecordTask(
                record_id=rid,
                patient_id=patient,
                label=label,
                fold=0,
                codes=str(row["AHA_Code"]).strip(),
                age=nan_float(row.get("Age", "")),
                sex=parse_sex(row.get("Sex", "")),
                kind="sph_h5",
                path=str(root / "records" / f"{rid}.h5"),
                expected_fs=EXPECTED_FS["sph"],
                expected_samples=int(n) if math.isfinite(n) and n == int(n) else None,
            )
        )
    return Scan("sph", str(root), len(table), with_folds(tasks), skipped)
