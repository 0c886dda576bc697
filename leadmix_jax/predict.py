"""MI probability of one ECG record with a trained checkpoint.

    python launch.py --mode=predict --workdir=runs/inferior --record=ptbxl/records500/00000/00001_hr.hea
    python launch.py --mode=predict --workdir=runs/inferior --record=A00001.h5
    python launch.py --mode=predict --workdir=runs/inferior --record=x.npy --fs=500 --lead_names=II,III,aVF

Inputs:

* WFDB record (``.hea``, or the record path without extension): channels are
  named by the header (any case, PTB's ``i ii ... v6``); channels whose data
  file is missing (PTB's absent ``.xyz``) are not read. Physical units are
  converted to mV (``uV``/``V`` headers).
* SPH-style HDF5 (``.h5``/``.hdf5``): dataset ``ecg`` of shape ``(12, N)``,
  500 Hz (``fs`` overrides), canonical lead order (``lead_names`` overrides).
* NumPy ``.npy`` ``(T, L)`` with ``fs`` and ``lead_names`` given.

The checkpoint's leads are taken from the record in the checkpoint's order
(an error names any missing). The record goes through the same
preprocessing as the datasets (:func:`leadmix_jax.preprocessing.preprocess_record`;
the clean rule is applied over the leads used), is z-scored with the
checkpoint's statistics, and every clean 10-s window gets a probability; the
whole-record probability is their mean (as the record level of the
evaluation). Results are printed and written to
``workdir/predictions/<record>.json`` and ``<record>.png``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence

import jax
import ml_collections
import numpy as np
from etils import epath
from flax import nnx

from leadmix_jax import checkpointing, input_pipeline, preprocessing, records
from leadmix_jax import leads as leads_lib

# ----------------------------------------------------------------------------
# Readers: each returns (signal (T, C) float64 in mV, fs, channel names). They
# delegate to leadmix_jax.records, the readers the dataset builders use, and
# raise records.RecordError (a ValueError with a one-line message naming the
# file) on a bad file.

def read_wfdb(path: str) -> tuple[np.ndarray, float, list[str]]:
    base = path[:-4] if path.endswith(".hea") else path
    # Any subset of the standard leads (a header may list a missing .xyz file);
    # units are converted to mV as in the builders.
    signal, fs, _, names = records.read_wfdb_leads(base, allow_subset=True)
    return signal, fs, list(names)


def read_hdf5(path: str, fs: float | None = None,
              lead_names: Sequence[str] | None = None) -> tuple[np.ndarray, float, list[str]]:
    names = list(lead_names) if lead_names else list(leads_lib.CANONICAL_LEADS)
    return records.read_h5_ecg(path, n_leads=len(names)), float(fs or 500.0), names


def read_npy(path: str, fs: float | None, lead_names: Sequence[str] | None) -> tuple[np.ndarray, float, list[str]]:
    if not fs or not lead_names:
        raise ValueError(f"a .npy record needs its sampling rate and lead names "
                         f"(--fs=500 --lead_names=I,II,...); got fs={fs}, lead_names={lead_names}")
    names = list(lead_names)
    return records.read_npy(path, n_leads=len(names)), float(fs), names


def read_record(path: str, fs: float | None = None,
                lead_names: Sequence[str] | str | None = None) -> tuple[np.ndarray, float, list[str]]:
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
        raise ValueError(f"{source} lacks lead(s) {', '.join(missing)} needed by the checkpoint "
                         f"(leads {', '.join(wanted)}); the record has {', '.join(map(str, names))}")
    return signal[:, [pos[w.lower()] for w in wanted]]


# ----------------------------------------------------------------------------
# Model.

_MODELS: dict[tuple[str, int], tuple] = {}


def load_model(workdir: str, checkpoint=None):
    """``(apply(x (B, 2500, N)) -> probs (B,), meta, step)`` of a checkpoint
    (kept in memory per workdir and step: saved steps never change)."""
    from leadmix_jax import train
    manager = checkpointing.make_manager(workdir, keep=1, read_only=True)
    step = checkpointing.select_step(manager, checkpoint if checkpoint not in (None, "") else "best")
    key = (str(epath.Path(workdir).absolute()), int(step))
    if key in _MODELS:
        manager.close()
        return _MODELS[key]
    from leadmix_jax.evaluate import read_meta
    meta = read_meta(manager, step)
    leads = leads_lib.parse_leads(list(meta["leads"]))
    cfg = ml_collections.ConfigDict({"model": meta["model"]})
    sharding = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    shapes = jax.eval_shape(lambda: nnx.state(train.build_model(cfg, len(leads)), nnx.Param))
    abstract = checkpointing.replicated_abstract(shapes, sharding)
    params, meta = checkpointing.restore_for_inference(manager, step, abstract)
    manager.close()
    graphdef, _ = nnx.split(nnx.eval_shape(lambda: train.build_model(cfg, len(leads))), nnx.Param)

    @jax.jit
    def forward(p, x):
        return jax.nn.sigmoid(nnx.merge(graphdef, p)(x))

    def apply(x: np.ndarray, batch: int = 16) -> np.ndarray:
        out = []
        for i in range(0, x.shape[0], batch):
            chunk = x[i:i + batch]
            pad = batch - chunk.shape[0]
            if pad:
                chunk = np.concatenate([chunk, np.zeros((pad, *chunk.shape[1:]), chunk.dtype)])
            out.append(np.asarray(forward(params, chunk))[:batch - pad])
        return np.concatenate(out) if out else np.zeros((0,), np.float32)

    _MODELS[key] = (apply, meta, step)
    return apply, meta, step


# ----------------------------------------------------------------------------
# The entry point.

def predict_record(workdir: str, path: str, checkpoint=None, fs: float | None = None,
                   lead_names: Sequence[str] | str | None = None, write: bool = True) -> dict:
    """MI probability of each 10-s window and of the whole record.

    Returns a JSON-serialisable dict: ``record``, ``checkpoint`` (workdir,
    step), ``leads``, ``fs``, ``duration_s``, ``num_windows`` (cut),
    ``windows`` (``[{'window', 'start_s', 'end_s', 'probability'}]`` of the
    clean ones), ``dropped_windows`` (indices dropped by the clean rule),
    ``record_probability`` (mean; None when no window is clean),
    ``prediction`` at threshold 0.5 and, when written, ``json``/``png`` paths.
    """
    apply, meta, step = load_model(workdir, checkpoint)
    leads = leads_lib.parse_leads(list(meta["leads"]))
    stats = input_pipeline.NormStats.from_json(meta["norm_stats"])
    signal, rec_fs, names = read_record(path, fs, lead_names)
    x = select_leads(signal, names, leads, str(path))
    pre = preprocessing.preprocess_record(x, rec_fs)
    mean = np.asarray(stats.mean, np.float32)
    inv_std = (1.0 / np.asarray(stats.std, np.float64)).astype(np.float32)
    probs = apply((pre.windows - mean) * inv_std) if pre.num_kept else np.zeros((0,), np.float32)
    win = preprocessing.WINDOW_SECONDS
    windows = [{"window": int(w), "start_s": float(w * win), "end_s": float((w + 1) * win),
                "probability": float(p)} for w, p in zip(pre.window_index, probs)]
    kept = set(int(w) for w in pre.window_index)
    record_prob = float(np.mean(probs)) if probs.size else None
    name = os.path.basename(str(path))
    for ext in (".hea", ".h5", ".hdf5", ".npy"):
        if name.lower().endswith(ext):
            name = name[: -len(ext)]
    result = {
        "record": str(path),
        "checkpoint": {"workdir": str(workdir), "step": int(step)},
        "leads": list(leads),
        "fs": rec_fs,
        "duration_s": signal.shape[0] / rec_fs,
        "num_windows": pre.num_windows,
        "windows": windows,
        "dropped_windows": [w for w in range(pre.num_windows) if w not in kept],
        "record_probability": record_prob,
        "threshold": 0.5,
        "prediction": None if record_prob is None else ("MI" if record_prob > 0.5 else "normal"),
    }
    if write and jax.process_index() == 0:
        from leadmix_jax import plots
        out_dir = epath.Path(workdir) / "predictions"
        out_dir.mkdir(parents=True, exist_ok=True)
        result["json"] = str(out_dir / f"{name}.json")
        result["png"] = str(out_dir / f"{name}.png")
        shaded = [(w["start_s"], w["end_s"], w["probability"]) for w in windows]
        shaded += [(w * win, (w + 1) * win, None) for w in result["dropped_windows"]]
        prob_text = "no clean window" if record_prob is None else f"record MI probability {record_prob:.3f}"
        plots.record_figure(x, rec_fs, leads, shaded, f"{name}: {prob_text} (checkpoint step {step})",
                            result["png"])
        epath.Path(result["json"]).write_text(json.dumps(result, indent=1))
    print(format_result(result), flush=True)
    return result


def format_result(result: dict) -> str:
    lines = [f"{result['record']}: leads {','.join(result['leads'])}, {result['duration_s']:.1f} s at "
             f"{result['fs']:g} Hz, {len(result['windows'])} of {result['num_windows']} windows clean"]
    for w in result["windows"]:
        lines.append(f"  window {w['window']:3d} [{w['start_s']:6.1f}, {w['end_s']:6.1f}) s  "
                     f"P(MI) = {w['probability']:.4f}")
    if result["record_probability"] is None:
        lines.append("  record: no clean 10-s window, no prediction")
    else:
        lines.append(f"  record P(MI) = {result['record_probability']:.4f} -> {result['prediction']} "
                     f"(threshold {result['threshold']})")
    if "json" in result:
        lines.append(f"  saved {result['json']} and {result['png']}")
    return "\n".join(lines)
