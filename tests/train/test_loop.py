"""Tests of leadmix_jax.train.loop with a stand-in feed (no model, no compilation):
where dispatches end, what is validated, saved and logged, the non-finite
guard and Ctrl-C."""

import json
import signal

import ml_collections
import numpy as np
import pytest

from leadmix_jax.train import loop


def test_non_finite_loss_inside_a_dispatch_names_its_step():
    loop.check_finite(10, {"loss": np.array([0.7, 0.6, 0.5, 0.4])})  # no error
    with pytest.raises(loop.NonFiniteLossError, match="loss became nan at step 8"):
        loop.check_finite(10, {"loss": np.array([0.7, np.nan, np.inf, 0.4])})


def test_ctrl_c_is_a_stop_request_and_a_second_one_interrupts():
    """The first SIGINT only sets the flag the loop checks between dispatches
    (it cannot be swallowed inside a library call); the second interrupts."""
    previous = signal.getsignal(signal.SIGINT)
    with loop.StopRequest() as stop:
        assert not stop.requested
        signal.raise_signal(signal.SIGINT)
        assert stop.requested
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is previous


class FakeExp:
    def __init__(self, total_steps, steps_per_epoch):
        self.total_steps, self.steps_per_epoch = total_steps, steps_per_epoch


class FakeFeed:
    """A feed whose state is the step count and whose loss is the step's number
    (``nan_at``: the step whose loss is NaN)."""

    def __init__(self, nan_at=None):
        self.wait_s, self.calls, self.nan_at = 0.0, [], nan_at

    def run(self, state, k):
        self.calls.append((state, k))
        losses = np.arange(state + 1, state + k + 1, dtype=np.float64)
        if self.nan_at is not None and state < self.nan_at <= state + k:
            losses[self.nan_at - state - 1] = np.nan
        return state + k, {"loss": losses}


def _config(**fields):
    c = ml_collections.ConfigDict(
        {
            "eval_every_steps": 5,
            "checkpoint_every_steps": 4,
            "steps_per_dispatch": 3,
            "log_every_steps": 2,
            "batch_size": 8,
        }
    )
    c.update(fields)
    return c


def test_dispatches_validation_checkpoints_and_records(tmp_path):
    feed, validated, saved = FakeFeed(), [], []

    def validate(state):
        validated.append(state)
        return {"val_auroc": state / 100}

    last = loop.run_loop(
        _config(),
        FakeExp(12, 6),
        feed,
        0,
        0,
        str(tmp_path),
        validate=validate,
        save=lambda step, state, val: saved.append((step, state, val)),
    )
    # k = 3, cut to end at every multiple of 5 (validation) and 4 (checkpoints) and at 12
    assert [k for _, k in feed.calls] == [3, 1, 1, 3, 2, 2]
    assert validated == [5, 10, 12]  # every 5 steps and at the end
    assert [(s, v) for s, _, v in saved] == [(4, None), (8, None), (12, {"val_auroc": 0.12})]
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    # logged at the first dispatch, then at the first dispatch end after each 2 steps, and at the end
    assert [r["step"] for r in rows] == [3, 4, 5, 8, 10, 12]
    assert (
        rows[0]["loss"] == 3.0 and rows[2]["val_auroc"] == 0.05 and "loss" not in rows[2]
    )  # 4->5 logs no loss
    assert last["loss"] == 12.0 and last["val_auroc"] == 0.12


def test_without_validation_and_from_a_restored_step(tmp_path):
    feed, saved = FakeFeed(), []
    loop.run_loop(
        _config(eval_every_steps=-1, checkpoint_every_steps=-1),
        FakeExp(9, 3),
        feed,
        6,
        6,
        str(tmp_path),
        validate=None,
        save=lambda step, state, val: saved.append(step),
    )
    assert feed.calls == [(6, 3)]  # -1: once per epoch (3 steps)
    assert saved == [9]


def test_a_non_finite_loss_stops_before_the_checkpoint(tmp_path):
    saved = []
    with pytest.raises(loop.NonFiniteLossError, match="loss became nan at step 3"):
        loop.run_loop(
            _config(log_every_steps=100),
            FakeExp(12, 6),
            FakeFeed(nan_at=3),
            0,
            0,
            str(tmp_path),
            validate=None,
            save=lambda step, state, val: saved.append(step),
        )
    assert saved == []  # step 4's checkpoint is never written from a NaN state
