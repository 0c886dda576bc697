"""Tests of leadmix_jax.model.norm: GroupNorm (+SiLU, hand-written VJP) against its definition and autodiff, and the variadic reductions."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from leadmix_jax.model import norm


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
