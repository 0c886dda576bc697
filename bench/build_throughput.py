"""Build throughput of the ``ptbxl_mi`` TFDS builder: records/s and windows/s.

Builds PTB-XL (default: ``$LEADMIX_REAL_DATA/ptbxl``, the 300 real records)
into temporary data dirs, once with 1 worker (the baseline: everything in
one process) and once with all usable cores, and prints, for each, the
wall-clock time of ``download_and_prepare`` (scan, preprocessing, shuffling
and writing the files), the records/s over the records the build processed
(MI/normal ones; excluded labels are only counted) and the windows/s written.

    python bench/build_throughput.py [--source DIR] [--workers 1,8] [--repeat 2]
        [--replicate K] [--file_format array_record|tfrecord] [--config paper]

Worker processes are started once per build (``spawn``, ~1-2 s); on small
sources that start-up is a visible part of the time. ``--replicate K`` builds
from a temporary PTB-XL index listing every source row K times (new ecg_ids
and patient ids, the same signal files), i.e. K times the real work on the
same real records, to measure the steady-state rate.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import tensorflow_datasets as tfds  # noqa: E402

from leadmix_jax.data.build import builder as build_lib, databases  # noqa: E402


def replicate(source: str, k: int) -> str:
    """A temporary PTB-XL folder whose index lists each row of ``source`` k times."""
    import pandas as pd

    src = Path(source)
    df = pd.read_csv(src / "ptbxl_database.csv", dtype=str, keep_default_na=False)
    out = Path(tempfile.mkdtemp(prefix="leadmix_bench_src_"))
    step = int(df["ecg_id"].astype(int).max())
    pstep = int(df["patient_id"].astype(float).max()) + 1
    copies = []
    for i in range(k):
        c = df.copy()
        c["ecg_id"] = (c["ecg_id"].astype(int) + i * step).astype(str)
        c["patient_id"] = (c["patient_id"].astype(float) + i * pstep).map("{:.1f}".format)
        copies.append(c)
    pd.concat(copies).to_csv(out / "ptbxl_database.csv", index=False)
    for name in ("records500", "scp_statements.csv"):
        if (src / name).exists():
            (out / name).symlink_to((src / name).resolve())
    return str(out)


def run_once(source: str, workers: int, file_format: str, config: str) -> dict:
    out = tempfile.mkdtemp(prefix="leadmix_bench_")
    try:
        builder = databases.builder_class("ptbxl_mi")(
            data_dir=out, config=config, num_workers=workers, file_format=file_format
        )
        t0 = time.perf_counter()
        builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=source))
        seconds = time.perf_counter() - t0
        report = json.loads((Path(builder.data_dir) / build_lib.REPORT_NAME).read_text())
    finally:
        shutil.rmtree(out, ignore_errors=True)
    processed = report["records_labelled"]
    return {
        "workers": workers,
        "seconds": seconds,
        "records_processed": processed,
        "records_kept": report["records_kept"],
        "windows": report["windows"],
        "records_per_s": processed / seconds,
        "windows_per_s": report["windows"] / seconds,
    }


def main() -> None:
    real = os.environ.get("LEADMIX_REAL_DATA")
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--source",
        default=str(Path(real) / "ptbxl") if real else None,
        help="PTB-XL folder (holds ptbxl_database.csv); default $LEADMIX_REAL_DATA/ptbxl",
    )
    ap.add_argument(
        "--workers",
        default=f"1,{build_lib.default_workers()}",
        help="comma-separated worker counts (default: 1,all cores)",
    )
    ap.add_argument("--repeat", type=int, default=1, help="builds per worker count (best kept)")
    ap.add_argument(
        "--replicate",
        type=int,
        default=1,
        help="list every source record this many times (steady-state rate)",
    )
    ap.add_argument("--file_format", default="array_record")
    ap.add_argument("--config", default="paper")
    args = ap.parse_args()
    if not args.source:
        ap.error("give --source or set LEADMIX_REAL_DATA")
    counts = list(dict.fromkeys(int(w) for w in args.workers.split(",")))
    print(
        f"source {args.source} x{args.replicate}, {args.file_format}, config {args.config}, "
        f"{build_lib.default_workers()} usable cores, load average {os.getloadavg()[0]:.1f}"
    )
    if args.replicate > 1:
        args.source = replicate(args.source, args.replicate)
    results = []
    for w in counts:
        best = min(
            (run_once(args.source, w, args.file_format, args.config) for _ in range(max(1, args.repeat))),
            key=lambda r: r["seconds"],
        )
        results.append(best)
        print(
            f"workers={w:<3d} {best['seconds']:7.2f} s  {best['records_processed']} records "
            f"-> {best['windows']} windows  {best['records_per_s']:8.1f} records/s  "
            f"{best['windows_per_s']:8.1f} windows/s",
            flush=True,
        )
    if len(results) > 1:
        base = results[0]["seconds"]
        for r in results[1:]:
            print(
                f"speed-up workers={r['workers']} vs workers={results[0]['workers']}: "
                f"{base / r['seconds']:.2f}x"
            )
    if args.replicate > 1:
        shutil.rmtree(args.source, ignore_errors=True)
    full = 21799
    best = max(results, key=lambda r: r["records_per_s"])
    print(
        f"full PTB-XL at this rate: at most {full / best['records_per_s'] / 60:.1f} min "
        f"(upper bound: all {full} records processed; only MI/normal ones are)"
    )


if __name__ == "__main__":
    main()
