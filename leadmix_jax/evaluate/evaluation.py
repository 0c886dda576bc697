"""Evaluation of a trained checkpoint on any list of datasets and splits.

    python launch.py --mode=eval --config=configs/paper.py --workdir=runs/inferior \
        [--checkpoint=best|latest|<step>] [--config.eval_targets=ptbxl_mi/paper:test]

What happens:

1. The checkpoint (``best`` by validation AUROC by default, ``latest`` or a
   step) is restored with its metadata: lead set, normalisation statistics of
   the training split and model settings. The model is built from the
   metadata, not from the config; a config asking for other leads is an error.
2. The decision threshold is chosen on the validation split of the training
   dataset (``config.val_dataset`` or the checkpoint's training dataset,
   ``config.val_split``) by Youden's J on the validation WINDOWS
   (:func:`leadmix_jax.metrics.youden_threshold`); it is applied unchanged at
   every level. Every result is reported at 0.5 (the reference's rule) and at
   this threshold, labelled ``0.5`` and ``val_youden``.
3. Each target ``dataset:split`` (``all`` = every split, concatenated) is run
   through the model once (:meth:`leadmix_jax.model.RestoredModel.run_split`) and scored
   at window, record and patient level (mean window probability) with
   patient-bootstrap 95 % CIs (:func:`leadmix_jax.evaluate.level_metrics.evaluate_levels`,
   ``config.bootstrap_samples`` resamples, seed ``config.seed``). Patients with
   both MI and normal records (possible in PTB-XL) are left out of the
   patient level only; their number is reported. Patients listed in
   ``config.exclude_patients`` (ids, or ``@file`` with one per line) are
   left out of every target (leakage control between sources, e.g. patients
   shared by two databases); the counts removed are reported.
4. Process 0 writes ``workdir/eval/<step>/``: ``predictions.csv``,
   ``metrics.json``, ``summary.md`` and per target ``roc_*.png``,
   ``pr_*.png``, ``confusion_*.png``.
"""

from __future__ import annotations

import datetime
import os
from typing import Any

import jax
import ml_collections
import numpy as np
from absl import logging
from etils import epath

from leadmix_jax import metrics
from leadmix_jax.data import leads as leads_lib
from leadmix_jax.errors import UserError
from leadmix_jax.evaluate import calibration, level_metrics, outputs
from leadmix_jax.evaluate import restore as restore_lib
from leadmix_jax.evaluate.restore import RestoredModel
from leadmix_jax.input import built

THRESHOLD_DEFAULT = "0.5"
THRESHOLD_VAL = "val_youden"


# ----------------------------------------------------------------------------
# Checkpoint and model.


def parse_targets(targets: str | list | tuple) -> list[tuple[str, str]]:
    """``'a/cfg:all,b:test'`` (or a list of such items) -> ``[('a/cfg', 'all'), ('b', 'test')]``.

    A target's dataset is a name under ``config.data_dir`` (``ptbxl_mi/paper``,
    with an optional version) or an absolute path to a dataset built under
    another data_dir (``/data/tfds_b/ptbxl_mi/paper:test``); the split is a
    split name or ``all``.
    """
    items = [t for t in (targets.split(",") if isinstance(targets, str) else targets) if str(t).strip()]
    out = []
    for item in items:
        if isinstance(item, (tuple, list)):
            ds, split = item
        else:
            ds, sep, split = str(item).strip().rpartition(":")
            if not sep or not ds or not split:
                raise UserError(
                    f"evaluation target {item!r} must be 'dataset:split' "
                    "(split 'all' = every split), e.g. 'ptbxl_mi/paper:test'"
                )
        out.append((str(ds).strip(), str(split).strip()))
    if not out:
        raise UserError("no evaluation target given (config.eval_targets is empty)")
    return out


def missing_targets(config: ml_collections.ConfigDict) -> list[str]:
    """One line per evaluation target whose dataset is not built under
    ``config.data_dir`` (or at its absolute path)."""
    problems = []
    for dataset, _ in parse_targets(config.eval_targets):
        try:
            built.builder_dir(config.data_dir, dataset)
        except UserError as e:
            problems.append(f"evaluation target {dataset}: {e}")
    return problems


def check_leads(config_leads: str | None, checkpoint_leads, where: str) -> tuple[str, ...]:
    """The checkpoint's leads; ``UserError`` naming both if the config asks for others."""
    ckpt = leads_lib.parse_leads(list(checkpoint_leads))
    if config_leads:
        asked = leads_lib.parse_leads(config_leads)
        if asked != ckpt:
            raise UserError(
                f"the checkpoint in {where} was trained on leads {','.join(ckpt)} but the config asks "
                f"for leads {','.join(asked)}: evaluate with --config.leads={','.join(ckpt)} or choose "
                "the workdir trained on the requested leads"
            )
    return ckpt


def restore(
    config: ml_collections.ConfigDict, workdir: str, checkpoint=None, check_config_leads=True
) -> RestoredModel:
    """Restores ``checkpoint`` (default ``config.eval_checkpoint``) of
    ``workdir`` for inference, checking the config's leads against it."""
    which = checkpoint if checkpoint not in (None, "") else config.get("eval_checkpoint", "best")
    model = restore_lib.restore(workdir, which)
    if model.is_lead_robust:  # any subset of its 12 leads: config.leads chooses it (see evaluate)
        return model
    check_leads(
        config.get("leads") if check_config_leads else None, model.leads, f"{workdir} (step {model.step})"
    )
    return model


def lead_subsets(config: ml_collections.ConfigDict) -> list[tuple[str, tuple[str, ...]]]:
    """Lead sets a lead-robust checkpoint is evaluated on: ``config.eval_leads``
    (``'paper'`` = the paper's 7 sets, ``'inferior,lateral'``, ``'a;b'``), else
    ``config.leads``; ``[(name, leads)]``."""
    spec = config.get("eval_leads", "") or ""
    try:
        if spec:
            return leads_lib.parse_lead_sets(spec)
        leads = leads_lib.parse_leads(config.leads)
    except ValueError as e:
        raise UserError(f"lead sets to evaluate ({spec or config.leads!r}): {e}") from None
    return [(leads_lib.set_name(leads), leads)]


def parse_patient_list(spec: str) -> set[str]:
    """``config.exclude_patients``: comma-separated patient ids, or ``@file``
    with one id per line (``#`` comments allowed) -> the set of ids."""
    spec = (spec or "").strip()
    if not spec:
        return set()
    if spec.startswith("@"):
        path = epath.Path(os.path.expanduser(spec[1:]))
        if not path.exists():
            raise UserError(f"config.exclude_patients: {path} does not exist")
        items = [line.split("#", 1)[0] for line in path.read_text().splitlines()]
    else:
        items = spec.split(",")
    return {i.strip() for i in items if i.strip()}


# ----------------------------------------------------------------------------
# Predictions.


def _split_names(builder, split: str) -> list[str]:
    names = list(builder.info.splits.keys())
    if split == "all":
        order = {"train": 0, "validation": 1, "test": 2}
        return sorted(names, key=lambda s: (order.get(s, 3), s))
    if split not in names:
        raise UserError(f"dataset {builder.info.full_name} has no split {split!r}; splits: {names}")
    return [split]


def _lookup_ids(builder, split: str, index: np.ndarray) -> dict[str, np.ndarray]:
    """String ids by example index (multi-host: predict_split gathers numbers only)."""
    if not built.is_array_record(builder):
        raise ValueError("multi-process evaluation needs ArrayRecord builds (file_format=array_record)")
    source = builder.as_data_source(split)
    rows = [source[int(i)] for i in index]
    dec = built.decode
    return {k: np.asarray([dec(r[k]) for r in rows]) for k in ("record_id", "patient_id")}


def predict_target(model: RestoredModel, config, dataset: str, split: str) -> dict[str, np.ndarray]:
    """Window predictions of ``dataset:split`` (``all`` = every split) with
    columns ``split``, ``record``, ``patient``, ``window``, ``label``, ``prob``.

    ``dataset`` is a name under ``config.data_dir`` or an absolute path to a
    dataset built under another data_dir (see :func:`parse_targets`)."""
    builder = built.load_builder(config.data_dir, dataset)
    parts = []
    for name in _split_names(builder, split):
        if built.split_size(builder, name) == 0:
            continue
        p = model.run_split(builder, name, config.eval_batch_size, config.get("eval_workers", 0))
        if jax.process_count() > 1:
            p.update(_lookup_ids(builder, name, p["index"]))
        parts.append(
            {
                "split": np.full(len(p["prob"]), name, dtype=object),
                "record": p["record_id"].astype(str).astype(object),
                "patient": p["patient_id"].astype(str).astype(object),
                "window": p["window"].astype(np.int64),
                "label": np.rint(p["label"]).astype(np.int64),
                "prob": p["prob"].astype(np.float64),
            }
        )
    if not parts:
        return {
            "split": np.zeros(0, object),
            "record": np.zeros(0, object),
            "patient": np.zeros(0, object),
            "window": np.zeros(0, np.int64),
            "label": np.zeros(0, np.int64),
            "prob": np.zeros(0),
        }
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def drop_nonfinite(pred: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], int]:
    """``pred`` without its windows of non-finite probability (unusable: no
    metric is computed from them), and how many there were (with a warning)."""
    finite = np.isfinite(pred["prob"])
    n = int((~finite).sum())
    if not n:
        return pred, 0
    logging.warning("%d window(s) with a non-finite model output left out (unusable)", n)
    print(f"warning: {n} window(s) with a non-finite model output are left out as unusable", flush=True)
    return {k: v[finite] for k, v in pred.items()}, n


def validation_threshold(model: RestoredModel, config) -> dict:
    """Youden's J threshold on the validation windows of the training dataset."""
    dataset = config.get("val_dataset") or model.meta.get("train_dataset") or config.train_dataset
    split = config.get("val_split", "")
    info: dict[str, Any] = {
        "dataset": dataset,
        "split": split,
        "level": "window",
        "rule": "Youden's J (max sensitivity + specificity - 1)",
    }
    if not split:
        info.update(threshold=None, note="no validation split configured (config.val_split='')")
        return info
    if config.train_dataset != dataset and not config.get("val_dataset"):
        logging.warning(
            "config.train_dataset %s differs from the checkpoint's %s: the threshold is chosen on %s:%s",
            config.train_dataset,
            dataset,
            dataset,
            split,
        )
    pred, nonfinite = drop_nonfinite(predict_target(model, config, dataset, split))
    info.update(n_windows=int(pred["label"].size), n_pos=int(pred["label"].sum()))
    if nonfinite:
        info["non_finite_windows"] = nonfinite
    if pred["label"].size == 0:
        info.update(threshold=None, note="validation split is empty")
    else:
        info["threshold"] = metrics.youden_threshold(pred["label"], pred["prob"])
        if pred["label"].min() == pred["label"].max():
            info["note"] = "validation split has one class only: threshold falls back to 0.5"
        info["calibration"] = calibration.fit_temperature(pred["label"], pred["prob"])
    return info


def calibration_of(pred: dict[str, np.ndarray], temperature: float) -> dict:
    """Window-level reliability (10 bins, ECE) and Brier of a target, raw and
    with the validation temperature."""
    out = {"temperature": temperature}
    for name, probs in (
        ("raw", pred["prob"]),
        ("calibrated", calibration.apply_temperature(pred["prob"], temperature)),
    ):
        out[name] = calibration.reliability(pred["label"], probs)
        out[name]["brier"] = calibration.brier(pred["label"], probs)
    return out


# ----------------------------------------------------------------------------
# The entry point.


def evaluate(config: ml_collections.ConfigDict, workdir: str, checkpoint=None, targets=None) -> dict:
    """Evaluates a checkpoint of ``workdir`` on ``targets`` and writes the report.

    Args:
      config: experiment config (data_dir, eval_batch_size, val split,
        bootstrap_samples, seed; ``leads`` must match the checkpoint's).
      workdir: the training workdir holding ``checkpoints/``.
      checkpoint: ``'best'``, ``'latest'`` or a step; default
        ``config.eval_checkpoint``.
      targets: ``'dataset:split,...'`` or a list; default
        ``config.eval_targets``.

    Returns:
      ``{'step', 'out_dir', 'thresholds', 'validation', 'results': {target: evaluate_levels(...)},
      'files': [...]}`` (the same on every process; only process 0 writes).
    """
    target_list = parse_targets(targets if targets is not None else config.eval_targets)
    excluded = parse_patient_list(config.get("exclude_patients", ""))
    model = restore(config, workdir, checkpoint)
    out_dir = epath.Path(workdir) / "eval" / str(model.step)
    if not model.is_lead_robust:
        return _evaluate_model(config, workdir, model, target_list, excluded, out_dir)
    # One lead-robust model, one full evaluation per lead set: eval/<step>/leads_<set>/.
    results = {}
    for name, subset in lead_subsets(config):
        results[name] = _evaluate_model(
            config,
            workdir,
            model.with_leads(subset),
            target_list,
            excluded,
            out_dir / f"leads_{leads_lib.slug(name)}",
        )
    first = next(iter(results.values()))
    return {**first, "out_dir": str(out_dir), "lead_sets": results}


def _target_result(model, config, dataset: str, split: str, excluded, thresholds, temperature: float):
    """``(predictions, result, removed)`` of one target: window predictions
    (listed patients left out: ``removed`` counts them), metrics at every
    level with patient-bootstrap CIs, and calibration."""
    key = f"{dataset}:{split}"
    pred, nonfinite = drop_nonfinite(predict_target(model, config, dataset, split))
    removed = None
    if excluded:
        keep = ~np.isin(pred["patient"].astype(str), sorted(excluded))
        removed = {"windows": int((~keep).sum()), "patients": int(len(set(pred["patient"][~keep])))}
        pred = {k: v[keep] for k, v in pred.items()}
    if pred["label"].size == 0:
        return pred, {"note": "no windows"}, removed
    result = level_metrics.evaluate_levels(
        pred["prob"],
        pred["label"],
        pred["record"],
        pred["patient"],
        thresholds,
        n_boot=int(config.bootstrap_samples),
        seed=int(config.seed),
        mixed_patients="drop",
    )
    result["calibration"] = calibration_of(pred, temperature)
    if nonfinite:
        result["non_finite_windows"] = nonfinite
    w = result["levels"]["patient"]["thresholds"][THRESHOLD_DEFAULT]["metrics"]
    logging.info("%s: %d windows, patient AUROC %.4f", key, pred["label"].size, w["auroc"])
    return pred, result, removed


def _evaluate_model(
    config, workdir: str, model: RestoredModel, target_list, excluded, out_dir: epath.Path
) -> dict:
    """Evaluates one restored model (a lead-robust one with its lead subset) into ``out_dir``."""
    step, meta = model.step, model.meta

    val = validation_threshold(model, config)
    thresholds = {THRESHOLD_DEFAULT: 0.5}
    if val.get("threshold") is not None:
        thresholds[THRESHOLD_VAL] = float(val["threshold"])
    temperature = float(val.get("calibration", {}).get("temperature", 1.0))
    if "calibration" in val and not model.is_lead_robust and jax.process_index() == 0:
        calibration.save(workdir, step, val["calibration"])  # prediction and export read it

    preds, results, excluded_counts = {}, {}, {}
    for dataset, split in target_list:
        key = f"{dataset}:{split}"
        preds[key], results[key], removed = _target_result(
            model, config, dataset, split, excluded, thresholds, temperature
        )
        if removed is not None:
            excluded_counts[key] = removed

    report = {
        "checkpoint": {
            "workdir": str(workdir),
            "step": int(step),
            "which": model.which,
            # validation metrics saved with this step at training time (None if none ran)
            "validation": model.validation,
        },
        "leads": list(model.input_leads),
        # a lead-robust model: one checkpoint for every subset, run here on `leads`
        "lead_robust": model.is_lead_robust,
        "train_dataset": meta.get("train_dataset"),
        "norm_stats_source": model.stats.source,
        "excluded_patients": {"n_listed": len(excluded), "removed": excluded_counts},
        "thresholds": thresholds,
        "validation": val,
        "targets": [f"{d}:{s}" for d, s in target_list],
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "results": results,
    }
    files: list[str] = []
    if jax.process_index() == 0:
        files = outputs.write_outputs(out_dir, report, preds, plots=bool(config.get("eval_plots", True)))
        on = f" on leads {','.join(model.input_leads)} (lead-robust)" if model.is_lead_robust else ""
        print(
            f"Evaluation of {workdir} step {step}{on} written to {out_dir}; summary: {out_dir / 'summary.md'}",
            flush=True,
        )
    return {
        "step": int(step),
        "out_dir": str(out_dir),
        "thresholds": thresholds,
        "validation": val,
        "results": results,
        "files": files,
    }
