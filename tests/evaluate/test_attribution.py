"""Attributions and their checks (leadmix_jax/evaluate/attribution.py,
attribution_checks.py) on a small trained checkpoint and on the lead-robust model."""

import jax
import numpy as np
import pytest
from flax import nnx

import builtdata
from leadmix_jax import mesh as mesh_lib
from leadmix_jax.evaluate import attribution, attribution_checks as checks, restore
from leadmix_jax.input import built, norm_stats, pipeline
from leadmix_jax.model import lead_robust, variants


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    workdir = builtdata.trained_workdir(tmp_path_factory)
    model = restore.restore(workdir, "best")
    builder = built.load_builder(builtdata.data_dir(tmp_path_factory), builtdata.NAME)
    x = np.concatenate(
        [b["ecg"][b["mask"] > 0] for b in pipeline.eval_batches(builder, "test", model.stats, 8)]
    )
    return model, x[:8]


# One Settings for every test here: each method compiles once per module (the
# compiled calls are cached by Settings); 32 steps keep IG complete within 1 %.
SETTINGS = attribution.Settings(ig_steps=32, smooth_samples=4)


@pytest.mark.slow
def test_integrated_gradients_are_complete(trained):
    model, x = trained
    out = checks.completeness(attribution.Explainer.of(model, SETTINGS), x)
    assert out["relative_error_total"] < 0.01 and out["windows"] == 8 and out["steps"] == 32


@pytest.mark.slow
def test_every_method_is_one_batched_call_and_grad_cam_splits_its_time_map(trained):
    model, x = trained
    ex = attribution.Explainer.of(model, SETTINGS)
    for method in attribution.METHODS:
        a8, a5 = ex.attribute(method, x, 8), ex.attribute(method, x[:5], 8)  # 3 rows of padding: same values
        assert a8.shape == x.shape and np.isfinite(a8).all()
        np.testing.assert_allclose(a5, a8[:5], rtol=1e-4, atol=1e-6)
    cam = ex.attribute("grad_cam", x)
    model_ = nnx.merge(model.runner.graphdef, model.params)
    h = model_.features(x)
    dh = jax.grad(lambda a: model_.head(a).sum())(h)
    coarse = np.maximum(np.einsum("blc,bc->bl", np.asarray(h), np.asarray(dh).mean(axis=1)), 0)
    # summed over leads, the map is the rectified Grad-CAM, linearly interpolated to the input's samples
    t, steps = x.shape[1], coarse.shape[1]
    centres = (np.arange(steps) + 0.5) * t / steps - 0.5
    want = np.stack([np.interp(np.arange(t), centres, c) for c in coarse])
    np.testing.assert_allclose(cam.sum(axis=-1), want, rtol=0, atol=1e-3 * want.max())
    with pytest.raises(ValueError, match="unknown attribution method"):
        ex.attribute("lime", x)


def test_a_lead_robust_model_gives_absent_leads_nothing():
    model = variants.build_model({"variant": "lead_robust", "base": 8, "depth": 1, "heads": 2}, 12, seed=0)
    graphdef, params = nnx.split(model, nnx.Param)
    mask = lead_robust.lead_mask("II,V2")
    ex = attribution.Explainer(
        graphdef, params, mesh_lib.make_mesh(), mask, attribution.Settings(ig_steps=4, smooth_samples=2)
    )
    x = np.random.default_rng(0).standard_normal((8, 2500, 12)).astype(np.float32)
    for method in attribution.METHODS:
        a = ex.attribute(method, x)
        absent = mask == 0
        assert np.all(a[..., absent] == 0) and np.abs(a[..., ~absent]).sum() > 0, method


@pytest.mark.slow
def test_randomization_and_pointing(trained):
    model, x = trained
    ex = attribution.Explainer.of(model, SETTINGS)
    out = checks.randomization(ex, x[:4], checks.fresh_parameters(model))
    assert out["grad_cam"]["steps"][0] == "fc" and out["grad_cam"]["steps"][-1] == "stem"
    for method in attribution.METHODS:
        rho = out[method]["rank_correlation"]
        assert len(rho) == 2 + 2 * model.meta["model"]["depth"] and all(-1 <= r <= 1 for r in rho if r == r)
        assert out[method]["flagged"] == (rho[-1] > checks.RANDOMIZATION_FLAG)
    # Grad-CAM's maps come from the model: with every stage random they are another map
    assert abs(out["grad_cam"]["rank_correlation"][-1]) < 0.3
    data = checks.synthetic_mi(12, territories=("inferior",))
    assert data.windows.shape == data.region.shape == (12, 2500, 12)
    point = checks.pointing(ex, data, norm_stats.ZScore(model.stats), model.leads)
    assert 0 < point["chance"] < 1
    for method in ("integrated_gradients", "smoothgrad"):
        assert point[method]["share"] > point["chance"]  # on the Q/ST/T span of the beats
    # the computation against a region that means nothing: beats moved by half a beat
    shifted = checks.SyntheticMI(data.windows, np.roll(data.region, 100, axis=1), data.territories)
    moved = checks.pointing(ex, shifted, norm_stats.ZScore(model.stats), model.leads)
    assert moved["integrated_gradients"]["share"] < point["integrated_gradients"]["share"]
