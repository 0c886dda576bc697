"""The paper's results table from several evaluated workdirs (one per lead set).

    python launch.py --mode=report --workdirs=runs/inferior,runs/limb,runs/all12 --workdir=runs/report

Each workdir must have been evaluated (``--mode=eval``); its newest
``eval/<step>/metrics.json`` is used (or that of ``step`` when given). A
lead-robust workdir (one model for every lead subset, evaluated per set into
``eval/<step>/leads_<set>/``) gives one row per evaluated set, labelled
``<set> (one model)`` and placed right after the dedicated model's row of
that set.
Rows = lead sets, columns = datasets x metrics, at one level (window, record
or patient) and one threshold (``0.5`` or ``val_youden``), both stated in
the table's caption. Writes ``report.md`` and ``report.csv`` (the CSV has the
value and the bootstrap CI bounds of every cell in separate columns).
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence

from etils import epath

from leadmix_jax.data import leads as leads_lib

DEFAULT_METRICS = ("auroc", "accuracy", "sensitivity", "specificity", "macro_f1")
LEVELS = ("window", "record", "patient")
THRESHOLDS = ("0.5", "val_youden")
#: The scalar metrics of an evaluation a table can show (bootstrap CIs for the main ones).
TABLE_METRICS = (
    "accuracy",
    "sensitivity",
    "specificity",
    "precision",
    "macro_f1",
    "macro_precision",
    "macro_recall",
    "auroc",
    "auprc",
    "brier",
)


def metric_names(spec) -> tuple[str, ...]:
    """``config.report.metrics`` (``'auroc,accuracy'`` or a list) -> the metric names."""
    items = spec.split(",") if isinstance(spec, str) else spec
    return tuple(m.strip() for m in items if m.strip())


def find_metrics(workdir: str, step: int | None = None) -> epath.Path:
    """``workdir/eval/<step>/metrics.json``: of ``step``, else the most recently written."""
    root = epath.Path(workdir) / "eval"
    if step is not None:
        path = root / str(step) / "metrics.json"
        if not path.exists():
            raise FileNotFoundError(f"{path} does not exist: run --mode=eval --checkpoint={step} first")
        return path
    found = list(root.glob("*/metrics.json")) if root.exists() else []
    if not found:
        raise FileNotFoundError(
            f"no evaluation in {workdir} (expected {root}/<step>/metrics.json): "
            f"run `launch.py --mode=eval --workdir={workdir}` first"
        )
    return max(found, key=lambda p: (p.stat().mtime, p.parent.name))


def find_all_metrics(workdir: str, step: int | None = None) -> list[epath.Path]:
    """The evaluations of ``workdir`` that make rows: ``[find_metrics(...)]``
    for a dedicated model; for a lead-robust model (evaluated per lead set
    into ``eval/<step>/leads_<set>/``) every lead set of the newest (or
    ``step``'s) evaluation, in the paper's set order."""
    root = epath.Path(workdir) / "eval"
    per_set = (
        list(root.glob(f"{step if step is not None else '*'}/leads_*/metrics.json")) if root.exists() else []
    )
    plain = list(root.glob(f"{step if step is not None else '*'}/metrics.json")) if root.exists() else []
    if not per_set:
        return [find_metrics(workdir, step)]
    newest = max(per_set + plain, key=lambda p: (p.stat().mtime, p.parent.name))
    if newest in plain:
        return [newest]
    step_dir = newest.parent.parent
    found = [p for p in per_set if p.parent.parent == step_dir]
    order = {f"leads_{n}": i for i, n in enumerate(leads_lib.LEAD_SETS)}
    return sorted(found, key=lambda p: (order.get(p.parent.name, len(order)), p.parent.name))


def _fmt(x) -> str:
    x = float(x)
    return "n/a" if math.isnan(x) else f"{x:.3f}"


def gather(
    workdirs: Sequence[str],
    level: str = "patient",
    threshold: str = "0.5",
    metrics: Sequence[str] = DEFAULT_METRICS,
    step: int | None = None,
) -> dict:
    """Rows of the table: ``{'columns': [(target, metric)], 'rows': [{...}]}``."""
    rows, targets = [], []
    for wd, path in ((wd, path) for wd in workdirs for path in find_all_metrics(wd, step)):
        rep = json.loads(path.read_text())
        cells = {}
        for target, res in rep["results"].items():
            if target not in targets:
                targets.append(target)
            if "levels" not in res:
                continue
            lv = res["levels"][level]
            if threshold not in lv["thresholds"]:
                raise ValueError(f"{path} has no threshold {threshold!r} (has {list(lv['thresholds'])})")
            entry = lv["thresholds"][threshold]
            for m in metrics:
                ci = entry.get("ci", {}).get(m, [float("nan"), float("nan")])
                cells[(target, m)] = (float(entry["metrics"][m]), float(ci[0]), float(ci[1]))
        robust = bool(rep.get("lead_robust"))
        # a lead-robust row names its set whatever the order of its (canonical) leads
        name = (
            f"{leads_lib.set_name(rep['leads'])} (one model)"
            if robust
            else leads_lib.set_name(rep["leads"], any_order=False)
        )
        rows.append(
            {
                "lead_set": name,
                "leads": ",".join(rep["leads"]),
                "lead_robust": robust,
                "workdir": str(wd),
                "step": rep["checkpoint"]["step"],
                "threshold_value": rep["thresholds"].get(threshold),
                "cells": cells,
            }
        )
    if any(r["lead_robust"] for r in rows):
        # the single model's row of each lead set right after the dedicated model's
        order = {n: i for i, n in enumerate(leads_lib.LEAD_SETS)}
        rows.sort(
            key=lambda r: (order.get(leads_lib.set_name(r["leads"].split(",")), len(order)), r["lead_robust"])
        )
    columns = [(t, m) for t in targets for m in metrics]
    return {
        "level": level,
        "threshold": threshold,
        "metrics": list(metrics),
        "columns": columns,
        "rows": rows,
    }


def to_markdown(table: dict) -> str:
    cols = table["columns"]
    header = ["lead set"] + [f"{t} {m}" for t, m in cols]
    lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * len(cols)]
    for row in table["rows"]:
        cells = [row["lead_set"]]
        for c in cols:
            if c in row["cells"]:
                v, lo, hi = row["cells"][c]
                cells.append(f"{_fmt(v)} [{_fmt(lo)}, {_fmt(hi)}]")
            else:
                cells.append("—")
        lines.append("| " + " | ".join(cells) + " |")
    thr = table["threshold"]
    thr_text = (
        "probability > 0.5"
        if thr == "0.5"
        else f"threshold `{thr}` chosen on each model's validation split by Youden's J ("
        + ", ".join(
            f"{r['lead_set']} {r['threshold_value']:.3f}"
            for r in table["rows"]
            if r["threshold_value"] is not None
        )
        + ")"
    )
    caption = (
        f"{table['level'].capitalize()}-level results (record/patient probability = mean window "
        f"probability); threshold-dependent metrics at {thr_text}; "
        "95 % CIs in brackets: percentile bootstrap resampling patients."
    )
    sources = "; ".join(f"{r['lead_set']}: {r['workdir']} step {r['step']}" for r in table["rows"])
    if any(r.get("lead_robust") for r in table["rows"]):
        caption += (
            " Rows marked (one model) are one lead-robust checkpoint evaluated on each lead set "
            "(absent leads masked); the others are models trained on that set alone."
        )
    return caption + "\n\n" + "\n".join(lines) + f"\n\nCheckpoints: {sources}.\n"


def write_csv(table: dict, path) -> None:
    with open(str(path), "w", newline="") as fh:
        w = csv.writer(fh)
        head = ["lead_set", "leads", "workdir", "step", "level", "threshold", "threshold_value"]
        for t, m in table["columns"]:
            head += [f"{t} {m}", f"{t} {m} ci_low", f"{t} {m} ci_high"]
        w.writerow(head)
        for row in table["rows"]:
            out = [
                row["lead_set"],
                row["leads"],
                row["workdir"],
                row["step"],
                table["level"],
                table["threshold"],
                row["threshold_value"],
            ]
            for c in table["columns"]:
                out += list(row["cells"].get(c, ("", "", "")))
            w.writerow(out)


def make_report(
    workdirs: Sequence[str],
    out_dir: str,
    level: str = "patient",
    threshold: str = "0.5",
    metrics: Sequence[str] = DEFAULT_METRICS,
    step: int | None = None,
) -> dict:
    """Gathers ``workdirs`` and writes ``out_dir/report.md`` and ``report.csv``."""
    if not workdirs:
        raise ValueError("no workdirs to report on: pass --workdirs=a,b,c")
    if level not in LEVELS:
        raise ValueError(f"level must be window, record or patient, got {level!r}")
    table = gather(workdirs, level, threshold, metrics, step)
    return _write(table, out_dir, "report", to_markdown, write_csv, "Report")


def _write(table: dict, out_dir: str, name: str, markdown, write_table_csv, what: str) -> dict:
    """Writes ``out_dir/<name>.md`` and ``<name>.csv``, prints the markdown."""
    out = epath.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    md, md_path, csv_path = markdown(table), out / f"{name}.md", out / f"{name}.csv"
    md_path.write_text(md)
    write_table_csv(table, csv_path)
    print(md, flush=True)
    print(f"{what} written to {md_path} and {csv_path}", flush=True)
    return {"table": table, "markdown": md, "md": str(md_path), "csv": str(csv_path)}


# ----------------------------------------------------------------------------
# Several seeds per lead set (launch.py --mode=protocol).


def seed_summary(table: dict, seeds: dict[str, int]) -> dict:
    """:func:`gather`'s rows grouped by lead set: ``table['summary']`` has per
    set the number of seeds and per cell ``(mean, std, n)`` over the seeds
    (sample std, ``ddof=1``; 0 for one seed; NaN cells left out). Each row
    gets its ``seed`` from ``seeds`` (workdir -> seed)."""
    by_set: dict[str, list[dict]] = {}
    for row in table["rows"]:
        row["seed"] = seeds.get(row["workdir"])
        by_set.setdefault(row["lead_set"], []).append(row)
    summary = []
    for name, rows in by_set.items():
        cells = {}
        for col in table["columns"]:
            values = [r["cells"][col][0] for r in rows if col in r["cells"]]
            values = [v for v in values if not math.isnan(v)]
            if values:
                mean = sum(values) / len(values)
                var = sum((v - mean) ** 2 for v in values) / (len(values) - 1) if len(values) > 1 else 0.0
                cells[col] = (mean, math.sqrt(var), len(values))
        summary.append({"lead_set": name, "leads": rows[0]["leads"], "seeds": len(rows), "cells": cells})
    return {**table, "summary": summary}


def seed_markdown(table: dict) -> str:
    cols = table["columns"]
    header = ["lead set", "seeds"] + [f"{t} {m}" for t, m in cols]
    lines = ["| " + " | ".join(header) + " |", "|---|---:|" + "---:|" * len(cols)]
    for row in table["summary"]:
        cells = [row["lead_set"], str(row["seeds"])]
        for c in cols:
            cells.append(
                f"{_fmt(row['cells'][c][0])} ± {_fmt(row['cells'][c][1])}" if c in row["cells"] else "—"
            )
        lines.append("| " + " | ".join(cells) + " |")
    caption = (
        f"{table['level'].capitalize()}-level results, mean ± sample std over seeds (one model per "
        f"lead set and seed, each selected on its validation split); threshold-dependent metrics at "
        f"{'probability > 0.5' if table['threshold'] == '0.5' else 'each model’s validation Youden threshold'}. "
        "Per-seed values with bootstrap CIs are in table.csv."
    )
    return caption + "\n\n" + "\n".join(lines) + "\n"


def write_seed_csv(table: dict, path) -> None:
    """One row per seed (value and CI bounds), then per lead set a ``mean`` and a ``std`` row."""
    with open(str(path), "w", newline="") as fh:
        w = csv.writer(fh)
        head = ["row", "lead_set", "leads", "seed", "workdir", "step", "level", "threshold"]
        for t, m in table["columns"]:
            head += [f"{t} {m}", f"{t} {m} ci_low", f"{t} {m} ci_high"]
        w.writerow(head)
        level, thr = table["level"], table["threshold"]
        for row in table["rows"]:
            out = [
                "seed",
                row["lead_set"],
                row["leads"],
                row["seed"],
                row["workdir"],
                row["step"],
                level,
                thr,
            ]
            for c in table["columns"]:
                out += list(row["cells"].get(c, ("", "", "")))
            w.writerow(out)
        for s in table["summary"]:
            for kind, i in (("mean", 0), ("std", 1)):
                out = [kind, s["lead_set"], s["leads"], "", "", "", level, thr]
                for c in table["columns"]:
                    out += [s["cells"][c][i] if c in s["cells"] else "", "", ""]
                w.writerow(out)


def make_seed_report(
    workdirs: Sequence[str],
    seeds: dict[str, int],
    out_dir: str,
    level: str = "patient",
    threshold: str = "0.5",
    metrics: Sequence[str] = DEFAULT_METRICS,
) -> dict:
    """Writes ``out_dir/table.md`` (mean ± std over seeds) and ``table.csv``."""
    table = seed_summary(gather(workdirs, level, threshold, metrics), seeds)
    return _write(table, out_dir, "table", seed_markdown, write_seed_csv, "Protocol table")
