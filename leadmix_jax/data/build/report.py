"""The build report: what a build kept, skipped and why.

Written as ``build_report.json`` into the dataset's version folder
(``<data_dir>/<name>/<config>/<version>/``) and printed as a summary: records
and windows per split and label, patients per split, empty splits, skipped
records by reason with example record ids, excluded-label records (counted
apart from errors) and dropped windows.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import numpy as np

from leadmix_jax.data import labels as labels_lib
from leadmix_jax.data import splits as splits_lib
from leadmix_jax.data.leads import CANONICAL_LEADS
from leadmix_jax.data.build.scan import Scan, Skip
from leadmix_jax.data.preprocessing import WINDOW_SAMPLES
from leadmix_jax.data.build.task import RecordResult
from leadmix_jax.data.records import EXCLUDED_LABEL, REASONS

REPORT_NAME = "build_report.json"
MAX_EXAMPLE_IDS = 10

__all__ = ["REPORT_NAME", "BuildReport", "json_default"]


class BuildReport:
    """Counts of a build: kept records/windows per split and label, skips by reason."""

    def __init__(self, dataset: str, config: str, version: str, scan: Scan, workers: int, file_format: str):
        self.dataset, self.config, self.version, self.workers, self.file_format = (
            dataset,
            config,
            version,
            workers,
            file_format,
        )
        self.source, self.n_source = scan.source, scan.n_source
        self.n_candidates = Counter()
        self.records = {s: Counter() for s in splits_lib.SPLITS}
        self.windows = {s: Counter() for s in splits_lib.SPLITS}
        self.patients = {s: set() for s in splits_lib.SPLITS}
        self.skipped: dict[str, dict[str, Any]] = {}
        self.excluded = {"count": 0, "by_split": Counter(), "examples": []}
        self.dropped = Counter()
        self.empty_splits: list[str] = []  # splits with no example: not written
        self.amplitude_range_mv: str | None = None  # the clean rule's plausible amplitudes
        self.sums_file, self.files_checked = scan.sums_file, scan.files_checked
        self.downloaded: dict[str, Any] | None = None  # set by a build that downloaded its source
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
                skip.reason,
                {
                    "count": 0,
                    "description": REASONS.get(skip.reason, ""),
                    "by_split": Counter(),
                    "by_label": Counter(),
                    "examples": [],
                },
            )
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
        self.dropped["implausible"] += result.num_implausible
        self.files_checked += result.files_checked
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
            return {
                s: {lab: int(table[s].get(lab, 0)) for lab in labels_lib.LABEL_NAMES}
                | {"total": int(sum(table[s].values()))}
                for s in splits_lib.SPLITS
            }

        kept = sum(sum(c.values()) for c in self.records.values())
        windows = sum(sum(c.values()) for c in self.windows.values())
        errors = sum(e["count"] for e in self.skipped.values())
        elapsed = self.elapsed if self.elapsed is not None else time.perf_counter() - self.t0
        return {
            "dataset": self.dataset,
            "config": self.config,
            "version": self.version,
            "source": self.source,
            "file_format": self.file_format,
            "workers": self.workers,
            "lead_order": list(CANONICAL_LEADS),
            "window_samples": WINDOW_SAMPLES,
            "amplitude_range_mv": self.amplitude_range_mv,
            "checksums": {
                "published": self.sums_file,
                "files_checked": int(self.files_checked),
                "mismatched": int(self.skipped.get("checksum_mismatch", {}).get("count", 0)),
            },
            "downloaded": self.downloaded,
            "records_in_source": int(self.n_source),
            "records_labelled": int(sum(self.n_candidates.values())),
            "records_kept": int(kept),
            "records_skipped": int(errors),
            "records_excluded_label": int(self.excluded["count"]),
            "windows": int(windows),
            "records": per_split(self.records),
            "windows_per_split": per_split(self.windows),
            "patients": {s: len(self.patients[s]) for s in splits_lib.SPLITS},
            "empty_splits": [s for s in splits_lib.SPLITS if s in self.empty_splits],
            "candidates_per_split": {s: int(self.n_candidates.get(s, 0)) for s in splits_lib.SPLITS},
            "skipped": {
                r: {**e, "by_split": dict(e["by_split"]), "by_label": dict(e["by_label"])}
                for r, e in sorted(self.skipped.items())
            },
            "excluded_label": {**self.excluded, "by_split": dict(self.excluded["by_split"])},
            "windows_dropped": {
                "cut": int(self.dropped["windows_cut"]),
                "flat": int(self.dropped["flat"]),
                "nonfinite": int(self.dropped["nonfinite"]),
                "implausible_amplitude": int(self.dropped["implausible"]),
            },
            "seconds": round(elapsed, 3),
            "records_per_second": round(sum(self.n_candidates.values()) / elapsed, 3)
            if elapsed > 0
            else None,
            "windows_per_second": round(windows / elapsed, 3) if elapsed > 0 else None,
        }

    def summary(self) -> str:
        r = self.to_json()
        lines = [
            f"{self.dataset}/{self.config}: {r['records_in_source']} records in source, "
            f"{r['records_labelled']} MI/normal, {r['records_kept']} kept "
            f"({r['windows']} windows), {r['records_skipped']} skipped, "
            f"{r['records_excluded_label']} excluded by label, {r['seconds']:.1f} s"
        ]
        for s in splits_lib.SPLITS:
            rec, win = r["records"][s], r["windows_per_split"][s]
            lines.append(
                f"  {s:<10} records mi={rec['mi']} normal={rec['normal']}  "
                f"windows mi={win['mi']} normal={win['normal']}  "
                f"patients={r['patients'][s]}"
            )
        for s in r["empty_splits"]:
            lines.append(
                f"  WARNING: split {s} is EMPTY (no record kept; not written): "
                f"training or evaluating on it will fail"
            )
        for reason, e in r["skipped"].items():
            ids = ", ".join(x["record_id"] for x in e["examples"][:3])
            lines.append(f"  skipped {reason}: {e['count']} (e.g. {ids})")
        c = r["checksums"]
        if c["published"]:
            lines.append(
                f"  checked against {c['published']}: {c['files_checked']} files, {c['mismatched']} record(s) differ"
            )
        else:
            lines.append("  no SHA256SUMS.txt in the source: files not checked against published checksums")
        d = r["windows_dropped"]
        lines.append(
            f"  windows dropped: {d['flat']} flat, {d['nonfinite']} non-finite, "
            f"{d['implausible_amplitude']} implausible amplitude of {d['cut']} cut"
        )
        return "\n".join(lines)


def json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, (set, frozenset)):
        return sorted(o)
    raise TypeError(f"not JSON serialisable: {type(o)}")
