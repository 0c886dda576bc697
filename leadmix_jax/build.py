"""Shared machinery of the TFDS builders ``ptbdb_mi``, ``ptbxl_mi`` and ``sph_mi``.

A build has three stages:

1. **Scan** (main process, metadata only): :func:`scan_ptb`, :func:`scan_ptbxl`
   or :func:`scan_sph` reads the database's index (``RECORDS``/``CONTROLS`` and
   the WFDB headers, ``ptbxl_database.csv``, ``metadata.csv``), applies the
   label rule of the builder config (:mod:`leadmix_jax.labels`) and gives one
   :class:`~leadmix_jax.records.RecordTask` per MI/normal record, plus the
   records skipped already here (unparseable codes, bad metadata, excluded
   label). A folder that is not the database at all raises
   :class:`NotTheDatabaseError` saying what was expected.
2. **Folds**: PTB-XL's ``strat_fold``; PTB and SPH get deterministic
   patient-grouped folds, stable under added/removed rows
   (:func:`leadmix_jax.splits.fold_of_patient`).
   Folds 1-8 train, 9 validation, 10 test.
3. **Records in parallel**: each split's generator maps
   :func:`leadmix_jax.records.process_record` (read + the paper's preprocessing
   chain over all 12 leads) over its records with a process pool and yields
   one example per clean window. A record that fails is skipped with a reason
   from :data:`leadmix_jax.records.REASONS`; nothing stops the build.

Why a process pool inside ``_generate_examples`` rather than TFDS's Beam
path: it works unchanged with the stock ``tfds build`` CLI and with
``Builder(...).download_and_prepare()``, needs no Beam runner configuration,
keeps the example order (and so the written files) identical for any number of
workers (``imap`` is ordered), and shares one pool across the three splits.
Workers are started with ``spawn`` (the parent has TensorFlow/JAX threads, so
``fork`` is unsafe) and import only NumPy/SciPy/PyWavelets/wfdb/h5py. The
number of workers is the ``num_workers`` builder argument, else the
``LEADMIX_BUILD_WORKERS`` environment variable, else all usable cores; 1 runs
everything in-process. At PTB-XL scale the preprocessing dominates and
scales with cores; a cluster build would need the Beam path instead.

At the end the builder writes ``build_report.json`` into the dataset's version
folder (``<data_dir>/<name>/<config>/<version>/``) and prints a summary:
records and windows per split and label, patients per split, skipped records
by reason with example record ids, excluded-label records (counted apart from
errors) and dropped windows.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import multiprocessing
import os
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow_datasets as tfds
from absl import logging
from etils import epath

from leadmix_jax import labels as labels_lib
from leadmix_jax import splits as splits_lib
from leadmix_jax.leads import CANONICAL_LEADS
from leadmix_jax.preprocessing import WINDOW_SAMPLES
from leadmix_jax.records import (EXCLUDED_LABEL, REASONS, RecordError, RecordResult, RecordTask,
                                 process_record, read_wfdb_header)

VERSION = "1.1.0"
WORKERS_ENV = "LEADMIX_BUILD_WORKERS"
REPORT_NAME = "build_report.json"
MAX_EXAMPLE_IDS = 10

#: Sampling rate each database is distributed at.
EXPECTED_FS = {"ptb": 1000.0, "ptbxl": 500.0, "sph": 500.0}

__all__ = [
    "VERSION", "WORKERS_ENV", "REPORT_NAME", "EXPECTED_FS", "NotTheDatabaseError", "Scan",
    "scan_ptb", "scan_ptbxl", "scan_sph", "BuildReport", "MiEcgBuilder", "features",
    "default_workers", "run_records", "load_builder_class", "read_report",
]


class NotTheDatabaseError(FileNotFoundError):
    """The source folder is not the expected database (stops the build)."""


@dataclasses.dataclass
class Skip:
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
    n_source: int                       # records listed by the database's index
    tasks: list[RecordTask]             # MI/normal records to process, folds set
    skipped: list[Skip]                 # metadata-stage skips (and excluded labels)


def _nan_float(value) -> float:
    try:
        v = float(str(value).strip())
    except (TypeError, ValueError):
        return math.nan
    return v if math.isfinite(v) else math.nan


def _sex(value) -> str:
    v = str(value).strip().lower()
    if v in ("m", "male", "0", "0.0"):
        return "male"
    if v in ("f", "female", "1", "1.0"):
        return "female"
    return ""


def _with_folds(tasks: list[RecordTask], seed: int = splits_lib.DEFAULT_SEED) -> list[RecordTask]:
    # Per patient, from the id alone: other rows (kept or skipped) cannot move it.
    return [dataclasses.replace(t, fold=splits_lib.fold_of_patient(t.patient_id, seed=seed))
            for t in tasks]


def _read_csv(path: Path, what: str):
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


def _read_table(path: Path, what: str) -> Table:
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
        rid = (fields[0].encode("utf-8", "replace").decode("utf-8").strip() or "?")
        if _has_bad_byte(fields):
            bad.append(Skip(rid, "bad_metadata", f"{path.name} line {number}: non-UTF-8 byte"))
        elif len(fields) != len(columns):
            bad.append(Skip(rid, "bad_metadata", f"{path.name} line {number}: {len(fields)} "
                                                 f"fields, the header has {len(columns)}"))
        else:
            rows.append(dict(zip(columns, fields)))
    return Table(columns, rows, bad)


def _has_bad_byte(fields: Sequence[str]) -> bool:
    return any(any("\udc80" <= ch <= "\udcff" for ch in f) for f in fields)


def _inside(root: Path, relative: str) -> Path | None:
    """``root / relative`` if ``relative`` stays inside ``root`` (not absolute,
    no ``..`` that climbs out), else None.

    Lexical on purpose: a database folder whose subfolders are symlinks to
    another disk is a legitimate layout and must keep working.
    """
    import posixpath

    rel = relative.replace("\\", "/").strip()
    if not rel or rel.startswith("/") or (len(rel) > 1 and rel[1] == ":"):   # absolute, C:
        return None
    norm = posixpath.normpath(rel)
    if norm == ".." or norm.startswith("../") or norm == ".":
        return None
    return root / norm


def _require_columns(df, columns: Sequence[str], path: Path, what: str) -> None:
    have = df.columns if hasattr(df, "columns") else df
    missing = [c for c in columns if c not in list(have)]
    if missing:
        raise NotTheDatabaseError(
            f"{path} lacks column(s) {missing} of {what}; found {list(have)[:12]}.")


# ---------------------------------------------------------------------------
# PTB Diagnostic ECG Database

PTB_EXPECTED = ("the PTB Diagnostic ECG Database folder as downloaded from PhysioNet "
                "(ptbdb 1.0.0): it holds the file RECORDS (one 'patientNNN/sXXXXyyy' per line), "
                "CONTROLS and the folders patient001/ ... patient294/ with WFDB .hea/.dat files")


def _ptb_age(comments: Iterable[str]) -> float:
    for c in comments:
        k, _, v = c.partition(":")
        if k.strip().lower() == "age":
            return _nan_float(v)
    return math.nan


def _ptb_sex(comments: Iterable[str]) -> str:
    for c in comments:
        k, _, v = c.partition(":")
        if k.strip().lower() == "sex":
            return _sex(v)
    return ""


def _read_list(path: Path) -> list[str]:
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    return [ln.strip().strip("/") for ln in lines if ln.strip()]


def scan_ptb(root, rule: str = "paper") -> Scan:
    """Scans PTB: ``RECORDS``, ``CONTROLS`` (optional) and every record's header."""
    root = Path(os.fspath(root))
    records_file = root / "RECORDS"
    if not records_file.is_file():
        raise NotTheDatabaseError(f"{root} is not the PTB database: no file RECORDS. "
                                  f"Expected {PTB_EXPECTED}.")
    names = list(dict.fromkeys(_read_list(records_file)))
    controls_file = root / "CONTROLS"
    controls = set(_read_list(controls_file)) if controls_file.is_file() else None
    tasks, skipped = [], []
    for name in names:
        parts = name.split("/")
        if _inside(root, name) is None or ".." in parts:
            skipped.append(Skip(name, "unsafe_path", "RECORDS line leaves the database folder"))
            continue
        if len(parts) != 2 or not parts[0] or not parts[1]:
            skipped.append(Skip(name, "bad_metadata", "RECORDS line is not patientNNN/record"))
            continue
        patient = parts[0]
        try:
            header = read_wfdb_header(root / name)
            label = labels_lib.ptb_label(header.comments, None if controls is None
                                         else name in controls, rule)
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
        tasks.append(RecordTask(
            record_id=name, patient_id=patient, label=label, fold=0,
            codes="\n".join(header.comments), age=_ptb_age(header.comments),
            sex=_ptb_sex(header.comments), kind="wfdb", path=str(root / name),
            expected_fs=EXPECTED_FS["ptb"], header=header))
    return Scan("ptb", str(root), len(names), _with_folds(tasks), skipped)


# ---------------------------------------------------------------------------
# PTB-XL

PTBXL_EXPECTED = ("the PTB-XL 1.0.3 folder as downloaded from PhysioNet: it holds "
                  "ptbxl_database.csv, scp_statements.csv and records500/ (WFDB, 500 Hz)")
PTBXL_COLUMNS = ("ecg_id", "patient_id", "scp_codes", "strat_fold", "filename_hr")


def _ptbxl_diagnostic_class(root: Path) -> dict[str, str]:
    path = root / "scp_statements.csv"
    if not path.is_file():
        raise NotTheDatabaseError(
            f"The mi_superclass rule needs {path} (PTB-XL's scp_statements.csv, column "
            f"diagnostic_class). Expected {PTBXL_EXPECTED}.")
    df = _read_csv(path, "PTB-XL scp_statements.csv")
    _require_columns(df, ("diagnostic_class",), path, "scp_statements.csv")
    return dict(zip(df.iloc[:, 0].str.strip(), df["diagnostic_class"].str.strip()))


def scan_ptbxl(root, rule: str = "paper") -> Scan:
    """Scans PTB-XL's ``ptbxl_database.csv`` (and ``scp_statements.csv`` for
    the ``mi_superclass`` rule); signals are ``root/<filename_hr>``."""
    root = Path(os.fspath(root))
    db = root / "ptbxl_database.csv"
    if not db.is_file():
        raise NotTheDatabaseError(f"{root} is not PTB-XL: no ptbxl_database.csv. "
                                  f"Expected {PTBXL_EXPECTED}.")
    table = _read_table(db, "PTB-XL ptbxl_database.csv")
    _require_columns(table.columns, PTBXL_COLUMNS, db, "PTB-XL's ptbxl_database.csv")
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
            rel = str(row["filename_hr"]).strip()
            if not rel:
                raise ValueError("empty filename_hr")
            if rid in seen:
                raise ValueError("duplicate ecg_id")
        except (ValueError, TypeError) as err:
            skipped.append(Skip(rid, "bad_metadata", str(err), split))
            continue
        seen.add(rid)
        signal_path = _inside(root, rel)
        if signal_path is None:
            skipped.append(Skip(rid, "unsafe_path", f"filename_hr {rel!r} leaves the database "
                                                    "folder", split))
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
        tasks.append(RecordTask(
            record_id=rid, patient_id=patient, label=label, fold=fold,
            codes=str(row["scp_codes"]), age=_nan_float(row.get("age", "")),
            sex=_sex(row.get("sex", "")), kind="wfdb", path=str(signal_path),
            expected_fs=EXPECTED_FS["ptbxl"]))
    return Scan("ptbxl", str(root), len(table), tasks, skipped)


# ---------------------------------------------------------------------------
# SPH

SPH_EXPECTED = ("the SPH database folder (figshare collection 5779802): it holds "
                "metadata.csv (ECG_ID, AHA_Code, Patient_ID, Age, Sex, N, Date) and "
                "records/<ECG_ID>.h5")
SPH_COLUMNS = ("ECG_ID", "AHA_Code", "Patient_ID")


def scan_sph(root, rule: str = "paper") -> Scan:
    """Scans SPH's ``metadata.csv``; signals are ``root/records/<ECG_ID>.h5``."""
    root = Path(os.fspath(root))
    meta = root / "metadata.csv"
    if not meta.is_file():
        raise NotTheDatabaseError(f"{root} is not the SPH database: no metadata.csv. "
                                  f"Expected {SPH_EXPECTED}.")
    table = _read_table(meta, "SPH metadata.csv")
    _require_columns(table.columns, SPH_COLUMNS, meta, "SPH's metadata.csv")
    tasks, skipped, seen = [], list(table.bad), set()
    for row in table.rows:
        rid = str(row["ECG_ID"]).strip()
        patient = str(row["Patient_ID"]).strip()
        if not rid or rid in seen or not patient:
            skipped.append(Skip(rid or "?", "bad_metadata",
                                "duplicate ECG_ID" if rid in seen else "empty/invalid id"))
            continue
        if any(c in rid for c in "/\\") or rid.startswith(".") or \
                _inside(root, f"records/{rid}.h5") is None:
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
        n = _nan_float(row.get("N", ""))
        tasks.append(RecordTask(
            record_id=rid, patient_id=patient, label=label, fold=0,
            codes=str(row["AHA_Code"]).strip(), age=_nan_float(row.get("Age", "")),
            sex=_sex(row.get("Sex", "")), kind="sph_h5",
            path=str(root / "records" / f"{rid}.h5"), expected_fs=EXPECTED_FS["sph"],
            expected_samples=int(n) if math.isfinite(n) and n == int(n) else None))
    return Scan("sph", str(root), len(table), _with_folds(tasks), skipped)


SCANNERS = {"ptb": scan_ptb, "ptbxl": scan_ptbxl, "sph": scan_sph}


# ---------------------------------------------------------------------------
# running records

def default_workers() -> int:
    """``LEADMIX_BUILD_WORKERS`` if set, else the number of usable cores."""
    env = os.environ.get(WORKERS_ENV, "").strip()
    if env:
        return max(1, int(env))
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


_THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


@contextlib.contextmanager
def _workers_skip_main():
    """Keeps ``spawn`` workers from re-importing the parent's ``__main__``.

    ``spawn`` re-runs the main module's imports in every worker; under the
    ``tfds`` CLI (or any script) that means importing TensorFlow, several
    seconds and hundreds of MB per worker, for nothing: the workers only need
    :mod:`leadmix_jax.records`. The main module's ``__spec__``/``__file__``
    are hidden while the workers start (they are read only then). Workers
    also get single-threaded BLAS/OpenMP (unless the environment says
    otherwise), since there is one worker per core.
    """
    main = sys.modules.get("__main__")
    saved = {k: main.__dict__[k] for k in ("__spec__", "__file__") if main and k in main.__dict__}
    env = {k: os.environ.get(k) for k in _THREAD_ENV}
    try:
        if main is not None:
            main.__dict__["__spec__"] = None
            main.__dict__.pop("__file__", None)
        for k in _THREAD_ENV:   # one process per core: no BLAS/OpenMP thread pools
            os.environ.setdefault(k, "1")
        yield
    finally:
        if main is not None:
            main.__dict__.update(saved)
        for k, v in env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


class _Runner:
    """Maps :func:`process_record` over tasks, in order, in-process or with a
    lazily started ``spawn`` pool that is reused until :meth:`close`."""

    def __init__(self, workers: int):
        self.workers = max(1, int(workers))
        self._pool = None

    def map(self, tasks: Sequence[RecordTask]) -> Iterator[RecordResult]:
        if self.workers == 1 or len(tasks) < 2:
            for t in tasks:
                yield process_record(t)
            return
        if self._pool is None:
            with _workers_skip_main():
                self._pool = multiprocessing.get_context("spawn").Pool(self.workers)
        chunk = max(1, min(16, len(tasks) // (self.workers * 8)))
        # At most `limit` records in flight: results wait in memory until the
        # TFDS writer takes them, and a fast pool must not pile them up.
        limit = max(64, 4 * chunk * self.workers)
        slots, stop = threading.Semaphore(limit), threading.Event()

        def feed():   # runs in the pool's task-handler thread
            for t in tasks:
                while not slots.acquire(timeout=0.2):
                    if stop.is_set():
                        return
                if stop.is_set():
                    return
                yield t

        try:
            for result in self._pool.imap(process_record, feed(), chunksize=chunk):
                slots.release()
                yield result
        finally:
            stop.set()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.terminate()
            self._pool.join()
            self._pool = None


def run_records(tasks: Sequence[RecordTask], workers: int | None = None) -> Iterator[RecordResult]:
    """Processes tasks (ordered results), e.g. for benchmarks and tests."""
    runner = _Runner(default_workers() if workers is None else workers)
    try:
        yield from runner.map(tasks)
    finally:
        runner.close()


# ---------------------------------------------------------------------------
# report

class BuildReport:
    """Counts of a build: kept records/windows per split and label, skips by reason."""

    def __init__(self, dataset: str, config: str, scan: Scan, workers: int, file_format: str):
        self.dataset, self.config, self.workers, self.file_format = (
            dataset, config, workers, file_format)
        self.source, self.n_source = scan.source, scan.n_source
        self.n_candidates = Counter()
        self.records = {s: Counter() for s in splits_lib.SPLITS}
        self.windows = {s: Counter() for s in splits_lib.SPLITS}
        self.patients = {s: set() for s in splits_lib.SPLITS}
        self.skipped: dict[str, dict[str, Any]] = {}
        self.excluded = {"count": 0, "by_split": Counter(), "examples": []}
        self.dropped = Counter()
        self.empty_splits: list[str] = []   # splits with no example: not written
        self.record_seconds = 0.0
        self.t0 = time.perf_counter()
        self.elapsed = None
        for t in scan.tasks:
            self.n_candidates[splits_lib.split_of_fold(t.fold)] += 1
        for s in scan.skipped:
            self.add_skip(s)

    def add_skip(self, skip: Skip) -> None:
        if skip.reason == EXCLUDED_LABEL:
            entry = self.excluded
        else:
            entry = self.skipped.setdefault(
                skip.reason, {"count": 0, "description": REASONS.get(skip.reason, ""),
                              "by_split": Counter(), "by_label": Counter(), "examples": []})
            if skip.label:
                entry["by_label"][skip.label] += 1
        entry["count"] += 1
        if skip.split:
            entry["by_split"][skip.split] += 1
        if len(entry["examples"]) < MAX_EXAMPLE_IDS:
            entry["examples"].append({"record_id": skip.record_id, "detail": skip.detail})

    def add_result(self, result: RecordResult, split: str) -> None:
        t = result.task
        self.record_seconds += result.seconds
        self.dropped["windows_cut"] += result.num_windows
        self.dropped["flat"] += result.num_flat
        self.dropped["nonfinite"] += result.num_nonfinite
        if not result.ok:
            self.add_skip(Skip(t.record_id, result.reason, result.detail, split, t.label))
            return
        n = int(result.windows.shape[0])
        self.records[split][t.label] += 1
        self.windows[split][t.label] += n
        self.patients[split].add(t.patient_id)

    def finish(self) -> None:
        self.elapsed = time.perf_counter() - self.t0

    def to_json(self) -> dict[str, Any]:
        def per_split(table):
            return {s: {lab: int(table[s].get(lab, 0)) for lab in labels_lib.LABEL_NAMES}
                    | {"total": int(sum(table[s].values()))} for s in splits_lib.SPLITS}

        kept = sum(sum(c.values()) for c in self.records.values())
        windows = sum(sum(c.values()) for c in self.windows.values())
        errors = sum(e["count"] for e in self.skipped.values())
        elapsed = self.elapsed if self.elapsed is not None else time.perf_counter() - self.t0
        return {
            "dataset": self.dataset, "config": self.config, "version": VERSION,
            "source": self.source, "file_format": self.file_format, "workers": self.workers,
            "lead_order": list(CANONICAL_LEADS), "window_samples": WINDOW_SAMPLES,
            "records_in_source": int(self.n_source),
            "records_labelled": int(sum(self.n_candidates.values())),
            "records_kept": int(kept), "records_skipped": int(errors),
            "records_excluded_label": int(self.excluded["count"]),
            "windows": int(windows),
            "records": per_split(self.records),
            "windows_per_split": per_split(self.windows),
            "patients": {s: len(self.patients[s]) for s in splits_lib.SPLITS},
            "empty_splits": [s for s in splits_lib.SPLITS if s in self.empty_splits],
            "candidates_per_split": {s: int(self.n_candidates.get(s, 0))
                                     for s in splits_lib.SPLITS},
            "skipped": {r: {**e, "by_split": dict(e["by_split"]), "by_label": dict(e["by_label"])}
                        for r, e in sorted(self.skipped.items())},
            "excluded_label": {**self.excluded, "by_split": dict(self.excluded["by_split"])},
            "windows_dropped": {"cut": int(self.dropped["windows_cut"]),
                                "flat": int(self.dropped["flat"]),
                                "nonfinite": int(self.dropped["nonfinite"])},
            "seconds": round(elapsed, 3),
            "records_per_second": round(sum(self.n_candidates.values()) / elapsed, 3)
            if elapsed > 0 else None,
            "windows_per_second": round(windows / elapsed, 3) if elapsed > 0 else None,
        }

    def summary(self) -> str:
        r = self.to_json()
        lines = [f"{self.dataset}/{self.config}: {r['records_in_source']} records in source, "
                 f"{r['records_labelled']} MI/normal, {r['records_kept']} kept "
                 f"({r['windows']} windows), {r['records_skipped']} skipped, "
                 f"{r['records_excluded_label']} excluded by label, {r['seconds']:.1f} s"]
        for s in splits_lib.SPLITS:
            rec, win = r["records"][s], r["windows_per_split"][s]
            lines.append(f"  {s:<10} records mi={rec['mi']} normal={rec['normal']}  "
                         f"windows mi={win['mi']} normal={win['normal']}  "
                         f"patients={r['patients'][s]}")
        for s in r["empty_splits"]:
            lines.append(f"  WARNING: split {s} is EMPTY (no record kept; not written): "
                         f"training or evaluating on it will fail")
        for reason, e in r["skipped"].items():
            ids = ", ".join(x["record_id"] for x in e["examples"][:3])
            lines.append(f"  skipped {reason}: {e['count']} (e.g. {ids})")
        d = r["windows_dropped"]
        lines.append(f"  windows dropped: {d['flat']} flat, {d['nonfinite']} non-finite "
                     f"of {d['cut']} cut")
        return "\n".join(lines)


# ---------------------------------------------------------------------------
# the builder base class

def features() -> tfds.features.FeaturesDict:
    """The feature set shared by the three builders."""
    return tfds.features.FeaturesDict({
        "ecg": tfds.features.Tensor(shape=(WINDOW_SAMPLES, len(CANONICAL_LEADS)),
                                    dtype=np.float32, encoding=tfds.features.Encoding.BYTES,
                                    doc="10 s at 250 Hz, mV, leads " + " ".join(CANONICAL_LEADS)),
        "label": tfds.features.ClassLabel(names=list(labels_lib.LABEL_NAMES)),
        "patient_id": tfds.features.Text(),
        "record_id": tfds.features.Text(),
        "window": tfds.features.Scalar(np.int32, doc="index of the window in its record"),
        "fold": tfds.features.Scalar(np.int32, doc="1-8 train, 9 validation, 10 test"),
        "codes": tfds.features.Text(doc="the record's raw diagnostic codes / clinical text"),
        "age": tfds.features.Scalar(np.float32, doc="years, NaN when unknown"),
        "sex": tfds.features.Text(doc="'male', 'female' or '' when unknown"),
    })


BUILDER_CONFIGS = [
    tfds.core.BuilderConfig(
        name="paper",
        description="Label rule of the LeadMix-MST paper (default)."),
    tfds.core.BuilderConfig(
        name="mi_superclass",
        description="Field-standard MI-superclass label rule (PTB: reason for admission; "
                    "PTB-XL: diagnostic_class MI / NORM only; SPH: as the paper)."),
]


class MiEcgBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """Base of the three builders; subclasses set ``DATABASE`` and the docs."""

    DATABASE: str = ""
    HOMEPAGE: str = ""
    VERSION = tfds.core.Version(VERSION)
    RELEASE_NOTES = {
        "1.0.0": "Initial release: one example per clean 10 s window.",
        "1.1.0": "PTB and SPH folds are a hash of the patient id (stable when metadata rows "
                 "are added, removed or bad; splits changed). WFDB signals in uV/V are "
                 "converted to mV. Metadata paths leaving the source folder, bad CSV rows "
                 "and empty splits are skipped and reported instead of stopping the build.",
    }
    BUILDER_CONFIGS = BUILDER_CONFIGS
    DEFAULT_CONFIG_NAME = "paper"

    def __init__(self, *, num_workers: int | None = None, file_format=None, **kwargs):
        self._num_workers = default_workers() if num_workers is None else max(1, int(num_workers))
        self._report: BuildReport | None = None
        self._runner: _Runner | None = None
        super().__init__(file_format=file_format, **kwargs)
        if file_format is None and not (epath.Path(self.data_dir) / "dataset_info.json").exists():
            # ArrayRecord (random access, for grain) unless asked otherwise.
            self.info.set_file_format("array_record", override=True)

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            features=features(), supervised_keys=("ecg", "label"), homepage=self.HOMEPAGE)

    # -- stages ---------------------------------------------------------------

    def _scan(self, root) -> Scan:
        return SCANNERS[self.DATABASE](root, self.builder_config.name)

    def _split_generators(self, dl_manager):
        scan = self._scan(dl_manager.manual_dir)
        fmt = self.info.file_format
        self._report = BuildReport(self.name, self.builder_config.name, scan, self._num_workers,
                                   getattr(fmt, "value", str(fmt)))
        by_split: dict[str, list[RecordTask]] = defaultdict(list)
        for t in scan.tasks:
            by_split[splits_lib.split_of_fold(t.fold)].append(t)
        splits_lib.check_patient_disjoint(
            {s: [t.patient_id for t in ts] for s, ts in by_split.items()})
        logging.info("%s: %d records to process: %s", self.name, len(scan.tasks),
                     {s: len(ts) for s, ts in by_split.items()})
        if not by_split:
            raise ValueError(f"{self.name}: no MI or normal record in {scan.source} "
                             f"({scan.n_source} listed).\n{self._report.summary()}")
        for s in splits_lib.SPLITS:
            if not by_split.get(s):
                self._report.empty_splits.append(s)
        return {s: self._generate_examples(by_split[s], s)
                for s in splits_lib.SPLITS if by_split.get(s)}

    def _generate_splits(self, dl_manager, download_config):
        """TFDS's split generation, except that a split whose every record was
        skipped is left out (and reported) instead of failing the whole build.

        TFDS's writer raises ``AssertionError('No examples were yielded.')``
        for an empty split, so the splits are submitted one by one here (the
        non-Beam path of ``GeneratorBasedBuilder._generate_splits``).
        """
        from tensorflow_datasets.core import split_builder as split_builder_lib

        split_builder = split_builder_lib.SplitBuilder(
            split_dict=self.info.splits, features=self.info.features,
            dataset_size=self.info.dataset_size,
            max_examples_per_split=download_config.max_examples_per_split,
            beam_options=download_config.beam_options, beam_runner=download_config.beam_runner,
            shard_config=download_config.get_shard_config(),
            example_writer=self._example_writer(),
            ignore_duplicates=download_config.ignore_duplicates)
        infos = []
        for name, generator in self._split_generators(dl_manager).items():
            try:
                infos.append(split_builder.submit_split_generation(
                    split_name=name, generator=generator,
                    filename_template=self._get_filename_template(split_name=name),
                    disable_shuffling=self.info.disable_shuffling,
                    nondeterministic_order=download_config.nondeterministic_order).result())
            except AssertionError as err:
                if "No examples were yielded" not in str(err) or self._report is None:
                    raise
                self._report.empty_splits.append(name)
                logging.warning("%s: split %s is empty: every record was skipped", self.name, name)
        if not infos:
            raise RuntimeError(f"{self.name}: every record was skipped, nothing to write.\n"
                               f"{self._report.summary()}")
        return infos

    def _generate_examples(self, tasks: list[RecordTask], split: str):
        if self._runner is None:
            self._runner = _Runner(self._num_workers)
        label_of = {name: i for i, name in enumerate(labels_lib.LABEL_NAMES)}
        done = 0
        for result in self._runner.map(tasks):
            self._report.add_result(result, split)
            done += 1
            if done % 1000 == 0:
                logging.info("%s %s: %d/%d records", self.name, split, done, len(tasks))
            if not result.ok:
                logging.info("%s: skipped %s: %s %s", self.name, result.task.record_id,
                             result.reason, result.detail)
                continue
            t = result.task
            for window, idx in zip(result.windows, result.window_index):
                yield f"{t.record_id}#{int(idx)}", {
                    "ecg": window, "label": label_of[t.label], "patient_id": t.patient_id,
                    "record_id": t.record_id, "window": int(idx), "fold": int(t.fold),
                    "codes": t.codes, "age": np.float32(t.age), "sex": t.sex,
                }

    def download_and_prepare(self, *args, **kwargs):
        """As TFDS's, after deleting ``incomplete.*`` folders that killed builds
        of this dataset config left next to the version folder (TFDS removes
        its temporary folder only when the build process survives)."""
        parent = epath.Path(self.data_dir).parent
        if parent.exists() and not (epath.Path(self.data_dir) / "dataset_info.json").exists():
            for stale in parent.glob("incomplete.*"):
                if stale.is_dir():
                    logging.info("%s: removing %s left by an interrupted build", self.name, stale)
                    print(f"{self.name}: removing {stale} (left by an interrupted build)",
                          flush=True)
                    stale.rmtree()
        return super().download_and_prepare(*args, **kwargs)

    def _download_and_prepare(self, dl_manager, download_config):
        self._report = None
        try:
            super()._download_and_prepare(dl_manager, download_config)
        finally:
            if self._runner is not None:
                self._runner.close()
                self._runner = None
        if self._report is not None:
            self._report.finish()
            report = self._report.to_json()
            path = epath.Path(self.data_dir) / REPORT_NAME
            path.write_text(json.dumps(report, indent=1, default=_json_default) + "\n")
            print(self._report.summary(), file=sys.stdout, flush=True)


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, (set, frozenset)):
        return sorted(o)
    raise TypeError(f"not JSON serialisable: {type(o)}")


def load_builder_class(name: str, datasets_dir=None):
    """The ``Builder`` class of ``datasets/<name>/<name>_dataset_builder.py``.

    Imports it as ``<name>.<name>_dataset_builder`` with ``datasets/`` on
    ``sys.path`` (as ``tfds build datasets/<name>`` does); there is no
    ``datasets/__init__.py``, which would shadow the Hugging Face package.
    """
    import importlib

    folder = Path(datasets_dir) if datasets_dir else Path(__file__).resolve().parents[1] / "datasets"
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
    return importlib.import_module(f"{name}.{name}_dataset_builder").Builder


def read_report(data_dir, name: str, config: str = "paper", version: str = VERSION) -> dict:
    """Reads ``<data_dir>/<name>/<config>/<version>/build_report.json``."""
    path = epath.Path(data_dir) / name / config / version / REPORT_NAME
    return json.loads(path.read_text())
