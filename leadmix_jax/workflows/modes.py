"""The command line's modes: one function per ``launch.py --mode``, one signature.

Each mode takes the run's config (every setting), its workdir and the files
named on the command line (:class:`Inputs`). ``launch.py`` is the table
:data:`MODES` plus flag parsing and error reporting.
"""

from __future__ import annotations

import dataclasses

import ml_collections

from leadmix_jax.errors import NoPrediction, UserError


@dataclasses.dataclass(frozen=True)
class Inputs:
    """Files a mode reads besides the workdir, named by flags (not settings)."""

    record: str | None = None  # predict: a WFDB .hea, an SPH-style .h5 or a .npy file
    fs: float | None = None  # predict with .npy: its sampling rate (Hz)
    lead_names: str | None = None  # predict with .npy: its columns' lead names
    model: str | None = None  # predict: an exported .tflite/.onnx file instead of a checkpoint
    workdirs: tuple[str, ...] = ()  # report: evaluated workdirs


def train(config: ml_collections.ConfigDict, workdir: str, inputs: Inputs):
    from leadmix_jax.train import trainer

    return trainer.train_and_evaluate(config, workdir)


def evaluate(config: ml_collections.ConfigDict, workdir: str, inputs: Inputs):
    from leadmix_jax.evaluate import evaluation

    return evaluation.evaluate(config, workdir)


def predict(config: ml_collections.ConfigDict, workdir: str, inputs: Inputs):
    from leadmix_jax.deploy import predict as predict_lib

    if not inputs.record:
        raise UserError("--mode=predict needs --record=<.hea, .h5 or .npy file>")
    from leadmix_jax.data import amplitude

    result = predict_lib.predict_record(
        workdir,
        inputs.record,
        config.get("eval_checkpoint", "best"),
        inputs.fs,
        inputs.lead_names,
        threshold=config.predict.threshold,
        model_file=inputs.model,
        amplitude_range=amplitude.AmplitudeRange.parse(
            config.get("amplitude_range_mv", amplitude.DEFAULT_AMPLITUDE_RANGE.spec())
        ),
    )
    if config.predict.get("explain") and not inputs.model and result["prediction"] is not None:
        from leadmix_jax.workflows import explain as explain_lib

        explain_lib.explain_record(
            predict_lib.load_model(workdir, config.get("eval_checkpoint", "best")),
            explain_lib.attribution.Settings.from_config(config.explain),
            config.explain.method,
            workdir,
            inputs.record,
            inputs.fs,
            inputs.lead_names,
        )
    if result["prediction"] is None:
        raise NoPrediction(
            f"{inputs.record}: no usable 10-s window, so no prediction (the reasons are listed above)"
        )
    return result


def explain(config: ml_collections.ConfigDict, workdir: str, inputs: Inputs):
    from leadmix_jax.workflows import explain as explain_lib

    return explain_lib.run(config, workdir, inputs.record, inputs.fs, inputs.lead_names)


def export(config: ml_collections.ConfigDict, workdir: str, inputs: Inputs):
    from leadmix_jax.deploy import export as export_lib

    spec = export_lib.ExportSpec.from_config(config)
    return export_lib.export(config, workdir, spec, out_dir=config.export.dir or None)


def report(config: ml_collections.ConfigDict, workdir: str, inputs: Inputs):
    from leadmix_jax.evaluate import tables

    if not inputs.workdirs:
        raise UserError("--mode=report needs --workdirs=a,b,c (evaluated workdirs)")
    r = config.report
    return tables.make_report(inputs.workdirs, workdir, r.level, r.threshold, tables.metric_names(r.metrics))


def demo(config: ml_collections.ConfigDict, workdir: str, inputs: Inputs):
    from leadmix_jax.workflows import demo as demo_lib

    return demo_lib.run(config, workdir)


def protocol(config: ml_collections.ConfigDict, workdir: str, inputs: Inputs):
    from leadmix_jax.workflows import protocol as protocol_lib

    return protocol_lib.run(config, workdir)


#: ``--mode`` -> its function.
MODES = {
    "train": train,
    "eval": evaluate,
    "predict": predict,
    "export": export,
    "explain": explain,
    "report": report,
    "demo": demo,
    "protocol": protocol,
}
#: Modes that run from a trained workdir's own ``config.json``.
FROM_WORKDIR = ("eval", "predict", "export", "explain")
#: Modes whose config is checked in full before any work (:func:`leadmix_jax.config_check.check`).
CHECKED = ("train", "demo", "eval", "protocol", "export", "report", "predict", "explain")
