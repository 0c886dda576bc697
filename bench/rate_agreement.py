"""PTB-XL at 100 Hz against 500 Hz: the same records through the same chain.

    PYTHONPATH=. python bench/rate_agreement.py ../shared/realdata/ptbxl \
        [--workdir runs/ptbxl100_all12] [--windows-out /tmp/rate_windows.npz]

For every MI/normal record (the paper's rule) that a PTB-XL folder holds at
both rates (``records500/`` and ``records100/``), runs
:func:`leadmix_jax.data.preprocessing.preprocess_record` on each copy and
compares the 250 Hz windows lead by lead: the largest and the median absolute
difference per window (mV), and the same divided by the 500 Hz window's std
of that lead. With ``--workdir``, one trained checkpoint (best step) scores
both versions of each window: Pearson correlation of the probabilities,
largest difference, and the window AUROC of each version (the records'
paper labels; records of every fold, so some may be training records of the
checkpoint: the comparison is between rates, not a test score).

What a 100 Hz record lacks: nothing above 50 Hz (its Nyquist frequency) and
the 500 Hz device's own anti-alias filtering, then PTB-XL's decimation. The
chain's band-pass stops at 25 Hz, so the two should agree up to the
decimation filter's pass-band ripple and edge effects.
"""

from __future__ import annotations

import argparse
import pathlib
import sys

import numpy as np

from leadmix_jax import metrics
from leadmix_jax.data import preprocessing
from leadmix_jax.data.build import ptbxl
from leadmix_jax.data.build.task import load_signal
from leadmix_jax.data.leads import CANONICAL_LEADS


def paired_windows(root: pathlib.Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """``(w500, w100, labels, record_ids)``: windows ``(n, 2500, 12)`` of the
    records present at both rates, window by window; labels 1 for MI."""
    at500 = {t.record_id: t for t in ptbxl.scan(root, "paper", rate=500).tasks}
    at100 = {t.record_id: t for t in ptbxl.scan(root, "paper", rate=100).tasks}
    w500, w100, labels, ids = [], [], [], []
    for rid in sorted(set(at500) & set(at100), key=int):
        a, b = at500[rid], at100[rid]
        if not (pathlib.Path(a.path + ".hea").is_file() and pathlib.Path(b.path + ".hea").is_file()):
            continue
        pa = preprocessing.preprocess_record(*load_signal(a))
        pb = preprocessing.preprocess_record(*load_signal(b))
        common = sorted(set(pa.window_index.tolist()) & set(pb.window_index.tolist()))
        for w in common:
            w500.append(pa.windows[list(pa.window_index).index(w)])
            w100.append(pb.windows[list(pb.window_index).index(w)])
            labels.append(1 if a.label == "mi" else 0)
            ids.append(rid)
    return np.stack(w500), np.stack(w100), np.asarray(labels), ids


def describe(name: str, values: np.ndarray) -> str:
    q = np.percentile(values, [50, 90, 99, 100])
    return f"| {name} | " + " | ".join(f"{v:.4g}" for v in q) + " |"


def window_table(w500: np.ndarray, w100: np.ndarray) -> list[str]:
    """Per window and lead: max and median |difference| in mV and relative to
    the 500 Hz window's std of that lead; their distribution over windows x leads."""
    a, b = w500.astype(np.float64), w100.astype(np.float64)
    diff = np.abs(b - a)  # (n, T, 12)
    std = a.std(axis=1)  # (n, 12)
    mx, med = diff.max(axis=1), np.median(diff, axis=1)
    rms = np.sqrt((diff**2).mean(axis=1))
    ac, bc = a - a.mean(axis=1, keepdims=True), b - b.mean(axis=1, keepdims=True)
    corr = (ac * bc).sum(axis=1) / np.sqrt((ac**2).sum(axis=1) * (bc**2).sum(axis=1))
    lines = [
        f"{len(w500)} windows x 12 leads",
        "| per window and lead | p50 | p90 | p99 | max |",
        "|---|---:|---:|---:|---:|",
        describe("max abs difference (mV)", mx),
        describe("median abs difference (mV)", med),
        describe("max abs difference / window std", mx / std),
        describe("median abs difference / window std", med / std),
        describe("rms difference / window std", rms / std),
        describe("1 - correlation of the two windows", 1 - corr),
        "",
        f"lowest correlation of a window's lead: {corr.min():.4f}; differences largest in the first "
        f"and last 0.5 s: {np.mean((diff.argmax(axis=1) < 125) | (diff.argmax(axis=1) >= 2375)):.0%} of the maxima",
        "largest max abs difference / std, by lead: "
        + ", ".join(f"{lead} {v:.3f}" for lead, v in zip(CANONICAL_LEADS, (mx / std).max(axis=0))),
    ]
    return lines


def model_table(workdir: str, w500, w100, labels) -> list[str]:
    from leadmix_jax.data import leads as leads_lib
    from leadmix_jax.evaluate import restore

    model = restore.restore(workdir, "best")
    idx = [CANONICAL_LEADS.index(lead) for lead in leads_lib.parse_leads(list(model.leads))]
    p500 = model.predict_windows(w500[..., idx])
    p100 = model.predict_windows(w100[..., idx])
    a500, a100 = metrics.auroc(labels, p500), metrics.auroc(labels, p100)
    return [
        f"checkpoint: {workdir} step {model.step} (leads {','.join(model.leads)})",
        f"probability correlation (Pearson): {np.corrcoef(p500, p100)[0, 1]:.4f}",
        f"largest |p100 - p500|: {np.abs(p100 - p500).max():.4f}; median {np.median(np.abs(p100 - p500)):.4f}",
        f"window AUROC at 500 Hz {a500:.4f}, at 100 Hz {a100:.4f}, difference {a100 - a500:+.4f}",
    ]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("root", help="a PTB-XL folder with records500/ and records100/")
    parser.add_argument("--workdir", help="a trained checkpoint's workdir (optional)")
    parser.add_argument("--windows-out", help="save the paired windows to this .npz")
    args = parser.parse_args(argv)
    w500, w100, labels, ids = paired_windows(pathlib.Path(args.root))
    print(
        f"{len(set(ids))} records at both rates, {int(labels.sum())} MI windows, {int((1 - labels).sum())} normal"
    )
    print("\n".join(window_table(w500, w100)))
    if args.windows_out:
        np.savez_compressed(args.windows_out, w500=w500, w100=w100, labels=labels, ids=np.asarray(ids))
    if args.workdir:
        print("\n".join(model_table(args.workdir, w500, w100, labels)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
