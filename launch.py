"""The one entry point on a CPU, GPU or TPU host.

    python launch.py --config=configs/paper.py --workdir=runs/inferior --config.leads=inferior
    python launch.py --mode=eval --config=configs/paper.py --workdir=runs/inferior
    python launch.py --mode=predict --workdir=runs/inferior --record=path/to/record.hea

Several processes (multi-node GPU, TPU pods): pass --distributed (TPU pods
and SLURM detect the rest) or --coordinator_address/--num_processes/--process_id.
Restarting the same train command resumes from the newest checkpoint.
"""

from __future__ import annotations

import importlib.util

from absl import app, flags, logging
from ml_collections import config_flags

config_flags.DEFINE_config_file("config", "configs/default.py", "Experiment config file.",
                                lock_config=True)
flags.DEFINE_string("workdir", None, "Checkpoints, logs and reports go here.", required=True)
flags.DEFINE_enum("mode", "train", ["train", "eval", "predict", "report", "demo"],
                  "train, eval (restore a checkpoint and evaluate), predict (one record), "
                  "report (gather several workdirs), demo (synthetic end to end).")
flags.DEFINE_bool("distributed", False, "Call jax.distributed.initialize() (auto-detected cluster).")
flags.DEFINE_string("coordinator_address", None, "host:port of process 0 for multi-process runs.")
flags.DEFINE_integer("num_processes", None, "Number of processes of a multi-process run.")
flags.DEFINE_integer("process_id", None, "This process's index in a multi-process run.")
flags.DEFINE_string("record", None, "--mode=predict: a WFDB .hea, an SPH-style .h5 or a .npy file.")
flags.DEFINE_float("fs", None, "--mode=predict with .npy: sampling rate in Hz.")
flags.DEFINE_string("lead_names", None, "--mode=predict with .npy: comma-separated lead names of the columns.")
flags.DEFINE_string("checkpoint", None, "eval/predict: best, latest or a step (default: config.eval_checkpoint).")
flags.DEFINE_list("workdirs", [], "--mode=report: workdirs to gather into one table.")
flags.DEFINE_enum("report_level", "patient", ["window", "record", "patient"], "--mode=report: level of the table.")
flags.DEFINE_string("report_threshold", "0.5", "--mode=report: threshold of the table, 0.5 or val_youden.")
flags.DEFINE_list("report_metrics", ["auroc", "accuracy", "sensitivity", "specificity", "macro_f1"],
                  "--mode=report: metrics per dataset.")
FLAGS = flags.FLAGS


def _hide_accelerators_from_tensorflow() -> None:
    """TFDS may import TensorFlow; it must not take GPU/TPU memory from JAX."""
    if importlib.util.find_spec("tensorflow") is None:
        return
    import tensorflow as tf
    tf.config.set_visible_devices([], "GPU")
    tf.config.set_visible_devices([], "TPU")


def _init_distributed() -> None:
    import jax
    if FLAGS.coordinator_address or FLAGS.num_processes:
        jax.distributed.initialize(coordinator_address=FLAGS.coordinator_address,
                                   num_processes=FLAGS.num_processes, process_id=FLAGS.process_id)
    elif FLAGS.distributed:
        jax.distributed.initialize()


class _QuietLibraries:
    """Drops INFO lines of Orbax's and grain's internals from the log."""

    def filter(self, record) -> bool:
        path = getattr(record, "pathname", "")
        return record.levelno > 20 or not ("/orbax/" in path or "/grain/" in path)


def main(argv):
    del argv
    logging.get_absl_handler().addFilter(_QuietLibraries())
    _hide_accelerators_from_tensorflow()
    _init_distributed()
    import jax
    logging.info("JAX process %d of %d; %d devices (%d local) on %s", jax.process_index(),
                 jax.process_count(), jax.device_count(), jax.local_device_count(), jax.default_backend())
    config = FLAGS.config
    if FLAGS.mode == "demo" or (FLAGS.mode == "train" and "synthetic" in config):
        from leadmix_jax import demo
        demo.run(config, FLAGS.workdir)
    elif FLAGS.mode == "train":
        from leadmix_jax import train
        train.train_and_evaluate(config, FLAGS.workdir)
    elif FLAGS.mode == "eval":
        from leadmix_jax import evaluate
        evaluate.evaluate(config, FLAGS.workdir, FLAGS.checkpoint)
    elif FLAGS.mode == "predict":
        if not FLAGS.record:
            raise app.UsageError("--mode=predict needs --record=<.hea, .h5 or .npy file>")
        from leadmix_jax import predict
        predict.predict_record(FLAGS.workdir, FLAGS.record, FLAGS.checkpoint, FLAGS.fs, FLAGS.lead_names)
    elif FLAGS.mode == "report":
        if not FLAGS.workdirs:
            raise app.UsageError("--mode=report needs --workdirs=a,b,c (evaluated workdirs)")
        from leadmix_jax import report
        report.make_report(FLAGS.workdirs, FLAGS.workdir, FLAGS.report_level, FLAGS.report_threshold,
                           FLAGS.report_metrics)


if __name__ == "__main__":
    app.run(main)
