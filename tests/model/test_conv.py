"""Tests of leadmix_jax.model.conv: every formulation of the convs and the max-pool against the library op, hand values and gradients."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from leadmix_jax.model import conv


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
