"""The one entry point on a CPU, GPU or TPU host.

    python launch.py --config=configs/paper.py --workdir=runs/inferior --config.leads=inferior
    python launch.py --mode=eval --workdir=runs/inferior [--checkpoint=best|latest|<step>]
    python launch.py --mode=predict --workdir=runs/inferior --record=path/to/record.hea
    python launch.py --mode=report --workdirs=runs/a,runs/b --workdir=runs/report
    python launch.py --mode=export --workdir=runs/inferior --format=tflite [--quantize=dynamic|int8]
    python launch.py --mode=predict --model=runs/inferior/export/model.tflite --record=record.hea
    python launch.py --config=configs/demo.py --workdir=runs/demo     # no-download demo

Every config field can be overridden on the command line with
--config.<field>=<value> (e.g. --config.batch_size=64 --config.model.base=32).
--mode=eval, --mode=predict and --mode=export read the workdir's own config.json (data_dir,
datasets, leads) unless --config is given; overrides apply on top.
configs/demo.py sets config.mode='demo': synthetic databases, built, trained
and evaluated end to end.

Several processes (multi-node GPU, TPU pods): pass --distributed (TPU pods
and SLURM detect the rest) or --coordinator_address/--num_processes/--process_id.
Restarting the same train command resumes from the newest intact checkpoint.
User errors (a bad lead name, a missing dataset, ...) print one line and exit
with status 2.
"""

from __future__ import annotations

import os

# Before anything imports TensorFlow (TFDS does): its C++ INFO/WARNING lines
# would otherwise be printed, once per process that imports it.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# Before JAX starts its CPU client's threads: XLA:CPU's per-call buffers are
# then reused instead of faulted in again at every dispatch (see the module).
from leadmix_jax import host_memory  # noqa: E402

host_memory.keep_freed_memory()

import importlib.metadata  # noqa: E402
import importlib.util  # noqa: E402
import json  # noqa: E402
import logging as std_logging  # noqa: E402
import sys  # noqa: E402

from absl import app, flags, logging  # noqa: E402
from ml_collections import config_flags  # noqa: E402

config_flags.DEFINE_config_file(
    "config",
    "configs/default.py",
    "Experiment config file; override fields with --config.<field>=<value>.",
    lock_config=True,
)
flags.DEFINE_string("workdir", None, "Checkpoints, logs and reports go here (required).")
flags.DEFINE_enum(
    "mode",
    None,
    ["train", "eval", "predict", "report", "demo", "export", "protocol"],
    "train, eval (restore a checkpoint and evaluate), predict (one record), "
    "report (gather several workdirs), demo (synthetic end to end), "
    "protocol (lead sets x seeds trained as populations, evaluated, one table), "
    "export (TFLite/ONNX/StableHLO file, verified against JAX). "
    "Default: the config's 'mode' field, else train.",
)
flags.DEFINE_bool("distributed", False, "Call jax.distributed.initialize() (auto-detected cluster).")
flags.DEFINE_string("coordinator_address", None, "host:port of process 0 for multi-process runs.")
flags.DEFINE_integer("num_processes", None, "Number of processes of a multi-process run.")
flags.DEFINE_integer("process_id", None, "This process's index in a multi-process run.")
flags.DEFINE_string("record", None, "--mode=predict: a WFDB .hea, an SPH-style .h5 or a .npy file.")
flags.DEFINE_float("fs", None, "--mode=predict with .npy: sampling rate in Hz.")
flags.DEFINE_string(
    "lead_names", None, "--mode=predict with .npy: comma-separated lead names of the columns."
)
flags.DEFINE_string(
    "checkpoint", None, "eval/predict/export: best, latest or a step (default: config.eval_checkpoint)."
)
flags.DEFINE_string(
    "threshold",
    None,
    "--mode=predict: val_youden (default; 0.5 if trained without validation), 0.5 or a number.",
)
flags.DEFINE_enum("format", None, ["tflite", "onnx", "stablehlo"], "--mode=export: file format.")
flags.DEFINE_enum(
    "quantize",
    "none",
    ["none", "dynamic", "int8"],
    "--mode=export: none (float32), dynamic (int8 weights) or int8 (weights and "
    "activations, calibrated on training windows); TFLite and ONNX.",
)
flags.DEFINE_string("export_dir", None, "--mode=export: output folder (default <workdir>/export).")
flags.DEFINE_string(
    "model",
    None,
    "--mode=predict: an exported .tflite or .onnx file (run without JAX; "
    "--workdir not needed, outputs go to <model folder>/predictions).",
)
flags.DEFINE_list("workdirs", [], "--mode=report: workdirs to gather into one table.")
flags.DEFINE_enum(
    "report_level", "patient", ["window", "record", "patient"], "--mode=report: level of the table."
)
flags.DEFINE_string("report_threshold", "0.5", "--mode=report: threshold of the table, 0.5 or val_youden.")
flags.DEFINE_list(
    "report_metrics",
    ["auroc", "accuracy", "sensitivity", "specificity", "macro_f1"],
    "--mode=report: metrics per dataset.",
)
FLAGS = flags.FLAGS

# Messages of libraries that say nothing the user can act on.
_NOISE = (
    "Unable to initialize backend",
    "Given directory is read only",
    "read_only=True, setting",
    "Downloading and preparing dataset",
    "Dataset sph_mi downloaded",
    "Constructing tf.data",
    "Requested `tracked_metric`",
)


class _QuietLibraries:
    """Drops INFO lines of Orbax's and grain's internals, and known noise, from the log."""

    def filter(self, record) -> bool:
        path = getattr(record, "pathname", "")
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a malformed record is not ours to judge
            return True
        if any(n in message for n in _NOISE):
            return False
        return record.levelno > 20 or not (
            "/orbax/" in path or "/grain/" in path or "/tensorflow_datasets/" in path
        )


def _quiet_third_parties() -> None:
    quiet = _QuietLibraries()
    logging.get_absl_handler().addFilter(quiet)
    for name in ("jax._src.xla_bridge", "absl", "tensorflow_datasets"):
        std_logging.getLogger(name).addFilter(quiet)
    std_logging.getLogger("jax._src.xla_bridge").setLevel(std_logging.ERROR)
    if not sys.stdout.isatty():
        # progress bars write escape sequences: junk in a log file or a pipe
        os.environ.setdefault("TQDM_DISABLE", "1")
        try:
            import tensorflow_datasets as tfds

            tfds.disable_progress_bar()
        except ImportError:
            pass


def _jax_may_use_an_accelerator() -> bool:
    """Whether JAX could run on a GPU/TPU here, decided without starting a
    backend (``jax.distributed.initialize`` must come first): not when
    ``JAX_PLATFORMS`` names only the CPU, nor without an accelerator plugin."""
    platforms = {p.strip().lower() for p in os.environ.get("JAX_PLATFORMS", "").split(",") if p.strip()}
    if platforms and platforms <= {"cpu"}:
        return False
    plugins = importlib.metadata.entry_points(group="jax_plugins")
    return bool(plugins) or importlib.util.find_spec("libtpu") is not None


def _hide_accelerators_from_tensorflow() -> None:
    """TFDS may import TensorFlow; it must not take GPU/TPU memory from JAX.
    Importing TensorFlow takes seconds, so it is done only where JAX may use
    an accelerator."""
    if not _jax_may_use_an_accelerator() or importlib.util.find_spec("tensorflow") is None:
        return
    import tensorflow as tf

    tf.config.set_visible_devices([], "GPU")
    tf.config.set_visible_devices([], "TPU")


def _init_distributed() -> None:
    import jax

    if FLAGS.coordinator_address or FLAGS.num_processes:
        jax.distributed.initialize(
            coordinator_address=FLAGS.coordinator_address,
            num_processes=FLAGS.num_processes,
            process_id=FLAGS.process_id,
        )
    elif FLAGS.distributed:
        jax.distributed.initialize()


def run_config(mode: str):
    """The config of this run: for eval/predict, the workdir's saved
    ``config.json`` unless ``--config`` was given, with the command line's
    ``--config.<field>`` overrides applied on top."""
    import ml_collections
    from leadmix_jax.errors import UserError

    config = FLAGS.config
    saved_path = os.path.join(FLAGS.workdir, "config.json")
    if mode not in ("eval", "predict", "export") or not os.path.exists(saved_path):
        return config
    saved = ml_collections.ConfigDict(json.loads(open(saved_path).read()))
    if FLAGS["config"].present:
        # an explicit config; a data_dir it leaves empty (configs/demo.py) is the workdir's
        if not config.get("data_dir"):
            with config.unlocked():
                config.data_dir = saved.get("data_dir", "")
        return config
    try:
        saved.update_from_flattened_dict(config_flags.get_override_values(FLAGS["config"]))
    except (KeyError, AttributeError) as e:
        raise UserError(f"unknown --config override for the saved config {saved_path}: {e}") from None
    return saved


def main(argv):
    del argv
    _quiet_third_parties()
    from leadmix_jax import config_check
    from leadmix_jax.errors import UserError

    mode = FLAGS.mode or FLAGS.config.get("mode", "train")
    if not FLAGS.workdir and not (mode == "predict" and FLAGS.model):
        raise app.UsageError("--workdir is required (see --help)")
    if mode == "predict" and FLAGS.model:
        # an exported model runs in its own runtime: no config, no JAX
        try:
            if not FLAGS.record:
                raise UserError("--mode=predict needs --record=<.hea, .h5 or .npy file>")
            from leadmix_jax import predict

            predict.predict_record(
                FLAGS.workdir,
                FLAGS.record,
                fs=FLAGS.fs,
                lead_names=FLAGS.lead_names,
                threshold=FLAGS.threshold,
                model_file=FLAGS.model,
            )
        except (UserError, ValueError, FileNotFoundError) as e:
            print(f"error: {e}", file=sys.stderr, flush=True)
            sys.exit(2)
        return
    try:
        config = run_config(mode)
        # before any JAX call: jax.distributed.initialize must come first
        _hide_accelerators_from_tensorflow()
        _init_distributed()
        if mode in ("train", "demo", "eval", "protocol"):
            import jax

            config_check.check(config, mode, jax.device_count())
        if mode == "predict" and not FLAGS.record:
            raise UserError("--mode=predict needs --record=<.hea, .h5 or .npy file>")
        if mode == "export" and not FLAGS.format:
            raise UserError("--mode=export needs --format=tflite, onnx or stablehlo")
        if mode == "report" and not FLAGS.workdirs:
            raise UserError("--mode=report needs --workdirs=a,b,c (evaluated workdirs)")
        _run(mode, config)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        sys.exit(2)
    except (ValueError, FileNotFoundError) as e:
        if mode != "predict":
            raise
        # a record that cannot be read or used: the reader's message is the whole story
        print(f"error: {e}", file=sys.stderr, flush=True)
        sys.exit(2)
    except KeyboardInterrupt as e:
        print(str(e) if str(e) else "interrupted; run the same command again to resume", flush=True)
        sys.exit(130)


def _run(mode: str, config) -> None:
    import jax

    logging.info(
        "JAX process %d of %d; %d devices (%d local) on %s",
        jax.process_index(),
        jax.process_count(),
        jax.device_count(),
        jax.local_device_count(),
        jax.default_backend(),
    )
    if mode == "demo":
        from leadmix_jax import demo

        demo.run(config, FLAGS.workdir)
    elif mode == "protocol":
        from leadmix_jax import protocol

        protocol.run(config, FLAGS.workdir)
    elif mode == "train":
        from leadmix_jax import train

        train.train_and_evaluate(config, FLAGS.workdir)
    elif mode == "eval":
        from leadmix_jax import evaluate

        evaluate.evaluate(config, FLAGS.workdir, FLAGS.checkpoint)
    elif mode == "predict":
        from leadmix_jax import predict

        predict.predict_record(
            FLAGS.workdir,
            FLAGS.record,
            FLAGS.checkpoint,
            FLAGS.fs,
            FLAGS.lead_names,
            threshold=FLAGS.threshold,
        )
    elif mode == "export":
        from leadmix_jax import export

        export.export(
            config,
            FLAGS.workdir,
            export.ExportSpec(
                format=FLAGS.format,
                quantize=FLAGS.quantize,
                checkpoint=FLAGS.checkpoint or "best",
                leads=config.get("leads", ""),
            ),
            out_dir=FLAGS.export_dir,
        )
    elif mode == "report":
        from leadmix_jax import report

        report.make_report(
            FLAGS.workdirs, FLAGS.workdir, FLAGS.report_level, FLAGS.report_threshold, FLAGS.report_metrics
        )


def _help_and_exit() -> None:
    """absl exits 1 after --help; asking for help is not an error."""
    print(__doc__)
    print(FLAGS.main_module_help())
    sys.exit(0)


if __name__ == "__main__":
    if any(a in ("--help", "-h", "-?", "--helpshort") for a in sys.argv[1:]):
        _help_and_exit()
    app.run(main)
