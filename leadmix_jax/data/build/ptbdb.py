"""PTB Diagnostic ECG Database (PhysioNet ptbdb 1.0.0): what ``ptbdb_mi`` knows
about its source layout.

:func:`scan` reads ``RECORDS``, ``CONTROLS`` (optional) and every listed
record's WFDB header (clinical data in the comments), applies the label rule
and gives the records to process with their patient-grouped folds.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
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
    with_folds,
)
from leadmix_jax.data.build.checksums import Checksums, mismatch
from leadmix_jax.data.build.task import RecordTask
from leadmix_jax.data.records import EXCLUDED_LABEL, RecordError, read_wfdb_header


PTB_EXPECTED = (
    "the PTB Diagnostic ECG Database folder as downloaded from PhysioNet "
    "(ptbdb 1.0.0): it holds the file RECORDS (one 'patientNNN/sXXXXyyy' per line), "
    "CONTROLS and the folders patient001/ ... patient294/ with WFDB .hea/.dat files"
)


def _ptb_age(comments: Iterable[str]) -> float:
    for c in comments:
        k, _, v = c.partition(":")
        if k.strip().lower() == "age":
            return nan_float(v)
    return math.nan


def _ptbparse_sex(comments: Iterable[str]) -> str:
    for c in comments:
        k, _, v = c.partition(":")
        if k.strip().lower() == "sex":
            return parse_sex(v)
    return ""


def _read_list(path: Path) -> list[str]:
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    return [ln.strip().strip("/") for ln in lines if ln.strip()]


def scan(root, rule: str = "paper") -> Scan:
    """Scans PTB: ``RECORDS``, ``CONTROLS`` (optional) and every record's header."""
    root = Path(str(root))  # no os.*: TFDS tests patch it
    records_file = root / "RECORDS"
    if not records_file.is_file():
        raise NotTheDatabaseError(
            f"{root} is not the PTB database: no file RECORDS. Expected {PTB_EXPECTED}."
        )
    sums = Checksums.of_folder(root)
    controls_file = root / "CONTROLS"
    metadata = [p for p in (records_file, controls_file) if p.is_file()]
    for path in metadata:
        sums.check_metadata(path)
    checked = sum(sums.expected(p) is not None for p in metadata)
    names = list(dict.fromkeys(_read_list(records_file)))
    controls = set(_read_list(controls_file)) if controls_file.is_file() else None
    tasks, skipped = [], []
    for name in names:
        parts = name.split("/")
        if inside(root, name) is None or ".." in parts:
            skipped.append(Skip(name, "unsafe_path", "RECORDS line leaves the database folder"))
            continue
        if len(parts) != 2 or not parts[0] or not parts[1]:
            skipped.append(Skip(name, "bad_metadata", "RECORDS line is not patientNNN/record"))
            continue
        patient = parts[0]
        hea = root / f"{name}.hea"
        problem = mismatch(hea, sums.expected(hea))
        checked += sums.expected(hea) is not None
        if problem:  # the header holds the label: not read when it differs
            skipped.append(Skip(name, "checksum_mismatch", f"{hea.name}: {problem}"))
            continue
        try:
            header = read_wfdb_header(root / name)
            label = labels_lib.ptb_label(
                header.comments, None if controls is None else name in controls, rule
            )
        except RecordError as err:
            skipped.append(Skip(name, err.reason, err.detail))
            continue
        except labels_lib.CodeParseError as err:
            skipped.append(Skip(name, "unparseable_codes", str(err)))
            continue
        if label is None:
            reason = labels_lib.ptb_reason_for_admission(header.comments) or "?"
            skipped.append(Skip(name, EXCLUDED_LABEL, f"Reason for admission: {reason}"))
            continue
        tasks.append(
            RecordTask(
                record_id=name,
                patient_id=patient,
                label=label,
                fold=0,
                codes="\n".join(header.comments),
                age=_ptb_age(header.comments),
                sex=_ptbparse_sex(header.comments),
                kind="wfdb",
                path=str(root / name),
                expected_fs=EXPECTED_FS["ptb"],
                header=header,
                checksums=tuple(c for c in sums.of_record(root / name) if c[0].endswith(".dat")),
            )
        )
    return Scan("ptb", str(root), len(names), with_folds(tasks), skipped, sums.file, checked)
