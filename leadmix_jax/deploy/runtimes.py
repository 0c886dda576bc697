"""Exported models (TFLite, ONNX) run in their own runtime, without JAX.

An export (:mod:`leadmix_jax.deploy.export`) writes the model file and a JSON
sidecar ``<model file>.json``. The model takes preprocessed windows in mV
``(B, 2500, N)`` float32 (250 Hz, 10 s, the sidecar's ``leads`` in order;
z-scoring is inside the model) and returns MI logits ``(B,)``. TFLite files
have a fixed batch of 1, ONNX files a dynamic batch.

:class:`ExportedModel` has the attributes :mod:`leadmix_jax.deploy.predict` uses
of a restored checkpoint (``leads``, ``step``, ``workdir``,
``val_threshold``, ``predict_windows``), so single-record prediction runs
the same reading, preprocessing and output code on either.

This module imports no JAX: a device-side tool needs only numpy and the
format's runtime (``ai-edge-litert`` or ``onnxruntime``).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import warnings

import numpy as np

from leadmix_jax.errors import UserError

SIDECAR_SUFFIX = ".json"
RUNTIMES = {".tflite": "tflite", ".onnx": "onnx", ".stablehlo": "stablehlo"}


@contextlib.contextmanager
def quiet_native_output():
    """Silences what native code (TensorFlow, LiteRT, onnxruntime) writes to
    the process's stdout and stderr while the block runs: start-up banners,
    delegate notices and converter chatter a user cannot act on. Python
    exceptions still propagate; ``LEADMIX_VERBOSE=1`` keeps everything."""
    if os.environ.get("LEADMIX_VERBOSE"):
        yield
        return
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, devnull):
            os.close(fd)


def format_of(path: str) -> str:
    """``'tflite'``, ``'onnx'`` or ``'stablehlo'`` from a model file's extension."""
    ext = os.path.splitext(str(path))[1].lower()
    if ext not in RUNTIMES:
        raise UserError(
            f"unknown model file type {path!r}: give a .tflite or .onnx file written by --mode=export"
        )
    return RUNTIMES[ext]


def read_sidecar(path: str) -> dict:
    """The sidecar ``<path>.json`` of an exported model (leads, fs, thresholds, source)."""
    side = str(path) + SIDECAR_SUFFIX
    if not os.path.exists(side):
        raise UserError(
            f"{side} is missing: an exported model needs the sidecar written next to it by "
            "--mode=export (leads, sampling rate, thresholds)"
        )
    try:
        with open(side, encoding="utf-8") as fh:
            sidecar = json.load(fh)
    except (OSError, ValueError) as e:
        raise UserError(
            f"{side} is not the JSON sidecar --mode=export writes ({type(e).__name__}): export again"
        ) from None
    if not isinstance(sidecar, dict) or not isinstance(sidecar.get("leads"), list):
        raise UserError(f"{side} lacks the sidecar's 'leads': export again")
    return sidecar


def sha256(path: str) -> str:
    """Hex SHA-256 of a file's bytes (the export writes it into the sidecar)."""
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_file(path: str, sidecar: dict | None = None) -> None:
    """:class:`UserError` unless ``path`` is whole: its SHA-256 matches the
    sidecar's (when it records one) and its structure is its format's (a
    TFLite flatbuffer's identifier and root offset, an ONNX protobuf). A
    runtime given a truncated file can crash the process instead of raising."""
    fmt = format_of(path)
    size = os.path.getsize(path)
    want = (sidecar or {}).get("sha256")
    if want and sha256(path) != want:
        raise UserError(
            f"{path} does not match the SHA-256 its sidecar records (truncated or changed after export, "
            f"{size} bytes): export it again"
        )
    with open(path, "rb") as fh:
        head = fh.read(8)
    if fmt == "tflite" and (size < 16 or head[4:8] != b"TFL3" or int.from_bytes(head[:4], "little") >= size):
        raise UserError(
            f"{path} is not a TFLite model (no flatbuffer 'TFL3' header, {size} bytes): export it again"
        )
    if fmt == "onnx":
        try:
            import onnx

            onnx.load(path, load_external_data=False)
        except ImportError:
            pass
        except Exception as e:  # noqa: BLE001 - any parse failure: not a whole ONNX file
            raise UserError(
                f"{path} is not a readable ONNX model ({type(e).__name__}): export it again"
            ) from None


class _TFLiteRunner:
    """A LiteRT interpreter: one window per invoke (the file's batch is 1)."""

    def __init__(self, path: str, threads: int = 1):
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError:  # TensorFlow's own copy of the interpreter
            try:
                import tensorflow as tf
            except ImportError:
                raise UserError(
                    "running a .tflite file needs ai-edge-litert (or TensorFlow): pip install -e '.[export]'"
                ) from None
            Interpreter = tf.lite.Interpreter
        with quiet_native_output():  # "INFO: Created TensorFlow Lite XNNPACK delegate for CPU."
            self.interp = Interpreter(model_path=str(path), num_threads=threads)
            self.interp.allocate_tensors()
        self.inp = self.interp.get_input_details()[0]
        self.out = self.interp.get_output_details()[0]

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """``(B, T, N)`` mV -> logits ``(B,)``."""
        out = np.empty((x.shape[0],), np.float32)
        for i in range(x.shape[0]):
            self.interp.set_tensor(self.inp["index"], np.ascontiguousarray(x[i : i + 1], np.float32))
            self.interp.invoke()
            out[i] = self.interp.get_tensor(self.out["index"]).reshape(-1)[0]
        return out


class _OnnxRunner:
    """An onnxruntime CPU session (dynamic batch)."""

    def __init__(self, path: str, threads: int = 1):
        try:
            import onnxruntime as ort
        except ImportError:
            raise UserError("running a .onnx file needs onnxruntime: pip install -e '.[export]'") from None

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        self.sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        self.name = self.sess.get_inputs()[0].name

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """``(B, T, N)`` mV -> logits ``(B,)``."""
        return np.asarray(self.sess.run(None, {self.name: np.asarray(x, np.float32)})[0], np.float32).reshape(
            -1
        )


def runner(path: str, threads: int = 1):
    """A callable ``(B, T, N) mV -> (B,) logits`` running ``path`` in its format's runtime."""
    fmt = format_of(path)
    if fmt == "tflite":
        return _TFLiteRunner(path, threads)
    if fmt == "onnx":
        return _OnnxRunner(path, threads)
    raise UserError(
        f"{path}: StableHLO runs only in XLA (jax.export.deserialize); "
        "predict with a .tflite or .onnx export, or with --workdir"
    )


class ExportedModel:
    """An exported model and its sidecar, with :class:`leadmix_jax.model.inference.RestoredModel`'s
    prediction interface."""

    # an exported file takes a fixed lead list (its sidecar's), even when it came from a
    # lead-robust checkpoint: the subset is chosen at export time
    is_lead_robust = False

    def __init__(self, path: str, threads: int = 1):
        if not os.path.exists(str(path)):
            raise UserError(f"model file {path} does not exist")
        self.path = str(path)
        self.sidecar = read_sidecar(path)
        check_file(self.path, self.sidecar)
        self.leads = tuple(self.sidecar["leads"])
        source = self.sidecar.get("source", {})
        self.workdir = source.get("workdir", "")
        self.step = int(source.get("step", -1))
        self._run = runner(path, threads)

    @property
    def val_threshold(self) -> float | None:
        return self.sidecar.get("thresholds", {}).get("val_youden")

    @property
    def temperature(self) -> float | None:
        """The checkpoint's calibration temperature, as the sidecar records it."""
        value = (self.sidecar.get("calibration") or {}).get("temperature")
        return float(value) if value else None

    def logits(self, windows: np.ndarray) -> np.ndarray:
        """Logits ``(B,)`` of windows ``(B, 2500, N)`` in mV, in :attr:`leads` order."""
        return self._run(np.asarray(windows, np.float32))

    def predict_windows(self, windows: np.ndarray, batch_size: int = 16) -> np.ndarray:
        """MI probabilities ``(B,)`` of preprocessed windows ``(B, 2500, N)`` in mV."""
        del batch_size  # the runtimes take the whole record (TFLite: one window at a time)
        if windows.shape[0] == 0:
            return np.zeros((0,), np.float32)
        z = self.logits(windows).astype(np.float64)
        return (1.0 / (1.0 + np.exp(-z))).astype(np.float32)
