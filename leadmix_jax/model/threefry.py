"""Threefry-2x32 random bits as straight-line elementwise code, equal to ``jax.random``'s.

Why: on XLA:CPU, JAX lowers its threefry hash as a rolled 5-iteration
``while`` loop whose every iteration reads and writes the whole state, and
then writes the bits. Written here as plain ``jnp`` integer ops, the hash is
one elementwise expression of the element's index that XLA fuses into its
consumer: no loop, and the random bits are not written to memory at all
(the measurement is in ``docs/formulations.md``).

The bits are *the same* as ``jax.random.bits`` / ``jax.random.bernoulli`` give
for the same key and shape (threefry keys, ``jax_threefry_partitionable``,
JAX's default): training results do not change. ``tests/test_threefry.py``
checks the equality, so a change of JAX's mapping from key and shape to bits
shows up as a failing test, not as silently different results. For any other
PRNG implementation these functions call ``jax.random`` itself.

Threefry-2x32 with 20 rounds is the counter-based hash of Salmon et al.,
"Parallel random numbers: as easy as 1, 2, 3" (SC 2011). JAX's partitionable
mapping hashes the 64-bit flat element index (high word, low word) under the
key and returns the xor of the two output words.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array

_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))
_PARITY = np.uint32(0x1BD11BDA)


def _rotl(v: Array, r: int) -> Array:
    return (v << np.uint32(r)) | (v >> np.uint32(32 - r))


def hash2x32(k0: Array, k1: Array, c0: Array, c1: Array) -> tuple[Array, Array]:
    """Threefry-2x32 (20 rounds) of the counter pair ``(c0, c1)`` under key ``(k0, k1)``.

    All uint32; ``k0``, ``k1`` scalars, ``c0``, ``c1`` any (broadcastable) shape.
    """
    ks = (k0, k1, k0 ^ k1 ^ _PARITY)
    x0, x1 = c0 + ks[0], c1 + ks[1]
    for group in range(5):
        for r in _ROTATIONS[group % 2]:
            x0 = x0 + x1
            x1 = _rotl(x1, r) ^ x0
        # Key injection after every 4 rounds, with the injection counter.
        x0 = x0 + ks[(group + 1) % 3]
        x1 = x1 + ks[(group + 2) % 3] + np.uint32(group + 1)
    return x0, x1


def _threefry_key(key: Array) -> Array | None:
    """The ``(2,)`` uint32 data of a threefry key, or None for another PRNG implementation."""
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        if "threefry" not in str(jax.random.key_impl(key)):
            return None
        return jax.random.key_data(key)
    # A raw uint32 key (jax.random.PRNGKey) belongs to the default implementation.
    if jax.config.jax_default_prng_impl != "threefry2x32" or key.shape != (2,):
        return None
    return key


def _flat_index(shape: tuple[int, ...]) -> Array:
    """Row-major flat index of every element of ``shape``, uint32 (sizes below 2**32)."""
    index = jnp.zeros(shape, jnp.uint32)
    stride = 1
    for axis in reversed(range(len(shape))):
        index = index + jax.lax.broadcasted_iota(jnp.uint32, shape, axis) * np.uint32(stride)
        stride *= shape[axis]
    return index


def _usable(key: Array, shape: tuple[int, ...]) -> Array | None:
    if not jax.config.jax_threefry_partitionable or math.prod(shape) >= 2**32:
        return None
    return _threefry_key(key)


def _bits_at(data: Array, index: Array) -> Array:
    """The 32 random bits of flat element ``index`` (uint32 array) under key data ``data``."""
    x0, x1 = hash2x32(data[0], data[1], jnp.zeros_like(index), index)  # high word of the index: 0
    return x0 ^ x1


def random_bits(key: Array, shape: tuple[int, ...]) -> Array:
    """``jax.random.bits(key, shape, jnp.uint32)``, computed elementwise. ``shape`` -> uint32."""
    data = _usable(key, shape)
    if data is None:
        return jax.random.bits(key, shape, jnp.uint32)
    return _bits_at(data, _flat_index(shape))


def random_halves(key: Array, shape: tuple[int, ...]) -> Array:
    """16 random bits per element, two elements per 32-bit draw. ``shape`` -> uint32 in [0, 2**16).

    Element ``(..., 2j)`` gets the low and ``(..., 2j + 1)`` the high half of
    ``jax.random.bits(key, shape[:-1] + (shape[-1] // 2,))[..., j]``; the last
    axis must be even. Computed per element (each draw is hashed for both of
    its elements), so that no interleaving copy of the bits is written.
    """
    if shape[-1] % 2:
        raise ValueError(f"random_halves needs an even last axis, got {shape}")
    pairs = shape[:-1] + (shape[-1] // 2,)
    data = _usable(key, pairs)
    if data is None:
        bits = jax.random.bits(key, pairs, jnp.uint32)
        return jnp.stack([bits & 0xFFFF, bits >> 16], axis=-1).reshape(shape)
    flat = _flat_index(shape)  # element (..., c) draws number flat // 2 of the pairs' shape
    shift = (flat & np.uint32(1)) << np.uint32(4)  # 0 for the low half, 16 for the high
    return (_bits_at(data, flat >> np.uint32(1)) >> shift) & np.uint32(0xFFFF)


def bernoulli(key: Array, p: float, shape: tuple[int, ...]) -> Array:
    """``jax.random.bernoulli(key, p, shape)`` (float32 uniforms), computed elementwise. Bool."""
    data = _usable(key, shape)
    if data is None:
        return jax.random.bernoulli(key, p, shape)
    # jax.random.uniform: the top 23 bits as the mantissa of a float in [1, 2), minus 1.
    mantissa = (_bits_at(data, _flat_index(shape)) >> np.uint32(9)) | np.uint32(0x3F800000)
    uniform = jax.lax.bitcast_convert_type(mantissa, jnp.float32) - jnp.float32(1.0)
    return uniform < jnp.float32(p)
