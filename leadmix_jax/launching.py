"""What ``launch.py`` does around a mode: the run's config, the cluster, quiet
libraries and one-line user errors.

:func:`run` resolves the config (a trained workdir's own ``config.json`` for
eval, predict and export), checks it before any work, starts the
multi-process runtime, runs the mode (:data:`leadmix_jax.workflows.modes.MODES`)
and turns a :class:`~leadmix_jax.errors.UserError` into one line on stderr and
exit status 2, Ctrl-C into status 130.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import importlib.util
import json
import logging as std_logging
import os
import sys

import ml_collections
from absl import logging

from leadmix_jax.errors import UserError

# Messages of libraries that say nothing the user can act on.
_NOISE = (
    "Unable to initialize backend",
    "Given directory is read only",
    "read_only=True, setting",
    "Downloading and preparing dataset",
    "Dataset sph_mi downloaded",
    "Constructing tf.data",
    "Requested `tracked_metric`",
    "Please consider providing the trackable_obj",  # TFLite's converter, every export
    "is not known. Please set type for the value",  # onnx_ir, every ONNX export
    "Quantization parameters for tensor",
)


@dataclasses.dataclass(frozen=True)
class Cluster:
    """How this process joins a multi-process run (all unset: one process)."""

    distributed: bool = False  # jax.distributed.initialize() with auto-detection
    coordinator_address: str | None = None
    num_processes: int | None = None
    process_id: int | None = None

    def initialize(self) -> None:
        import jax

        if self.coordinator_address or self.num_processes:
            jax.distributed.initialize(
                coordinator_address=self.coordinator_address,
                num_processes=self.num_processes,
                process_id=self.process_id,
            )
        elif self.distributed:
            jax.distributed.initialize()


class _QuietLibraries:
    """What reaches the log: everything of this project; of other libraries
    only warnings and errors, without known noise (:data:`_NOISE`)."""

    def filter(self, record) -> bool:
        path = getattr(record, "pathname", "")
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a malformed record is not ours to judge
            return True
        if any(n in message for n in _NOISE):
            return False
        ours = "/leadmix_jax/" in path or path.endswith("launch.py")
        return ours or record.levelno > 20


def quiet_third_parties() -> None:
    """Filters library noise from the log; no progress bars when not on a terminal."""
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


def hide_accelerators_from_tensorflow() -> None:
    """TFDS may import TensorFlow; it must not take GPU/TPU memory from JAX.
    Importing TensorFlow takes seconds, so it is done only where JAX may use
    an accelerator."""
    if not _jax_may_use_an_accelerator() or importlib.util.find_spec("tensorflow") is None:
        return
    import tensorflow as tf

    tf.config.set_visible_devices([], "GPU")
    tf.config.set_visible_devices([], "TPU")


def run_config(mode: str, config_flag, workdir: str | None) -> ml_collections.ConfigDict:
    """The config of this run: for eval/predict/export, the workdir's saved
    ``config.json`` unless ``--config`` was given, with the command line's
    ``--config.<field>`` overrides applied on top.

    ``config_flag``: absl's ``FLAGS['config']`` (its value is the config
    file's config with the overrides applied)."""
    from ml_collections import config_flags

    from leadmix_jax.workflows import modes

    config = config_flag.value
    saved_path = os.path.join(workdir or "", "config.json")
    if mode not in modes.FROM_WORKDIR or not workdir or not os.path.exists(saved_path):
        return config
    saved = ml_collections.ConfigDict(json.loads(open(saved_path).read()))
    if config_flag.present:
        # an explicit config; a data_dir it leaves empty (configs/demo.py) is the workdir's
        if not config.get("data_dir"):
            with config.unlocked():
                config.data_dir = saved.get("data_dir", "")
        return config
    # On top of the defaults (config_flag's file, configs/default.py): fields
    # added since the workdir was trained keep their default values.
    merged = ml_collections.ConfigDict(config.to_dict())
    merge_into(merged, saved)
    try:
        merged.update_from_flattened_dict(config_flags.get_override_values(config_flag))
    except (KeyError, AttributeError) as e:
        raise UserError(f"unknown --config override for the saved config {saved_path}: {e}") from None
    return merged


def merge_into(base: ml_collections.ConfigDict, saved) -> None:
    """``saved``'s fields over ``base``, recursively; fields only ``saved`` has are added."""
    for key, value in saved.items():
        if isinstance(value, (dict, ml_collections.ConfigDict)) and isinstance(
            base.get(key), ml_collections.ConfigDict
        ):
            merge_into(base[key], value)
            continue
        with base.ignore_type():
            base[key] = value


def run(
    mode: str, config_flag, workdir: str | None, inputs, cluster: Cluster, start_afresh: bool = False
) -> int:
    """Runs ``mode``; returns the process's exit status (0, 2 for a user error, 130 for Ctrl-C).
    ``start_afresh``: a training mode first moves the workdir's previous run aside."""
    from leadmix_jax.workflows import modes

    try:
        if not workdir and not (mode == "predict" and inputs.model):
            raise UserError("--workdir is required (see --help)")
        if workdir and os.path.exists(workdir) and not os.path.isdir(workdir):
            raise UserError(f"--workdir={workdir} is a file, not a folder")
        if mode == "predict" and inputs.model:
            # an exported model runs in its own runtime: no JAX, no cluster
            modes.predict(config_flag.value, workdir, inputs)
            return 0
        config = run_config(mode, config_flag, workdir)
        hide_accelerators_from_tensorflow()  # before any JAX call, as is the next line
        cluster.initialize()
        import jax

        from leadmix_jax import config_check

        config_check.check(config, mode, jax.device_count())
        if mode == "train":
            _warn_missing_targets(config)
        if start_afresh and mode in ("train", "demo", "protocol"):
            from leadmix_jax.train import resume

            resume.move_aside(workdir)
        _log_devices()
        modes.MODES[mode](config, workdir, inputs)
    except UserError as e:
        return _one_line(e)
    except (ValueError, FileNotFoundError) as e:
        if mode != "predict":
            raise
        return _one_line(e)  # a record that cannot be read or used: the reader's message says it all
    except KeyboardInterrupt as e:
        print(str(e) if str(e) else "interrupted; run the same command again to resume", flush=True)
        return 130
    return 0


def usage_error(error: Exception) -> int:
    """Prints a flag-parsing failure as one line (its message, lines joined);
    returns the exit status 2."""
    text = str(error).strip()
    if len(text) > 1 and text[0] == text[-1] and text[0] in "'\"":  # repr of a KeyError's message
        text = text[1:-1]
    text = text.replace("\\n", "\n").replace("\\'", "'")
    text = " ".join(part.strip() for part in text.splitlines() if part.strip())
    import re

    field = re.match(r"^'([\w.]+)'( Did you mean .*)?$", text)
    missing = re.search(r"Attempted \[.*?\]: (\S+) \[Errno \d+\] ([^:]+)", text)
    if field:
        text = f"the config has no field {field.group(1)!r} (check --config.<field>).{field.group(2) or ''}"
    elif missing:
        text = f"--config={missing.group(1)}: {missing.group(2)}"
    print(f"error: {text or type(error).__name__} (see --help)", file=sys.stderr, flush=True)
    return 2


def _warn_missing_targets(config) -> None:
    """A training run does not evaluate, but a target that is not built will
    fail the evaluation after it: say so before training."""
    from leadmix_jax.evaluate import evaluation

    for problem in evaluation.missing_targets(config):
        print(f"warning: {problem} (training goes on; --mode=eval will need it)", flush=True)


def _one_line(error: Exception) -> int:
    print(f"error: {error}", file=sys.stderr, flush=True)
    return getattr(error, "exit_code", 2)


def _log_devices() -> None:
    import jax

    logging.info(
        "JAX process %d of %d; %d devices (%d local) on %s",
        jax.process_index(),
        jax.process_count(),
        jax.device_count(),
        jax.local_device_count(),
        jax.default_backend(),
    )
