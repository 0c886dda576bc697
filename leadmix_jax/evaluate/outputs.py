"""The files of one evaluation: predictions, metrics, summary and figures.

``eval/<step>/`` (see :mod:`leadmix_jax.evaluate.evaluation`) holds ``predictions.csv``
(one row per window), ``metrics.json`` (the whole report), ``summary.md``
(its tables in Markdown) and, per target, ROC, precision-recall and
confusion-matrix figures at the window, record and patient levels.
"""

from __future__ import annotations

import csv
import json

import numpy as np
from etils import epath

from leadmix_jax.evaluate import level_metrics
from leadmix_jax import metrics
from leadmix_jax.data import leads as leads_lib


def write_outputs(out_dir: epath.Path, report: dict, preds: dict[str, dict], plots: bool = True) -> list[str]:
    """``predictions.csv``, ``metrics.json``, ``summary.md`` and, with
    ``plots``, the ROC, precision-recall and confusion figures per target."""
    from leadmix_jax.evaluate import plots as plots_lib

    out_dir.mkdir(parents=True, exist_ok=True)
    files = []
    path = out_dir / "predictions.csv"
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["dataset", "split", "record", "patient", "window", "label", "probability"])
        for key, p in preds.items():
            dataset = key.rpartition(":")[0]
            for row in zip(p["split"], p["record"], p["patient"], p["window"], p["label"], p["prob"]):
                w.writerow([dataset, row[0], row[1], row[2], int(row[3]), int(row[4]), f"{row[5]:.6f}"])
    files.append(str(path))

    path = out_dir / "metrics.json"
    path.write_text(json.dumps(report, indent=1))
    files.append(str(path))

    for key, p in preds.items():
        res = report["results"][key]
        if not plots or "levels" not in res:
            continue
        curves = _level_curves(p)
        name = leads_lib.slug(key)
        files.append(plots_lib.roc_figure(curves, f"ROC: {key}", out_dir / f"roc_{name}.png"))
        files.append(plots_lib.pr_figure(curves, f"Precision-recall: {key}", out_dir / f"pr_{name}.png"))
        matrices = {}
        for tname, t in report["thresholds"].items():
            for level in metrics.LEVELS:
                matrices[f"{level}, threshold {tname} ({t:.3f})"] = res["levels"][level]["thresholds"][tname][
                    "metrics"
                ]["confusion_matrix"]
        files.append(
            plots_lib.confusion_figure(
                matrices, f"Confusion matrices: {key}", out_dir / f"confusion_{name}.png"
            )
        )
        if "calibration" in res:
            files.append(
                plots_lib.reliability_figure(
                    res["calibration"], f"Reliability: {key}", out_dir / f"reliability_{name}.png"
                )
            )

    path = out_dir / "summary.md"
    path.write_text(summary_markdown(report))
    files.append(str(path))
    return files


def _level_curves(p: dict) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    curves = {"window": (p["label"], p["prob"])}
    _, rp, rl = metrics.aggregate(p["prob"], p["label"], p["record"])
    curves["record"] = (rl, rp)
    _, pp, pl = metrics.aggregate(p["prob"], p["label"], p["patient"], on_mixed="drop")
    curves["patient"] = (pl, pp)
    return curves


def summary_markdown(report: dict) -> str:
    lines = _header_lines(report)
    for key, res in report["results"].items():
        lines += _target_lines(key, res)
    return "\n".join(lines)


def _header_lines(report: dict) -> list[str]:
    """The checkpoint, leads, thresholds, calibration and exclusions."""
    ck = report["checkpoint"]
    val = report["validation"]
    lines = [f"# Evaluation: {ck['workdir']} (checkpoint step {ck['step']}, {ck['which']})", ""]
    if ck.get("validation"):
        lines.append(
            f"- checkpoint: step {ck['step']} ({ck['which']}), validation AUROC "
            f"{ck['validation']['val_auroc']:.4f} at training time"
        )
    else:
        lines.append(f"- checkpoint: step {ck['step']} ({ck['which']}), saved without validation metrics")
    robust = (
        " (lead-robust model: one checkpoint for every lead subset, absent leads masked)"
        if report.get("lead_robust")
        else ""
    )
    lines += [
        f"- leads: {', '.join(report['leads'])}{robust}",
        f"- trained on: {report['train_dataset']}; normalisation statistics of {report['norm_stats_source']}",
    ]
    if val.get("threshold") is not None:
        lines.append(
            f"- thresholds: `0.5` (reference) and `val_youden` = {val['threshold']:.4f}, "
            f"Youden's J on {val['n_windows']} validation windows ({val['n_pos']} MI) of "
            f"{val['dataset']}:{val['split']}; applied at every level"
            + (f" ({val['note']})" if val.get("note") else "")
        )
    else:
        lines.append(f"- threshold: `0.5` only ({val.get('note', 'no validation threshold')})")
    cal = val.get("calibration")
    if cal:
        lines.append(
            f"- calibration: temperature {cal['temperature']:.3f} (NLL-optimal on the validation windows): "
            f"ECE {cal['raw']['ece']:.4f} raw, {cal['calibrated']['ece']:.4f} calibrated; Brier "
            f"{cal['raw']['brier']:.4f} raw, {cal['calibrated']['brier']:.4f} calibrated; prediction applies it"
        )
    ex = report.get("excluded_patients") or {}
    if ex.get("n_listed"):
        removed = ", ".join(
            f"{k}: {v['patients']} patients / {v['windows']} windows" for k, v in ex["removed"].items()
        )
        lines.append(f"- left out: {ex['n_listed']} listed patients ({removed})")
    lines.append("")
    return lines


def _target_lines(key: str, res: dict) -> list[str]:
    """One target's section: counts, the metrics table, calibration, figures."""
    lines = [f"## {key}", ""]
    if "levels" not in res:
        return lines + [res.get("note", "no result"), ""]
    lv = res["levels"]
    lines.append(
        f"{lv['window']['n']} windows, {lv['record']['n']} records, "
        f"{lv['record']['n_patients']} patients "
        f"(MI: {lv['window']['n_pos']} windows, {lv['record']['n_pos']} records, "
        f"{lv['patient']['n_pos']} patients)"
        + (
            f"; {lv['patient']['n_mixed_patients_dropped']} patient(s) with both MI and "
            "normal records left out of the patient level."
            if lv["patient"]["n_mixed_patients_dropped"]
            else "."
        )
    )
    if res.get("non_finite_windows"):
        lines.append(
            f"{res['non_finite_windows']} window(s) with a non-finite model output are left out (unusable)."
        )
    lines.append("")
    lines.append(level_metrics.metrics_markdown(res))
    name = leads_lib.slug(key)
    if "calibration" in res:
        cal = res["calibration"]
        lines += [
            f"Calibration (windows; temperature {cal['temperature']:.3f} fitted on the validation split): "
            f"Brier {cal['raw']['brier']:.4f} raw, {cal['calibrated']['brier']:.4f} calibrated; "
            f"ECE {cal['raw']['ece']:.4f} raw, {cal['calibrated']['ece']:.4f} calibrated.",
            "",
        ]
    lines.append(
        f"![ROC](roc_{name}.png) ![PR](pr_{name}.png) ![confusion](confusion_{name}.png)"
        + (f" ![reliability](reliability_{name}.png)" if "calibration" in res else "")
    )
    lines.append("")
    return lines
