"""Where training metrics go: a JSON-lines file, TensorBoard event files and
a readable progress line. Only process 0 writes."""

from __future__ import annotations

import itertools
import json
import os
import socket
import time

from absl import logging
from etils import epath


_FILE_IDS = itertools.count()  # two writers of one process in one second get two files


def _event_file(logdir: epath.Path):
    """A TensorBoard event file in ``logdir`` (``None`` without tensorboard).

    Written as TensorBoard's own writer does (a TFRecord stream of ``Event``
    protos, ``brain.Event:2`` first), through ``epath`` rather than
    TensorBoard's ``EventFileWriter``: that one imports TensorFlow, seconds of
    start-up, whenever TensorFlow is installed (TFDS installs it)."""
    try:
        from tensorboard.compat.proto import event_pb2
        from tensorboard.summary.writer.record_writer import RecordWriter
    except ImportError:  # tensorboard is a declared dependency; keep going without it
        logging.warning("tensorboard not importable: no event files written")
        return None
    logdir.mkdir(parents=True, exist_ok=True)
    name = (
        f"events.out.tfevents.{int(time.time()):010d}.{socket.gethostname()}.{os.getpid()}.{next(_FILE_IDS)}"
    )
    writer = RecordWriter((logdir / name).open("wb"))
    writer.write(event_pb2.Event(wall_time=time.time(), file_version="brain.Event:2").SerializeToString())
    writer.flush()
    return writer


class MetricWriter:
    """Writes scalars to ``workdir/metrics.jsonl`` and TensorBoard events in
    ``workdir/tensorboard``."""

    def __init__(self, workdir: str, enabled: bool = True, resume_step: int | None = None):
        """``resume_step``: the step training resumes from; records of later
        steps (written before a kill, about to be redone) are dropped so
        that ``metrics.jsonl`` keeps one record per step and kind."""
        self.enabled = enabled
        self._tb = None
        if not enabled:
            return
        root = epath.Path(workdir)
        root.mkdir(parents=True, exist_ok=True)
        path = root / "metrics.jsonl"
        if resume_step is not None and path.exists():
            kept = [
                line
                for line in path.read_text().splitlines()
                if line.strip() and _step_of(line) is not None and _step_of(line) <= resume_step
            ]
            path.write_text("".join(line + "\n" for line in kept))
        self._jsonl = path.open("a")
        self._tb = _event_file(root / "tensorboard")

    def write(self, step: int, scalars: dict[str, float]) -> None:
        if not self.enabled:
            return
        record = {"step": int(step), "time": time.time(), **{k: float(v) for k, v in scalars.items()}}
        self._jsonl.write(json.dumps(record) + "\n")
        self._jsonl.flush()
        if self._tb is not None:
            from tensorboard.compat.proto import event_pb2, summary_pb2

            summary = summary_pb2.Summary(
                value=[summary_pb2.Summary.Value(tag=k, simple_value=float(v)) for k, v in scalars.items()]
            )
            self._tb.write(
                event_pb2.Event(wall_time=time.time(), step=int(step), summary=summary).SerializeToString()
            )
            self._tb.flush()

    def close(self) -> None:
        if self.enabled:
            self._jsonl.close()
            if self._tb is not None:
                self._tb.close()


def _step_of(line: str) -> int | None:
    try:
        return int(json.loads(line)["step"])
    except (ValueError, KeyError, TypeError):
        return None  # a line cut by a kill mid-write


class Progress:
    """Formats ``step, loss, samples/s, ETA`` lines.

    ``samples/s`` is the training rate since the last :meth:`reset` (after
    each validation: it measures the steps alone); the ETA is the wall time
    per step since :meth:`start` (after compilation), so it includes the
    validations and checkpoints still to come. A run that validates 7 lead
    sets every epoch spends more time there than in its steps."""

    def __init__(self, total_steps: int, global_batch: int, first_step: int = 0):
        self.total, self.batch = total_steps, global_batch
        self._t0, self._s0 = time.perf_counter(), first_step
        self._w0, self._ws0 = None, first_step

    def rate(self, step: int) -> float:
        dt = time.perf_counter() - self._t0
        return (step - self._s0) * self.batch / dt if dt > 0 else 0.0

    def line(self, step: int, loss: float, first: bool = False) -> str:
        """The progress line at ``step``; ``first``: the first dispatch, whose
        time is mostly compilation (no rate or ETA from it)."""
        head = f"step {step}/{self.total} ({100 * step / self.total:.1f}%)  loss {loss:.4f}  "
        if first:
            return head + f"first dispatch, compilation included: {time.perf_counter() - self._t0:.0f} s"
        rate = self.rate(step)
        if self._w0 is not None and step > self._ws0:
            eta = (self.total - step) * (time.perf_counter() - self._w0) / (step - self._ws0)
        else:
            eta = (self.total - step) * self.batch / rate if rate > 0 else float("nan")
        return head + f"{rate:,.0f} samples/s  ETA {_hms(eta)}"

    def reset(self, step: int) -> None:
        """Restarts the training rate's clock (after a validation)."""
        self._t0, self._s0 = time.perf_counter(), step

    def start(self, step: int) -> None:
        """Starts both clocks at ``step`` (after the compiling first dispatch)."""
        self.reset(step)
        self._w0, self._ws0 = self._t0, step


def _hms(seconds: float) -> str:
    if seconds != seconds:  # NaN
        return "?"
    seconds = int(seconds)
    return f"{seconds // 3600:d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
