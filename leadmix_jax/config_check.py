"""Checks of an experiment config before any work starts.

A typo (``--config.leads=II,III,aVX``, a dataset name, a batch size the
devices cannot split, ``model.dropout=2.0``, a NaN learning rate) must fail
in a second with a message that says what to change, not after data
generation, building, compilation or training. :func:`check` raises
:class:`~leadmix_jax.errors.UserError`.
"""

from __future__ import annotations

import math
import os
import re

import ml_collections

from leadmix_jax.data import leads as leads_lib
from leadmix_jax.errors import UserError

# name[/config[/version]] as given to `tfds build` and found under data_dir
_DATASET = re.compile(r"^[a-z][a-z0-9_]*(/[A-Za-z0-9_.-]+){0,2}$")
TRAINING = ("train", "demo", "protocol")


def check_dataset_name(name: str, field: str) -> None:
    """A built dataset's name (``sph_mi``, ``sph_mi/paper``, ``sph_mi/paper/1.0.0``)
    or an absolute path to one built under another data_dir."""
    if os.path.isabs(os.path.expanduser(name)):
        return
    if not _DATASET.match(name):
        raise UserError(
            f"{field}={name!r} is not a dataset name: use name[/config[/version]] as built by "
            "`tfds build` (e.g. sph_mi/paper) or an absolute path to a built dataset"
        )


def check(config: ml_collections.ConfigDict, mode: str = "train", device_count: int | None = None) -> None:
    """Raises :class:`UserError` for the first problem found in ``config`` for ``mode``.

    Checked: lead names and the model variant; for training modes the
    datasets, step counts and the ranges of the model, optimiser, loss,
    augmentation and schedule fields; evaluation targets and
    ``exclude_patients``; batch sizes (positive and divisible by the number of
    devices); the checkpoint choice; for ``report``, ``export`` and
    ``predict`` their own blocks of the config.
    """
    if mode in _OWN_BLOCK:
        _OWN_BLOCK[mode](config)
        return
    _check_leads(config, mode)
    if mode == "protocol":
        _check_population(config)
    if mode in TRAINING:
        _check_training(config)
    if mode in ("train", "eval", "demo", "protocol"):
        _check_evaluation(config)
    if device_count is None:
        import jax

        device_count = jax.device_count()
    sizes = [("batch_size", config.batch_size)] if mode in TRAINING else []
    sizes.append(("eval_batch_size", config.eval_batch_size))
    for field, size in sizes:
        if size <= 0 or size % device_count:
            raise UserError(
                f"--config.{field}={size} must be a positive multiple of the {device_count} "
                f"devices (data-parallel batches are split evenly), e.g. {device_count * 8}"
            )


def _check_leads(config: ml_collections.ConfigDict, mode: str) -> None:
    try:
        leads_lib.parse_leads(config.leads)
    except (ValueError, KeyError) as e:
        raise UserError(f"--config.leads={config.leads!r}: {e}") from None
    if config.get("model") and config.model.get("variant", "official") not in ("official", "lead_robust"):
        raise UserError(f"--config.model.variant={config.model.variant!r}: use official or lead_robust")
    robust = config.get("model") and config.model.get("variant") == "lead_robust"
    if robust and mode in ("train", "demo"):
        from leadmix_jax.model import lead_robust

        if set(leads_lib.parse_leads(config.leads)) != set(leads_lib.CANONICAL_LEADS):
            raise UserError(
                f"--config.leads={config.leads!r}: a lead-robust model trains on all 12 leads "
                "(random masks choose subsets); choose the subset at --mode=eval or predict"
            )
        try:
            lead_robust.MaskSampler.from_config(config.lead_robust)
            leads_lib.parse_lead_sets(config.lead_robust.val_sets)
        except (ValueError, KeyError) as e:
            raise UserError(f"--config.lead_robust: {e}") from None
    if mode in ("eval", "demo") and config.get("eval_leads"):
        try:
            leads_lib.parse_lead_sets(config.eval_leads)
        except ValueError as e:
            raise UserError(f"--config.eval_leads={config.eval_leads!r}: {e}") from None


def _need(ok: bool, field: str, value, rule: str) -> None:
    if not ok:
        raise UserError(f"--config.{field}={value!r}: {rule}")


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


def _check_training(config: ml_collections.ConfigDict) -> None:
    """The datasets, the schedule and the numeric ranges a training run needs."""
    check_dataset_name(config.train_dataset, "--config.train_dataset")
    if config.get("val_dataset"):
        check_dataset_name(config.val_dataset, "--config.val_dataset")
    if config.num_train_steps <= 0 and config.num_epochs <= 0:
        raise UserError("set --config.num_epochs or --config.num_train_steps to a positive number")
    _need(config.log_every_steps > 0, "log_every_steps", config.log_every_steps, "must be positive")
    _need(config.steps_per_dispatch >= 1, "steps_per_dispatch", config.steps_per_dispatch, "must be >= 1")
    _need(config.keep_checkpoints >= 1, "keep_checkpoints", config.keep_checkpoints, "must be >= 1")
    _need(config.norm_max_examples >= 1, "norm_max_examples", config.norm_max_examples, "must be >= 1")
    _need(
        config.input_mode in ("auto", "device", "grain"),
        "input_mode",
        config.input_mode,
        "use auto, device or grain",
    )
    m = config.model
    _need(m.depth >= 1, "model.depth", m.depth, "must be >= 1")
    _need(m.heads >= 1, "model.heads", m.heads, "must be >= 1")
    _need(
        m.base >= 8 and m.base % 8 == 0 and m.base % m.heads == 0,
        "model.base",
        m.base,
        f"must be a positive multiple of 8 (the GroupNorm groups) and of model.heads={m.heads}",
    )
    _need(_finite(m.dropout) and 0 <= m.dropout < 1, "model.dropout", m.dropout, "must be in [0, 1)")
    _need(m.dtype in ("float32", "bfloat16"), "model.dtype", m.dtype, "use float32 or bfloat16")
    o = config.optimizer
    _need(
        _finite(o.learning_rate) and o.learning_rate > 0,
        "optimizer.learning_rate",
        o.learning_rate,
        "must be a finite positive number",
    )
    _need(
        _finite(o.weight_decay) and o.weight_decay >= 0,
        "optimizer.weight_decay",
        o.weight_decay,
        "must be finite and >= 0",
    )
    for name in ("b1", "b2"):
        _need(_finite(o[name]) and 0 <= o[name] < 1, f"optimizer.{name}", o[name], "must be in [0, 1)")
    _need(_finite(o.eps) and o.eps > 0, "optimizer.eps", o.eps, "must be a finite positive number")
    _need(o.schedule in ("constant", "cosine"), "optimizer.schedule", o.schedule, "use constant or cosine")
    _need(o.warmup_steps >= 0, "optimizer.warmup_steps", o.warmup_steps, "must be >= 0")
    _need(
        _finite(o.grad_clip_norm) and o.grad_clip_norm >= 0,
        "optimizer.grad_clip_norm",
        o.grad_clip_norm,
        "must be >= 0 (0 = off)",
    )
    loss = config.loss
    _need(
        _finite(loss.label_smoothing) and 0 <= loss.label_smoothing < 1,
        "loss.label_smoothing",
        loss.label_smoothing,
        "must be in [0, 1)",
    )
    _need(
        _finite(loss.pos_weight) and loss.pos_weight > 0,
        "loss.pos_weight",
        loss.pos_weight,
        "must be a finite positive number",
    )
    _check_augment(config.augment)


def _check_augment(a) -> None:
    _need(_finite(a.scale) and 0 <= a.scale < 1, "augment.scale", a.scale, "must be in [0, 1)")
    for name in ("noise", "wander"):
        _need(_finite(a[name]) and a[name] >= 0, f"augment.{name}", a[name], "must be finite and >= 0")
    _need(a.shift >= 0, "augment.shift", a.shift, "must be >= 0")
    low, high = a.get("wander_low_hz", 0.05), a.get("wander_high_hz", 0.5)
    _need(
        _finite(low) and _finite(high) and 0 < low <= high,
        "augment.wander_low_hz",
        low,
        f"need 0 < wander_low_hz <= wander_high_hz (={high})",
    )


def _check_evaluation(config: ml_collections.ConfigDict) -> None:
    from leadmix_jax.evaluate import evaluation

    for dataset, _ in evaluation.parse_targets(config.eval_targets):
        check_dataset_name(dataset, "an entry of --config.eval_targets")
    spec = str(config.get("exclude_patients", "") or "")
    if spec.startswith("@") and not os.path.exists(os.path.expanduser(spec[1:])):
        raise UserError(f"--config.exclude_patients={spec}: {spec[1:]} does not exist")
    _check_checkpoint(config)


def _check_population(config: ml_collections.ConfigDict) -> None:
    from leadmix_jax.train import population

    population.make_members(config)  # lead sets, seeds, model variant: UserError
    if config.input_mode == "grain":
        raise UserError(
            "--mode=protocol trains populations from device-resident data: use --config.input_mode=auto or device"
        )
    _check_report(config)


def _check_report(config: ml_collections.ConfigDict) -> None:
    """``config.report``: the table's level, threshold and metrics."""
    from leadmix_jax.evaluate import tables

    report = config.report
    if report.level not in tables.LEVELS:
        raise UserError(f"--config.report.level={report.level!r}: use window, record or patient")
    if report.threshold not in tables.THRESHOLDS:
        raise UserError(f"--config.report.threshold={report.threshold!r}: use 0.5 or val_youden")
    names = tables.metric_names(report.metrics)
    if not names or any(m not in tables.TABLE_METRICS for m in names):
        raise UserError(
            f"--config.report.metrics={report.metrics!r}: use comma-separated names of "
            f"{', '.join(tables.TABLE_METRICS)}"
        )


def _check_export(config: ml_collections.ConfigDict) -> None:
    from leadmix_jax.deploy import export

    export.ExportSpec.from_config(config).check()
    if config.get("leads"):
        try:
            leads_lib.parse_leads(config.leads)
        except (ValueError, KeyError) as e:
            raise UserError(f"--config.leads={config.leads!r}: {e}") from None
    _check_checkpoint(config)


def _check_predict(config: ml_collections.ConfigDict) -> None:
    from leadmix_jax.data import amplitude

    try:
        amplitude.AmplitudeRange.parse(config.get("amplitude_range_mv", ""))
    except ValueError as e:
        raise UserError(f"--config.amplitude_range_mv: {e}") from None
    value = str(config.predict.threshold)
    if value not in ("", "val_youden", "0.5"):
        try:
            number = float(value)
        except ValueError:
            number = float("nan")
        if not 0.0 <= number <= 1.0:
            raise UserError(
                f"--config.predict.threshold={value!r}: use val_youden, 0.5 or a number in [0, 1]"
            )
    _check_checkpoint(config)


def _check_checkpoint(config: ml_collections.ConfigDict) -> None:
    which = str(config.get("eval_checkpoint", "best"))
    if which not in ("best", "latest") and not which.isdigit():
        raise UserError(f"--config.eval_checkpoint={which!r}: use best, latest or a step number")


def _check_explain(config: ml_collections.ConfigDict) -> None:
    ex = config.explain
    methods = ("integrated_gradients", "grad_cam", "smoothgrad")
    _need(ex.method in methods, "explain.method", ex.method, f"use one of {', '.join(methods)}")
    _need(int(ex.ig_steps) >= 1, "explain.ig_steps", ex.ig_steps, "must be >= 1")
    _need(int(ex.smooth_samples) >= 1, "explain.smooth_samples", ex.smooth_samples, "must be >= 1")
    _need(float(ex.smooth_sigma) >= 0, "explain.smooth_sigma", ex.smooth_sigma, "must be >= 0")
    _need(int(ex.check_windows) >= 2, "explain.check_windows", ex.check_windows, "must be >= 2")
    _need(int(ex.max_windows) >= 0, "explain.max_windows", ex.max_windows, "must be >= 0")
    if ex.split:
        from leadmix_jax.evaluate import evaluation

        evaluation.parse_targets(ex.split)
    _check_checkpoint(config)


_OWN_BLOCK = {
    "report": _check_report,
    "export": _check_export,
    "predict": _check_predict,
    "explain": _check_explain,
}
