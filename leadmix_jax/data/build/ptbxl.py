"""PTB-XL 1.0.3 (PhysioNet): what ``ptbxl_mi`` knows about its source layout.

:func:`scan` reads ``ptbxl_database.csv`` (and ``scp_statements.csv`` for the
``mi_superclass`` rule); the folds are PTB-XL's own ``strat_fold``, signals
are ``<root>/<filename_hr>`` (500 Hz WFDB, ``records500/``) or, at ``rate``
100, ``<root>/<filename_lr>`` (the 100 Hz copies, ``records100/``: all many
users download).
"""

from __future__ import annotations

import math
from pathlib import Path

from leadmix_jax.data import labels as labels_lib
from leadmix_jax.data import splits as splits_lib
from leadmix_jax.data.build.scan import (
    NotTheDatabaseError,
    Scan,
    Skip,
    inside,
    nan_float,
    parse_sex,
    read_csv,
    read_table,
    require_columns,
)
from leadmix_jax.data.build.checksums import Checksums
from leadmix_jax.data.build.task import RecordTask
from leadmix_jax.data.records import EXCLUDED_LABEL


PTBXL_EXPECTED = (
    "the PTB-XL 1.0.3 folder as downloaded from PhysioNet: it holds "
    "ptbxl_database.csv, scp_statements.csv and records500/ (WFDB, 500 Hz) "
    "or, for the *_100hz configs, records100/ (100 Hz)"
)
#: Sampling rate -> the metadata column naming that rate's records.
FILENAME_COLUMN = {500: "filename_hr", 100: "filename_lr"}
PTBXL_COLUMNS = ("ecg_id", "patient_id", "scp_codes", "strat_fold")


def _ptbxl_diagnostic_class(root: Path) -> dict[str, str]:
    path = root / "scp_statements.csv"
    if not path.is_file():
        raise NotTheDatabaseError(
            f"The mi_superclass rule needs {path} (PTB-XL's scp_statements.csv, column "
            f"diagnostic_class). Expected {PTBXL_EXPECTED}."
        )
    df = read_csv(path, "PTB-XL scp_statements.csv")
    require_columns(df, ("diagnostic_class",), path, "scp_statements.csv")
    return dict(zip(df.iloc[:, 0].str.strip(), df["diagnostic_class"].str.strip()))


def scan(root, rule: str = "paper", rate: int = 500) -> Scan:
    """Scans PTB-XL's ``ptbxl_database.csv`` (and ``scp_statements.csv`` for
    the ``mi_superclass`` rule); signals are ``root/<filename_hr>`` at ``rate``
    500 and ``root/<filename_lr>`` at ``rate`` 100."""
    root = Path(str(root))  # no os.*: TFDS tests patch it
    if rate not in FILENAME_COLUMN:
        raise ValueError(f"PTB-XL comes at 500 or 100 Hz, not {rate!r}")
    column = FILENAME_COLUMN[rate]
    db = root / "ptbxl_database.csv"
    if not db.is_file():
        raise NotTheDatabaseError(f"{root} is not PTB-XL: no ptbxl_database.csv. Expected {PTBXL_EXPECTED}.")
    sums = Checksums.of_folder(root)
    metadata = [db] + ([root / "scp_statements.csv"] if rule == "mi_superclass" else [])
    for path in metadata:
        sums.check_metadata(path)
    table = read_table(db, "PTB-XL ptbxl_database.csv")
    require_columns(table.columns, (*PTBXL_COLUMNS, column), db, "PTB-XL's ptbxl_database.csv")
    classes = _ptbxl_diagnostic_class(root) if rule == "mi_superclass" else None
    tasks, skipped, seen = [], list(table.bad), set()
    for row in table.rows:
        rid = str(row["ecg_id"]).strip()
        try:
            rid = str(int(float(rid)))
        except ValueError:
            skipped.append(Skip(rid or "?", "bad_metadata", f"ecg_id {rid!r}"))
            continue
        split = None
        try:
            fold = int(float(row["strat_fold"]))
            split = splits_lib.split_of_fold(fold)
            pid = float(row["patient_id"])
            if not math.isfinite(pid):
                raise ValueError(row["patient_id"])
            patient = str(int(pid)) if pid == int(pid) else str(pid)
            rel = str(row[column]).strip()
            if not rel:
                raise ValueError(f"empty {column}")
            if rid in seen:
                raise ValueError("duplicate ecg_id")
        except (ValueError, TypeError) as err:
            skipped.append(Skip(rid, "bad_metadata", str(err), split))
            continue
        seen.add(rid)
        signal_path = inside(root, rel)
        if signal_path is None:
            skipped.append(Skip(rid, "unsafe_path", f"{column} {rel!r} leaves the database folder", split))
            continue
        try:
            codes = labels_lib.parse_scp_codes(row["scp_codes"])
        except labels_lib.CodeParseError as err:
            skipped.append(Skip(rid, "unparseable_codes", str(err), split))
            continue
        label = labels_lib.ptbxl_label(codes, rule, classes)
        if label is None:
            skipped.append(Skip(rid, EXCLUDED_LABEL, str(row["scp_codes"]), split))
            continue
        tasks.append(
            RecordTask(
                record_id=rid,
                patient_id=patient,
                label=label,
                fold=fold,
                codes=str(row["scp_codes"]),
                age=nan_float(row.get("age", "")),
                sex=parse_sex(row.get("sex", "")),
                kind="wfdb",
                path=str(signal_path),
                expected_fs=float(rate),
                checksums=sums.of_record(signal_path),
            )
        )
    checked = sum(sums.expected(p) is not None for p in metadata)
    return Scan("ptbxl", str(root), len(table), tasks, skipped, sums.file, checked)
