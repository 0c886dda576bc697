"""The real-data table of PTB-XL at 100 Hz from evaluated workdirs (docs/results_ptbxl100.md).

    PYTHONPATH=. python bench/real_table.py --protocol=runs/protocol_ptbxl100 \
        --robust=runs/robust_ptbxl100 --torch=torch_all12.json,torch_inferior.json

Reads each protocol member's ``eval/<step>/metrics.json`` (the test target),
the lead-robust model's ``eval/<step>/leads_<set>/metrics.json`` and the JSON
files of ``bench/torch_train.py``; prints markdown: per lead set the window
AUROC (mean ± sample std over seeds) and each seed's patient AUROC with its
patient-bootstrap 95 % CI; the lead-robust model on every set; the official
PyTorch model trained on the same windows.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

SETS = ("all12", "inferior", "chest", "limb", "lateral", "I-II-V3", "V1-V3-V5")


def _metrics(path: Path, level: str) -> tuple[float, list[float]]:
    report = json.loads(path.read_text(), parse_constant=lambda _: float("nan"))
    (result,) = report["results"].values()
    entry = result["levels"][level]["thresholds"]["0.5"]
    return entry["metrics"]["auroc"], entry["ci"]["auroc"]


def _latest_eval(workdir: Path) -> Path:
    steps = sorted((workdir / "eval").iterdir(), key=lambda p: int(p.name))
    return steps[-1]


def protocol_rows(root: Path) -> dict[str, list[dict]]:
    rows: dict[str, list[dict]] = {}
    for member in sorted((root / "members").iterdir()):
        name, _, seed = member.name.rpartition("_seed")
        ev = _latest_eval(member)
        window, _ = _metrics(ev / "metrics.json", "window")
        patient, ci = _metrics(ev / "metrics.json", "patient")
        rows.setdefault(name, []).append({"seed": int(seed), "window": window, "patient": patient, "ci": ci})
    return rows


def robust_rows(root: Path) -> dict[str, dict]:
    ev = _latest_eval(root)
    out = {}
    for sub in sorted(ev.glob("leads_*")):
        window, _ = _metrics(sub / "metrics.json", "window")
        patient, ci = _metrics(sub / "metrics.json", "patient")
        out[sub.name[len("leads_") :]] = {"window": window, "patient": patient, "ci": ci}
    return out


def _mean_std(values) -> str:
    values = np.asarray(values, float)
    return f"{values.mean():.3f} ± {values.std(ddof=1):.3f}" if values.size > 1 else f"{values.mean():.3f}"


def markdown(protocol: dict, robust: dict, torch_runs: dict) -> str:
    lines = [
        "| lead set | models | window AUROC (mean ± std over seeds) | patient AUROC per seed [95 % CI] |",
        "|---|---|---|---|",
    ]
    for name in [s for s in SETS if s in protocol] + sorted(set(protocol) - set(SETS)):
        rows = sorted(protocol[name], key=lambda r: r["seed"])
        per_seed = "; ".join(f"{r['patient']:.3f} [{r['ci'][0]:.3f}, {r['ci'][1]:.3f}]" for r in rows)
        lines.append(
            f"| {name} | JAX, {len(rows)} seeds | {_mean_std([r['window'] for r in rows])} | {per_seed} |"
        )
        if name in robust:
            r = robust[name]
            lines.append(
                f"| {name} | JAX lead-robust, 1 model | {r['window']:.3f} | {r['patient']:.3f} "
                f"[{r['ci'][0]:.3f}, {r['ci'][1]:.3f}] |"
            )
        if name in torch_runs:
            t = torch_runs[name]
            per_seed = "; ".join(
                f"{r['test_patient_auroc']:.3f} [{r['test_patient_auroc_ci'][0]:.3f}, {r['test_patient_auroc_ci'][1]:.3f}]"
                for r in t
            )
            lines.append(
                f"| {name} | official PyTorch, {len(t)} seeds | "
                f"{_mean_std([r['test_window_auroc'] for r in t])} | {per_seed} |"
            )
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--protocol", required=True)
    parser.add_argument("--robust", default="")
    parser.add_argument("--torch", default="", help="bench/torch_train.py --out files, comma-separated")
    args = parser.parse_args(argv)
    protocol = protocol_rows(Path(args.protocol))
    robust = robust_rows(Path(args.robust)) if args.robust else {}
    torch_runs = {}
    for path in filter(None, args.torch.split(",")):
        run = json.loads(Path(path).read_text())
        torch_runs[run["args"]["leads"]] = run["results"]
    print(markdown(protocol, robust, torch_runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
