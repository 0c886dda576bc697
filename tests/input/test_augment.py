"""Tests of leadmix_jax.input.augment: the NumPy (grain) and JAX (device)
forms are the same operations, every constant comes from the config."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from leadmix_jax.input import augment

ALL = augment.AugmentConfig(
    scale=0.2, noise=0.05, wander=0.3, wander_low_hz=1.0, wander_high_hz=2.0, shift=40
)


def _example(seed=0, shape=(2500, 3)):
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def test_numpy_and_jax_forms_equal_on_the_same_draws():
    """One set of draws through both forms: the same example, to float32 rounding
    (the wander is computed in float64 by NumPy, in float32 by JAX)."""
    x = _example()
    draws = augment.numpy_draws(np.random.default_rng(1), x.shape, ALL)
    as_np = augment.apply(x, draws, ALL, np)
    as_jax = jax.jit(lambda x, d: augment.apply(x, d, ALL, jnp))(
        jnp.asarray(x), {k: jnp.asarray(v, jnp.float32) if k != "shift" else v for k, v in draws.items()}
    )
    assert as_np.dtype == np.float32 and as_jax.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(as_jax), as_np, rtol=0, atol=2e-5)
    # and it is the composition it claims, step by step
    want = np.roll(x, draws["shift"], axis=0) * draws["scale"]
    t = np.arange(2500)[:, None]
    want = want + 0.3 * np.sin(2 * np.pi * draws["freq"] * t / 250.0 + draws["phase"])
    np.testing.assert_allclose(as_np, want + draws["noise"], rtol=0, atol=1e-5)


def test_jax_draws_and_numpy_draws_follow_the_config():
    x = _example(shape=(400, 4))
    keys = jax.random.split(jax.random.PRNGKey(0), 200)
    jax_draws = jax.vmap(lambda k: augment.jax_draws(k, x.shape, ALL))(keys)
    rng = np.random.default_rng(0)
    np_draws = [augment.numpy_draws(rng, x.shape, ALL) for _ in range(200)]
    for name, draws in (
        ("jax", jax_draws),
        ("numpy", {k: np.stack([d[k] for d in np_draws]) for k in np_draws[0]}),
    ):
        f = np.asarray(draws["freq"])
        assert 1.0 <= f.min() < 1.05 and 1.95 < f.max() <= 2.0, name  # the configured wander band
        s = np.asarray(draws["scale"])
        assert 0.8 <= s.min() < 0.82 and 1.18 < s.max() <= 1.2, name
        shifts = np.asarray(draws["shift"])
        assert shifts.min() >= -40 and shifts.max() <= 40 and len(set(shifts.tolist())) > 20, name
        assert abs(np.asarray(draws["noise"]).std() - 0.05) < 0.002, name


def test_only_active_augmentations_draw():
    c = augment.AugmentConfig(scale=0.1)
    assert set(augment.numpy_draws(np.random.default_rng(0), (10, 2), c)) == {"scale"}
    assert not augment.AugmentConfig().active and c.active
    x = _example(shape=(10, 2))
    np.testing.assert_array_equal(augment.apply(x, {}, augment.AugmentConfig()), x)


def test_grain_transform_uses_the_numpy_form():
    x = _example(shape=(250, 3))
    out = augment.NumpyAugment(ALL).random_map({"ecg": x, "label": 1}, np.random.default_rng(5))
    want = augment.apply(x, augment.numpy_draws(np.random.default_rng(5), x.shape, ALL), ALL)
    np.testing.assert_array_equal(out["ecg"], want)
    assert out["label"] == 1


def test_from_config_takes_every_field_and_refuses_unknown_ones():
    c = augment.AugmentConfig.from_config(
        {"scale": 0.1, "wander": 0.2, "wander_low_hz": 0.1, "wander_high_hz": 0.4}
    )
    assert (c.scale, c.wander, c.wander_low_hz, c.wander_high_hz, c.shift) == (0.1, 0.2, 0.1, 0.4, 0)
    with pytest.raises(TypeError):
        augment.AugmentConfig.from_config({"wandr": 0.1})
