"""``--mode=explain``: which leads and which part of the beat drove a model's MI call.

    python launch.py --mode=explain --workdir=runs/inferior --record=A00001.h5
    python launch.py --mode=explain --workdir=runs/inferior --config.explain.split=ptbxl_mi/paper:test
    python launch.py --mode=explain --workdir=runs/inferior --config.explain.checks=true

* A record: its windows through the preprocessing chain, attributions by
  ``config.explain.method`` (:mod:`leadmix_jax.evaluate.attribution`);
  ``<workdir>/explain/<record>.png`` draws the window with the highest MI
  probability as an ECG (the leads the model takes, 10 s, mm grid) with the
  attribution over it; ``<record>.json`` has every window's probability,
  per-lead importance (share of ``|attribution|``, by lead name) and top
  0.2-s segments, and the record's mean per-lead importance.
* A split: every window (or ``explain.max_windows`` of them), the mean
  per-lead importance by class: ``explain/<dataset>_<split>_<method>.csv``
  and ``.png``, and per window ``..._windows.csv``.
* ``explain.checks``: :mod:`leadmix_jax.evaluate.attribution_checks` on
  validation windows and on synthetic MI windows: ``explain/checks.json``.

Dedicated models, population members (ordinary workdirs) and lead-robust
checkpoints (on the record's leads, or ``config.leads`` for a split) alike.
"""

from __future__ import annotations

import csv
import json
import time

import numpy as np
from etils import epath

from leadmix_jax.data import leads as leads_lib
from leadmix_jax.data import preprocessing
from leadmix_jax.deploy import predict as predict_lib
from leadmix_jax.errors import UserError
from leadmix_jax.evaluate import attribution, attribution_checks, ecg_figure, evaluation
from leadmix_jax.input import built, norm_stats, pipeline


def run(config, workdir: str, record: str | None = None, fs=None, lead_names=None) -> dict:
    """Explains ``record`` and/or ``config.explain.split``, and runs the checks if asked."""
    ex = config.explain
    if not (record or ex.split or ex.checks):
        raise UserError(
            "--mode=explain needs --record=<file>, --config.explain.split=dataset:split "
            "or --config.explain.checks=true"
        )
    if ex.method not in attribution.METHODS:
        raise UserError(f"--config.explain.method={ex.method!r}: use one of {', '.join(attribution.METHODS)}")
    model = predict_lib.load_model(workdir, config.get("eval_checkpoint", "best"))
    settings = attribution.Settings.from_config(ex)
    out = {}
    if record:
        out["record"] = explain_record(model, settings, ex.method, workdir, record, fs, lead_names)
    if ex.split:
        subset = model.with_leads(config.leads) if model.is_lead_robust else model
        out["split"] = explain_split(subset, settings, ex.method, config, workdir)
    if ex.checks:
        out["checks"] = run_checks(model, settings, config, workdir)
    return out


def _model_input(model, windows_mv: np.ndarray, leads) -> np.ndarray:
    """z-scored model input of windows in ``leads`` order (lead-robust: 12 canonical leads)."""
    if model.is_lead_robust:
        from leadmix_jax.model import lead_robust

        windows_mv = lead_robust.to_canonical(windows_mv, leads)
    return norm_stats.ZScore(model.stats)(windows_mv)


def _present(model, leads) -> list[int]:
    """Columns of the model input that hold ``leads``."""
    if not model.is_lead_robust:
        return list(range(len(leads)))
    return list(leads_lib.lead_indices(list(leads)))


def explain_record(model, settings, method: str, workdir: str, path: str, fs=None, lead_names=None) -> dict:
    """Attributions of one record's windows; writes ``explain/<record>.png|.json``."""
    signal, rec_fs, names = predict_lib.read_record(path, fs, lead_names)
    model, leads = predict_lib.on_record_leads(model, names, str(path))
    pre = preprocessing.preprocess_record(predict_lib.select_leads(signal, names, leads, str(path)), rec_fs)
    if not pre.num_kept:
        raise UserError(
            f"{path}: no usable 10-s window to explain ({pre.num_windows} cut, every one dropped)"
        )
    x = _model_input(model, pre.windows, leads)
    probs = model.predict_windows(x if model.is_lead_robust else pre.windows)
    cols = _present(model, leads)
    attr = attribution.Explainer.of(model, settings).attribute(method, x)[..., cols]
    threshold, _ = predict_lib.choose_threshold(model, None)
    windows = []
    for w, p, a in zip(pre.window_index, probs, attr):
        share = attribution.lead_importance(a)
        windows.append(
            {
                "window": int(w),
                "start_s": float(w * preprocessing.WINDOW_SECONDS),
                "probability": float(p),
                "lead_importance": {lead: float(s) for lead, s in zip(leads, share)},
                "top_segments": [
                    {k: v for k, v in seg.items() if k != "lead_index"} | {"lead": leads[seg["lead_index"]]}
                    for seg in attribution.top_segments(a, preprocessing.TARGET_FS)
                ],
            }
        )
    best = int(np.argmax(probs))
    record_share = attribution.lead_importance(attr)
    prob = float(np.mean(probs))
    name = predict_lib.output_name(path)
    out_dir = epath.Path(workdir) / "explain"
    out_dir.mkdir(parents=True, exist_ok=True)
    result = {
        "record": str(path),
        "checkpoint": {"workdir": str(workdir), "step": int(model.step)},
        "method": method,
        "baseline": "N(0, 1) noise in z-score units (Integrated Gradients only)",
        "leads": list(leads),
        "record_probability": prob,
        "prediction": "MI" if prob > threshold else "normal",
        "threshold": threshold,
        "lead_importance": {lead: float(s) for lead, s in zip(leads, record_share)},
        "drawn_window": windows[best]["window"],
        "windows": windows,
        "png": str(out_dir / f"{name}.png"),
        "json": str(out_dir / f"{name}.json"),
    }
    title = (
        f"{name}, window {windows[best]['window']} ({windows[best]['start_s']:g}-"
        f"{windows[best]['start_s'] + preprocessing.WINDOW_SECONDS:g} s): P(MI) {probs[best]:.3f}; record "
        f"P(MI) {prob:.3f} -> {result['prediction']} (threshold {threshold:.3f}); {method.replace('_', ' ')}"
    )
    ecg_figure.attribution_figure(
        pre.windows[best], attr[best], leads, preprocessing.TARGET_FS, title, result["png"],
        importance=attribution.lead_importance(attr[best]),
    )  # fmt: skip
    epath.Path(result["json"]).write_text(json.dumps(result, indent=1))
    print(f"explained {path} ({method}): importance " + ", ".join(
        f"{k} {100 * v:.0f} %" for k, v in result["lead_importance"].items()
    ) + f"; {result['png']}", flush=True)  # fmt: skip
    return result


def explain_split(model, settings, method: str, config, workdir: str) -> dict:
    """Mean per-lead importance by class over ``config.explain.split``."""
    dataset, split = evaluation.parse_targets(config.explain.split)[0]
    builder = built.load_builder(config.data_dir, dataset)
    leads = list(model.input_leads)
    cols = _present(model, leads)
    explainer = attribution.Explainer.of(model, settings)
    limit = int(config.explain.max_windows) or None
    rows, t0, first, done = [], None, 0, 0
    for batch in pipeline.eval_batches(builder, split, model.stats, config.eval_batch_size, 0):
        keep = batch["mask"] > 0
        x = batch["ecg"][keep]
        attr = explainer.attribute(method, x, config.eval_batch_size)[..., cols]
        probs = model.runner.probabilities(model.params, x, config.eval_batch_size)
        for i, a in enumerate(attr):
            rows.append(
                {
                    "record": built.decode(batch["record_id"][keep][i]),
                    "window": int(batch["window"][keep][i]),
                    "label": "mi" if batch["label"][keep][i] > 0.5 else "normal",
                    "probability": round(float(probs[i]), 6),
                    **{lead: round(float(v), 6) for lead, v in zip(leads, attribution.lead_importance(a))},
                }
            )
        done += int(keep.sum())
        if t0 is None:  # the first batch compiles: the rate is timed from the second on
            t0, first = time.perf_counter(), done
        if limit and done >= limit:
            break
    rate = (done - first) / (time.perf_counter() - t0) if done > first else float("nan")
    table = {
        label: [float(np.mean([r[lead] for r in rows if r["label"] == label])) for lead in leads]
        for label in ("mi", "normal")
        if any(r["label"] == label for r in rows)
    }
    out_dir = epath.Path(workdir) / "explain"
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"{leads_lib.slug(dataset)}_{split}_{method}"
    with open(out_dir / f"{stem}_windows.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["record", "window", "label", "probability", *leads])
        w.writeheader()
        w.writerows(rows)
    with open(out_dir / f"{stem}.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["class", "windows", *leads])
        for label, values in table.items():
            w.writerow([label, sum(r["label"] == label for r in rows), *(f"{v:.4f}" for v in values)])
    ecg_figure.importance_figure(
        table,
        leads,
        f"{dataset}:{split}, {method.replace('_', ' ')}: mean lead importance",
        out_dir / f"{stem}.png",
    )
    speed = f"{rate:.1f} windows/s" if np.isfinite(rate) else "one batch: its time is compilation, no rate"
    print(f"explained {done} windows of {dataset}:{split} ({method}, {speed}): {out_dir / stem}.csv")
    return {"windows": done, "windows_per_s": rate, "by_class": table, "csv": str(out_dir / f"{stem}.csv")}


def run_checks(model, settings, config, workdir: str) -> dict:
    """Completeness and randomization on validation windows, pointing on synthetic MI."""
    dataset = model.meta.get("train_dataset") or config.train_dataset
    builder = built.load_builder(config.data_dir, dataset)
    n = int(config.explain.check_windows)
    x = []
    for batch in pipeline.eval_batches(
        builder, config.val_split or "test", model.stats, config.eval_batch_size, 0
    ):
        x.append(batch["ecg"][batch["mask"] > 0])
        if sum(len(b) for b in x) >= n:
            break
    x = np.concatenate(x)[:n]
    explainer = attribution.Explainer.of(model, settings)
    leads = list(model.input_leads)
    synthetic = attribution_checks.synthetic_mi(2 * n, seed=settings.seed)
    canonical = list(leads_lib.CANONICAL_LEADS) if model.is_lead_robust else leads
    fresh = attribution_checks.fresh_parameters(model)
    zscore = norm_stats.ZScore(model.stats)
    checks = {
        "windows": f"{dataset}:{config.val_split or 'test'}, first {len(x)}",
        "completeness": attribution_checks.completeness(explainer, x),
        "randomization": attribution_checks.randomization(explainer, x, fresh),
        "pointing": attribution_checks.pointing(explainer, synthetic, zscore, canonical, present=leads),
        # the same with every parameter random: what the maps show without the training
        "pointing_randomized_model": attribution_checks.pointing(
            attribution_checks.randomized(explainer, fresh), synthetic, zscore, canonical, present=leads
        ),
    }
    path = epath.Path(workdir) / "explain" / "checks.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(checks, indent=1))
    print(_checks_summary(checks) + f"\n{path}", flush=True)
    return checks


def _checks_summary(checks: dict) -> str:
    c = checks["completeness"]
    lines = [
        f"completeness (Integrated Gradients): total relative error {100 * c['relative_error_total']:.2f} %, "
        f"largest absolute error {c['absolute_error_max']:.4f} logit"
    ]
    pointing, reference = checks["pointing"], checks["pointing_randomized_model"]
    for m in attribution.METHODS:
        r = checks["randomization"][m]
        lines.append(
            f"{m}: rank correlation with the fully randomized model {r['rank_correlation'][-1]:+.2f}"
            + (" (FLAGGED: the map follows the input more than the model)" if r["flagged"] else "")
            + f"; pointing {100 * pointing[m]['share']:.1f} % of |attribution| on the MI leads and beats "
            f"(chance {100 * pointing['chance']:.1f} %, x{pointing[m]['ratio_to_chance']:.2f}; "
            f"randomized model x{reference[m]['ratio_to_chance']:.2f})"
        )
    return "\n".join(lines)
