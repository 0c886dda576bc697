"""The export file formats: one converter per format and its own runtime.

Each converter writes ``f`` (windows ``(B, 2500, N)`` mV -> logits ``(B,)``,
see :func:`leadmix_jax.deploy.export.export_function`) to ``path``:

* TFLite via ``jax2tf`` and the TensorFlow Lite converter (float32, dynamic-
  range int8, or selective full int8 calibrated on ``calib``);
* ONNX via ``jax2onnx`` with a symbolic batch (float32, or int8 through
  onnxruntime's dynamic / static QDQ quantisation);
* StableHLO via ``jax.export`` with a symbolic batch (float32, XLA only).

:func:`runtime_of` runs a written file in the format's own runtime (LiteRT,
onnxruntime, XLA), one thread; :func:`latency_ms` times it on one window.
"""

from __future__ import annotations

import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from leadmix_jax.deploy import runtimes
from leadmix_jax.errors import UserError
from leadmix_jax.data import preprocessing


# TFLite ops run in int8 by quantize=int8: the convolutions. Every other op
# (dense layers, GroupNorm/LayerNorm statistics, softmax, attention matmuls,
# SiLU/GELU, tanh, the folded z-scoring, pooling) stays float: quantising
# more of them cost validation AUROC beyond the export's bound (the demo
# model's figures are in docs/export.md).
TFLITE_INT8_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D")


def _tflite(f, num_leads: int, quantize: str, calib: np.ndarray, path: str) -> None:
    with runtimes.quiet_native_output():  # TensorFlow's start-up and converter chatter
        content = _tflite_content(f, num_leads, quantize, calib)
    with open(path, "wb") as fh:
        fh.write(content)


def _tflite_content(f, num_leads: int, quantize: str, calib: np.ndarray) -> bytes:
    import tensorflow as tf
    from jax.experimental import jax2tf

    tf_fn = tf.function(
        jax2tf.convert(f, with_gradient=False),
        autograph=False,
        input_signature=[tf.TensorSpec((1, preprocessing.WINDOW_SAMPLES, num_leads), tf.float32)],
    )

    def converter():
        return tf.lite.TFLiteConverter.from_concrete_functions([tf_fn.get_concrete_function()])

    if quantize == "int8":
        # Selective int8: the float model's op names, all but TFLITE_INT8_OPS
        # denylisted; input/output stay float32.
        interp = tf.lite.Interpreter(model_content=converter().convert())
        names = {op["op_name"] for op in interp._get_ops_details()}
        conv = converter()
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        data = lambda: ([w[None].astype(np.float32)] for w in calib)  # noqa: E731
        conv.representative_dataset = data
        options = tf.lite.experimental.QuantizationDebugOptions(
            denylisted_ops=sorted(names - set(TFLITE_INT8_OPS))
        )
        debugger = tf.lite.experimental.QuantizationDebugger(
            converter=conv, debug_dataset=data, debug_options=options
        )
        return debugger.get_nondebug_quantized_model()
    conv = converter()
    if quantize == "dynamic":
        conv.optimizations = [tf.lite.Optimize.DEFAULT]  # int8 weights, float activations
    return conv.convert()


def _onnx(f, num_leads: int, quantize: str, calib: np.ndarray, path: str) -> None:
    with runtimes.quiet_native_output():
        _onnx_file(f, num_leads, quantize, calib, path)


def _onnx_file(f, num_leads: int, quantize: str, calib: np.ndarray, path: str) -> None:
    import jax2onnx

    proto = jax2onnx.to_onnx(f, [("B", preprocessing.WINDOW_SAMPLES, num_leads)], model_name="leadmix_mst")
    float_path = path if quantize == "none" else path + ".float.onnx"
    with open(float_path, "wb") as fh:
        fh.write(proto.SerializeToString())
    if quantize == "none":
        return
    from onnxruntime import quantization as q

    try:
        pre = float_path + ".pre.onnx"
        # graph clean-up and ONNX shape inference that the quantiser expects; the
        # symbolic shape inference fails on jax2onnx's Shape ops (dynamic batch)
        q.quant_pre_process(float_path, pre, skip_symbolic_shape=True)
        # reduce_range (7-bit weights): onnxruntime's setting for x86 CPUs without
        # VNNI, where 8-bit weights can saturate; with it the demo model's ONNX
        # exports keep their AUROC bound (docs/export.md)
        if quantize == "dynamic":
            q.quantize_dynamic(pre, path, weight_type=q.QuantType.QInt8, per_channel=True, reduce_range=True)
        else:
            import onnx

            name = onnx.load(pre).graph.input[0].name

            class Reader(q.CalibrationDataReader):
                """Calibration windows, one at a time (mV, as the model's input)."""

                def __init__(self):
                    self.it = iter(calib)

                def get_next(self):
                    w = next(self.it, None)
                    return None if w is None else {name: w[None].astype(np.float32)}

            q.quantize_static(
                pre,
                path,
                Reader(),
                quant_format=q.QuantFormat.QDQ,
                activation_type=q.QuantType.QUInt8,
                weight_type=q.QuantType.QInt8,
                per_channel=True,
                reduce_range=True,
                # The convolutions only, as the TFLite int8 path: quantising
                # every op also calibrates the max-pool's -inf padding (NaN
                # scales: onnxruntime raised on a scalar bias, and per-tensor
                # int8 gave a constant output, AUROC 0.5 on the demo model)
                op_types_to_quantize=["Conv"],
            )
    finally:
        for p in (float_path, float_path + ".pre.onnx"):
            if os.path.exists(p):
                os.remove(p)


def _stablehlo(f, num_leads: int, quantize: str, calib: np.ndarray, path: str) -> None:
    del quantize, calib
    (b,) = jax.export.symbolic_shape("b")
    spec = jax.ShapeDtypeStruct((b, preprocessing.WINDOW_SAMPLES, num_leads), jnp.float32)
    with open(path, "wb") as fh:
        fh.write(jax.export.export(jax.jit(f))(spec).serialize())


CONVERTERS = {"tflite": _tflite, "onnx": _onnx, "stablehlo": _stablehlo}
#: Packages a format's converter and runtime import (all in the ``export`` extra).
REQUIRES = {"tflite": ("tensorflow",), "onnx": ("jax2onnx", "onnx", "onnxruntime"), "stablehlo": ()}


def require(fmt: str) -> None:
    """:class:`~leadmix_jax.errors.UserError` naming the extra to install when a
    package ``fmt``'s export needs is missing (checked before any work)."""
    import importlib.util

    missing = [name for name in REQUIRES[fmt] if importlib.util.find_spec(name) is None]
    if missing:
        raise UserError(
            f"exporting to {fmt} needs {', '.join(missing)}, which come with the export extra: "
            "pip install -e '.[export]'"
        )


def runtime_of(fmt: str, path: str):
    """``(name, callable (B, T, N) mV -> (B,) logits)`` in the format's own runtime (one thread)."""
    if fmt == "stablehlo":
        with open(path, "rb") as fh:
            exp = jax.export.deserialize(bytearray(fh.read()))
        return "XLA (jax.export)", lambda x: np.asarray(exp.call(np.asarray(x, np.float32)))
    return ("LiteRT" if fmt == "tflite" else "onnxruntime"), runtimes.runner(path, threads=1)


def latency_ms(run, window: np.ndarray, runs: int) -> float:
    """Median wall time (ms) of ``run`` on one window ``(1, T, N)``, after warm-up."""
    for _ in range(3):
        run(window)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        run(window)
        times.append(time.perf_counter() - t0)
    return 1e3 * float(np.median(times))
