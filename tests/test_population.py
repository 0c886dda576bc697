"""Tests of population training and the protocol (leadmix_jax.population,
leadmix_jax.protocol, report.seed_summary): members and groups, the batched
conv formulation, a member equals its solo run, kill + resume of a
population is exact, and the protocol end to end on synthetic databases."""

import csv
import json
import os
import signal
import time

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

import builtdata
from configs import protocol as protocol_config
from leadmix_jax import checkpointing, inference, input_pipeline, layers, population, protocol, train
from leadmix_jax import leads as leads_lib
from leadmix_jax.errors import UserError
from test_train import assert_trees_equal, finish, run_launch


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return builtdata.data_dir(tmp_path_factory)


def _config(data_dir, **overrides):
    return builtdata.make_config(data_dir, **{"input_mode": "device", **overrides})


def _state(workdir, step):
    """The full train state of ``step`` (numpy, any device count)."""
    manager = checkpointing.make_manager(str(workdir), keep=10, read_only=True)
    meta = manager.item_metadata(step)["state"]
    target = jax.tree.map(lambda m: np.zeros(m.shape, m.dtype), meta)
    restored = manager.restore(step, args=ocp.args.Composite(state=ocp.args.PyTreeRestore(item=target)))
    manager.close()
    return restored["state"]


# ----------------------------------------------------------------------------
# Members, groups, formulation (no training).


def test_paper_protocol_is_21_members_in_three_lead_count_groups():
    c = protocol_config.get_config()
    members = population.make_members(c)
    assert len(members) == 21 and len({m.name for m in members}) == 21
    assert members[0].name == "chest_seed0" and members[2].seed == 2
    sizes = {n: len(g) for n, g in population.groups(members).items()}
    assert sizes == {6: 6, 12: 3, 3: 12}
    assert {m.lead_set for m in population.groups(members)[3]} == {
        "inferior",
        "lateral",
        "I-II-V3",
        "V1-V3-V5",
    }


def test_population_settings_errors_are_clear():
    c = protocol_config.get_config()
    c.population.lead_sets = "inferior;II,III,aVF"
    with pytest.raises(UserError, match="repeats"):
        population.make_members(c)
    c.population.lead_sets, c.population.seeds = "inferior", 0
    with pytest.raises(UserError, match="seeds"):
        population.make_members(c)
    c.population.seeds, c.model.variant = 1, "lead_robust"
    with pytest.raises(UserError, match="official"):
        population.make_members(c)


def test_patch_conv_equals_library_conv_and_batches_over_members():
    """The population's strided conv equals the library conv, and vmapped over
    stacked kernels it is a batched dot product, not a grouped conv."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 3, 50, 5)).astype(np.float32)  # (P, B, L, Cin)
    k = rng.normal(size=(4, 7, 5, 6)).astype(np.float32)  # (P, K, Cin, Cout)
    got = jax.vmap(lambda a, b: layers.strided_conv_patches(a, b, 2, 3))(x, k)
    want = np.stack([layers.strided_conv(x[i], k[i], 2, 3) for i in range(4)])
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    hlo = jax.jit(jax.vmap(lambda a, b: layers.strided_conv_patches(a, b, 2, 3))).lower(x, k).as_text()
    assert "convolution" not in hlo and "dot_general" in hlo
    grouped = jax.jit(jax.vmap(lambda a, b: layers.strided_conv(a, b, 2, 3))).lower(x, k).as_text()
    assert "feature_group_count = 4" in grouped  # what the patch form avoids


# ----------------------------------------------------------------------------
# Training.


@pytest.mark.slow
def test_member_equals_its_solo_run(data_dir, tmp_path):
    """A member (seed 1, lateral leads) of a population of 4 reaches the solo
    run's parameters (seed 1, lateral, the population's data order) within
    1e-5 after 20 steps, with dropout and every augmentation on; its
    checkpoint restores and validates like a solo one."""
    c = _config(
        data_dir,
        num_train_steps=20,
        checkpoint_every_steps=20,
        eval_every_steps=20,
        steps_per_dispatch=4,
        log_every_steps=20,
        **{"augment.scale": 0.1, "augment.noise": 0.05, "augment.shift": 20, "augment.wander": 0.1},
    )
    c.population.lead_sets, c.population.seeds = "inferior;lateral", 2
    members = population.make_members(c)
    assert [m.name for m in members] == ["inferior_seed0", "inferior_seed1", "lateral_seed0", "lateral_seed1"]
    builder = input_pipeline.load_builder(data_dir, builtdata.NAME)
    stats12 = input_pipeline.compute_norm_stats(
        builder, "train", leads_lib.CANONICAL_LEADS, c.norm_max_examples, builtdata.NAME
    )
    out = population.train_population(c, str(tmp_path / "pop"), members, stats12, str(tmp_path / "members"))
    solo = train.train_and_evaluate(population.member_config(c, members[3], 0), str(tmp_path / "solo"))

    member = _state(tmp_path / "members" / "lateral_seed1", 20)
    ref = _state(tmp_path / "solo", 20)
    assert int(member["step"]) == int(ref["step"]) == 20
    np.testing.assert_array_equal(member["rng"], ref["rng"])
    flat = jax.tree_util.tree_flatten_with_path(member["params"])[0]
    for (path, a), b in zip(flat, jax.tree.leaves(ref["params"]), strict=True):
        name = jax.tree_util.keystr(path)
        if "key_bias" in name:
            # A bias added to every key shifts all scores of a query equally:
            # softmax cancels it, so its gradient is 0 in exact arithmetic and
            # Adam turns rounding noise into steps. Both stay at noise level.
            assert np.abs(a).max() < 1e-4 and np.abs(b).max() < 1e-4, name
            continue
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-5, err_msg=name)
    # The other members really differ (own seeds, own leads).
    other = _state(tmp_path / "members" / "lateral_seed0", 20)
    assert not np.allclose(
        other["params"]["fc"]["kernel"]["value"], member["params"]["fc"]["kernel"]["value"]
    )

    # A user should not notice the population: the member restores as a solo
    # checkpoint, with its leads, statistics and validation AUROC.
    assert out["lateral_seed1"]["best_step"] == solo["best_step"] == 20
    assert out["lateral_seed1"]["best_val_auroc"] == pytest.approx(solo["best_val_auroc"], abs=1e-6)
    restored = inference.restore(str(tmp_path / "members" / "lateral_seed1"))
    assert restored.leads == ("I", "aVL", "V5") and restored.step == 20
    assert restored.stats.mean == tuple(stats12.select(["I", "aVL", "V5"]).mean)
    saved = json.loads((tmp_path / "members" / "lateral_seed1" / "config.json").read_text())
    assert (saved["leads"], saved["seed"], saved["data_seed"]) == ("I,aVL,V5", 1, 0)


@pytest.mark.slow
def test_killed_population_resumes_exactly(data_dir, tmp_path):
    """SIGKILL during a population's training, then the same command: the
    members' final states equal those of an uninterrupted run bit for bit."""
    flags = [
        "--mode=protocol",
        "--config.input_mode=device",
        "--config.population.lead_sets=inferior;lateral",
        "--config.population.seeds=2",
        "--config.steps_per_dispatch=4",
        "--config.num_train_steps=12",
        "--config.checkpoint_every_steps=4",
        "--config.eval_every_steps=4",
        "--config.log_every_steps=12",
        "--config.bootstrap_samples=10",
        f"--config.eval_targets={builtdata.NAME}:test",
    ]
    victim = run_launch(tmp_path / "run", data_dir, 8, flags, start_new_session=True)
    ckpts = tmp_path / "run" / "population_3leads" / "checkpoints"
    deadline = time.time() + 600
    while not (ckpts / "4").exists() and victim.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    assert victim.poll() is None, "run finished before it could be killed"
    os.killpg(victim.pid, signal.SIGKILL)
    victim.wait()
    saved = sorted(int(p.name) for p in ckpts.iterdir() if p.name.isdigit())
    assert saved and saved[-1] < 12
    out = finish(run_launch(tmp_path / "run", data_dir, 8, flags), timeout=900)
    assert f"population resumed from step {saved[-1]}" in out
    finish(run_launch(tmp_path / "ref", data_dir, 8, flags), timeout=900)
    for name in ("inferior_seed0", "lateral_seed1"):
        a = _state(tmp_path / "run" / "members" / name, 12)
        b = _state(tmp_path / "ref" / "members" / name, 12)
        assert_trees_equal(a, b)
        ma = json.loads((tmp_path / "run" / "members" / name / "eval" / "12" / "metrics.json").read_text())
        mb = json.loads((tmp_path / "ref" / "members" / name / "eval" / "12" / "metrics.json").read_text())
        assert ma["results"] == mb["results"]
    rows = list(csv.DictReader(open(tmp_path / "run" / "protocol" / "table.csv")))
    assert [r["row"] for r in rows] == ["seed"] * 4 + ["mean", "std"] * 2


@pytest.mark.slow
def test_protocol_on_synthetic_databases_writes_the_seed_table(tmp_path):
    """configs/protocol.py:demo, shrunk: 7 lead sets x 3 seeds trained as three
    populations, every member evaluated on synthetic PTB, PTB-XL and SPH test,
    and the table of mean ± std over seeds."""
    c = protocol_config.get_config("demo")
    c.synthetic.sph_records, c.synthetic.ptbxl_records, c.synthetic.ptb_patients = 60, 24, 6
    c.model.base, c.model.depth, c.model.heads = 8, 1, 2
    c.num_epochs, c.log_every_steps, c.bootstrap_samples = 1, 1, 10
    c.batch_size = c.eval_batch_size = 8
    c.steps_per_dispatch = 4
    out = protocol.run(c, str(tmp_path))
    summary = out["table"]["summary"]
    assert [s["lead_set"] for s in summary] == list(leads_lib.LEAD_SETS)
    assert all(s["seeds"] == 3 for s in summary)
    targets = {t for t, _ in out["table"]["columns"]}
    assert targets == {"ptbdb_mi/paper:all", "ptbxl_mi/paper:all", "sph_mi/paper:test"}
    col = ("ptbxl_mi/paper:all", "auroc")
    for s in summary:
        rows = [r for r in out["table"]["rows"] if r["lead_set"] == s["lead_set"]]
        values = [r["cells"][col][0] for r in rows]
        assert sorted(r["seed"] for r in rows) == [0, 1, 2]
        assert s["cells"][col][0] == pytest.approx(np.mean(values))
        assert s["cells"][col][1] == pytest.approx(np.std(values, ddof=1))
    md = (tmp_path / "protocol" / "table.md").read_text()
    assert "mean ± sample std over seeds" in md and md.count("\n| ") == 1 + 7  # header + 7 sets
    rows = list(csv.DictReader(open(tmp_path / "protocol" / "table.csv")))
    assert sum(r["row"] == "seed" for r in rows) == 21
    assert {int(r["seed"]) for r in rows if r["row"] == "seed"} == {0, 1, 2}
    # Every member is an ordinary workdir: restorable with its own leads.
    restored = inference.restore(str(tmp_path / "members" / "V1-V3-V5_seed2"))
    assert restored.leads == ("V1", "V3", "V5")
    # Run again: everything is found done (no training step, no new evaluation).
    again = protocol.run(c, str(tmp_path))
    assert again["table"]["summary"] == summary
