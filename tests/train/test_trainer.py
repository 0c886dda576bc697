"""Tests of the training loop in this process: logs, determinism, the
non-finite guard, the TFRecord path, best-checkpoint selection and Ctrl-C
handling (launch.py subprocesses are in test_resume.py; helpers in tests/runs.py)."""

import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

import builtdata
from runs import ROOT, assert_trees_equal, final_params, make_config
from leadmix_jax.train import loop, trainer
from leadmix_jax.train import experiment
from leadmix_jax.input import norm_stats
from leadmix_jax.input import built, pipeline


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return builtdata.data_dir(tmp_path_factory)


@pytest.fixture(scope="module")
def trained_run(data_dir, tmp_path_factory):
    """``(workdir, result)`` of configs/test.py's schedule with validation."""
    workdir = tmp_path_factory.mktemp("trained_run")
    return workdir, trainer.train_and_evaluate(make_config(data_dir), str(workdir))


@pytest.mark.slow
def test_trains_and_writes_logs(data_dir, trained_run):
    config = make_config(data_dir)
    tmp_path, last = trained_run
    assert np.isfinite(last["loss"]) and 0 <= last["val_auroc"] <= 1
    for name in ("config.json", "norm_stats.json", "metrics.jsonl"):
        assert (tmp_path / name).exists(), name
    assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
    stats = json.loads((tmp_path / "norm_stats.json").read_text())
    assert stats["leads"] == ["II", "III", "aVF"] and all(s > 0 for s in stats["std"])
    step, _, meta = final_params(tmp_path, config)
    assert step == 6 and meta["leads"] == ["II", "III", "aVF"]
    assert meta["norm_stats"]["mean"] == stats["mean"]


@pytest.mark.slow
def test_same_seed_gives_identical_parameters(data_dir, trained_run, tmp_path):
    # a second run of the same seed, without validation: identical parameters
    # (and validation changes nothing in training)
    config = make_config(data_dir, val_split="")
    trainer.train_and_evaluate(config, str(tmp_path / "a"))
    a = final_params(tmp_path / "a", config)[1]
    assert_trees_equal(a, final_params(trained_run[0], config)[1])
    # ... and the seed matters: another seed starts elsewhere.
    other = experiment.make_experiment(make_config(data_dir, seed=1)).init_state().params
    assert any(not np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(other)))


@pytest.mark.slow
def test_nan_input_stops_with_a_clear_error(tmp_path):
    data_dir = builtdata.build(str(tmp_path / "nan_data"), nan_fraction=0.5)
    config = make_config(data_dir)
    with pytest.raises(loop.NonFiniteLossError, match=r"training loss became nan at step \d"):
        trainer.train_and_evaluate(config, str(tmp_path / "wd"))


@pytest.mark.slow
def test_tfrecord_build_trains(tmp_path_factory, tmp_path):
    data_dir = builtdata.data_dir(tmp_path_factory, "tfrecord")
    builder = built.load_builder(data_dir, builtdata.NAME)
    assert not built.is_array_record(builder)
    config = make_config(data_dir)
    last = trainer.train_and_evaluate(config, str(tmp_path / "wd"))
    assert np.isfinite(last["loss"]) and 0 <= last["val_auroc"] <= 1
    assert final_params(tmp_path / "wd", config)[0] == 6


def test_eval_visits_every_example_once(data_dir):
    builder = built.load_builder(data_dir, builtdata.NAME)
    config = make_config(data_dir)
    exp = experiment.make_experiment(config)
    stats = norm_stats.compute_from_split(builder, "train", exp.leads, 64)
    n = builtdata.num_windows("validation")  # 16: one batch of 24 with 8 padded rows
    batches = pipeline.eval_batches(builder, "validation", stats, batch_size=24)
    preds = exp.runner.run_batches(exp.init_state().params, batches, batch_size=24)
    assert sorted(preds["index"].tolist()) == list(range(n))
    assert len(preds["record_id"]) == n
    assert set(preds["record_id"]) == {f"va{p:02d}_{r}" for p in range(4) for r in range(2)}


@pytest.mark.slow
def test_best_checkpoint_is_highest_validation_auroc_in_a_new_process(data_dir, tmp_path):
    config = make_config(
        data_dir,
        num_train_steps=8,
        eval_every_steps=2,
        checkpoint_every_steps=2,
        keep_checkpoints=1,
        log_every_steps=4,
    )
    last = trainer.train_and_evaluate(config, str(tmp_path))
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    val = {r["step"]: r["val_auroc"] for r in rows if "val_auroc" in r}
    assert sorted(val) == [2, 4, 6, 8]
    top = max(val.values())
    assert last["best_step"] in val and val[last["best_step"]] == pytest.approx(top)
    assert last["best_val_auroc"] == pytest.approx(top)
    # a fresh process knows nothing of the training run's manager: it reads the disk
    code = (
        "import sys, json; from leadmix_jax.evaluate import restore; "
        "m = restore.restore(sys.argv[1], 'best'); print(json.dumps([m.step, m.validation]))"
    )
    env = {
        **os.environ,
        "XLA_FLAGS": builtdata.xla_flags(1),
        "JAX_PLATFORMS": "cpu",
        "PYTHONPATH": str(ROOT),
    }
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    step, validation = json.loads(out.stdout.strip().splitlines()[-1])
    assert step == last["best_step"] and validation["val_auroc"] == pytest.approx(top)
    assert 0.0 <= validation["val_youden"] <= 1.0


def test_metrics_jsonl_keeps_one_record_per_step_after_resume(tmp_path):
    from leadmix_jax.train import metric_writers

    writer = metric_writers.MetricWriter(str(tmp_path))
    for step in range(1, 7):
        writer.write(step, {"loss": float(step)})
    writer.close()
    with open(tmp_path / "metrics.jsonl", "a") as fh:
        fh.write('{"step": 7, "lo')  # a line cut by a kill mid-write
    # the run resumes from the checkpoint of step 4 and redoes 5 and 6
    writer = metric_writers.MetricWriter(str(tmp_path), resume_step=4)
    for step in (5, 6):
        writer.write(step, {"loss": 10.0 + step})
    writer.close()
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5, 6]
    assert [r["loss"] for r in rows] == [1.0, 2.0, 3.0, 4.0, 15.0, 16.0]


def test_validation_leaves_non_finite_outputs_out_and_counts_them():
    from leadmix_jax.train import validation

    preds = {
        "label": np.array([0, 1, 0, 1, 1], np.float32),
        "prob": np.array([0.1, 0.9, np.nan, 0.8, np.inf], np.float32),
        "loss": np.array([0.1, 0.1, np.nan, 0.2, np.nan], np.float32),
    }
    m = validation.validation_metrics(preds)
    assert m["val_nonfinite"] == 2.0 and m["val_auroc"] == 1.0
    assert m["val_loss"] == pytest.approx(0.4 / 3)
    clean = validation.validation_metrics({k: v[[0, 1, 3]] for k, v in preds.items()})
    assert "val_nonfinite" not in clean and clean["val_auroc"] == 1.0
