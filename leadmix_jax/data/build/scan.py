"""Shared pieces of the metadata scan stage of the three dataset builders.

Each database's own scanner (``datasets/<name>/<db>_metadata.py``) reads its
index (``RECORDS``, ``ptbxl_database.csv``, ``metadata.csv``) with these
helpers and returns a :class:`Scan`: one :class:`~leadmix_jax.data.build.task.RecordTask`
per MI/normal record to process, and a :class:`Skip` for each record dropped
already here (bad metadata row, unsafe path, unparseable codes, excluded
label). Only a folder that is not the database at all raises
:class:`NotTheDatabaseError`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from pathlib import Path

from leadmix_jax.data import splits as splits_lib
from leadmix_jax.data.build.task import RecordTask

#: Sampling rate each database is distributed at.
EXPECTED_FS = {"ptb": 1000.0, "ptbxl": 500.0, "sph": 500.0}

__all__ = [
    "EXPECTED_FS",
    "NotTheDatabaseError",
    "Skip",
    "Scan",
    "Table",
    "nan_float",
    "parse_sex",
    "with_folds",
    "read_csv",
    "read_table",
    "inside",
    "require_columns",
]


class NotTheDatabaseError(FileNotFoundError):
    """The source folder is not the expected database (stops the build)."""


@dataclasses.dataclass
class Skip:
    """A record left out, with a reason from :data:`leadmix_jax.data.records.REASONS`
    (or ``excluded_label``) and a human-readable detail."""

    record_id: str
    reason: str
    detail: str = ""
    split: str | None = None
    label: str | None = None


@dataclasses.dataclass
class Scan:
    """Result of scanning a database's metadata."""

    database: str
    source: str
    n_source: int  # records listed by the database's index
    tasks: list[RecordTask]  # MI/normal records to process, folds set
    skipped: list[Skip]  # metadata-stage skips (and excluded labels)
    sums_file: str | None = None  # the published SHA256SUMS.txt the files are checked against
    files_checked: int = 0  # metadata files (and PTB headers) checked while scanning


def nan_float(value) -> float:
    try:
        v = float(str(value).strip())
    except (TypeError, ValueError):
        return math.nan
    return v if math.isfinite(v) else math.nan


def parse_sex(value) -> str:
    v = str(value).strip().lower()
    if v in ("m", "male", "0", "0.0"):
        return "male"
    if v in ("f", "female", "1", "1.0"):
        return "female"
    return ""


def with_folds(tasks: list[RecordTask], seed: int = splits_lib.DEFAULT_SEED) -> list[RecordTask]:
    """The tasks with their patient's fold (PTB, SPH: no folds in the source)."""
    # Per patient, from the id alone: other rows (kept or skipped) cannot move it.
    return [dataclasses.replace(t, fold=splits_lib.fold_of_patient(t.patient_id, seed=seed)) for t in tasks]


def read_csv(path: Path, what: str):
    """A whole CSV with pandas (small, trusted tables: scp_statements.csv)."""
    import pandas as pd

    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False)
    except Exception as err:  # noqa: BLE001
        raise NotTheDatabaseError(f"Cannot read {what} {path}: {err}") from None


@dataclasses.dataclass
class Table:
    """A metadata CSV read row by row: good rows as dicts, bad rows as skips."""

    columns: list[str]
    rows: list[dict[str, str]]
    bad: list[Skip]

    def __len__(self) -> int:
        return len(self.rows) + len(self.bad)


def read_table(path: Path, what: str) -> Table:
    """Reads a metadata CSV; a row with the wrong number of fields or a
    non-UTF-8 byte becomes a ``bad_metadata`` skip instead of stopping the build.

    pandas would fail on the whole file for one such row ("Error tokenizing
    data", UnicodeDecodeError); here only the header must be readable.
    """
    import csv

    try:
        # surrogateescape keeps a bad byte as a marker in its own row only
        with open(path, encoding="utf-8-sig", errors="surrogateescape", newline="") as fh:
            lines = list(csv.reader(fh))
    except (OSError, csv.Error) as err:
        raise NotTheDatabaseError(f"Cannot read {what} {path}: {err}") from None
    if not lines or _has_bad_byte(lines[0]):
        raise NotTheDatabaseError(f"{what} {path} has no readable header line.")
    columns = [c.strip() for c in lines[0]]
    rows, bad = [], []
    for number, fields in enumerate(lines[1:], start=2):
        if not fields or all(not f.strip() for f in fields):
            continue
        rid = fields[0].encode("utf-8", "replace").decode("utf-8").strip() or "?"
        if _has_bad_byte(fields):
            bad.append(Skip(rid, "bad_metadata", f"{path.name} line {number}: non-UTF-8 byte"))
        elif len(fields) != len(columns):
            bad.append(
                Skip(
                    rid,
                    "bad_metadata",
                    f"{path.name} line {number}: {len(fields)} fields, the header has {len(columns)}",
                )
            )
        else:
            rows.append(dict(zip(columns, fields)))
    return Table(columns, rows, bad)


def _has_bad_byte(fields: Sequence[str]) -> bool:
    return any(any("\udc80" <= ch <= "\udcff" for ch in f) for f in fields)


def inside(root: Path, relative: str) -> Path | None:
    """``root / relative`` if ``relative`` stays inside ``root`` (not absolute,
    no ``..`` that climbs out), else None.

    Lexical on purpose: a database folder whose subfolders are symlinks to
    another disk is a legitimate layout and must keep working.
    """
    import posixpath

    rel = relative.replace("\\", "/").strip()
    if not rel or rel.startswith("/") or (len(rel) > 1 and rel[1] == ":"):  # absolute, C:
        return None
    norm = posixpath.normpath(rel)
    if norm == ".." or norm.startswith("../") or norm == ".":
        return None
    return root / norm


def require_columns(df, columns: Sequence[str], path: Path, what: str) -> None:
    have = df.columns if hasattr(df, "columns") else df
    missing = [c for c in columns if c not in list(have)]
    if missing:
        raise NotTheDatabaseError(f"{path} lacks column(s) {missing} of {what}; found {list(have)[:12]}.")
