"""Amplitudes of real ECG windows after the preprocessing chain: the measurement
behind the clean rule's plausible-amplitude range.

    PYTHONPATH=. python bench/amplitude_survey.py /data/ptb-xl/records500 /data/ptbdb ...

Reads every WFDB record under the given folders (``*.hea``), runs
:func:`leadmix_jax.data.preprocessing.preprocess_record` with the amplitude
rule switched off, and prints, over all clean windows, the distribution of
each lead's peak ``max |x|`` and typical ``median |x|`` (mV) and of the
window's largest lead peak; then the same statistics for three corrupted
versions of the first records: stored in uV (x1000), a header gain wrong by
1000 (/1000), and a signal file of random 16-bit samples at 1000 adu/mV.
"""

from __future__ import annotations

import argparse
import pathlib
import sys

import numpy as np

from leadmix_jax.data import preprocessing, records


def window_stats(signal: np.ndarray, fs: float) -> np.ndarray:
    """``(n_windows, 3)``: the largest lead peak, the smallest lead peak and the
    largest lead median |x| of each clean window (mV)."""
    pre = preprocessing.preprocess_record(signal, fs, amplitude_range_mv=None)
    if not pre.num_kept:
        return np.zeros((0, 3))
    peak = np.abs(pre.windows).max(axis=1)  # (n, leads)
    median = np.median(np.abs(pre.windows), axis=1)
    return np.stack([peak.max(axis=1), peak.min(axis=1), median.max(axis=1)], axis=1)


def describe(name: str, stats: np.ndarray) -> None:
    q = [0, 0.1, 1, 50, 99, 99.9, 100]
    print(f"\n{name}: {len(stats)} windows")
    print("| statistic (mV) | " + " | ".join(f"p{v:g}" for v in q) + " |")
    print("|---|" + "---:|" * len(q))
    for k, label in enumerate(("largest lead max|x|", "smallest lead max|x|", "largest lead median|x|")):
        if len(stats):
            print(f"| {label} | " + " | ".join(f"{np.percentile(stats[:, k], v):.3f}" for v in q) + " |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folders", nargs="+")
    ap.add_argument("--corrupt", type=int, default=20, help="records to corrupt in each way")
    args = ap.parse_args()
    heads = sorted({h for f in args.folders for h in pathlib.Path(f).rglob("*.hea")})
    real, first = [], []
    for h in heads:
        try:
            signal, fs, _, _ = records.read_wfdb_leads(str(h)[:-4], allow_subset=False)
        except records.RecordError as err:
            print(f"skipped {h}: {err}", file=sys.stderr)
            continue
        real.append(window_stats(signal, fs))
        if len(first) < args.corrupt:
            first.append((signal, fs))
    describe(f"real records ({len(real)} of {len(heads)} read)", np.concatenate(real))
    if not first:
        return
    rng = np.random.default_rng(0)
    describe("stored in uV (x1000)", np.concatenate([window_stats(s * 1000, fs) for s, fs in first]))
    describe("gain wrong by 1000 (/1000)", np.concatenate([window_stats(s / 1000, fs) for s, fs in first]))
    noise = [(rng.integers(-32768, 32768, s.shape) / 1000.0, fs) for s, fs in first]
    describe("random 16-bit samples at 1000 adu/mV", np.concatenate([window_stats(s, fs) for s, fs in noise]))


if __name__ == "__main__":
    main()
