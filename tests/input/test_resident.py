"""Tests of device-resident input and several steps per dispatch
(leadmix_jax.input.resident, leadmix_jax.train.feeds) on 8 simulated CPU devices:
mode choice, dispatch bookkeeping, the stream order, no host->device copy
inside the loop, equivalence with the grain pipeline, K=1 vs K=8, the
non-finite guard over a dispatch, and SIGKILL + resume in device mode.

Compiling the scanned step is the cost here (tens of seconds per distinct
dispatch length on 2 loaded cores), so compiled feeds are shared per module.
"""

import json

import grain
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import builtdata
from leadmix_jax.input import resident, pipeline
from leadmix_jax.train import feeds
from leadmix_jax.train import experiment
from leadmix_jax.input import norm_stats
from leadmix_jax.input import built
from leadmix_jax.input import augment
from runs import assert_params_close, assert_trees_equal, final_params, finish, kill_when, losses, run_launch

N_TRAIN = builtdata.num_windows("train")  # 32
BATCH = 8  # configs/test.py: 4 steps per epoch


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return builtdata.data_dir(tmp_path_factory)


@pytest.fixture(scope="module")
def setup(data_dir):
    """``(config, builder, exp, stats, pcfg)`` of the tiny test model."""
    config = builtdata.make_config(data_dir, input_mode="device", val_split="", steps_per_dispatch=8)
    builder = built.load_builder(data_dir, builtdata.NAME)
    exp = experiment.make_experiment(config, N_TRAIN)
    stats = norm_stats.compute_from_split(builder, "train", exp.leads, 64)
    pcfg = pipeline.PipelineConfig(leads=exp.leads, global_batch=config.batch_size, seed=config.seed)
    return config, builder, exp, stats, pcfg


@pytest.fixture(scope="module")
def device_feed(setup):
    config, builder, exp, stats, pcfg = setup
    return feeds.make_feed(exp, config, builder, stats, pcfg, mode="device", reason="test")


def device_batches(feed, step: int, k: int) -> dict:
    """The global batches steps ``step .. step + k - 1`` of ``feed`` train on:
    ``ecg`` (k, B, T, N), ``label`` (k, B)."""

    def make(step, arrays):
        idx, pos = feed.indices(arrays, step, k)
        return jax.lax.map(lambda xs: feed.make_batch(arrays, *xs), (idx, pos))

    return jax.jit(make)(jnp.int32(step), feed.arrays)


class OrderedFeed(feeds.DeviceFeed):
    """A device feed that follows explicit per-epoch orders ``(E, n)`` (epoch
    ``e`` uses row ``min(e, E - 1)``): fed grain's order, it must give grain's batches."""

    def __init__(self, exp, split, spec, seed, orders):
        super().__init__(exp, split, spec, seed)
        self.arrays["orders"] = jax.device_put(np.asarray(orders, np.int32), exp.replicated)

    def indices(self, arrays, step, k):
        first = step.astype(jnp.int32) * self.batch
        pos = first + jnp.arange(k * self.batch, dtype=jnp.int32)
        orders = arrays["orders"]
        idx = orders[jnp.minimum(pos // self.n, orders.shape[0] - 1), pos % self.n]
        return idx.reshape(k, self.batch), pos.reshape(k, self.batch)


def grain_order(num_epochs: int, seed: int = 0) -> np.ndarray:
    """The grain training pipeline's per-epoch order, ``(num_epochs, n)``
    (same seeded shuffle as ``pipeline.train_dataset`` on ArrayRecord)."""
    ds = grain.MapDataset.range(N_TRAIN).seed(seed).shuffle().repeat(None)
    return np.asarray([ds[i] for i in range(num_epochs * N_TRAIN)]).reshape(num_epochs, N_TRAIN)


# ----------------------------------------------------------------------------
# No compilation of the model.


@pytest.mark.slow
def test_stream_order_every_example_once_per_epoch():
    key = jax.random.PRNGKey(3)
    n, total = 10, 40  # 4 epochs
    idx = np.asarray(jax.jit(lambda f: resident.stream_indices(key, f, total, n))(np.int32(0)))
    epochs = idx.reshape(4, n)
    for e in epochs:
        assert sorted(e.tolist()) == list(range(n))
    assert len({tuple(e) for e in epochs}) == 4  # reshuffled every epoch
    # Any chunking of the stream (batch 3 straddles epochs; dispatch of 7 positions) gives the same order.
    for chunk in (3, 7):
        parts = [
            np.asarray(resident.stream_indices(key, np.int32(s), min(chunk, total - s), n))
            for s in range(0, total, chunk)
        ]
        np.testing.assert_array_equal(np.concatenate(parts), idx)


def test_augmentation_on_device_matches_grain_distributions():
    c = augment.AugmentConfig(scale=0.2, noise=0.0, wander=0.0, shift=0)
    x = np.ones((2500, 3), np.float32)
    keys = jax.random.split(jax.random.PRNGKey(0), 400)
    scaled = np.asarray(jax.vmap(lambda k: augment.augment_example(x, k, c))(keys))
    factors = scaled[:, 0, :]  # per example and lead, constant over time
    np.testing.assert_array_equal(scaled, np.broadcast_to(factors[:, None, :], scaled.shape))
    assert 0.8 <= factors.min() < 0.82 and 1.18 < factors.max() <= 1.2
    ramp = np.arange(2500, dtype=np.float32)[:, None].repeat(3, 1)
    shifted = np.asarray(
        augment.augment_example(ramp, jax.random.PRNGKey(1), augment.AugmentConfig(shift=50))
    )
    s = int(-shifted[0, 0]) % 2500  # roll by s puts ramp[-s] first
    s = s - 2500 if s > 1250 else s
    np.testing.assert_array_equal(shifted, np.roll(ramp, s, axis=0))  # a circular shift ...
    assert abs(s) <= 50  # ... of at most 50 samples
    noisy = np.asarray(
        augment.augment_example(
            np.zeros((2500, 3), np.float32), jax.random.PRNGKey(2), augment.AugmentConfig(noise=0.1)
        )
    )
    assert abs(noisy.std() - 0.1) < 0.005 and abs(noisy.mean()) < 0.005
    wander = np.asarray(
        augment.augment_example(
            np.zeros((2500, 3), np.float32), jax.random.PRNGKey(3), augment.AugmentConfig(wander=0.3)
        )
    )
    assert 0 < np.abs(wander).max() <= 0.3 + 1e-6
    assert np.abs(np.diff(wander, axis=0)).max() < 2 * np.pi * 0.5 / 250 * 0.3 + 1e-6  # <= 0.5 Hz


# ----------------------------------------------------------------------------
# Compiled dispatches.


def test_same_examples_as_grain_each_epoch(setup, device_feed):
    config, builder, exp, stats, pcfg = setup
    steps = 2 * N_TRAIN // BATCH  # two epochs
    dev = jax.tree.map(np.asarray, device_batches(device_feed, 0, steps))
    it = iter(pipeline.train_dataset(builder, "train", pcfg, stats))
    grn = [next(it) for _ in range(steps)]
    grn = {k: np.stack([b[k] for b in grn]) for k in ("ecg", "label")}
    assert dev["ecg"].shape == grn["ecg"].shape == (steps, BATCH, 2500, 3)
    per_epoch = N_TRAIN // BATCH
    for e in range(2):
        rows = {}
        for name, b in (("device", dev), ("grain", grn)):
            x = b["ecg"][e * per_epoch : (e + 1) * per_epoch].reshape(N_TRAIN, 2500, 3)
            y = b["label"][e * per_epoch : (e + 1) * per_epoch].reshape(N_TRAIN)
            order = np.lexsort((x[:, 0, 0], x[:, 1, 1], y))
            rows[name] = (x[order], y[order])
        # The same multiset of (z-scored) examples and labels.
        np.testing.assert_array_equal(rows["device"][1], rows["grain"][1])
        np.testing.assert_allclose(rows["device"][0], rows["grain"][0], rtol=0, atol=1e-6)
        assert len({r.tobytes() for r in rows["device"][0]}) == N_TRAIN  # 32 distinct windows
    # Seeded: another order than grain's (another shuffle), but the same every time.
    again = np.asarray(device_batches(device_feed, 0, steps)["ecg"])
    np.testing.assert_array_equal(again, dev["ecg"])


@pytest.mark.slow  # ~70 s on 2 quiet cores (three compilations), 4 min loaded
def test_device_mode_matches_grain_with_the_same_order(setup, device_feed):
    """Fed grain's order, device mode trains to the same parameters (8 steps =
    2 epochs, K=4): batches bit for bit, parameters within 1e-5."""
    config, builder, exp, stats, pcfg = setup
    spec = resident.BatchSpec.from_config(exp.leads, stats, pcfg.augment)
    split = resident.Resident(device_feed.arrays["ecg"], device_feed.arrays["label"], N_TRAIN)
    ordered = OrderedFeed(exp, split, spec, config.seed, grain_order(3))
    grain_feed = feeds.GrainFeed(exp, iter(pipeline.train_dataset(builder, "train", pcfg, stats)))
    host = grain_feed.host_batches(8)
    np.testing.assert_array_equal(np.asarray(device_batches(ordered, 0, 8)["ecg"]), host["ecg"])
    np.testing.assert_array_equal(np.asarray(device_batches(ordered, 0, 8)["label"]), host["label"])
    grain_feed = feeds.GrainFeed(exp, iter(pipeline.train_dataset(builder, "train", pcfg, stats)))
    a, b = exp.init_state(), exp.init_state()
    for _ in range(2):
        a, ma = ordered.run(a, 4)
        b, mb = grain_feed.run(b, 4)
    assert int(a.step) == int(b.step) == 8
    np.testing.assert_allclose(ma["loss"], mb["loss"], rtol=1e-5)
    assert_trees_equal(
        jax.tree.map(np.asarray, a.params), jax.tree.map(np.asarray, b.params), rtol=1e-5, atol=1e-5
    )


@pytest.mark.slow
def test_nothing_crosses_from_the_host_inside_the_loop(setup, device_feed):
    """After setup (state on the mesh, one compiled dispatch), dispatches run
    under a transfer guard that forbids every implicit transfer."""
    config, builder, exp, stats, pcfg = setup
    state = exp.init_state()
    state, _ = device_feed.run(state, 8)  # compiles
    with jax.transfer_guard("disallow"):
        for _ in range(3):
            state, metrics = device_feed.run(state, 8)
    assert int(state.step) == 32
    assert metrics["loss"].shape == (8,) and np.isfinite(np.asarray(metrics["loss"])).all()
    # The guard is live: a host array (as grain mode feeds) is refused.
    with jax.transfer_guard("disallow"), pytest.raises(Exception, match="host-to-device"):
        jax.jit(lambda x: x + 1)(np.ones(3))


@pytest.mark.slow
def test_short_dispatches_reuse_the_compiled_program(setup, device_feed):
    """Dispatches shorter than steps_per_dispatch (cut at validation and
    checkpoint steps) run the K-step program with a smaller trip count: no
    new compilation, the same steps as one long dispatch."""
    config, builder, exp, stats, pcfg = setup
    a, b = exp.init_state(), exp.init_state()
    a, ma = device_feed.run(a, 8)
    b, m3 = device_feed.run(b, 3)
    b, m5 = device_feed.run(b, 5)
    assert list(device_feed._compiled) == [8] and m3["loss"].shape == (3,)
    np.testing.assert_array_equal(np.concatenate([m3["loss"], m5["loss"]]), np.asarray(ma["loss"]))
    assert_trees_equal(jax.tree.map(np.asarray, a.params), jax.tree.map(np.asarray, b.params))


@pytest.mark.slow  # a second compilation (the one-step program)
def test_one_and_eight_steps_per_dispatch_give_identical_parameters(setup, device_feed):
    config, builder, exp, stats, pcfg = setup
    one_feed = feeds.make_feed(exp, config, builder, stats, pcfg, mode="device", reason="test")
    one_feed.steps_per_dispatch = 1  # as config.steps_per_dispatch=1: a program of one step
    one, eight = exp.init_state(), exp.init_state()
    losses = []
    for _ in range(8):
        one, m = one_feed.run(one, 1)
        losses.append(float(m["loss"][0]))
    assert list(one_feed._compiled) == [1]
    eight, m8 = device_feed.run(eight, 8)
    assert int(one.step) == int(eight.step) == 8
    np.testing.assert_array_equal(np.asarray(m8["loss"]), np.asarray(losses, np.float32))
    assert_trees_equal(jax.tree.map(np.asarray, one.params), jax.tree.map(np.asarray, eight.params))


# Device mode, K=4, 12 steps, checkpoints every 4, no validation.
DEVICE_RUN = [
    "--config.input_mode=device",
    "--config.steps_per_dispatch=4",
    "--config.num_train_steps=12",
    "--config.checkpoint_every_steps=4",
    "--config.val_split=",
    "--config.log_every_steps=4",
]


@pytest.fixture(scope="module")
def device_reference(data_dir, tmp_path_factory):
    """1 process x 8 devices of :data:`DEVICE_RUN` without interruption: the
    run the killed and two-process runs are compared with."""
    workdir = tmp_path_factory.mktemp("device_reference") / "run"
    out = finish(run_launch(workdir, data_dir, 8, DEVICE_RUN), timeout=900)
    assert "input mode: device" in out
    return workdir


@pytest.mark.slow
def test_killed_device_mode_run_resumes_exactly(data_dir, device_reference, tmp_path):
    victim = run_launch(tmp_path / "run", data_dir, 8, DEVICE_RUN, start_new_session=True)
    ckpts = tmp_path / "run" / "checkpoints"
    kill_when(victim, ckpts / "4", timeout=300)
    saved = sorted(int(p.name) for p in ckpts.iterdir() if p.name.isdigit())
    assert saved and saved[-1] < 12
    out = finish(run_launch(tmp_path / "run", data_dir, 8, DEVICE_RUN), timeout=900)
    assert f"resumed from step {saved[-1]}" in out and "input mode: device" in out
    config = builtdata.make_config(data_dir)
    ref_step, ref_params, _ = final_params(device_reference, config)
    run_step, run_params, _ = final_params(tmp_path / "run", config)
    assert ref_step == run_step == 12
    assert_trees_equal(run_params, ref_params)
    position = (tmp_path / "run" / "checkpoints" / "12" / "data").glob("*")
    assert any("position" in p.read_text() for p in position if p.is_file() and p.suffix != ".txt")


@pytest.mark.slow
def test_two_processes_device_mode_match_one_process(data_dir, device_reference, tmp_path):
    """Device mode over 2 processes x 4 devices (each process loads only its
    rows) trains like 1 process x 8 devices: the order is global."""
    from runs import free_port

    port = free_port()
    pair = [
        run_launch(
            tmp_path / "multi",
            data_dir,
            4,
            [
                *DEVICE_RUN,
                f"--coordinator_address=127.0.0.1:{port}",
                "--num_processes=2",
                f"--process_id={i}",
            ],
        )
        for i in range(2)
    ]
    outs = [finish(p, timeout=900) for p in pair]
    assert all("input mode: device" in out for out in outs)
    config = builtdata.make_config(data_dir)
    _, multi, _ = final_params(tmp_path / "multi", config)
    _, one, _ = final_params(device_reference, config)
    assert_params_close(multi, one, atol=1e-5)  # summation order: rounding only
    multi_losses, one_losses = losses(tmp_path / "multi"), losses(device_reference)
    assert sorted(multi_losses) == sorted(one_losses) == [4, 8, 12]
    np.testing.assert_allclose(list(multi_losses.values()), list(one_losses.values()), rtol=1e-5)


def _listing(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.mark.slow
def test_a_changed_config_refuses_to_resume_and_moves_nothing(data_dir, device_reference, tmp_path):
    """The finished device-mode run restarted with another batch size: one line,
    exit 2, every checkpoint where it was (it used to be set aside as damaged)."""
    import shutil

    shutil.copytree(device_reference, tmp_path / "run")
    before = _listing(tmp_path / "run")
    out = run_launch(tmp_path / "run", data_dir, 8, [*DEVICE_RUN, "--config.batch_size=16"])
    text, _ = out.communicate(timeout=600)
    assert out.returncode == 2, text[-3000:]
    (line,) = [ln for ln in text.splitlines() if ln.startswith("error:")]
    assert "holds a run with another configuration (batch_size 8 -> 16)" in line and "--start_afresh" in line
    assert "Traceback" not in text
    assert _listing(tmp_path / "run") == before


@pytest.mark.slow
def test_safe_changes_resume_and_start_afresh_moves_the_run_aside(data_dir, device_reference, tmp_path):
    import shutil

    shutil.copytree(device_reference, tmp_path / "run")
    out = finish(
        run_launch(
            tmp_path / "run",
            data_dir,
            8,
            [*DEVICE_RUN, "--config.num_train_steps=14", "--config.log_every_steps=7"],
        )
    )
    assert "safe to change: log_every_steps 4 -> 7; num_train_steps 12 -> 14" in out
    assert "resumed from step 12" in out
    assert sorted(losses(tmp_path / "run"))[-1] == 14
    out = finish(
        run_launch(tmp_path / "run", data_dir, 8, [*DEVICE_RUN, "--config.batch_size=16", "--start_afresh"])
    )
    (previous,) = (tmp_path / "run" / "previous_runs").iterdir()
    assert "moved the previous run" in out and "resumed" not in out
    assert (previous / "checkpoints" / "14").exists() and (previous / "config.json").exists()
    assert json.loads((tmp_path / "run" / "config.json").read_text())["batch_size"] == 16
