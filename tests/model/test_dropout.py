"""Tests of leadmix_jax.model.dropout: keep rate, independence and the hand-written gradient."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from leadmix_jax.model import dropout as dropout_lib


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
