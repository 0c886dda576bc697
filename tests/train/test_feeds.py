"""Tests of leadmix_jax.train.feeds: input-mode choice, dispatch bookkeeping, the
loop of k steps, the device position and the grain feed, without the model."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import builtdata
from leadmix_jax import mesh as mesh_lib
from leadmix_jax.input import built, resident
from leadmix_jax.train import feeds

N_TRAIN = builtdata.num_windows("train")  # 32


@pytest.fixture(scope="module")
def builder(tmp_path_factory):
    return built.load_builder(builtdata.data_dir(tmp_path_factory), builtdata.NAME)


def test_auto_mode_follows_the_memory_budget(builder):
    per_device = resident.bytes_per_device(N_TRAIN, (2500, 12), 8)
    assert per_device == 4 * (2500 * 12 * 4 + 4)  # 32 examples over 8 devices: 4 rows each
    c = builtdata.make_config("", input_mode="auto", device_data_budget_bytes=per_device)
    mode, reason = feeds.choose_input_mode(c, builder, "train", num_devices=8)
    assert mode == "device" and "fits" in reason and "32 examples" in reason
    c.device_data_budget_bytes = per_device - 1
    mode, reason = feeds.choose_input_mode(c, builder, "train", num_devices=8)
    assert mode == "grain" and "does not fit" in reason
    # One device must hold all 32 examples.
    c.device_data_budget_bytes = 8 * per_device - 1
    assert feeds.choose_input_mode(c, builder, "train", num_devices=1)[0] == "grain"
    c.input_mode = "device"
    assert feeds.choose_input_mode(c, builder, "train", num_devices=1)[0] == "device"
    c.input_mode = "tpu"
    with pytest.raises(ValueError, match="input_mode"):
        feeds.choose_input_mode(c, builder, "train")


def test_dispatches_end_at_validation_and_checkpoint_steps():
    def plan(total, k, cut):
        step, ends = 0, []
        while step < total:
            step += feeds.dispatch_length(step, total, k, cut)
            ends.append(step)
        return ends

    assert plan(20, 8, ()) == [8, 16, 20]
    # Once-per-epoch validation (epoch = 10 steps) and checkpoints every 4.
    assert plan(20, 8, (10, 4)) == [4, 8, 10, 12, 16, 20]
    assert plan(6, 1, (3, 2)) == [1, 2, 3, 4, 5, 6]
    assert feeds.crossed(6, 10, 5) and not feeds.crossed(10, 14, 5) and not feeds.crossed(1, 2, 0)
    with pytest.raises(ValueError):
        feeds.dispatch_length(0, 10, 0)


def test_data_seed_is_the_seed_unless_set():
    c = builtdata.make_config("", seed=7)
    assert feeds.data_seed(c) == 7
    c.data_seed = 3
    assert feeds.data_seed(c) == 3


def test_run_steps_runs_exactly_trip_steps_of_a_longer_program():
    """One compiled loop of ``size`` steps runs any ``trip <= size`` of them:
    state and the first ``trip`` metrics as a Python loop, the rest zeros."""

    def body(state, i):
        new = state * 2.0 + i
        return new, {"loss": new.sum(), "i": i}

    run = jax.jit(lambda s, trip: feeds.run_steps(body, s, 5, trip))
    for trip in (1, 3, 5):
        state, metrics = run(jnp.ones(2), jnp.int32(trip))
        want = np.ones(2)
        for i in range(trip):
            want = want * 2.0 + i
        np.testing.assert_array_equal(state, want)
        assert metrics["loss"].shape == (5,)
        np.testing.assert_array_equal(metrics["i"], list(range(trip)) + [0] * (5 - trip))


def test_trip_counts_are_put_on_the_devices_once():
    trips = feeds.TripCounts(mesh_lib.OnMesh.replicated.fget(_OnMesh()))
    a = trips[4]
    assert int(a) == 4 and trips[4] is a and len(trips) == 1


class _OnMesh(mesh_lib.OnMesh):
    def __init__(self):
        self.mesh = mesh_lib.make_mesh()


def test_device_position_round_trip_and_mismatches():
    pos = feeds.DevicePosition(num_examples=10, global_batch=4, seed=1)
    pos.step = 6
    saved = pos.to_json()
    assert saved == {
        "input_mode": "device",
        "step": 6,
        "epoch": 2,
        "position": 24,
        "index_in_epoch": 4,
        "num_examples": 10,
        "global_batch": 4,
        "seed": 1,
    }
    fresh = feeds.DevicePosition(10, 4, 1)
    fresh.restored(saved)
    assert fresh.step == 6
    for key, value in (("global_batch", 8), ("num_examples", 11), ("seed", 2)):
        with pytest.raises(ValueError, match=f"written with {key}"):
            feeds.DevicePosition(**{"num_examples": 10, "global_batch": 4, "seed": 1, key: value}).restored(
                saved
            )
    with pytest.raises(ValueError, match="not a device-mode position"):
        fresh.restored({"input_mode": "grain"})


def test_grain_feed_stacks_k_local_batches():
    """The grain feed takes k batches from its iterator for one dispatch, stacked
    on a leading axis, and counts the time it waited for them."""
    batches = iter(
        {"ecg": np.full((8, 5, 3), i, np.float32), "label": np.full((8,), i, np.float32)} for i in range(9)
    )

    class Exp(_OnMesh):
        step_fn = None

    feed = feeds.GrainFeed(Exp(), batches)
    host = feed.host_batches(3)
    assert host["ecg"].shape == (3, 8, 5, 3) and host["label"].shape == (3, 8)
    np.testing.assert_array_equal(host["label"][:, 0], [0, 1, 2])
    assert feed.wait_s >= 0 and feed.checkpointable is batches
    np.testing.assert_array_equal(feed.host_batches(2)["label"][:, 0], [3, 4])
