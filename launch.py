"""The one entry point on a CPU, GPU or TPU host.

    python launch.py --config=configs/demo.py --workdir=runs/demo     # no-download demo
    python launch.py --config=configs/paper.py --workdir=runs/inferior --config.leads=inferior
    python launch.py --config=configs/protocol.py --workdir=runs/protocol
    python launch.py --mode=eval --workdir=runs/inferior [--config.eval_checkpoint=latest]
    python launch.py --mode=predict --workdir=runs/inferior --record=path/to/record.hea
    python launch.py --mode=export --workdir=runs/inferior --config.export.format=onnx
    python launch.py --mode=predict --model=runs/inferior/export/model.tflite --record=record.hea
    python launch.py --mode=report --workdirs=runs/a,runs/b --workdir=runs/report

Every setting is a config field, overridden with --config.<field>=<value>
(e.g. --config.batch_size=64 --config.model.base=32); the flags name only the
mode, the workdir, files to read and the cluster. --mode=eval, predict and
export read the workdir's own config.json unless --config is given;
overrides apply on top. Without --mode, the config's ``mode`` field is used,
else train. Several processes (multi-node GPU, TPU pods): pass --distributed
(TPU pods and SLURM detect the rest) or --coordinator_address/--num_processes/
--process_id. Restarting the same command resumes. User errors print one line
and exit with status 2.
"""

from __future__ import annotations

import os

# Before anything imports TensorFlow (TFDS does): its C++ INFO/WARNING lines
# would otherwise be printed, once per process that imports it.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# Before JAX starts its CPU client's threads (see the module).
from leadmix_jax import host_memory  # noqa: E402

host_memory.keep_freed_memory()

import sys  # noqa: E402

from absl import app, flags  # noqa: E402
from ml_collections import config_flags  # noqa: E402

from leadmix_jax import launching  # noqa: E402
from leadmix_jax.workflows import modes  # noqa: E402

try:  # ml_collections reads the --config.<field> overrides here: a misspelt field fails now
    config_flags.DEFINE_config_file(
        "config",
        "configs/default.py",
        "Experiment config file; override fields with --config.<field>=<value>.",
        lock_config=True,
    )
except Exception as e:  # noqa: BLE001 - a mistake in the command: one line, exit 2
    sys.exit(launching.usage_error(e))
flags.DEFINE_string("workdir", None, "Checkpoints, logs and reports go here.")
flags.DEFINE_enum("mode", None, list(modes.MODES), "What to run (default: the config's 'mode', else train).")
flags.DEFINE_string("record", None, "--mode=predict: a WFDB .hea, an SPH-style .h5 or a .npy file.")
flags.DEFINE_float("fs", None, "--mode=predict with a .npy record: its sampling rate in Hz.")
flags.DEFINE_string("lead_names", None, "--mode=predict with a .npy record: its columns' lead names.")
flags.DEFINE_string(
    "model", None, "--mode=predict: an exported .tflite or .onnx file instead of a checkpoint."
)
flags.DEFINE_list("workdirs", [], "--mode=report: evaluated workdirs to gather into one table.")
flags.DEFINE_bool(
    "start_afresh",
    False,
    "train/demo/protocol: move the workdir's previous run aside (to <workdir>/previous_runs/<time>/) "
    "and start a new one; without it a restart resumes, and refuses a config that changes the run.",
)
flags.DEFINE_bool("distributed", False, "Call jax.distributed.initialize() (auto-detected cluster).")
flags.DEFINE_string("coordinator_address", None, "host:port of process 0 of a multi-process run.")
flags.DEFINE_integer("num_processes", None, "Number of processes of a multi-process run.")
flags.DEFINE_integer("process_id", None, "This process's index in a multi-process run.")
FLAGS = flags.FLAGS


def main(argv) -> None:
    del argv
    launching.quiet_third_parties()
    mode = FLAGS.mode or FLAGS.config.get("mode", "train")
    inputs = modes.Inputs(
        record=FLAGS.record,
        fs=FLAGS.fs,
        lead_names=FLAGS.lead_names,
        model=FLAGS.model,
        workdirs=tuple(FLAGS.workdirs),
    )
    cluster = launching.Cluster(
        FLAGS.distributed, FLAGS.coordinator_address, FLAGS.num_processes, FLAGS.process_id
    )
    sys.exit(launching.run(mode, FLAGS["config"], FLAGS.workdir, inputs, cluster, FLAGS.start_afresh))


def parse_flags(argv: list[str]) -> list[str]:
    """absl's flag parsing, with every mistake (an unknown or misspelt flag or
    config field, a bad value, a missing config file) one line and exit 2."""
    try:
        rest = FLAGS(argv)
        FLAGS.config.get("mode")  # a config file that does not load fails here, not later
        return rest
    except Exception as e:  # noqa: BLE001 - every parse failure is a mistake in the command
        sys.exit(launching.usage_error(e))


if __name__ == "__main__":
    if any(a in ("--help", "-h", "-?", "--helpshort") for a in sys.argv[1:]):
        print(__doc__)  # absl exits 1 after --help; asking for help is not an error
        print(FLAGS.main_module_help())
        sys.exit(0)
    app.run(main, flags_parser=parse_flags)
