"""Tests of leadmix_jax.model.leadmix: shapes, parameter counts, dropout, the export formulation, dtypes, init."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from leadmix_jax.model.leadmix import ConvNorm, LeadMixMST, count_params
from model_stages import forward, stage_outputs_jit


@pytest.fixture(scope="module")
def model3():
    return LeadMixMST(3, rngs=nnx.Rngs(0))


@pytest.mark.slow
@pytest.mark.parametrize("num_leads,length", [(1, 2500), (3, 3000), (12, 2500)])
def test_output_shape(num_leads, length):
    model = LeadMixMST(num_leads, base=16, rngs=nnx.Rngs(1))
    x = jax.random.normal(jax.random.key(0), (2, length, num_leads))
    logits, acts = stage_outputs_jit(model, x)
    assert logits.shape == (2,) and logits.dtype == jnp.float32
    assert np.all(np.isfinite(logits))
    # Stem and stride-2 stages follow floor((L + 2p - k) / 2) + 1.
    t = (length + 6 - 7) // 2 + 1
    t = (t + 2 - 3) // 2 + 1
    assert acts["stem"].shape == (2, t, 16)
    for stage in range(3):
        t = (t + 2 - 3) // 2 + 1
        assert acts[f"body.{4 * stage + 3}"].shape == (2, t, 16 * 2 ** (stage + 1))


def test_param_counts_match_reference():
    shape_only = lambda *a, **k: nnx.eval_shape(lambda: LeadMixMST(*a, **k, rngs=nnx.Rngs(0)))
    assert count_params(shape_only(3)) == 941_995
    assert count_params(shape_only(12)) == 948_043
    assert count_params(shape_only(12, base=16)) == 109_039


@pytest.mark.slow
def test_wrong_input_width_is_a_clear_error(model3):
    with pytest.raises(ValueError, match=r"expected input \(batch, time, 3\)"):
        model3(jnp.zeros((1, 2500, 12)))


@pytest.mark.slow
def test_dropout_only_in_training(model3):
    x = jax.random.normal(jax.random.key(1), (4, 2500, 3))
    eval1, eval2 = forward(model3, x), forward(model3, x)
    np.testing.assert_array_equal(eval1, eval2)
    train1 = forward(model3, x, jax.random.key(2))
    train2 = forward(model3, x, jax.random.key(3))
    train1_again = forward(model3, x, jax.random.key(2))
    assert np.abs(train1 - eval1).max() > 1e-4
    assert np.abs(train1 - train2).max() > 1e-4
    np.testing.assert_array_equal(train1, train1_again)
    # Rate 0: the key changes nothing but the strided convs' formulation (patch
    # matmuls when training, library convs in evaluation): float rounding only.
    no_dropout = LeadMixMST(3, dropout=0.0, rngs=nnx.Rngs(0))
    np.testing.assert_allclose(
        forward(no_dropout, x, jax.random.key(2)), forward(no_dropout, x), rtol=1e-5, atol=1e-6
    )


def test_strided_conv_forms_agree():
    """Training form (patch matmul) == evaluation form (library conv), values and gradients."""
    conv = ConvNorm(6, 12, 3, groups=2, rngs=nnx.Rngs(0))
    x = jax.random.normal(jax.random.key(0), (2, 51, 6))
    np.testing.assert_allclose(
        conv.conv(x, training=True), conv.conv(x, training=False), rtol=1e-5, atol=1e-5
    )
    grad = lambda training: jax.grad(lambda m: (m.conv(x, training) ** 2).sum())(conv).kernel[...]
    np.testing.assert_allclose(grad(True), grad(False), rtol=1e-4, atol=1e-4)


@pytest.mark.slow
def test_export_formulation_agrees_on_the_whole_model():
    """``export=True`` (grouped depthwise, TFLite's form) == the training form."""
    x = jax.random.normal(jax.random.key(0), (2, 2500, 3))
    default = LeadMixMST(3, rngs=nnx.Rngs(0))
    export = LeadMixMST(3, export=True, rngs=nnx.Rngs(0))
    np.testing.assert_allclose(forward(default, x), forward(export, x), rtol=1e-5, atol=1e-5)


@pytest.mark.slow
def test_bfloat16_compute_keeps_float32_params():
    x = jax.random.normal(jax.random.key(0), (2, 2500, 3))
    f32 = LeadMixMST(3, rngs=nnx.Rngs(0))
    bf16 = LeadMixMST(3, dtype=jnp.bfloat16, rngs=nnx.Rngs(0))
    params = jax.tree.leaves(nnx.state(bf16, nnx.Param))
    assert all(p.dtype == jnp.float32 for p in params)
    logits, acts = stage_outputs_jit(bf16, x)
    assert acts["body.0"].dtype == jnp.bfloat16 and logits.dtype == jnp.float32
    np.testing.assert_allclose(logits, forward(f32, x), atol=0.1)


@pytest.mark.slow
def test_jit_of_split_state_matches_eager(model3):
    graphdef, state = nnx.split(model3)
    x = jax.random.normal(jax.random.key(0), (2, 2500, 3))

    @jax.jit
    def forward(state, x):
        return nnx.merge(graphdef, state)(x)

    np.testing.assert_allclose(forward(state, x), model3(x), rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_init_follows_pytorch_defaults(model3):
    block = model3.blocks[0]
    bound = 1 / np.sqrt(3)
    assert np.abs(np.asarray(block.ms1_dw[...])).max() <= bound
    assert np.abs(np.asarray(block.ms1_dw[...])).max() > 0.9 * bound
    xavier = np.sqrt(6 / (48 + 144))
    assert np.abs(np.asarray(block.mha.query[...])).max() <= xavier
    np.testing.assert_array_equal(block.mha.query_bias[...], 0)
    emb = np.asarray(model3.blocks[2].lead_embed[...])
    assert 0.7 < emb.std() < 1.3  # N(0, 1)
