"""Tests of leadmix_jax.train.metric_writers: JSON lines and TensorBoard event files."""

import json
import struct

from tensorboard.compat.proto import event_pb2
from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import masked_crc32c

from leadmix_jax.train import metric_writers


def read_events(path) -> list:
    """The ``Event`` protos of a TFRecord event file, every checksum verified."""
    data, events, at = path.read_bytes(), [], 0
    while at < len(data):
        header = data[at : at + 8]
        (length,) = struct.unpack("<Q", header)
        assert struct.unpack("<I", data[at + 8 : at + 12])[0] == masked_crc32c(header)
        body = data[at + 12 : at + 12 + length]
        assert struct.unpack("<I", data[at + 12 + length : at + 16 + length])[0] == masked_crc32c(body)
        events.append(event_pb2.Event.FromString(body))
        at += 16 + length
    return events


def test_scalars_reach_jsonl_and_a_tensorboard_event_file(tmp_path):
    w = metric_writers.MetricWriter(str(tmp_path))
    w.write(1, {"loss": 0.5})
    w.write(3, {"loss": 0.25, "val_auroc": 0.75})
    w.close()
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [(r["step"], r["loss"]) for r in records] == [(1, 0.5), (3, 0.25)]
    (path,) = (tmp_path / "tensorboard").glob("events.out.tfevents.*")
    events = read_events(path)
    assert events[0].file_version == "brain.Event:2"
    scalars = [(e.step, v.tag, v.simple_value) for e in events[1:] for v in e.summary.value]
    assert scalars == [(1, "loss", 0.5), (3, "loss", 0.25), (3, "val_auroc", 0.75)]


def test_resume_drops_records_after_the_restored_step_and_opens_a_new_event_file(tmp_path):
    w = metric_writers.MetricWriter(str(tmp_path))
    for step in (1, 2, 3):
        w.write(step, {"loss": float(step)})
    w.close()
    w = metric_writers.MetricWriter(str(tmp_path), resume_step=2)
    w.write(3, {"loss": 30.0})
    w.close()
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [(r["step"], r["loss"]) for r in records] == [(1, 1.0), (2, 2.0), (3, 30.0)]
    assert len(list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))) == 2


def test_a_disabled_writer_writes_nothing(tmp_path):
    w = metric_writers.MetricWriter(str(tmp_path / "off"), enabled=False)
    w.write(1, {"loss": 1.0})
    w.close()
    assert not (tmp_path / "off").exists()


def test_progress_times_the_first_dispatch_apart_from_the_rate(monkeypatch):
    clock = iter([0.0, 30.0, 30.0, 40.0, 40.0])  # init, first line (compilation), start, rate, ETA
    monkeypatch.setattr(metric_writers.time, "perf_counter", lambda: next(clock))
    progress = metric_writers.Progress(total_steps=100, global_batch=8)
    first = progress.line(10, 0.5, first=True)
    assert first == "step 10/100 (10.0%)  loss 0.5000  first dispatch, compilation included: 30 s"
    progress.start(10)
    # 10 steps of 8 samples in 10 s: 8 samples/s; the 80 steps left take 80 s
    assert progress.line(20, 0.25) == "step 20/100 (20.0%)  loss 0.2500  8 samples/s  ETA 0:01:20"


def test_progress_eta_counts_validation_time_and_the_rate_does_not(monkeypatch):
    # start at 0 s (step 10); steps 10-20 take 10 s; a validation takes 30 s
    # (reset at 40 s); steps 20-30 take 10 s: 8 samples/s over the steps, but
    # 50 s of wall time per 20 steps, so the 70 steps left take 175 s
    clock = iter([0.0, 0.0, 40.0, 50.0, 50.0])  # init, start, reset, rate, ETA
    monkeypatch.setattr(metric_writers.time, "perf_counter", lambda: next(clock))
    progress = metric_writers.Progress(total_steps=100, global_batch=8)
    progress.start(10)
    progress.reset(20)
    assert progress.line(30, 0.25) == "step 30/100 (30.0%)  loss 0.2500  8 samples/s  ETA 0:02:55"
