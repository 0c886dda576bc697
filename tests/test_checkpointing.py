"""Checkpoint selection ('best' read back from disk, also after a resume)
and damaged checkpoints (warn, fall back to the newest intact step)."""

import pathlib

import grain
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from leadmix_jax import checkpointing
from leadmix_jax.errors import UserError


def tiny_state(step):
    return {"step": jnp.asarray(step, jnp.int32), "params": {"w": jnp.full((64, 32), float(step))}}


def abstract():
    sharding = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    return checkpointing.replicated_abstract(jax.eval_shape(lambda: tiny_state(0)), sharding)


def iterator():
    return iter(grain.MapDataset.range(100).to_iter_dataset())


def save_steps(workdir, aurocs: dict, keep=1):
    """Saves ``{step: val_auroc or None}`` with a fresh manager, as a (re)started run would."""
    manager = checkpointing.make_manager(str(workdir), keep=keep)
    it = iterator()
    for step, auroc in aurocs.items():
        next(it)
        metrics = None if auroc is None else {"val_auroc": auroc, "val_loss": 1 - auroc, "val_youden": 0.3}
        checkpointing.save(manager, step, tiny_state(step), it, {"leads": ["II"]}, metrics)
    manager.wait_until_finished()
    manager.close()


def saved_steps(workdir):
    return sorted(int(p.name) for p in (pathlib.Path(workdir) / "checkpoints").iterdir() if p.name.isdigit())


def test_best_is_read_back_by_a_new_manager_and_survives_resume(tmp_path):
    save_steps(tmp_path, {1: 0.9, 2: 0.6, 3: 0.7})
    reader = checkpointing.make_manager(str(tmp_path), keep=1, read_only=True)
    assert checkpointing.select_step(reader, "best") == 1
    assert checkpointing.step_metrics(reader, 1)["val_auroc"] == pytest.approx(0.9)
    assert checkpointing.select_step(reader, "latest") == 3
    reader.close()
    # a resumed run with a new manager must not delete the best step (keep=1)
    save_steps(tmp_path, {4: 0.5, 5: None})
    assert saved_steps(tmp_path) == [1, 5]
    reader = checkpointing.make_manager(str(tmp_path), keep=1, read_only=True)
    assert checkpointing.select_step(reader, "best") == 1
    meta = checkpointing.read_meta(reader, 1)
    assert meta["validation"]["val_auroc"] == pytest.approx(0.9) and meta["step"] == 1
    reader.close()


def test_best_without_validation_is_latest(tmp_path):
    save_steps(tmp_path, {1: None, 2: None}, keep=2)
    reader = checkpointing.make_manager(str(tmp_path), keep=1, read_only=True)
    assert checkpointing.select_step(reader, "best") == 2
    with pytest.raises(UserError, match=r"no checkpoint at step 7; saved steps: \[1, 2\]"):
        checkpointing.select_step(reader, 7)


def _delete_state(root):
    for f in (root / "state").rglob("*"):
        if f.is_file():
            f.unlink()


def _truncate_state(root):
    files = sorted((f for f in (root / "state").rglob("*") if f.is_file()), key=lambda f: f.stat().st_size)
    data = files[-1].read_bytes()
    files[-1].write_bytes(data[: len(data) // 3])


def _delete_iterator(root):
    for f in (root / "data").rglob("*.json"):
        f.unlink()


def _delete_meta(root):
    for f in (root / "meta").rglob("*"):
        if f.is_file():
            f.unlink()


@pytest.mark.parametrize("damage", [_delete_state, _truncate_state, _delete_iterator, _delete_meta])
def test_damaged_newest_step_falls_back(tmp_path, damage, capsys):
    save_steps(tmp_path, {1: None, 2: None}, keep=2)
    damage(tmp_path / "checkpoints" / "2")
    manager = checkpointing.make_manager(str(tmp_path), keep=2)
    it = iterator()
    state, meta, step = checkpointing.restore_newest_intact(manager, abstract(), it)
    manager.close()
    assert step == 1 and int(state["step"]) == 1 and meta["leads"] == ["II"]
    np.testing.assert_array_equal(np.asarray(state["params"]["w"]), np.ones((64, 32)))
    assert next(it) == 1  # the iterator continues after the one element consumed before step 1
    out = capsys.readouterr().out
    assert "checkpoint step 2 is damaged" in out and "resuming from an older step" in out
    assert f"moved to {tmp_path / 'corrupt_checkpoints' / '2'}" in out
    assert saved_steps(tmp_path) == [1]
    assert (tmp_path / "corrupt_checkpoints" / "2").exists()


def test_damaged_requested_step_is_a_one_line_error(tmp_path):
    save_steps(tmp_path, {1: None, 2: None}, keep=2)
    _truncate_state(tmp_path / "checkpoints" / "2")
    manager = checkpointing.make_manager(str(tmp_path), keep=1, read_only=True)
    params_abstract = abstract()["params"]
    params, _ = checkpointing.restore_for_inference(manager, 1, params_abstract)
    np.testing.assert_array_equal(np.asarray(params["w"]), np.ones((64, 32)))
    with pytest.raises(UserError, match=r"^checkpoint step 2 is damaged \(") as info:
        checkpointing.restore_for_inference(manager, 2, params_abstract)
    assert "\n" not in str(info.value)


def _garbage_metrics(root):
    (root / "metrics" / "metrics").write_bytes(b"\xff\xfe not json")


def _truncated_metrics(root):
    (root / "metrics" / "metrics").write_text('{"val_auroc": 0.9')


@pytest.mark.parametrize("damage", [_garbage_metrics, _truncated_metrics])
def test_a_damaged_metrics_file_falls_back_like_any_damage(tmp_path, damage, capsys):
    save_steps(tmp_path, {1: 0.6, 2: 0.9}, keep=2)
    damage(tmp_path / "checkpoints" / "2")
    reader = checkpointing.make_manager(str(tmp_path), keep=1, read_only=True)  # no longer raises
    assert set(reader.damaged) == {2} and "does not decode" in reader.damaged[2]
    assert checkpointing.select_step(reader, "best") == 1 and checkpointing.select_step(reader, "latest") == 1
    with pytest.raises(UserError, match="checkpoint step 2 is damaged"):
        checkpointing.select_step(reader, 2)
    reader.close()
    manager = checkpointing.make_manager(str(tmp_path), keep=2)
    state, _, step = checkpointing.restore_newest_intact(manager, abstract(), iterator())
    manager.close()
    assert step == 1 and int(state["step"]) == 1
    assert "checkpoint step 2 is damaged" in capsys.readouterr().out
    assert (tmp_path / "corrupt_checkpoints" / "2").exists()


def test_setting_aside_never_overwrites_an_earlier_copy(tmp_path):
    for round_ in range(3):  # the same step damaged three times over three restarts
        save_steps(tmp_path, {1: None, 2: None} if round_ == 0 else {2: None}, keep=2)
        _truncate_state(tmp_path / "checkpoints" / "2")
        manager = checkpointing.make_manager(str(tmp_path), keep=2)
        checkpointing.restore_newest_intact(manager, abstract(), iterator())
        manager.close()
    aside = sorted(p.name for p in (tmp_path / "corrupt_checkpoints").iterdir())
    assert aside == ["2", "2.2", "2.3"]


def test_a_checkpoint_of_other_shapes_is_a_mismatch_not_damage(tmp_path):
    save_steps(tmp_path, {1: None, 2: None}, keep=2)
    other = jax.eval_shape(lambda: {"step": jnp.int32(0), "params": {"w": jnp.zeros((64, 16))}})
    manager = checkpointing.make_manager(str(tmp_path), keep=2)
    with pytest.raises(
        checkpointing.CheckpointMismatch, match=r"params/w: saved \(64, 32\) vs now \(64, 16\)"
    ):
        checkpointing.restore_newest_intact(manager, other, iterator())
    manager.close()
    assert saved_steps(tmp_path) == [1, 2] and not (tmp_path / "corrupt_checkpoints").exists()


def test_a_device_position_under_a_grain_run_is_a_mismatch(tmp_path):
    from leadmix_jax.train import feeds

    manager = checkpointing.make_manager(str(tmp_path), keep=2)
    position = feeds.DevicePosition(10, 4, 0)
    checkpointing.save(manager, 1, tiny_state(1), position, {"leads": ["II"]}, None)
    manager.wait_until_finished()
    with pytest.raises(
        checkpointing.CheckpointMismatch, match="input_mode='device', this run resolves input_mode to 'grain'"
    ):
        checkpointing.restore_newest_intact(manager, abstract(), iterator())
    with pytest.raises(checkpointing.CheckpointMismatch, match="written with global_batch=4, this run has 8"):
        checkpointing.restore_newest_intact(manager, abstract(), feeds.DevicePosition(10, 8, 0))
    manager.close()
    assert saved_steps(tmp_path) == [1]
