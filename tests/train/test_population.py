"""Tests of population training and the protocol (leadmix_jax.train.population,
leadmix_jax.workflows.protocol, report.seed_summary): members and groups, the batched
conv formulation, a member equals its solo run, kill + resume of a
population is exact, and the protocol end to end on synthetic databases."""

import csv
import functools
import json

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

import builtdata
from configs import protocol as protocol_config
from leadmix_jax import checkpointing
from leadmix_jax.train import population, trainer
from leadmix_jax.data import leads as leads_lib
from leadmix_jax.errors import UserError
from leadmix_jax.model import conv
from leadmix_jax.input import built
from leadmix_jax.input import augment
from leadmix_jax.evaluate import restore
from runs import assert_params_close, assert_trees_equal, finish, kill_when, run_launch


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return builtdata.data_dir(tmp_path_factory)


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
    got = jax.vmap(lambda a, b: conv.strided_conv_patches(a, b, 2, 3))(x, k)
    want = np.stack([conv.strided_conv(x[i], k[i], 2, 3) for i in range(4)])
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    hlo = jax.jit(jax.vmap(lambda a, b: conv.strided_conv_patches(a, b, 2, 3))).lower(x, k).as_text()
    assert "convolution" not in hlo and "dot_general" in hlo
    grouped = jax.jit(jax.vmap(lambda a, b: conv.strided_conv(a, b, 2, 3))).lower(x, k).as_text()
    assert "feature_group_count = 4" in grouped  # what the patch form avoids


def test_members_one_after_another_equal_vmapped_members():
    """The step's formulations (the CPU default: members one after another,
    ``lax.map``; the GPU/TPU default: all vmapped; 2 per pass in between)
    give every member its own state, leads, statistics and augmentation, in
    member order. A toy linear step keeps this test quick; the protocol
    test below trains the real model 2 members per pass."""
    leads = [("II", "III", "aVF"), ("I", "aVL", "V5"), ("V1", "V3", "V5")]
    inputs = population.MemberInputs(
        np.asarray([leads_lib.lead_indices(ls) for ls in leads], np.int32),
        np.asarray([[0.0, 0.1, 0.2], [0.3, 0.4, 0.5], [0.6, 0.7, 0.8]], np.float32)[:, None, None, :],
        np.asarray([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]], np.float32)[:, None, None, :],
        augment.AugmentConfig(scale=0.1, noise=0.05, shift=20),
    )
    rng = np.random.default_rng(0)
    batch = {
        "ecg": rng.normal(size=(8, 2500, 12)).astype(np.float32),
        "label": (np.arange(8) % 2).astype(np.float32),
        "pos": np.arange(8, dtype=np.int32),
        "augment_key": jax.random.PRNGKey(3),
    }

    def toy_step(w, b):  # one gradient step of a linear model on the member's windows
        loss = lambda w: ((b["ecg"].mean(axis=1) @ w - b["label"]) ** 2).mean()  # noqa: E731
        value, grad = jax.value_and_grad(loss)(w)
        return w - 0.1 * grad, {"loss": value}

    w0 = np.stack([np.full(3, i, np.float32) for i in range(3)])  # (P, N): member i starts at i
    out = {}
    for per_pass in (1, 2, 3):
        fn = functools.partial(population.population_step, step=toy_step, inputs=inputs, per_pass=per_pass)
        w, metrics = jax.jit(fn)(w0, batch)
        out[per_pass] = (np.asarray(w), np.asarray(metrics["loss"]))
    # member i alone: its leads, its statistics, its augmentation, its start
    xs = np.asarray(population.member_windows(batch, inputs))
    for i in range(3):
        w_i, m_i = toy_step(w0[i], {"ecg": xs[i], "label": batch["label"]})
        for per_pass in (1, 2, 3):
            np.testing.assert_allclose(out[per_pass][0][i], w_i, rtol=1e-5)
            np.testing.assert_allclose(out[per_pass][1][i], m_i["loss"], rtol=1e-5)
    assert len(set(out[1][1].tolist())) == 3


# ----------------------------------------------------------------------------
# One protocol run shared by the slow tests: launch.py --mode=protocol on the
# tiny synthetic dataset, 3 lead sets x 2 seeds in two populations (6 leads:
# limb and chest x 2 seeds = 4 members; 3 leads: inferior x 2 seeds),
# SIGKILLed during the first population, then the same command to the end.
# The paper's 7 sets x 3 seeds are the same code with more members
# (test_paper_protocol_is_21_members_in_three_lead_count_groups).

STEPS = 16
TRAIN = {
    "input_mode": "device",
    "num_train_steps": STEPS,
    "steps_per_dispatch": 4,
    "checkpoint_every_steps": 8,
    "eval_every_steps": 8,
    "log_every_steps": STEPS,
    "augment.scale": 0.1,
    "augment.noise": 0.05,
    "augment.shift": 20,
    "augment.wander": 0.1,
    "population.lead_sets": "limb;chest;inferior",
    "population.seeds": 2,
    # the real model 2 members per pass: vmap inside lax.map (P=4), all vmapped (P=2)
    "population.members_per_pass": 2,
    "bootstrap_samples": 10,
    "eval_plots": False,
    "eval_targets": f"{builtdata.NAME}:test",
}


@pytest.fixture(scope="module")
def killed_protocol(data_dir, tmp_path_factory):
    """``(workdir, output of the resumed run, last population step saved before the kill)``."""
    workdir = tmp_path_factory.mktemp("protocol")
    flags = ["--mode=protocol", *(f"--config.{k}={v}" for k, v in TRAIN.items())]
    victim = run_launch(workdir, data_dir, 8, flags, start_new_session=True)
    ckpts = workdir / "population_6leads" / "checkpoints"
    kill_when(victim, ckpts / "8")
    saved = sorted(int(p.name) for p in ckpts.iterdir() if p.name.isdigit())
    assert saved and saved[-1] < STEPS
    out = finish(run_launch(workdir, data_dir, 8, flags), timeout=900)
    return workdir, out, saved[-1]


@pytest.fixture(scope="module")
def reference_population(data_dir, killed_protocol, tmp_path_factory):
    """The 6-lead population trained in this process without interruption:
    ``(config, workdir of its members)``."""
    workdir, _, _ = killed_protocol
    c = builtdata.make_config(data_dir, **TRAIN)
    members = population.groups(population.make_members(c))[6]
    builder = built.load_builder(data_dir, builtdata.NAME)
    stats12 = trainer.norm_stats_for(str(workdir), builder, c, leads_lib.CANONICAL_LEADS)  # the run's file
    ref = tmp_path_factory.mktemp("reference")
    population.train_population(c, str(ref / "pop"), members, stats12, str(ref / "members"))
    return c, ref / "members"


@pytest.mark.slow
def test_protocol_writes_the_seed_table(killed_protocol):
    """launch.py --mode=protocol: 6 members trained in two populations (by
    lead count), each evaluated, and the table of mean ± std over seeds."""
    workdir, out, _ = killed_protocol
    assert "training 4 models on 6 leads" in out and "training 2 models on 3 leads" in out
    rows = list(csv.DictReader(open(workdir / "protocol" / "table.csv")))
    seeds = [r for r in rows if r["row"] == "seed"]
    assert len(seeds) == 6 and {r["seed"] for r in seeds} == {"0", "1"}
    sets = [r["lead_set"] for r in rows if r["row"] == "mean"]
    assert sets == ["limb", "chest", "inferior"]  # the order of population.lead_sets
    col = f"{builtdata.NAME}:test auroc"
    for name in sets:
        values = [float(r[col]) for r in seeds if r["lead_set"] == name]
        mean = next(float(r[col]) for r in rows if r["row"] == "mean" and r["lead_set"] == name)
        std = next(float(r[col]) for r in rows if r["row"] == "std" and r["lead_set"] == name)
        assert mean == pytest.approx(np.mean(values)) and std == pytest.approx(np.std(values, ddof=1))
    md = (workdir / "protocol" / "table.md").read_text()
    assert "mean ± sample std over seeds" in md and md.count("\n| ") == 1 + 3  # header + 3 sets
    # Every member is an ordinary workdir: evaluated at its best step, restorable with its leads.
    restored = restore.restore(str(workdir / "members" / "inferior_seed1"))
    assert restored.leads == ("II", "III", "aVF")
    assert (workdir / "members" / "inferior_seed1" / "eval" / str(restored.step) / "metrics.json").exists()
    saved = json.loads((workdir / "members" / "limb_seed1" / "config.json").read_text())
    assert (saved["leads"], saved["seed"], saved["data_seed"]) == (
        ",".join(leads_lib.LEAD_SETS["limb"]),
        1,
        0,
    )


@pytest.mark.slow
def test_killed_population_resumes_exactly(killed_protocol, reference_population):
    """SIGKILL during a population, then the same command: every member's
    final state equals that of an uninterrupted population bit for bit."""
    workdir, out, saved = killed_protocol
    assert f"population resumed from step {saved}" in out
    _, ref = reference_population
    for name in ("chest_seed0", "chest_seed1", "limb_seed0", "limb_seed1"):
        assert_trees_equal(_state(workdir / "members" / name, STEPS), _state(ref / name, STEPS))


@pytest.mark.slow
def test_member_equals_its_solo_run(reference_population, tmp_path):
    """Member limb_seed1 of the population of 4 reaches the solo run's
    parameters (seed 1, limb leads, the population's data order) within 1e-5
    after 16 steps, with dropout and every augmentation on; its validation
    and best step match too."""
    c, ref = reference_population
    (member,) = [m for m in population.make_members(c) if m.name == "limb_seed1"]
    solo = trainer.train_and_evaluate(population.member_config(c, member, 0), str(tmp_path))
    got, want = _state(ref / member.name, STEPS), _state(tmp_path, STEPS)
    assert int(got["step"]) == int(want["step"]) == STEPS
    np.testing.assert_array_equal(got["rng"], want["rng"])
    assert_params_close(got["params"], want["params"], atol=1e-5)
    other = _state(ref / "limb_seed0", STEPS)  # same leads, other seed: really another model
    assert not np.allclose(other["params"]["fc"]["kernel"]["value"], got["params"]["fc"]["kernel"]["value"])
    manager = checkpointing.make_manager(str(ref / member.name), keep=10, read_only=True)
    assert checkpointing.best_step(manager) == solo["best_step"]
    best = checkpointing.step_metrics(manager, solo["best_step"])
    assert best["val_auroc"] == pytest.approx(solo["best_val_auroc"], abs=1e-6)
