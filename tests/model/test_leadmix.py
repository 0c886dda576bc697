"""Tests of leadmix_jax.model.leadmix and leadmix_jax.model.layers."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from leadmix_jax.model.leadmix import ConvNorm, LeadMixMST, count_params
from leadmix_jax.model import norm
from leadmix_jax.model import dropout as dropout_lib
from leadmix_jax.model import conv
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


def _conv_against_library(form, length, k, stride, pad):
    """``form`` and the library conv on random ``(2, length, 5)`` input and
    ``(k, 5, 4)`` kernel: checks shape and values, returns ``(x, w, got)``."""
    x = jax.random.normal(jax.random.key(0), (2, length, 5))
    w = jax.random.normal(jax.random.key(1), (k, 5, 4))
    got = form(x, w, stride, pad)
    want = conv.strided_conv(x, w, stride, pad)
    assert got.shape == want.shape == (2, (length + 2 * pad - k) // stride + 1, 4)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    return x, w, got


@pytest.mark.parametrize(
    "length, k, stride, pad",
    [(2500, 7, 2, 3), (50, 3, 2, 1), (12, 5, 3, 2), (8, 2, 2, 0), (6, 7, 2, 3), (12, 3, 2, 0)],
)
def test_phase_conv_matches_library_conv(length, k, stride, pad):
    """The stem's evaluation form == the library conv, for the stem's shape
    and for other strides, kernels and paddings (a kernel longer than the
    input included)."""
    x, w, got = _conv_against_library(conv.strided_conv_phases, length, k, stride, pad)
    # Hand value: the first output sees pad zeros, then x[0], x[1], ...
    np.testing.assert_allclose(
        got[0, 0], sum(x[0, i - pad] @ w[i] for i in range(pad, k)), rtol=1e-5, atol=1e-5
    )
    with pytest.raises(ValueError, match="multiple of the stride"):
        conv.strided_conv_phases(x[:, :-1], w, 2, pad)


@pytest.mark.parametrize(
    "length, k, stride, pad",
    [(51, 3, 2, 1), (50, 3, 2, 1), (64, 7, 2, 3), (40, 5, 3, 2), (41, 2, 2, 0)],
)
def test_patch_conv_value_and_gradients(length, k, stride, pad):
    """The patch matmul and its hand-written VJP (dx from the patches'
    cotangent in one loop) == the library conv and autodiff, for the stem's
    and the downsampling convs' shapes and for other strides, kernels and
    odd/even lengths."""
    x, w, got = _conv_against_library(conv.strided_conv_patches, length, k, stride, pad)
    t = jax.random.normal(jax.random.key(2), got.shape)
    loss = lambda f: lambda x, w: (f(x, w, stride, pad) * t).sum()
    got_g = jax.grad(loss(conv.strided_conv_patches), argnums=(0, 1))(x, w)
    want_g = jax.grad(loss(conv.strided_conv), argnums=(0, 1))(x, w)
    for g, r in zip(got_g, want_g):
        assert g.shape == r.shape
        np.testing.assert_allclose(g, r, rtol=1e-4, atol=1e-4)
    # Hand value: x[0, 0]'s gradient collects every output tap that reads it.
    first = sum(t[0, o] @ w[i].T for o in range(got.shape[1]) for i in range(k) if stride * o + i - pad == 0)
    np.testing.assert_allclose(got_g[0][0, 0], first, rtol=1e-5, atol=1e-5)


def test_dropout_layer_statistics():
    x = jnp.ones((200, 500))
    y = dropout_lib.dropout(x, 0.1, jax.random.key(0))
    kept = np.asarray(y != 0)
    assert abs(kept.mean() - 0.9) < 0.005
    np.testing.assert_allclose(np.asarray(y)[kept], 1 / 0.9, rtol=1e-6)
    # Independent masks across the batch (PyTorch semantics, not broadcast).
    assert not np.array_equal(kept[0], kept[1])


@pytest.mark.parametrize("shape", [(4, 50, 6), (3, 7, 5)])  # even and odd channel counts
def test_dropout_gradient_is_the_scaled_mask(shape):
    """The hand-written VJP: the gradient is the cotangent where kept, times 1/(1-p), else 0."""
    x = jax.random.normal(jax.random.key(0), shape)
    t = jax.random.normal(jax.random.key(1), shape)
    key = jax.random.key(3)
    y, vjp = jax.vjp(lambda x: dropout_lib.dropout(x, 0.25, key), x)
    (dx,) = vjp(t)
    kept = np.asarray(y) != 0
    assert 0 < kept.mean() < 1
    np.testing.assert_allclose(np.asarray(y)[kept], np.asarray(x)[kept] / 0.75, rtol=1e-6)
    np.testing.assert_allclose(dx, np.where(kept, np.asarray(t) / 0.75, 0.0), rtol=1e-6)
    # Same under jit and vmap (population members each with their own key).
    keys = jax.random.split(key, 2)
    grads = jax.jit(jax.vmap(jax.grad(lambda x, k: (dropout_lib.dropout(x, 0.25, k) * t).sum())))(
        jnp.stack([x, x]), keys
    )
    for g, k in zip(grads, keys):
        kept_k = np.asarray(dropout_lib.dropout(jnp.ones(shape), 0.25, k)) != 0
        np.testing.assert_allclose(g, np.where(kept_k, np.asarray(t) / 0.75, 0.0), rtol=1e-6)


@pytest.mark.parametrize("dilation", [1, 2])
def test_depthwise_conv_value_and_gradient(dilation):
    """Shifted sums with the hand-written VJP == the grouped library conv."""
    x = jax.random.normal(jax.random.key(0), (2, 101, 8))
    w = jax.random.normal(jax.random.key(1), (3, 1, 8))
    t = jax.random.normal(jax.random.key(2), (2, 101, 8))
    a = conv.depthwise_conv(x, w, dilation)
    np.testing.assert_allclose(a, conv.depthwise_conv_grouped(x, w, dilation), rtol=1e-5, atol=1e-5)
    # Hand value: output at t=0, channel 0, with zero padding on the left.
    expected = w[1, 0, 0] * x[0, 0, 0] + w[2, 0, 0] * x[0, dilation, 0]
    np.testing.assert_allclose(a[0, 0, 0], expected, rtol=1e-6)
    loss = lambda f: lambda x, w: (f(x, w, dilation) * t).sum()
    got = jax.grad(loss(conv.depthwise_conv), argnums=(0, 1))(x, w)
    ref = jax.grad(loss(conv.depthwise_conv_grouped), argnums=(0, 1))(x, w)
    for g, r in zip(got, ref):
        np.testing.assert_allclose(g, r, rtol=1e-4, atol=1e-4)


@pytest.mark.slow
def test_group_norm_silu_value_and_gradient():
    """Fused GroupNorm+SiLU (one-pass statistics, hand-written VJP) == autodiff."""
    x = jax.random.normal(jax.random.key(0), (2, 50, 16)) * 3 + 1
    scale = 1 + 0.1 * jax.random.normal(jax.random.key(1), (16,))
    bias = 0.1 * jax.random.normal(jax.random.key(2), (16,))
    t = jax.random.normal(jax.random.key(3), (2, 50, 16))
    ref_fn = lambda x, s, b: jax.nn.silu(norm.group_norm(x, s, b, 4))
    np.testing.assert_allclose(
        norm.group_norm_silu(x, scale, bias, 4), ref_fn(x, scale, bias), rtol=1e-5, atol=1e-5
    )
    loss = lambda f: lambda *a: (f(*a) * t).sum()
    got = jax.grad(loss(lambda x, s, b: norm.group_norm_silu(x, s, b, 4)), argnums=(0, 1, 2))(x, scale, bias)
    ref = jax.grad(loss(ref_fn), argnums=(0, 1, 2))(x, scale, bias)
    for g, r in zip(got, ref):
        np.testing.assert_allclose(g, r, rtol=1e-4, atol=1e-4)


def test_strided_conv_output_length():
    x = jax.random.normal(jax.random.key(0), (2, 625, 5))
    w = jax.random.normal(jax.random.key(1), (3, 5, 4))
    y = conv.strided_conv(x, w, 2, 1)
    assert y.shape == (2, 313, 4)
    # Hand value: the first output sees a zero, x[0] and x[1].
    np.testing.assert_allclose(y[0, 0], x[0, 0] @ w[1] + x[0, 1] @ w[2], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("pool", [conv.max_pool, conv.max_pool_window])
def test_max_pool_pads_with_minus_inf(pool):
    x = -jnp.arange(1.0, 7.0).reshape(1, 6, 1)  # all negative: zero padding would win
    np.testing.assert_array_equal(pool(x)[0, :, 0], [-1.0, -2.0, -4.0])


@pytest.mark.parametrize(
    "length,window,stride,pad", [(1250, 3, 2, 1), (11, 3, 2, 1), (12, 5, 3, 2), (9, 2, 2, 0)]
)
def test_max_pool_gradient_goes_to_the_first_maximum(length, window, stride, pad):
    """As PyTorch: each output's gradient goes to the first maximal input of
    its window (ties included), never to the padding."""
    rng = np.random.default_rng(length)
    x = rng.integers(-3, 3, (2, length, 4)).astype(np.float32)  # small integers: many ties
    g = rng.normal(size=(2, (length + 2 * pad - window) // stride + 1, 4)).astype(np.float32)
    out, vjp = jax.vjp(lambda v: conv.max_pool(v, window, stride, pad), jnp.asarray(x))
    want_out, want_dx = np.zeros(g.shape, np.float32), np.zeros(x.shape, np.float32)
    for b, t, c in np.ndindex(*g.shape):
        idx = [i for i in range(stride * t - pad, stride * t - pad + window) if 0 <= i < length]
        first = idx[int(np.argmax(x[b, idx, c]))]  # argmax: the first maximal one
        want_out[b, t, c] = x[b, first, c]
        want_dx[b, first, c] += g[b, t, c]
    np.testing.assert_array_equal(out, want_out)
    np.testing.assert_allclose(vjp(jnp.asarray(g))[0], want_dx, rtol=1e-6, atol=1e-6)
    # The evaluation form gives the same values.
    np.testing.assert_array_equal(conv.max_pool_window(jnp.asarray(x), window, stride, pad), want_out)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_token_mean_and_max_in_one_reduction(dtype):
    """The evaluation form of the LCM's statistics == mean and max over tokens."""
    t = jnp.tanh(jax.random.normal(jax.random.key(0), (3, 12, 8))).astype(dtype)
    mean, top = norm.mean_and_max(t)
    assert mean.dtype == top.dtype == dtype and mean.shape == top.shape == (3, 8)
    np.testing.assert_array_equal(top.astype(jnp.float32), t.max(axis=1).astype(jnp.float32))
    np.testing.assert_allclose(mean.astype(jnp.float32), t.mean(axis=1).astype(jnp.float32), rtol=1e-6)


def test_group_norm_matches_definition():
    x = jax.random.normal(jax.random.key(0), (2, 50, 16)) * 3 + 1
    y = norm.group_norm(x, jnp.ones(16), jnp.zeros(16), groups=4, eps=1e-5)
    g = np.asarray(x).reshape(2, 50, 4, 4)
    ref = (g - g.mean(axis=(1, 3), keepdims=True)) / np.sqrt(g.var(axis=(1, 3), keepdims=True) + 1e-5)
    np.testing.assert_allclose(y, ref.reshape(2, 50, 16), rtol=1e-4, atol=1e-5)


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
