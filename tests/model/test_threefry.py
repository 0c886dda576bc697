"""Tests of leadmix_jax.model.threefry: the elementwise threefry bits equal jax.random's."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from leadmix_jax.model import threefry
from leadmix_jax.model import dropout as dropout_lib

KEYS = {
    "raw": jax.random.PRNGKey(0),
    "raw split": jax.random.split(jax.random.PRNGKey(12345), 3)[2],
    "typed": jax.random.key(7),
}
SHAPES = [(5,), (3, 4, 3, 3), (2, 625, 24), (7, 1)]


def test_hash_known_answer():
    """Threefry-2x32, 20 rounds: the zero-key, zero-counter answer of the Random123 test vectors."""
    zero = np.uint32(0)
    x0, x1 = threefry.hash2x32(zero, zero, jnp.zeros((1,), jnp.uint32), jnp.zeros((1,), jnp.uint32))
    assert (int(x0[0]), int(x1[0])) == (0x6B200159, 0x99BA4EFE)


@pytest.mark.parametrize("key", KEYS.values(), ids=KEYS.keys())
@pytest.mark.parametrize("shape", SHAPES)
def test_bits_and_bernoulli_equal_jax_random(key, shape):
    bits = jax.jit(threefry.random_bits, static_argnums=1)(key, shape)
    np.testing.assert_array_equal(bits, jax.random.bits(key, shape, jnp.uint32))
    keep = jax.jit(threefry.bernoulli, static_argnums=(1, 2))(key, 0.9, shape)
    np.testing.assert_array_equal(keep, jax.random.bernoulli(key, 0.9, shape))


@pytest.mark.parametrize("key", KEYS.values(), ids=KEYS.keys())
def test_halves_are_the_split_draws(key):
    """Element 2j gets the low, 2j+1 the high 16 bits of draw j of the half-width shape."""
    halves = jax.jit(threefry.random_halves, static_argnums=1)(key, (4, 9, 6))
    draws = np.asarray(jax.random.bits(key, (4, 9, 3), jnp.uint32))
    np.testing.assert_array_equal(halves[..., 0::2], draws & 0xFFFF)
    np.testing.assert_array_equal(halves[..., 1::2], draws >> 16)
    with pytest.raises(ValueError, match="even last axis"):
        threefry.random_halves(key, (4, 9, 5))


def test_other_prng_implementations_use_jax_random():
    key = jax.random.key(3, impl="rbg")
    np.testing.assert_array_equal(threefry.random_bits(key, (8, 6)), jax.random.bits(key, (8, 6), jnp.uint32))
    np.testing.assert_array_equal(
        threefry.bernoulli(key, 0.5, (8, 5)), jax.random.bernoulli(key, 0.5, (8, 5))
    )


def test_dropout_mask_is_the_jax_random_mask():
    """dropout_lib.dropout keeps element (..., c) where its 16-bit half of jax.random's draw >= rate * 2**16."""
    x = jax.random.normal(jax.random.key(1), (3, 50, 8))
    key = jax.random.PRNGKey(4)
    y = jax.jit(dropout_lib.dropout, static_argnums=1)(x, 0.25, key)
    draws = np.asarray(jax.random.bits(key, (3, 50, 4), jnp.uint32))
    halves = np.stack([draws & 0xFFFF, draws >> 16], axis=-1).reshape(x.shape)
    keep = halves >= 16384
    np.testing.assert_allclose(y, np.where(keep, np.asarray(x) / 0.75, 0.0), rtol=1e-6)
    # Odd channel counts: jax.random.bernoulli's mask.
    x = jax.random.normal(jax.random.key(1), (3, 50, 7))
    y = jax.jit(dropout_lib.dropout, static_argnums=1)(x, 0.25, key)
    keep = np.asarray(jax.random.bernoulli(key, 0.75, x.shape))
    np.testing.assert_allclose(y, np.where(keep, np.asarray(x) / 0.75, 0.0), rtol=1e-6)
