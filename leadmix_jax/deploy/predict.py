"""MI probability of one ECG record with a trained checkpoint.

    python launch.py --mode=predict --workdir=runs/inferior --record=ptbxl/records500/00000/00001_hr.hea
    python launch.py --mode=predict --workdir=runs/inferior --record=A00001.h5
    python launch.py --mode=predict --workdir=runs/inferior --record=x.npy --fs=500 --lead_names=II,III,aVF
    python launch.py --mode=predict --model=runs/inferior/export/model.tflite --record=A00001.h5

Inputs:

* WFDB record (``.hea``, or the record path without extension): channels are
  named by the header (any case, PTB's ``i ii ... v6``); channels whose data
  file is missing (PTB's absent ``.xyz``) are not read. Physical units are
  converted to mV (``uV``/``V`` headers).
* SPH-style HDF5 (``.h5``/``.hdf5``): dataset ``ecg`` of shape ``(12, N)``,
  500 Hz (``fs`` overrides), canonical lead order (``lead_names`` overrides).
* NumPy ``.npy`` ``(T, L)`` with ``fs`` and ``lead_names`` given.

The checkpoint's leads are taken from the record in the checkpoint's order
(an error names any missing). A lead-robust checkpoint
(:mod:`leadmix_jax.model.lead_robust`) uses whichever standard leads the record
has (1 to 12; missing ones are masked) and says which. The record goes through the same
preprocessing as the datasets (:func:`leadmix_jax.data.preprocessing.preprocess_record`;
the clean rule is applied over the leads used), is z-scored with the
checkpoint's statistics, and every clean 10-s window gets a probability; the
whole-record probability is their mean (as the record level of the
evaluation). The record is called MI above the checkpoint's validation
threshold (Youden's J, chosen at training time; 0.5 for checkpoints trained
without validation); both thresholds are printed. Results are printed and
written to ``workdir/predictions/<file name>.json`` and ``<file name>.png``
(``x.h5.json`` and ``x.npy.json`` stay apart).

With ``model_file`` (``--model``), an exported ``.tflite``/``.onnx`` file
(:mod:`leadmix_jax.deploy.runtimes`) replaces the checkpoint: leads and thresholds
come from its sidecar, windows run in LiteRT / onnxruntime and JAX is not
imported; outputs go to ``<model folder>/predictions`` unless a workdir is given.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence

import numpy as np
from etils import epath

# inference (and JAX) are imported where a checkpoint is used: an exported
# model predicts without them.
from leadmix_jax.data import amplitude, preprocessing, records
from leadmix_jax.data import leads as leads_lib
from leadmix_jax.errors import UserError

# ----------------------------------------------------------------------------
# Readers: each returns (signal (T, C) float64 in mV, fs, channel names). They
# delegate to leadmix_jax.data.records, the readers the dataset builders use, and
# raise records.RecordError (a ValueError with a one-line message naming the
# file) on a bad file.


def read_wfdb(path: str) -> tuple[np.ndarray, float, list[str]]:
    base = path[:-4] if path.endswith(".hea") else path
    # Any subset of the standard leads (a header may list a missing .xyz file);
    # units are converted to mV as in the builders.
    signal, fs, _, names = records.read_wfdb_leads(base, allow_subset=True)
    return signal, fs, list(names)


def read_hdf5(
    path: str, fs: float | None = None, lead_names: Sequence[str] | None = None
) -> tuple[np.ndarray, float, list[str]]:
    names = list(lead_names) if lead_names else list(leads_lib.CANONICAL_LEADS)
    return records.read_h5_ecg(path, n_leads=len(names)), float(fs or 500.0), names


def read_npy(
    path: str, fs: float | None, lead_names: Sequence[str] | None
) -> tuple[np.ndarray, float, list[str]]:
    if not fs or not lead_names:
        raise ValueError(
            f"a .npy record needs its sampling rate and lead names "
            f"(--fs=500 --lead_names=I,II,...); got fs={fs}, lead_names={lead_names}"
        )
    names = list(lead_names)
    return records.read_npy(path, n_leads=len(names)), float(fs), names


def read_record(
    path: str, fs: float | None = None, lead_names: Sequence[str] | str | None = None
) -> tuple[np.ndarray, float, list[str]]:
    """Reads a WFDB / HDF5 / .npy record -> ``(signal (T, C) mV, fs, names)``."""
    if isinstance(lead_names, str):
        lead_names = [n for n in lead_names.split(",") if n.strip()]
    path = str(path)
    low = path.lower()
    if low.endswith((".h5", ".hdf5")):
        return read_hdf5(path, fs, lead_names)
    if low.endswith(".npy"):
        return read_npy(path, fs, lead_names)
    if low.endswith(".hea") or os.path.exists(path + ".hea"):
        signal, rec_fs, names = read_wfdb(path)
        if fs and abs(fs - rec_fs) > 1e-6:
            raise ValueError(f"--fs={fs} contradicts the header's sampling rate {rec_fs} of {path}")
        return signal, rec_fs, names
    raise ValueError(f"unknown record type {path!r}: give a WFDB .hea, an SPH-style .h5 or a .npy file")


def select_leads(signal: np.ndarray, names: Sequence[str], wanted: Sequence[str], source: str) -> np.ndarray:
    """Columns of ``signal`` for the ``wanted`` leads (canonical names), matched
    case-insensitively; ``ValueError`` naming the missing ones."""
    pos: dict[str, int] = {}
    for i, n in enumerate(names):
        pos.setdefault(str(n).strip().lower(), i)
    missing = [w for w in wanted if w.lower() not in pos]
    if missing:
        raise ValueError(
            f"{source} lacks lead(s) {', '.join(missing)} needed by the checkpoint "
            f"(leads {', '.join(wanted)}); the record has {', '.join(map(str, names))}"
        )
    return signal[:, [pos[w.lower()] for w in wanted]]


def record_leads(names: Sequence[str], source: str) -> tuple[str, ...]:
    """The standard leads among a record's channel ``names``, in canonical
    order (what a lead-robust checkpoint runs on); ``ValueError`` if none."""
    have = {str(n).strip().lower() for n in names}
    found = tuple(c for c in leads_lib.CANONICAL_LEADS if c.lower() in have)
    if not found:
        raise ValueError(
            f"{source} has no standard ECG lead (channels {', '.join(map(str, names))}); "
            f"standard leads: {', '.join(leads_lib.CANONICAL_LEADS)}"
        )
    return found


# ----------------------------------------------------------------------------
# Model.


def load_model(workdir: str, checkpoint=None):
    """The checkpoint (default ``best``) restored for inference on one local
    device (one record is a handful of windows: no cross-device split), kept
    in memory per workdir and step (saved steps never change): an
    :class:`~leadmix_jax.evaluate.restore.RestoredModel`."""
    from leadmix_jax import mesh as mesh_lib
    from leadmix_jax.evaluate import restore

    which = checkpoint if checkpoint not in (None, "") else "best"
    return restore.restore(workdir, which, mesh=mesh_lib.local_mesh(), cache=True)


def output_name(path: str) -> str:
    """File name for a record's outputs: the record's file name, so that
    ``x.h5`` and ``x.npy`` get apart outputs; WFDB records (given with or
    without ``.hea``) are named ``<record>.hea``."""
    name = os.path.basename(str(path))
    if not name.lower().endswith((".h5", ".hdf5", ".npy", ".hea")):
        name += ".hea"
    return name


def choose_threshold(model, threshold: str | float | None) -> tuple[float, str]:
    """``(value, name)`` of the decision threshold: the checkpoint's
    validation Youden threshold by default (0.5 for checkpoints saved
    without validation), ``'0.5'``/``'val_youden'`` or a number. ``model``:
    a restored checkpoint or an :class:`~leadmix_jax.deploy.runtimes.ExportedModel`."""
    if threshold in (None, "", "val_youden"):
        if model.val_threshold is not None:
            return model.val_threshold, "val_youden"
        if threshold == "val_youden":
            raise UserError(
                f"checkpoint step {model.step} of {model.workdir} has no validation threshold "
                "(trained without validation): use --config.predict.threshold=0.5"
            )
        return 0.5, "0.5"
    try:
        value = float(threshold)
    except (TypeError, ValueError):
        raise UserError(
            f"--config.predict.threshold={threshold!r}: use val_youden, 0.5 or a number in [0, 1]"
        ) from None
    if not 0.0 <= value <= 1.0:
        raise UserError(f"--config.predict.threshold={value} is outside [0, 1]")
    return value, f"{value:g}"


# ----------------------------------------------------------------------------
# The entry point.


def predict_record(
    workdir: str,
    path: str,
    checkpoint=None,
    fs: float | None = None,
    lead_names: Sequence[str] | str | None = None,
    write: bool = True,
    threshold: str | float | None = None,
    model_file: str | None = None,
    amplitude_range: amplitude.AmplitudeRange | None = amplitude.DEFAULT_AMPLITUDE_RANGE,
) -> dict:
    """MI probability of each 10-s window and of the whole record.

    ``model_file``: an exported ``.tflite``/``.onnx`` model run in its own
    runtime instead of ``workdir``'s checkpoint (``workdir`` may then be
    None); its outputs go to ``predictions/<model file name>/`` (under
    ``workdir``, else the model's folder), so exports never overwrite each
    other's predictions. ``amplitude_range``: the clean rule's plausible
    amplitudes, the builds' by default.

    Returns a JSON-serialisable dict: ``record``, ``checkpoint`` (workdir,
    step), ``leads``, ``fs``, ``duration_s``, ``num_windows`` (cut),
    ``windows`` (``[{'window', 'start_s', 'end_s', 'probability'}]`` of the
    usable ones), ``unusable_windows`` (``[{'window', 'reason'}]``: dropped by
    the clean rule, or a non-finite model output), ``dropped_windows`` (their
    indices), ``record_probability`` (mean over the usable windows; None when
    there is none, and then no ``prediction`` either),
    ``thresholds`` (``0.5`` and the checkpoint's ``val_youden``, None when
    trained without validation), ``threshold``/``threshold_name`` (chosen by
    :func:`choose_threshold`, default the validation threshold),
    ``prediction`` at that threshold and, when written, ``json``/``png``
    paths (``predictions/<file name>.json``/``.png``).
    """
    if model_file:
        from leadmix_jax.deploy import runtimes

        model = runtimes.ExportedModel(model_file)
        root = workdir or os.path.dirname(os.path.abspath(model_file))
        out_root = os.path.join(root, "predictions", os.path.basename(str(model_file)))
    else:
        model = load_model(workdir, checkpoint)
        out_root = os.path.join(workdir, "predictions")
    threshold_value, threshold_name = choose_threshold(model, threshold)
    signal, rec_fs, names = read_record(path, fs, lead_names)
    model, leads = on_record_leads(model, names, str(path))
    x = select_leads(signal, names, leads, str(path))
    pre = preprocessing.preprocess_record(x, rec_fs, amplitude_range)
    probs = _window_probabilities(model, pre, leads)
    result = _result(path, model, leads, rec_fs, signal.shape[0] / rec_fs, pre, probs)
    _calibrate(result, model)
    record_prob = result["record_probability"]
    result.update(
        threshold=threshold_value,
        threshold_name=threshold_name,
        prediction=None if record_prob is None else ("MI" if record_prob > threshold_value else "normal"),
    )
    if model_file:
        result["model_file"] = str(model_file)
    if write and (model_file or _process_index() == 0):
        _write_outputs(result, x, out_root)
    print(format_result(result), flush=True)
    return result


def on_record_leads(model, names: Sequence[str], source: str):
    """``(model, leads)``: the model's own leads, or for a lead-robust
    checkpoint the standard leads the record has (canonical order), the rest masked."""
    if not model.is_lead_robust:
        return model, model.leads
    leads = record_leads(names, source)
    return model.with_leads(leads), leads


def _window_probabilities(model, pre, leads) -> np.ndarray:
    """P(MI) of each clean window ``(n_kept,)``."""
    if not pre.num_kept:
        return np.zeros((0,), np.float32)
    windows = pre.windows
    if model.is_lead_robust:
        # the model's input is all 12 leads; absent ones are zeros here and masked in the model
        from leadmix_jax.model import lead_robust  # a JAX checkpoint: JAX is loaded already

        windows = lead_robust.to_canonical(pre.windows, leads)
    return model.predict_windows(windows)


def _result(path, model, leads, fs: float, duration_s: float, pre, probs: np.ndarray) -> dict:
    """The record's result without the decision: usable windows, their
    probabilities and the mean; unusable windows with their reasons."""
    win = preprocessing.WINDOW_SECONDS
    unusable = dict(pre.dropped)
    windows = []
    for w, p in zip(pre.window_index, probs):
        if np.isfinite(p):
            windows.append(
                {
                    "window": int(w),
                    "start_s": float(w * win),
                    "end_s": float((w + 1) * win),
                    "probability": float(p),
                }
            )
        else:  # no diagnosis from a non-finite number
            unusable[int(w)] = "non-finite model output"
    usable = np.asarray([w["probability"] for w in windows])
    return {
        "record": str(path),
        "checkpoint": {"workdir": str(model.workdir), "step": int(model.step)},
        "leads": list(leads),
        "lead_robust": model.is_lead_robust,
        "fs": fs,
        "duration_s": duration_s,
        "num_windows": pre.num_windows,
        "windows": windows,
        "unusable_windows": [{"window": w, "reason": r} for w, r in sorted(unusable.items())],
        "dropped_windows": sorted(unusable),
        "record_probability": float(np.mean(usable)) if usable.size else None,
        # both thresholds are reported; the prediction uses the chosen one
        "thresholds": {"0.5": 0.5, "val_youden": model.val_threshold},
    }


def _calibrate(result: dict, model) -> None:
    """Adds the calibrated probabilities (the temperature ``--mode=eval`` fitted
    on the validation split, or an export's sidecar): per window and for the
    record (mean of the calibrated windows). The decision stays the raw
    record probability against the threshold, both chosen on raw outputs."""
    from leadmix_jax.evaluate import calibration

    temperature = getattr(model, "temperature", None)
    result["temperature"] = temperature
    if temperature is None:
        result["calibrated_probability"] = None
        return
    for w in result["windows"]:
        w["calibrated_probability"] = float(calibration.apply_temperature(w["probability"], temperature))
    usable = [w["calibrated_probability"] for w in result["windows"]]
    result["calibrated_probability"] = float(np.mean(usable)) if usable else None


def _write_outputs(result: dict, x: np.ndarray, out_root: str) -> None:
    """``<out_dir>/<file name>.json`` and ``.png`` (the record with its windows
    shaded by probability); their paths go into ``result``."""
    from leadmix_jax.evaluate import plots

    name = output_name(result["record"])
    out_dir = epath.Path(out_root)
    out_dir.mkdir(parents=True, exist_ok=True)
    result["json"] = str(out_dir / f"{name}.json")
    result["png"] = str(out_dir / f"{name}.png")
    win = preprocessing.WINDOW_SECONDS
    shaded = [(w["start_s"], w["end_s"], w["probability"]) for w in result["windows"]]
    shaded += [(w * win, (w + 1) * win, None) for w in result["dropped_windows"]]
    prob = result["record_probability"]
    prob_text = "no usable window" if prob is None else f"record MI probability {prob:.3f}"
    title = f"{name}: {prob_text} (checkpoint step {result['checkpoint']['step']})"
    plots.record_figure(x, result["fs"], result["leads"], shaded, title, result["png"])
    epath.Path(result["json"]).write_text(json.dumps(result, indent=1))


def _process_index() -> int:
    import jax

    return jax.process_index()


def format_result(result: dict) -> str:
    robust = (
        " (lead-robust checkpoint: the record's leads, the others masked)"
        if result.get("lead_robust")
        else ""
    )
    lines = [
        f"{result['record']}: leads {','.join(result['leads'])}{robust}, {result['duration_s']:.1f} s at "
        f"{result['fs']:g} Hz, {len(result['windows'])} of {result['num_windows']} windows usable"
    ]
    for w in result["windows"]:
        lines.append(
            f"  window {w['window']:3d} [{w['start_s']:6.1f}, {w['end_s']:6.1f}) s  "
            f"P(MI) = {w['probability']:.4f}"
        )
    for w in result["unusable_windows"]:
        lines.append(f"  window {w['window']:3d} unusable: {w['reason']}")
    if result["record_probability"] is None:
        lines.append("  record: no usable 10-s window, no prediction")
    else:
        val = result["thresholds"]["val_youden"]
        val_text = "none (trained without validation)" if val is None else f"{val:.4f}"
        lines.append(
            f"  record P(MI) = {result['record_probability']:.4f} -> {result['prediction']} "
            f"at threshold {result['threshold_name']} = {result['threshold']:.4f} "
            f"(thresholds: 0.5; validation Youden {val_text})"
        )
        if result.get("calibrated_probability") is not None:
            lines.append(
                f"  calibrated P(MI) = {result['calibrated_probability']:.4f} "
                f"(temperature {result['temperature']:.3f}, fitted on the validation split)"
            )
        else:
            lines.append(
                "  uncalibrated: run --mode=eval once to fit the temperature on the validation split"
            )
    if "json" in result:
        lines.append(f"  saved {result['json']} and {result['png']}")
    return "\n".join(lines)
