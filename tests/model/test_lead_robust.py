"""The lead-robust LeadMix-MST (issue #12): absent leads have no effect, every
paper lead set and random subsets run, masks are drawn in the train step, and
one tiny model trains, validates, evaluates per lead set, reports and
predicts on 1- and 3-lead records."""

import json
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import builtdata
from leadmix_jax.evaluate import evaluation, tables
from leadmix_jax.model import lead_robust
from leadmix_jax.deploy import predict
from leadmix_jax.train import trainer
from leadmix_jax import synthetic as synthetic
from leadmix_jax.errors import UserError
from leadmix_jax.data.leads import CANONICAL_LEADS, LEAD_SETS
from leadmix_jax.train import step as step_lib
from leadmix_jax.model import variants
from leadmix_jax.input import built
from leadmix_jax.evaluate import restore

TINY = {"base": 8, "depth": 1, "heads": 2, "dropout": 0.1, "variant": "lead_robust"}
SAMPLER_CFG = {
    "paper_sets": ",".join(LEAD_SETS),
    "paper_set_prob": 0.5,
    "random_min_leads": 1,
    "random_max_leads": 12,
}


@pytest.fixture(scope="module")
def model():
    return variants.build_model(TINY, 12, seed=0)


@pytest.fixture(scope="module")
def forward(model):
    """Jitted ``(x (B, T, 12), mask (B, 12)) -> (B,)`` logits, compiled once for the module."""
    graphdef, params = nnx.split(model, nnx.Param)
    f = jax.jit(lambda p, x, m: nnx.merge(graphdef, p)(x, m))
    return lambda x, m: f(params, x, np.broadcast_to(m, (x.shape[0], 12)))


@pytest.fixture(scope="module")
def x():
    return np.random.default_rng(0).normal(size=(4, 2500, 12)).astype(np.float32)


def _paper_and_random_masks():
    masks = {name: lead_robust.lead_mask(name) for name in LEAD_SETS}
    rng = np.random.default_rng(1)
    for size in (1, 2, 5, 11):
        m = np.zeros(12, np.float32)
        m[rng.choice(12, size, replace=False)] = 1
        masks[f"random{size}"] = m
    return masks


def test_absent_leads_have_no_effect(model, forward, x):
    rng = np.random.default_rng(2)
    for name, mask in _paper_and_random_masks().items():
        ref = np.asarray(forward(x, mask))
        other = x.copy()
        absent = np.flatnonzero(mask == 0)
        other[:, :, absent] = rng.normal(scale=50.0, size=(4, 2500, absent.size))
        if absent.size:
            other[:, :7, absent[0]] = np.nan  # even NaN in an absent lead changes nothing
        np.testing.assert_array_equal(np.asarray(forward(other, mask)), ref, err_msg=name)
        # ... while a present lead does matter
        moved = x.copy()
        moved[:, :, np.flatnonzero(mask)[0]] += 1.0
        assert np.abs(np.asarray(forward(moved, mask)) - ref).max() > 1e-6, name
    # a (12,) mask is that mask for every example; no mask = all 12 present
    m = lead_robust.lead_mask("lateral")
    both = jax.jit(lambda x: (model(x, m), model(x)))(x)
    np.testing.assert_allclose(np.asarray(both[0]), np.asarray(forward(x, m)), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        np.asarray(both[1]), np.asarray(forward(x, np.ones(12, np.float32))), rtol=1e-5, atol=1e-6
    )


def test_every_paper_set_and_random_subsets_run(model, forward, x):
    masks = _paper_and_random_masks()
    per_example = np.stack(list(masks.values())[:4])  # 4 examples, 4 different subsets at once
    out = {name: np.asarray(forward(x, m)) for name, m in masks.items()}
    for name, logits in out.items():
        assert logits.shape == (4,) and logits.dtype == np.float32 and np.isfinite(logits).all(), name
    assert len({np.round(v[0], 6) for v in out.values()}) == len(out)  # every subset is its own input
    mixed = np.asarray(forward(x, per_example))
    for i, name in enumerate(list(masks)[:4]):
        np.testing.assert_allclose(mixed[i], out[name][i], rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match=r"\(batch, time, 12\)"):
        model(x[:, :, :3], lead_robust.lead_mask("inferior"))
    # parameters: the official model with 24 input channels (12 leads + 12 presence flags)
    official = variants.build_model({k: v for k, v in TINY.items() if k != "variant"}, 24, seed=0)
    assert jax.tree.map(jnp.shape, nnx.state(model.core, nnx.Param)) == jax.tree.map(
        jnp.shape, nnx.state(official, nnx.Param)
    )


def test_mask_sampler():
    sampler = lead_robust.MaskSampler.from_config(SAMPLER_CFG)
    masks = np.asarray(sampler(jax.random.PRNGKey(0), 4000))
    assert masks.shape == (4000, 12) and set(np.unique(masks)) == {0.0, 1.0}
    sizes = masks.sum(1)
    assert sizes.min() >= 1 and sizes.max() == 12
    paper = {tuple(lead_robust.lead_mask(n)) for n in LEAD_SETS}
    in_paper = np.mean([tuple(m) in paper for m in masks])
    # half paper sets, plus random subsets that happen to equal one (sizes 3, 6, 12)
    assert 0.5 < in_paper < 0.65, in_paper
    np.testing.assert_array_equal(np.asarray(sampler(jax.random.PRNGKey(0), 4000)), masks)  # keyed
    assert not np.array_equal(np.asarray(sampler(jax.random.PRNGKey(1), 4000)), masks)
    # every lead is present in some random 1-lead mask; only paper sets with p = 1
    one = lead_robust.MaskSampler.from_config(
        {**SAMPLER_CFG, "paper_set_prob": 0.0, "random_min_leads": 1, "random_max_leads": 1}
    )
    ones = np.asarray(one(jax.random.PRNGKey(3), 600))
    assert (ones.sum(1) == 1).all() and (ones.sum(0) > 20).all()
    only = lead_robust.MaskSampler.from_config(
        {**SAMPLER_CFG, "paper_sets": "inferior,lateral", "paper_set_prob": 1.0}
    )
    got = {tuple(m) for m in np.asarray(only(jax.random.PRNGKey(4), 200))}
    assert got == {tuple(lead_robust.lead_mask("inferior")), tuple(lead_robust.lead_mask("lateral"))}
    with pytest.raises(ValueError, match="random_min_leads"):
        lead_robust.MaskSampler.from_config({**SAMPLER_CFG, "random_min_leads": 0})


@pytest.mark.slow
def test_train_step_masks_absent_leads(x):
    """With every mask 'inferior', a step on data whose other leads differ gives
    the same parameters bit for bit: the masks are applied inside the step."""
    m = variants.build_model(TINY, 12, seed=0)
    graphdef, params = nnx.split(m, nnx.Param)
    tx = optax.adamw(1e-3)
    sampler = lead_robust.MaskSampler.from_config(
        {**SAMPLER_CFG, "paper_sets": "inferior", "paper_set_prob": 1.0}
    )
    state = step_lib.TrainState(
        step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params), rng=jax.random.PRNGKey(1)
    )
    step = jax.jit(
        lambda s, b: step_lib.train_step(
            s, b, graphdef=graphdef, tx=tx, label_smoothing=0.0, pos_weight=1.0, lead_masks=sampler
        )
    )
    label = np.array([0, 1, 0, 1], np.float32)
    other = x.copy()
    other[:, :, [0, 3, 4, 6, 7, 8, 9, 10, 11]] *= -3.0
    a, ma = step(state, {"ecg": x, "label": label})
    b, mb = step(state, {"ecg": other, "label": label})
    assert float(ma["loss"]) == float(mb["loss"]) and float(ma["grad_norm"]) > 0
    for u, v in zip(jax.tree.leaves(a.params), jax.tree.leaves(b.params), strict=True):
        np.testing.assert_array_equal(np.asarray(u), np.asarray(v))
    moved = x.copy()
    moved[:, :, 1] *= -3.0  # lead II is present
    c, mc = step(state, {"ecg": moved, "label": label})
    assert float(mc["loss"]) != float(ma["loss"])


# ----------------------------------------------------------------------------
# One tiny lead-robust model end to end (trained once for the module).


def robust_config(data, **overrides):
    from configs import lead_robust as robust_cfg

    c = robust_cfg.get_config()
    tiny = builtdata.make_config(data)
    for key in (
        "data_dir",
        "train_dataset",
        "batch_size",
        "eval_batch_size",
        "workers",
        "input_mode",
        "steps_per_dispatch",
        "norm_max_examples",
        "eval_targets",
        "num_train_steps",
        "eval_every_steps",
        "checkpoint_every_steps",
        "log_every_steps",
    ):
        c[key] = tiny[key]
    for key in ("base", "depth", "heads"):
        c.model[key] = tiny.model[key]
    c.bootstrap_samples = 20
    c.num_train_steps = 4
    c.eval_every_steps = 4
    c.checkpoint_every_steps = 4
    c.lead_robust.val_sets = "inferior,lateral"
    c.eval_leads = "inferior,lateral"
    c.eval_targets = f"{builtdata.NAME}:test"
    return builtdata.apply_overrides(c, overrides)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    data = builtdata.data_dir(tmp_path_factory)
    workdir = tmp_path_factory.mktemp("robust")
    config = robust_config(data, input_mode="device")  # masks drawn inside the device-resident step
    last = trainer.train_and_evaluate(config, str(workdir))
    return data, workdir, config, last


@pytest.mark.slow
def test_trains_with_masks_and_validates_per_set(trained):
    _, workdir, _, last = trained
    assert np.isfinite(last["loss"])
    assert last["val_auroc"] == pytest.approx((last["val_auroc_inferior"] + last["val_auroc_lateral"]) / 2)
    assert last["best_step"] == 4
    stats = json.loads((workdir / "norm_stats.json").read_text())
    assert stats["leads"] == list(CANONICAL_LEADS)
    model = restore.restore(str(workdir))
    assert model.is_lead_robust and model.leads == CANONICAL_LEADS and model.input_leads == CANONICAL_LEADS
    assert model.meta["lead_robust"]["paper_set_prob"] == 0.5
    assert model.with_leads("V1,V3,V5").input_leads == ("V1", "V3", "V5")


@pytest.mark.slow
def test_grain_mode_trains_too(trained, tmp_path):
    data = trained[0]
    last = trainer.train_and_evaluate(
        robust_config(
            data,
            input_mode="grain",
            num_train_steps=2,
            eval_every_steps=2,
            checkpoint_every_steps=2,
            **{"lead_robust.val_sets": "inferior"},
        ),
        str(tmp_path),
    )
    assert np.isfinite(last["loss"]) and 0.0 <= last["val_auroc_inferior"] <= 1.0


@pytest.mark.slow
def test_evaluate_per_lead_set_and_report(trained, tmp_path_factory, tmp_path):
    data, workdir, config, _ = trained
    result = evaluation.evaluate(config, str(workdir))
    assert set(result["lead_sets"]) == {"inferior", "lateral"}
    probs = {}
    for name, leads in (("inferior", ["II", "III", "aVF"]), ("lateral", ["I", "aVL", "V5"])):
        out = pathlib.Path(result["out_dir"]) / f"leads_{name}"
        rep = json.loads((out / "metrics.json").read_text())
        assert rep["leads"] == leads and rep["lead_robust"] is True
        assert "lead-robust" in (out / "summary.md").read_text()
        probs[name] = [r.split(",")[-1] for r in (out / "predictions.csv").read_text().splitlines()[1:]]
        assert len(probs[name]) == builtdata.num_windows("test")
    assert probs["inferior"] != probs["lateral"]
    # the same numbers as running the model on the subset's mask directly
    model = restore.restore(str(workdir)).with_leads("inferior")
    builder = builtdata_builder(data)
    direct = model.run_split(builder, "test", 8)["prob"]
    np.testing.assert_allclose(sorted(float(p) for p in probs["inferior"]), sorted(direct), atol=2e-6)
    # --config.leads alone (no eval_leads) selects one set
    one = evaluation.evaluate(robust_config(data, eval_leads="", leads="I-II-V3"), str(workdir))
    assert set(one["lead_sets"]) == {"I-II-V3"}
    # report: the dedicated inferior model's row, then the single model's rows
    dedicated, _ = builtdata.evaluated_workdir(tmp_path_factory)
    table = tables.make_report([str(workdir), dedicated], str(tmp_path / "rep"))
    names = [r["lead_set"] for r in table["table"]["rows"]]
    assert names == ["inferior", "inferior (one model)", "lateral (one model)", "I-II-V3 (one model)"]
    assert "(one model) are one lead-robust checkpoint" in table["markdown"]
    row = table["table"]["rows"][1]
    inferior = json.loads((pathlib.Path(result["out_dir"]) / "leads_inferior" / "metrics.json").read_text())
    expected = inferior["results"][f"{builtdata.NAME}:test"]["levels"]["patient"]["thresholds"]["0.5"]
    assert row["cells"][(f"{builtdata.NAME}:test", "auroc")][0] == pytest.approx(expected["metrics"]["auroc"])


def builtdata_builder(data):

    return built.load_builder(data, builtdata.NAME)


@pytest.mark.slow
def test_predict_on_one_and_three_lead_records(trained, tmp_path, capsys):
    _, workdir, _, _ = trained
    signal = synthetic.synth_record(np.random.default_rng(7), 500, 20, True)  # (T, 12) canonical
    np.save(tmp_path / "one.npy", signal[:, [1]])
    one = predict.predict_record(str(workdir), str(tmp_path / "one.npy"), fs=500, lead_names="ii")
    assert one["leads"] == ["II"] and one["lead_robust"] is True and one["num_windows"] == 2
    assert "leads II (lead-robust checkpoint" in capsys.readouterr().out
    # three leads in any order: used in canonical order, same answer as the masked 12-lead input
    np.save(tmp_path / "three.npy", signal[:, [10, 0, 4]])
    three = predict.predict_record(
        str(workdir), str(tmp_path / "three.npy"), fs=500, lead_names="V5,I,aVL", write=False
    )
    assert three["leads"] == ["I", "aVL", "V5"]
    model = predict.load_model(str(workdir)).with_leads("lateral")
    from leadmix_jax.data import preprocessing

    pre = preprocessing.preprocess_record(signal[:, [0, 4, 10]], 500)
    windows = np.zeros((pre.num_kept, 2500, 12), np.float32)
    windows[:, :, [0, 4, 10]] = pre.windows
    np.testing.assert_allclose(
        three["record_probability"], float(np.mean(model.predict_windows(windows))), atol=1e-6
    )
    assert one["record_probability"] != three["record_probability"]
    with pytest.raises(ValueError, match="no standard ECG lead"):
        predict.predict_record(str(workdir), str(tmp_path / "one.npy"), fs=500, lead_names="vx", write=False)


@pytest.mark.slow
def test_export_for_one_subset_matches_the_masked_model(trained, tmp_path):
    """A lead-robust checkpoint exported for the inferior leads takes 3-lead
    windows in mV and gives the masked 12-lead model's logits."""
    from leadmix_jax.deploy import export

    data, workdir, config, _ = trained
    rep = export.export(
        config,
        str(workdir),
        export.ExportSpec(format="stablehlo", leads="inferior", latency_runs=1),
        out_dir=str(tmp_path),
    )
    assert rep["passed"] and rep["max_abs_logit_error"] <= export.FLOAT_MAX_LOGIT_ERROR
    assert rep["source"]["lead_robust"] is True
    sidecar = json.loads((tmp_path / "model.stablehlo.json").read_text())
    assert sidecar["leads"] == ["II", "III", "aVF"] and sidecar["input"]["shape"][2] == 3
    assert sidecar["norm_stats"]["leads"] == ["II", "III", "aVF"]
    exp = jax.export.deserialize(bytearray((tmp_path / "model.stablehlo").read_bytes()))
    assert exp.in_avals[0].shape[1:] == (2500, 3)
    # the same probabilities as the restored model on the inferior mask (12-lead input, others zero)
    signal = synthetic.synth_record(np.random.default_rng(3), 250, 10, True)[None].astype(np.float32)
    three = signal[:, :, [1, 2, 5]]
    model = restore.restore(str(workdir)).with_leads("inferior")
    twelve = np.zeros_like(signal)
    twelve[:, :, [1, 2, 5]] = three
    want = model.predict_windows(twelve)
    got = 1 / (1 + np.exp(-np.asarray(exp.call(three), np.float64)))
    np.testing.assert_allclose(got, want, atol=1e-5)
    with pytest.raises(UserError, match="lead"):
        export.export(config, str(workdir), export.ExportSpec(format="stablehlo", leads="II,X9"))
