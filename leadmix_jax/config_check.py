"""Checks of an experiment config before any work starts.

A typo (``--config.leads=II,III,aVX``, a dataset name, a batch size the
devices cannot split) must fail in a second with a message that says what
to change, not after data generation, building or compilation.
:func:`check` raises :class:`~leadmix_jax.errors.UserError`.
"""

from __future__ import annotations

import os
import re

import ml_collections

from leadmix_jax.data import leads as leads_lib
from leadmix_jax.errors import UserError

# name[/config[/version]] as given to `tfds build` and found under data_dir
_DATASET = re.compile(r"^[a-z][a-z0-9_]*(/[A-Za-z0-9_.-]+){0,2}$")


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


def check(config: ml_collections.ConfigDict, mode: str = "train", device_count: int | None = None) -> None:
    """Raises :class:`UserError` for the first problem found in ``config`` for ``mode``.

    Checked: lead names, dataset names, evaluation targets and
    ``exclude_patients``, batch sizes (positive and divisible by the number of
    devices), checkpoint choice, step counts; for ``report``, ``export`` and
    ``predict`` their own blocks of the config.
    """
    if mode in _OWN_BLOCK:
        _OWN_BLOCK[mode](config)
        return
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
    if mode == "protocol":
        _check_population(config)
    if mode in ("eval", "demo") and config.get("eval_leads"):
        from leadmix_jax.model import lead_robust

        try:
            leads_lib.parse_lead_sets(config.eval_leads)
        except ValueError as e:
            raise UserError(f"--config.eval_leads={config.eval_leads!r}: {e}") from None
    if mode in ("train", "demo", "protocol"):
        check_dataset_name(config.train_dataset, "--config.train_dataset")
        if config.get("val_dataset"):
            check_dataset_name(config.val_dataset, "--config.val_dataset")
        if config.num_train_steps <= 0 and config.num_epochs <= 0:
            raise UserError("set --config.num_epochs or --config.num_train_steps to a positive number")
        for field in ("log_every_steps",):
            if config[field] <= 0:
                raise UserError(f"--config.{field} must be positive, got {config[field]}")
    if mode in ("eval", "demo", "protocol"):
        from leadmix_jax.evaluate import evaluation

        for dataset, _ in evaluation.parse_targets(config.eval_targets):
            check_dataset_name(dataset, "an entry of --config.eval_targets")
        spec = str(config.get("exclude_patients", "") or "")
        if spec.startswith("@") and not os.path.exists(os.path.expanduser(spec[1:])):
            raise UserError(f"--config.exclude_patients={spec}: {spec[1:]} does not exist")
        _check_checkpoint(config)
    if device_count is None:
        import jax

        device_count = jax.device_count()
    sizes = [("batch_size", config.batch_size)] if mode in ("train", "demo", "protocol") else []
    sizes.append(("eval_batch_size", config.eval_batch_size))
    for field, size in sizes:
        if size <= 0 or size % device_count:
            raise UserError(
                f"--config.{field}={size} must be a positive multiple of the {device_count} "
                f"devices (data-parallel batches are split evenly), e.g. {device_count * 8}"
            )


def _check_export(config: ml_collections.ConfigDict) -> None:
    from leadmix_jax.deploy import export

    export.ExportSpec.from_config(config).check()
    _check_checkpoint(config)


def _check_predict(config: ml_collections.ConfigDict) -> None:
    from leadmix_jax.data import preprocessing

    try:
        preprocessing.AmplitudeRange.parse(config.get("amplitude_range_mv", ""))
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


_OWN_BLOCK = {"report": _check_report, "export": _check_export, "predict": _check_predict}
