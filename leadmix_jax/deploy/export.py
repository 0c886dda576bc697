"""Export a trained checkpoint to TFLite, ONNX or StableHLO, verified against JAX.

    python launch.py --mode=export --workdir=runs/inferior --config.export.format=tflite

What is exported: the checkpoint's model (rebuilt with ``export=True``, the
grouped depthwise formulation TFLite maps to ``DEPTHWISE_CONV_2D``) with the
per-lead z-scoring folded in front, so a device feeds a preprocessed window
in mV: ``(B, 2500, N)`` float32 at 250 Hz, the checkpoint's leads in order
-> MI logits ``(B,)``. TFLite files take one window; ONNX and StableHLO any
batch. ``quantize``: ``dynamic`` (int8 weights) or ``int8`` (activations
too, calibrated on training windows; TFLite: the convolutions only).

One export is :func:`convert` (the format's converter, into a temporary
file), :func:`verify` (the file in its own runtime against the JAX model on
the validation split: max |logit difference| <= ``FLOAT_MAX_LOGIT_ERROR``
for float exports, AUROC drop <= ``QUANTIZED_MAX_AUROC_DROP`` for quantised
ones, size and latency) and :func:`write` (the file renamed into place with
its sidecar and report). An export that misses its bounds leaves only
``<model>.failed.report.json|md`` and raises :class:`ExportError`; an earlier
export of that name stays. ``docs/export.md`` describes the files.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging
from flax import nnx

from leadmix_jax import mesh as mesh_lib
from leadmix_jax import metrics
from leadmix_jax.data import leads as leads_lib
from leadmix_jax.data import preprocessing
from leadmix_jax.deploy import converters, runtimes
from leadmix_jax.errors import UserError
from leadmix_jax.evaluate import restore as restore_lib
from leadmix_jax.evaluate.restore import RestoredModel
from leadmix_jax.input import built, norm_stats
from leadmix_jax.model import lead_robust, variants

FORMATS = ("tflite", "onnx", "stablehlo")
QUANTIZE = ("none", "dynamic", "int8")
EXTENSIONS = {"tflite": ".tflite", "onnx": ".onnx", "stablehlo": ".stablehlo"}
FLOAT_MAX_LOGIT_ERROR = 1e-4
QUANTIZED_MAX_AUROC_DROP = 0.005
SIDECAR_VERSION = 1


class ExportError(UserError):
    """An export that failed its verification bounds (its report says why)."""


@dataclasses.dataclass(frozen=True)
class ExportSpec:
    """What to export and how.

    Attributes:
      format: ``tflite``, ``onnx`` or ``stablehlo``.
      quantize: ``none``, ``dynamic`` or ``int8`` (TFLite and ONNX).
      checkpoint: ``best``, ``latest`` or a step.
      leads: the input leads (a lead spec, e.g. ``'inferior'``): for a
        lead-robust checkpoint the subset the exported model takes (``''``
        = all 12); for an official checkpoint ``''`` or its own leads.
      calibration_examples: training windows used to calibrate ``int8``.
      latency_runs: timed single-window runs (median reported).
    """

    format: str = "tflite"
    quantize: str = "none"
    checkpoint: str | int = "best"
    leads: str = ""
    calibration_examples: int = 500
    latency_runs: int = 30

    @classmethod
    def from_config(cls, config) -> "ExportSpec":
        """The export of ``config.export`` for the checkpoint ``config.eval_checkpoint``
        on input leads ``config.leads``."""
        e = config.export
        return cls(
            format=e.format,
            quantize=e.quantize,
            checkpoint=config.get("eval_checkpoint", "best"),
            leads=config.get("leads", ""),
            calibration_examples=int(e.calibration_examples),
            latency_runs=int(e.latency_runs),
        )

    def check(self) -> None:
        if self.format not in FORMATS:
            raise UserError(f"--config.export.format={self.format!r}: use one of {', '.join(FORMATS)}")
        if self.quantize not in QUANTIZE:
            raise UserError(f"--config.export.quantize={self.quantize!r}: use one of {', '.join(QUANTIZE)}")
        if self.format == "stablehlo" and self.quantize != "none":
            raise UserError(
                "--config.export.format=stablehlo is float only: use --config.export.quantize=none"
            )

    @property
    def file_name(self) -> str:
        suffix = "" if self.quantize == "none" else f"_{self.quantize}"
        return f"model{suffix}{EXTENSIONS[self.format]}"


# ----------------------------------------------------------------------------
# Data: windows in mV of the checkpoint's leads (not z-scored: the export does that).


def split_windows(
    builder, split: str, leads: Sequence[str], max_examples: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``(windows (n, 2500, N) float32 mV, labels (n,) int)`` of ``split``
    (all of it, or ``max_examples`` evenly spaced examples)."""
    idx = np.asarray(leads_lib.lead_indices(leads))
    xs, ys = [], []
    rows = built.read_rows(builder, split, built.sample_indices(builder, split, max_examples))
    for _, ex in rows:
        xs.append(np.asarray(ex["ecg"], np.float32)[:, idx])
        ys.append(int(ex["label"]))
    return np.stack(xs), np.asarray(ys)


# ----------------------------------------------------------------------------
# The function that is exported.


def with_input_leads(restored: RestoredModel, leads: str) -> RestoredModel:
    """The model to export, on input leads ``leads`` (a lead spec; ``''``: its
    own): a lead-robust checkpoint on that subset, an official checkpoint
    only on its own leads (a :class:`UserError` otherwise)."""
    if restored.is_lead_robust:
        try:
            return restored.with_leads(leads or ",".join(restored.leads))
        except ValueError as e:
            raise UserError(f"--config.leads={leads!r}: {e}") from None
    if leads and tuple(leads_lib.parse_leads(leads)) != tuple(restored.leads):
        raise UserError(
            f"step {restored.step} of {restored.workdir} takes leads {','.join(restored.leads)} only "
            f"(asked for {leads}); only a lead-robust checkpoint exports for another subset"
        )
    return restored


def _input_stats(restored: RestoredModel):
    """Norm statistics of the model's input leads (a lead-robust model's subset)."""
    return restored.stats.select(restored.input_leads)


def _to_model_input(restored: RestoredModel, z):
    """``(model input, extra call args)`` for z-scored windows ``z`` ``(B, T, N)``
    of the input leads: a lead-robust model takes all 12 leads in canonical
    order (absent ones zero, as the mask zeroes them anyway) and the mask."""
    if not restored.is_lead_robust:
        return z, ()
    return lead_robust.to_canonical(z, restored.input_leads), (restored.runner.lead_mask,)


def export_function(restored: RestoredModel):
    """``f(x)``: windows ``(B, 2500, N)`` mV of the input leads -> logits
    ``(B,)``, with the checkpoint's z-scoring folded in and the export
    formulation of the model."""
    model = variants.build_model({**restored.meta["model"], "export": True}, len(restored.leads))
    graphdef, _ = nnx.split(model, nnx.Param)
    params = jax.device_get(restored.params)
    stats = _input_stats(restored)
    mean, inv_std = norm_stats.zscore_factors(stats.mean, stats.std)

    def f(x):
        z = norm_stats.zscore(x, jnp.asarray(mean), jnp.asarray(inv_std))
        x_in, extra = _to_model_input(restored, z)
        return nnx.merge(graphdef, params)(x_in, *[jnp.asarray(e) for e in extra])

    return f


def jax_logits(restored: RestoredModel, windows: np.ndarray, batch: int = 16) -> np.ndarray:
    """Reference logits ``(n,)`` of mV windows ``(n, 2500, N)`` of the input
    leads: the checkpoint's model in its training formulation on ZScore'd
    windows (as evaluation runs it)."""
    graphdef = restored.runner.graphdef
    params = jax.device_get(restored.params)
    fn = jax.jit(lambda p, x, *extra: nnx.merge(graphdef, p)(x, *extra))
    z = norm_stats.ZScore(_input_stats(restored))(windows)
    out = []
    for i in range(0, len(z), batch):
        chunk = z[i : i + batch]
        pad = batch - len(chunk)
        chunk = np.concatenate([chunk, np.zeros((pad, *chunk.shape[1:]), np.float32)]) if pad else chunk
        x_in, extra = _to_model_input(restored, chunk)
        out.append(np.asarray(fn(params, x_in, *extra))[: batch - pad])
    return np.concatenate(out)


# ----------------------------------------------------------------------------
# The entry point.


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.asarray(z, np.float64)))


def _version() -> str:
    try:
        from importlib import metadata

        return metadata.version("leadmix-jax")
    except Exception:  # noqa: BLE001 - not installed (a source checkout)
        return "unknown"


@dataclasses.dataclass
class _Data:
    """The windows an export is calibrated and verified on (mV, the input leads)."""

    val_x: np.ndarray  # (n, 2500, N) validation windows
    val_y: np.ndarray  # (n,) labels
    verified_on: str  # '<dataset>:<split>'
    calib: np.ndarray  # (m, 2500, N) training windows for int8 calibration (m = 0 otherwise)
    calibration: str | None


def _data(config, spec: ExportSpec, leads) -> _Data:
    val_name = config.get("val_dataset") or config.train_dataset
    val_x, val_y = split_windows(built.load_builder(config.data_dir, val_name), config.val_split, leads)
    calib = np.zeros((0, preprocessing.WINDOW_SAMPLES, len(leads)), np.float32)
    calibration = None
    if spec.quantize == "int8":
        builder = built.load_builder(config.data_dir, config.train_dataset)
        calib, _ = split_windows(builder, config.train_split, leads, spec.calibration_examples)
        calibration = f"{config.train_dataset}:{config.train_split}, {len(calib)} windows"
    return _Data(val_x, val_y, f"{val_name}:{config.val_split}", calib, calibration)


def convert(restored: RestoredModel, spec: ExportSpec, calib: np.ndarray, path: str) -> float:
    """Writes the export of ``restored`` to ``path``; returns the seconds it took.
    A converter's own failure is an :class:`ExportError` (one line)."""
    t0 = time.perf_counter()
    try:
        converters.CONVERTERS[spec.format](
            export_function(restored), len(restored.input_leads), spec.quantize, calib, path
        )
    except Exception as e:  # noqa: BLE001 - a converter's own failure: one line, nothing written
        raise ExportError(
            f"the {spec.format} converter failed (quantize {spec.quantize}): {type(e).__name__}: {e}"
        ) from e
    return time.perf_counter() - t0


def verify(restored: RestoredModel, spec: ExportSpec, path: str, data: _Data) -> dict:
    """Runs the file at ``path`` in its runtime on the validation windows
    against the JAX model: the report's measurements and ``problems`` (the
    bounds it misses; empty when it passes)."""
    ref = jax_logits(restored, data.val_x)
    runtime, run = converters.runtime_of(spec.format, path)
    got = run(data.val_x)
    err = float(np.max(np.abs(got - ref))) if len(ref) else float("nan")
    # metrics.auroc takes probabilities; float64 sigmoid keeps the logits' order
    auroc_jax, auroc_exp = (metrics.auroc(data.val_y, _sigmoid(v)) for v in (ref, got))
    problems = []
    if not np.all(np.isfinite(got)):
        problems.append("non-finite logits")
    if spec.quantize == "none":
        if not err <= FLOAT_MAX_LOGIT_ERROR:
            problems.append(f"max |logit error| {err:.3g} > {FLOAT_MAX_LOGIT_ERROR:g}")
    else:
        drop = auroc_jax - auroc_exp
        if not np.isfinite(drop):
            problems.append(f"AUROC undefined on {data.verified_on} (one class)")
        elif drop > QUANTIZED_MAX_AUROC_DROP:
            problems.append(
                f"AUROC drop {drop:.4f} > {QUANTIZED_MAX_AUROC_DROP} ({auroc_jax:.4f} -> {auroc_exp:.4f})"
            )
    return {
        "passed": not problems,
        "problems": problems,
        "runtime": runtime,
        "size_bytes": os.path.getsize(path),
        "max_abs_logit_error": err,
        "mean_abs_logit_error": float(np.mean(np.abs(got - ref))) if len(ref) else float("nan"),
        "auroc_jax": auroc_jax,
        "auroc_export": auroc_exp,
        "auroc_drop": auroc_jax - auroc_exp,
        "latency_ms_per_window": converters.latency_ms(run, data.val_x[:1], spec.latency_runs),
        "latency_threads": 1,
    }


def sidecar(restored: RestoredModel, spec: ExportSpec, source: dict) -> dict:
    """What a device needs besides the file: leads, rate, window, thresholds, provenance."""
    batch = 1 if spec.format == "tflite" else "batch"
    return {
        "sidecar_version": SIDECAR_VERSION,
        "model_version": _version(),
        "file": spec.file_name,
        "sha256": None,  # filled in by write(), from the verified file
        "format": spec.format,
        "quantize": spec.quantize,
        "leads": list(restored.input_leads),
        "sampling_rate_hz": preprocessing.TARGET_FS,
        "window_samples": preprocessing.WINDOW_SAMPLES,
        "window_seconds": preprocessing.WINDOW_SECONDS,
        "input": {
            "shape": [batch, preprocessing.WINDOW_SAMPLES, len(restored.input_leads)],
            "dtype": "float32",
            "units": "mV",
            "preprocessing": "leadmix_jax.data.preprocessing.preprocess_record (band-pass, baseline, "
            "wavelet denoise, 250 Hz, 10-s windows); z-scoring is inside the model",
        },
        "output": {"shape": [batch], "meaning": "MI logit; P(MI) = sigmoid"},
        "thresholds": {"0.5": 0.5, "val_youden": restored.val_threshold},
        # sigmoid(logit / temperature) is the calibrated P(MI) (None: not fitted, run --mode=eval)
        "calibration": {"temperature": restored.temperature},
        "norm_stats": _input_stats(restored).to_json(),
        "model": restored.meta["model"],
        "source": source,
    }


def write(report: dict, side: dict, tmp: str, final: str) -> None:
    """Moves the verified file to ``final``, next to its sidecar and report."""
    side = {**side, "sha256": runtimes.sha256(tmp)}
    with open(final + ".json.tmp", "w") as fh:
        json.dump(side, fh, indent=1)
    os.replace(tmp, final)
    os.replace(final + ".json.tmp", final + runtimes.SIDECAR_SUFFIX)
    _write_report(report, final)


def export(config, workdir: str, spec: ExportSpec, out_dir: str | None = None) -> dict:
    """Exports, verifies and writes one model; returns the report dict.

    ``config`` names the datasets (``train_dataset``/``train_split`` for
    int8 calibration, ``val_dataset``/``val_split`` for verification; the
    workdir's ``config.json`` in launch.py). Raises :class:`ExportError`
    when the export misses its bounds (nothing is written as a success).
    """
    spec.check()
    converters.require(spec.format)
    if not config.get("val_split"):
        raise UserError("export verifies on the validation split, but the config has val_split=''")
    restored = with_input_leads(
        restore_lib.restore(workdir, spec.checkpoint, mesh=mesh_lib.local_mesh()), spec.leads
    )
    out_dir = out_dir or os.path.join(workdir, "export")
    os.makedirs(out_dir, exist_ok=True)
    final = os.path.join(out_dir, spec.file_name)
    tmp = os.path.join(out_dir, f".tmp-{os.getpid()}-{spec.file_name}")
    data = _data(config, spec, restored.input_leads)
    logging.info(
        "exporting step %d of %s to %s (quantize %s)", restored.step, workdir, spec.format, spec.quantize
    )
    try:
        convert_s = convert(restored, spec, data.calib, tmp)
        measured = verify(restored, spec, tmp, data)
    except Exception as e:
        if os.path.exists(tmp):
            os.remove(tmp)
        if isinstance(e, ExportError):
            raise
        # the exported file would not load or run in its runtime: one line, nothing written
        raise ExportError(
            f"{spec.file_name} of step {restored.step} could not be verified in its runtime: "
            f"{type(e).__name__}: {e}"
        ) from e
    source = {
        "workdir": os.path.abspath(workdir),
        "step": restored.step,
        "checkpoint": restored.which,
        "train_dataset": config.train_dataset,
        # a lead-robust checkpoint exported for one subset of its 12 leads
        "lead_robust": restored.is_lead_robust,
    }
    report = {
        "passed": measured["passed"],
        "problems": measured["problems"],
        "file": final,
        "format": spec.format,
        "quantize": spec.quantize,
        **{k: v for k, v in measured.items() if k not in ("passed", "problems")},
        "convert_seconds": convert_s,
        "verified_on": data.verified_on,
        "num_windows": int(len(data.val_y)),
        "calibration": data.calibration,
        "bounds": {
            "max_abs_logit_error": FLOAT_MAX_LOGIT_ERROR if spec.quantize == "none" else None,
            "max_auroc_drop": QUANTIZED_MAX_AUROC_DROP if spec.quantize != "none" else None,
        },
        "source": source,
    }
    if report["problems"]:
        os.remove(tmp)
        _write_report(report, os.path.join(out_dir, spec.file_name + ".failed"))
        raise ExportError(
            f"export {spec.file_name} of step {restored.step} failed verification: "
            f"{'; '.join(report['problems'])} (report {final}.failed.report.md)"
        )
    write(report, sidecar(restored, spec, source), tmp, final)
    print(
        f"exported {final}: {report['size_bytes'] / 1e6:.2f} MB, max |logit error| "
        f"{report['max_abs_logit_error']:.2g}, AUROC {report['auroc_export']:.4f} "
        f"(JAX {report['auroc_jax']:.4f}), {report['latency_ms_per_window']:.2f} ms per window "
        f"in {report['runtime']}",
        flush=True,
    )
    return report


def _write_report(report: dict, stem: str) -> None:
    with open(stem + ".report.json", "w") as fh:
        json.dump(report, fh, indent=1)
    with open(stem + ".report.md", "w") as fh:
        fh.write(report_markdown([report]))


def report_markdown(reports: Sequence[dict]) -> str:
    """A markdown table of export reports: one row per exported file."""
    lines = [
        "| file | status | size (MB) | max abs logit error | AUROC export (JAX) | latency ms/window |",
        "|---|---|---|---|---|---|",
    ]
    for r in reports:
        status = "passed" if r["passed"] else "FAILED: " + "; ".join(r["problems"])
        lines.append(
            f"| {os.path.basename(r['file'])} | {status} | {r['size_bytes'] / 1e6:.2f} | "
            f"{r['max_abs_logit_error']:.2e} | {r['auroc_export']:.4f} ({r['auroc_jax']:.4f}) | "
            f"{r['latency_ms_per_window']:.2f} ({r['runtime']}) |"
        )
    src = reports[0]["source"] if reports else {}
    lines.append("")
    lines.append(
        f"Checkpoint step {src.get('step')} of {src.get('workdir')}; verified on "
        f"{reports[0]['verified_on'] if reports else ''} ({reports[0]['num_windows'] if reports else 0} "
        "windows); latency: batch 1, one thread, median."
    )
    return "\n".join(lines) + "\n"
